"""The fake Discord works with the real discord.py: a tiny bot driven over loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from collections.abc import AsyncIterator
from typing import Any

import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.fakediscord import (
    MANAGE_GUILD,
    PLAIN_MEMBER,
    SEND_MESSAGES,
    FakeChannel,
    FakeDiscord,
    FakeGuild,
    FakeUser,
    RecordedRequest,
)

TOKEN = "test-token"
GUILD_ID = 111_111_111_111_111_111
NEWS_CHANNEL = 222_222_222_222_222_222
QUIET_CHANNEL = 222_222_222_222_222_223  # the bot may not post here
TOPICS = ["Elections", "Electric cars", "Climate", "Football"]
ALICE = FakeUser(333_333_333_333_333_333, "alice")


class VoteButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"vote:(?P<n>\d+)"):
    """A persistent button: it works on messages sent before the bot restarted."""

    def __init__(self, n: int) -> None:
        super().__init__(discord.ui.Button(label="Vote", custom_id=f"vote:{n}"))
        self.n = n

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button[Any], match: re.Match[str]
    ) -> VoteButton:
        return cls(int(match["n"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"voted {self.n}", ephemeral=True)


class TinyBot(commands.Bot):
    """Slash commands with autocomplete and a subcommand, a persistent button, channel posts."""

    def __init__(self) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        # guild_ready_timeout: on_ready waits this long after the last GUILD_CREATE (2 s default).
        super().__init__(command_prefix="!", intents=intents, guild_ready_timeout=0.05)
        self.errors: asyncio.Queue[BaseException] = asyncio.Queue()
        guild = discord.Object(GUILD_ID)

        @app_commands.command(name="news", description="Search the news")
        async def news(interaction: discord.Interaction, query: str, limit: int = 3) -> None:
            view = discord.ui.View(timeout=None)
            view.add_item(VoteButton(7))
            await interaction.response.send_message(f"{limit} hits for {query}", view=view)

        @news.autocomplete("query")
        async def news_query(
            interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[str]]:
            hits = [t for t in TOPICS if current.lower() in t.lower()]
            return [app_commands.Choice(name=t, value=t) for t in hits][:25]

        @app_commands.command(name="ping", description="Pong")
        async def ping(interaction: discord.Interaction) -> None:
            where = "dm" if interaction.guild is None else interaction.guild.name
            await interaction.response.send_message(f"pong from {where}")

        digest = app_commands.Group(name="digest", description="Daily digest")

        @digest.command(name="time", description="Set the digest hour")
        @app_commands.checks.has_permissions(manage_guild=True)
        async def digest_time(interaction: discord.Interaction, hour: int) -> None:
            await interaction.response.defer(ephemeral=True)
            await interaction.edit_original_response(content=f"digest at {hour}:00")

        @digest.command(name="channel", description="Where the digest goes")
        async def digest_channel(
            interaction: discord.Interaction, channel: discord.TextChannel
        ) -> None:
            await interaction.response.send_message(f"digest goes to #{channel.name}")

        self.tree.add_command(news, guild=guild)
        self.tree.add_command(digest, guild=guild)
        self.tree.add_command(ping)  # global, so it also works in DMs
        self.tree.on_error = self.on_app_command_error  # type: ignore[method-assign]

    async def setup_hook(self) -> None:
        self.add_dynamic_items(VoteButton)

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        self.errors.put_nowait(error)
        if isinstance(error, app_commands.MissingPermissions):
            await interaction.response.send_message("not allowed", ephemeral=True)


def make_guild() -> FakeGuild:
    quiet = FakeChannel(QUIET_CHANNEL, "quiet", position=1)
    # Like a channel where the admins took Send Messages away from everyone.
    quiet.permission_overwrites.append(
        {"id": GUILD_ID, "type": 0, "allow": 0, "deny": SEND_MESSAGES}
    )
    return FakeGuild(GUILD_ID, "Newsroom", channels=[FakeChannel(NEWS_CHANNEL, "news"), quiet])


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(guilds=[make_guild()], token=TOKEN) as fake:
        with fake.patch_discord():
            yield fake
        assert fake.errors == []  # the fake itself never failed


@contextlib.asynccontextmanager
async def connected(bot: commands.Bot, fake: FakeDiscord) -> AsyncIterator[None]:
    """Log in, run ``bot.connect()`` as a task until READY; always close the bot afterwards."""
    task: asyncio.Task[None] | None = None
    try:
        await bot.login(TOKEN)
        task = asyncio.create_task(bot.connect())
        await fake.wait_until_connected(timeout=5)
        await asyncio.wait_for(bot.wait_until_ready(), 5)
        yield
    finally:
        await bot.close()
        if task is not None:
            await asyncio.wait_for(task, 5)


@pytest.fixture
async def bot(fake: FakeDiscord) -> AsyncIterator[TinyBot]:
    bot = TinyBot()
    async with connected(bot, fake):
        await bot.tree.sync(guild=discord.Object(GUILD_ID))
        await bot.tree.sync()
        yield bot


async def test_patch_discord_sets_and_restores_the_endpoints() -> None:
    before = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    async with FakeDiscord() as fake:
        with fake.patch_discord():
            assert fake.api_base == discord.http.Route.BASE
            assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == fake.gateway_url
    assert before == (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)


async def test_a_wrong_token_is_a_login_failure(fake: FakeDiscord) -> None:
    bot = TinyBot()
    with pytest.raises(discord.LoginFailure):
        await bot.login("wrong-token")
    await bot.close()
    assert fake.requests[-1].status == 401


async def test_sync_echoes_commands_with_ids(fake: FakeDiscord, bot: TinyBot) -> None:
    put = await fake.wait_for_request(lambda r: r.method == "PUT")
    assert put.path == f"/applications/{fake.application_id}/guilds/{GUILD_ID}/commands"
    assert {c["name"] for c in put.json} == {"news", "digest"}
    synced = {c["name"]: c for c in fake.commands(GUILD_ID)}
    assert synced["news"]["application_id"] == str(fake.application_id)
    assert synced["news"]["guild_id"] == str(GUILD_ID)
    # Syncing again keeps the ids, as Discord does.
    again = await bot.tree.sync(guild=discord.Object(GUILD_ID))
    assert {c.name: str(c.id) for c in again} == {n: c["id"] for n, c in synced.items()}


async def test_slash_command_is_answered(fake: FakeDiscord, bot: TinyBot) -> None:
    iid = await fake.slash("news", {"query": "climate", "limit": 2}, user=ALICE)
    callback = await fake.wait_for_callback(iid)
    assert callback.query == {"with_response": "1"}
    assert callback.json["type"] == 4
    assert callback.json["data"]["content"] == "2 hits for climate"
    button = callback.json["data"]["components"][0]["components"][0]
    assert button["custom_id"] == "vote:7"
    assert fake.interaction_messages(iid)[0]["content"] == "2 hits for climate"


async def test_autocomplete_returns_choices(fake: FakeDiscord, bot: TinyBot) -> None:
    iid = await fake.autocomplete("news", {"query": "elec"}, focused="query")
    callback = await fake.wait_for_callback(iid)
    assert callback.json == {
        "type": 8,
        "data": {
            "choices": [
                {"name": "Elections", "value": "Elections"},
                {"name": "Electric cars", "value": "Electric cars"},
            ]
        },
    }


async def test_persistent_button_click_on_the_sent_message(fake: FakeDiscord, bot: TinyBot) -> None:
    await fake.wait_for_callback(await fake.slash("news", {"query": "x"}))
    iid = await fake.click("vote:7")
    callback = await fake.wait_for_callback(iid)
    assert callback.json["data"] == {"content": "voted 7", "flags": 64, "tts": False}


async def test_persistent_button_click_on_an_unknown_message(
    fake: FakeDiscord, bot: TinyBot
) -> None:
    # A message from before a restart: only the DynamicItem template can route the click.
    iid = await fake.click("vote:41", message_id=444_444_444_444_444_444)
    callback = await fake.wait_for_callback(iid)
    assert callback.json["data"]["content"] == "voted 41"


async def test_subcommand_with_permission_check_and_deferral(
    fake: FakeDiscord, bot: TinyBot
) -> None:
    denied = await fake.slash("digest", {"hour": 9}, subcommand="time", permissions=PLAIN_MEMBER)
    assert (await fake.wait_for_callback(denied)).json["data"]["content"] == "not allowed"
    assert isinstance(await asyncio.wait_for(bot.errors.get(), 5), app_commands.MissingPermissions)

    start_index = len(fake.requests)
    iid = await fake.slash("digest", {"hour": 9}, subcommand="time", permissions=MANAGE_GUILD)
    callback = await fake.wait_for_callback(iid)
    assert callback.json == {"type": 5, "data": {"flags": 64}}
    edit = await fake.wait_for_request(lambda r: r.method == "PATCH", after=start_index)
    assert edit.path.endswith("/messages/@original")
    assert edit.json["content"] == "digest at 9:00"
    assert fake.interaction_messages(iid)[0]["content"] == "digest at 9:00"


async def test_channel_option_is_resolved(fake: FakeDiscord, bot: TinyBot) -> None:
    iid = await fake.slash("digest", {"channel": NEWS_CHANNEL}, subcommand="channel")
    assert (await fake.wait_for_callback(iid)).json["data"]["content"] == "digest goes to #news"


async def test_slash_command_in_a_dm(fake: FakeDiscord, bot: TinyBot) -> None:
    iid = await fake.slash("ping", guild_id=None, user=ALICE)
    assert (await fake.wait_for_callback(iid)).json["data"]["content"] == "pong from dm"


async def test_channel_post_with_the_same_nonce_is_created_once(
    fake: FakeDiscord, bot: TinyBot
) -> None:
    channel = bot.get_channel(NEWS_CHANNEL)
    assert isinstance(channel, discord.TextChannel)
    first = await channel.send("digest", nonce="digest-2024-05-01")
    second = await channel.send("digest", nonce="digest-2024-05-01")
    assert first.id == second.id
    assert [m["content"] for m in fake.messages_in(NEWS_CHANNEL)] == ["digest"]
    posts = [r for r in fake.requests if r.path == f"/channels/{NEWS_CHANNEL}/messages"]
    assert [(p.json["nonce"], p.json["enforce_nonce"]) for p in posts] == [
        ("digest-2024-05-01", True)
    ] * 2
    history = [m async for m in channel.history(limit=5)]
    assert [m.id for m in history] == [first.id]


async def test_rate_limited_post_is_retried_and_posted_once(
    fake: FakeDiscord, bot: TinyBot
) -> None:
    fake.fail_next("POST", rf"/channels/{NEWS_CHANNEL}/messages", 429)
    channel = bot.get_channel(NEWS_CHANNEL)
    assert isinstance(channel, discord.TextChannel)
    message = await channel.send("hello")
    statuses = [r.status for r in fake.requests if r.path == f"/channels/{NEWS_CHANNEL}/messages"]
    assert statuses == [429, 200]
    assert [m["id"] for m in fake.messages_in(NEWS_CHANNEL)] == [str(message.id)]


async def test_lost_answer_is_retried_and_the_nonce_keeps_one_message(
    fake: FakeDiscord, bot: TinyBot
) -> None:
    # Discord stored the message but the answer was a 500; discord.py retries (after 1 s).
    fake.fail_next("POST", rf"/channels/{NEWS_CHANNEL}/messages", 500, process=True)
    channel = bot.get_channel(NEWS_CHANNEL)
    assert isinstance(channel, discord.TextChannel)
    await channel.send("digest", nonce="digest-2024-05-02")
    assert len(fake.messages_in(NEWS_CHANNEL)) == 1


async def test_forbidden_and_unknown_channels_raise(fake: FakeDiscord, bot: TinyBot) -> None:
    quiet = bot.get_channel(QUIET_CHANNEL)
    assert isinstance(quiet, discord.TextChannel)
    with pytest.raises(discord.Forbidden) as forbidden:
        await quiet.send("nope")
    assert forbidden.value.code == 50013
    with pytest.raises(discord.NotFound) as missing:
        await bot.http.send_message(999, params=discord.http.handle_message_parameters("x"))
    assert missing.value.code == 10003
    assert fake.messages_in(QUIET_CHANNEL) == []


async def test_files_are_sent_as_multipart(fake: FakeDiscord, bot: TinyBot) -> None:
    channel = bot.get_channel(NEWS_CHANNEL)
    assert isinstance(channel, discord.TextChannel)
    message = await channel.send("report", file=discord.File(io.BytesIO(b"a,b\n"), "report.csv"))
    post = fake.requests[-1]
    assert post.json["content"] == "report"
    assert [(f.filename, f.data) for f in post.files] == [("report.csv", b"a,b\n")]
    assert message.attachments[0].filename == "report.csv"


async def test_gateway_resume_keeps_the_session(fake: FakeDiscord, bot: TinyBot) -> None:
    await fake.close_gateway(4000)
    # Sent while the socket is down: replayed when the bot RESUMEs.
    iid = await fake.slash("ping")
    assert (await fake.wait_for_callback(iid)).json["data"]["content"] == "pong from Newsroom"
    await fake.wait_until_connected()
    assert (fake.identify_count, fake.resume_count) == (1, 1)
    assert fake.gateway_connections[-1].startswith("/gateway/resume")
    resume = next(f for f in fake.gateway_received if f["op"] == 6)
    assert resume["d"]["session_id"] == fake.dispatches[0].session_id
    iid = await fake.slash("ping")
    assert (await fake.wait_for_callback(iid)).json["data"]["content"] == "pong from Newsroom"


async def test_unknown_interaction_raises_not_found_and_the_bot_lives_on(
    fake: FakeDiscord, bot: TinyBot
) -> None:
    fake.fail_next(
        "POST",
        r"/interactions/\d+/[^/]+/callback",
        404,
        {"code": 10062, "message": "Unknown interaction"},
    )
    await fake.slash("ping")
    error = await asyncio.wait_for(bot.errors.get(), 5)
    assert isinstance(error, app_commands.CommandInvokeError)
    assert isinstance(error.original, discord.NotFound)
    assert error.original.code == 10062
    iid = await fake.slash("ping")
    assert (await fake.wait_for_callback(iid)).status == 200


async def test_unknown_routes_are_recorded_as_404(fake: FakeDiscord, bot: TinyBot) -> None:
    with pytest.raises(discord.NotFound):
        await bot.fetch_guild(GUILD_ID)
    unhandled: list[RecordedRequest] = [r for r in fake.requests if not r.handled]
    assert [(r.method, r.path) for r in unhandled] == [("GET", f"/guilds/{GUILD_ID}")]


class ShardedBot(commands.AutoShardedBot):
    def __init__(self) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        super().__init__(command_prefix="!", intents=intents, guild_ready_timeout=0.05)

        @self.tree.command(name="ping", description="Pong")
        async def ping(interaction: discord.Interaction) -> None:
            assert interaction.guild is not None
            await interaction.response.send_message(f"pong from shard {interaction.guild.shard_id}")

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        pass  # discord.py sleeps 5 s before every IDENTIFY but the first


async def test_auto_sharded_bot_gets_interactions_on_the_right_shard() -> None:
    guilds = [
        FakeGuild(n << 22, f"guild {n}", [FakeChannel((n << 22) + 1, "general")]) for n in (4, 5)
    ]
    async with FakeDiscord(guilds=guilds, token=TOKEN, shard_count=2) as fake:
        with fake.patch_discord():
            bot = ShardedBot()
            async with connected(bot, fake):
                await bot.tree.sync()
                assert fake.identify_count == 2
                ready = [d.shard for d in fake.dispatches if d.event == "READY"]
                assert sorted(ready, key=str) == [(0, 2), (1, 2)]
                iid = await fake.slash("ping", guild_id=5 << 22)
                callback = await fake.wait_for_callback(iid)
                assert callback.json["data"]["content"] == "pong from shard 1"
                sent = next(d for d in fake.dispatches if d.event == "INTERACTION_CREATE")
                assert sent.shard == (1, 2)

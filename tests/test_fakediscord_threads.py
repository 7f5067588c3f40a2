"""Threads and forum channels in the fake Discord, driven by the real discord.py client."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from typing import Any

import discord
import pytest
from discord import app_commands

from tests.fakediscord import (
    DEFAULT_USER,
    MENTION_EVERYONE,
    PLAIN_MEMBER,
    REQUIRE_TAG,
    SEND_MESSAGES,
    SEND_MESSAGES_IN_THREADS,
    FakeChannel,
    FakeDiscord,
    FakeGuild,
    FakeRole,
)

TOKEN = "threads-token"
GUILD_ID = 111_111_111_111_111_111
NEWS = 222_222_222_222_222_201  # a text channel
QUIET = 222_222_222_222_222_202  # @everyone may not send here, but may talk in its threads
NO_THREADS = 222_222_222_222_222_203  # @everyone may send here, not in its threads
FORUM = 222_222_222_222_222_204
TAGGED_FORUM = 222_222_222_222_222_205  # posts need a tag
SHUT_FORUM = 222_222_222_222_222_206  # @everyone may not post
THREAD = 222_222_222_222_222_301  # public thread of NEWS
ARCHIVED = 222_222_222_222_222_302
LOCKED = 222_222_222_222_222_303  # locked and archived
LOCKED_ACTIVE = 222_222_222_222_222_304
PRIVATE = 222_222_222_222_222_305  # private, the bot is not a member
QUIET_THREAD = 222_222_222_222_222_306
NO_THREADS_THREAD = 222_222_222_222_222_307
OLD_POST = 222_222_222_222_222_308  # a post in FORUM from before the bot started
PINGS = 555_555_555_555_555_501  # a role anyone may mention
STAFF = 555_555_555_555_555_502  # a role only MENTION_EVERYONE may ping
TAG = 666_666_666_666_666_601


def deny(permissions: int) -> dict[str, Any]:
    return {"id": GUILD_ID, "type": 0, "allow": 0, "deny": permissions}


def make_guild() -> FakeGuild:
    return FakeGuild(
        GUILD_ID,
        "Newsroom",
        channels=[
            FakeChannel(NEWS, "news"),
            FakeChannel(QUIET, "quiet", position=1, permission_overwrites=[deny(SEND_MESSAGES)]),
            FakeChannel(
                NO_THREADS,
                "no-threads",
                position=2,
                permission_overwrites=[deny(SEND_MESSAGES_IN_THREADS)],
            ),
            FakeChannel.forum(FORUM, "headlines", position=3),
            FakeChannel.forum(
                TAGGED_FORUM,
                "tagged",
                position=4,
                flags=REQUIRE_TAG,
                available_tags=[{"id": TAG, "name": "World"}],
            ),
            FakeChannel.forum(
                SHUT_FORUM, "shut", position=5, permission_overwrites=[deny(SEND_MESSAGES)]
            ),
            FakeChannel.thread(THREAD, "daily", NEWS),
            FakeChannel.thread(ARCHIVED, "old", NEWS, archived=True),
            FakeChannel.thread(LOCKED, "closed", NEWS, archived=True, locked=True),
            FakeChannel.thread(LOCKED_ACTIVE, "frozen", NEWS, locked=True),
            FakeChannel.thread(PRIVATE, "staff", NEWS, private=True, bot_joined=False),
            FakeChannel.thread(QUIET_THREAD, "quiet thread", QUIET),
            FakeChannel.thread(NO_THREADS_THREAD, "mute thread", NO_THREADS),
            FakeChannel.thread(OLD_POST, "An older headline", FORUM),
        ],
        roles=[FakeRole(PINGS, "News pings", mentionable=True), FakeRole(STAFF, "Staff")],
    )


class Client(discord.Client):
    def __init__(self) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        super().__init__(
            intents=intents,
            guild_ready_timeout=0.05,
            # Like the news bot: nothing pings unless a send asks for it.
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self.tree = app_commands.CommandTree(self)

        @self.tree.command(name="where", description="Where am I, and where to?")
        async def where(
            interaction: discord.Interaction,
            target: app_commands.AppCommandChannel | app_commands.AppCommandThread | None = None,
        ) -> None:
            here = interaction.channel
            assert here is not None
            there = f"{type(target).__name__} {target.id} {target.type.name}" if target else "-"
            await interaction.response.send_message(f"{type(here).__name__} {here.id} -> {there}")


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(guilds=[make_guild()], token=TOKEN) as fake:
        with fake.patch_discord():
            yield fake
        assert fake.errors == []  # the fake itself never failed


@pytest.fixture
async def client(fake: FakeDiscord) -> AsyncIterator[Client]:
    client = Client()
    task: asyncio.Task[None] | None = None
    try:
        await client.login(TOKEN)
        task = asyncio.create_task(client.connect())
        await fake.wait_until_connected(timeout=5)
        await asyncio.wait_for(client.wait_until_ready(), 5)
        yield client
    finally:
        await client.close()
        if task is not None:
            await asyncio.wait_for(task, 5)


def guild_of(client: discord.Client) -> discord.Guild:
    guild = client.get_guild(GUILD_ID)
    assert guild is not None
    return guild


def forum_of(client: discord.Client, channel_id: int = FORUM) -> discord.ForumChannel:
    forum = guild_of(client).get_channel(channel_id)
    assert isinstance(forum, discord.ForumChannel)
    return forum


async def eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Gateway events race REST answers (as with Discord): poll until ``check()`` is truthy."""
    async with asyncio.timeout(timeout):
        while not (result := check()):
            await asyncio.sleep(0.01)
    return result


async def test_active_threads_come_with_the_guild(fake: FakeDiscord, client: Client) -> None:
    guild = guild_of(client)
    thread = guild.get_thread(THREAD)
    assert isinstance(thread, discord.Thread)
    assert thread is guild.get_channel_or_thread(THREAD) is client.get_channel(THREAD)
    assert guild.get_channel(THREAD) is None  # a thread is not a channel to discord.py
    assert isinstance(thread.parent, discord.TextChannel) and thread.parent.id == NEWS
    assert thread.type is discord.ChannelType.public_thread
    assert (thread.archived, thread.locked, thread.owner_id) == (False, False, DEFAULT_USER.id)
    assert thread.me is not None  # the bot is a member
    post = guild.get_thread(OLD_POST)
    assert post is not None and isinstance(post.parent, discord.ForumChannel)
    # Discord syncs active threads the bot may see: not archived ones, nor private ones it is
    # not in. discord.py then has no object for them: get_channel() is None.
    for hidden in (ARCHIVED, LOCKED, PRIVATE):
        assert client.get_channel(hidden) is None
    (create,) = [d for d in fake.dispatches if d.event == "GUILD_CREATE"]
    assert THREAD not in {int(c["id"]) for c in create.data["channels"]}
    listed = {int(t["id"]) for t in create.data["threads"]}
    assert listed == {THREAD, LOCKED_ACTIVE, QUIET_THREAD, NO_THREADS_THREAD, OLD_POST}
    forum = forum_of(client)
    assert forum.type is discord.ChannelType.forum and list(forum.available_tags) == []
    assert forum_of(client, TAGGED_FORUM).flags.require_tag
    assert [t.name for t in forum_of(client, TAGGED_FORUM).available_tags] == ["World"]


async def test_send_into_a_thread(fake: FakeDiscord, client: Client) -> None:
    thread = guild_of(client).get_channel_or_thread(THREAD)
    assert isinstance(thread, discord.Thread)
    message = await thread.send("first", embed=discord.Embed(title="Headline"))
    assert message.channel is thread
    (sent,) = fake.messages_in(THREAD)
    assert (sent["id"], sent["channel_id"]) == (str(message.id), str(THREAD))
    assert sent["embeds"][0]["title"] == "Headline"
    assert fake.messages_in(NEWS) == []  # not in the parent channel
    fetched = await client.fetch_channel(THREAD)  # GET /channels/{id} answers the thread
    assert isinstance(fetched, discord.Thread)
    assert (fetched.message_count, fetched.last_message_id) == (1, message.id)
    history = [m.content async for m in thread.history(limit=5)]
    assert history == ["first"]


async def test_forum_post_opens_a_thread_with_its_starter_message(
    fake: FakeDiscord, client: Client
) -> None:
    forum = forum_of(client)
    created: asyncio.Future[discord.Thread] = asyncio.ensure_future(
        client.wait_for("thread_create", timeout=5)
    )
    thread, message = await forum.create_thread(
        name="Storm hits the coast",
        content=f"<@&{PINGS}> new article",
        embed=discord.Embed(title="Storm hits the coast", url="https://example.org/storm"),
        allowed_mentions=discord.AllowedMentions(roles=[discord.Object(PINGS)]),
    )
    # The thread and its starter message share one id; the message is in the thread.
    assert thread.id == message.id and message.channel.id == thread.id
    assert (thread.parent_id, thread.name, thread.type) == (
        FORUM,
        "Storm hits the coast",
        discord.ChannelType.public_thread,
    )
    assert thread.message_count == 0  # Discord does not count the starter message

    request = fake.requests[-1]
    assert (request.method, request.path, request.query) == (
        "POST",
        f"/channels/{FORUM}/threads",
        {"use_nested_fields": "1"},
    )
    assert request.status == 201
    assert request.json["name"] == "Storm hits the coast"
    assert request.json["message"]["content"] == f"<@&{PINGS}> new article"

    (post,) = fake.threads_in(FORUM)
    assert (post["id"], post["name"], post["parent_id"]) == (
        str(thread.id),
        "Storm hits the coast",
        str(FORUM),
    )
    assert post["type"] == 11 and post["thread_metadata"]["archived"] is False
    (starter,) = fake.messages_in(thread.id)
    assert starter["id"] == str(thread.id)
    assert starter["embeds"][0]["url"] == "https://example.org/storm"
    # The client default (none) merged with the send's roles: only that role may ping.
    assert starter["allowed_mentions"] == {"parse": [], "roles": [PINGS]}
    assert starter["mention_roles"] == [str(PINGS)]
    assert message.role_mentions[0].id == PINGS

    # THREAD_CREATE puts the new thread in discord.py's cache.
    assert (await created).id == thread.id
    assert guild_of(client).get_thread(thread.id) is not None
    event = next(d for d in fake.dispatches if d.event == "THREAD_CREATE")
    assert event.data["newly_created"] is True and event.data["guild_id"] == str(GUILD_ID)


async def test_forum_post_with_a_file_is_multipart(fake: FakeDiscord, client: Client) -> None:
    thread, message = await forum_of(client).create_thread(
        name="Report", file=discord.File(io.BytesIO(b"a,b\n"), "report.csv")
    )
    request = fake.requests[-1]
    assert request.json["message"]["attachments"] == [{"id": 0, "filename": "report.csv"}]
    assert [(f.name, f.data) for f in request.files] == [("files[0]", b"a,b\n")]
    assert message.attachments[0].filename == "report.csv"
    assert fake.messages_in(thread.id)[0]["attachments"][0]["filename"] == "report.csv"


@pytest.mark.parametrize("name", ["", "x" * 101])
async def test_forum_post_name_must_be_1_to_100_characters(
    fake: FakeDiscord, client: Client, name: str
) -> None:
    with pytest.raises(discord.HTTPException) as error:
        await forum_of(client).create_thread(name=name, content="body")
    assert (error.value.status, error.value.code) == (400, 50035)
    assert "In name: Must be between 1 and 100 in length." in error.value.text
    assert fake.threads_in(FORUM) == []
    # 100 characters is fine.
    thread, _ = await forum_of(client).create_thread(name="x" * 100, content="body")
    assert len(thread.name) == 100


async def test_forum_post_refusals(fake: FakeDiscord, client: Client) -> None:
    with pytest.raises(discord.HTTPException) as empty:
        await forum_of(client).create_thread(name="Nothing")  # a post needs a message
    assert (empty.value.status, empty.value.code) == (400, 50006)

    with pytest.raises(discord.Forbidden) as shut:
        await forum_of(client, SHUT_FORUM).create_thread(name="Nope", content="x")
    assert shut.value.code == 50013

    tagged = forum_of(client, TAGGED_FORUM)
    with pytest.raises(discord.HTTPException) as untagged:
        await tagged.create_thread(name="Untagged", content="x")
    assert untagged.value.code == 40067
    thread, _ = await tagged.create_thread(
        name="Tagged", content="x", applied_tags=tagged.available_tags
    )
    assert [t.id for t in thread.applied_tags] == [TAG]
    assert [t["name"] for t in fake.threads_in(TAGGED_FORUM)] == ["Tagged"]
    assert fake.threads_in(SHUT_FORUM) == []

    with pytest.raises(discord.HTTPException) as not_text:
        await client.http.send_message(FORUM, params=discord.http.handle_message_parameters("x"))
    assert not_text.value.code == 50008  # a forum takes posts, not messages


async def test_missing_send_permissions_are_forbidden(fake: FakeDiscord, client: Client) -> None:
    quiet = guild_of(client).get_channel(QUIET)
    assert isinstance(quiet, discord.TextChannel)
    with pytest.raises(discord.Forbidden) as forbidden:
        await quiet.send("nope")
    assert (forbidden.value.status, forbidden.value.code) == (403, 50013)
    assert fake.messages_in(QUIET) == []

    # SEND_MESSAGES does not matter in threads; SEND_MESSAGES_IN_THREADS (on the parent) does.
    quiet_thread = guild_of(client).get_thread(QUIET_THREAD)
    assert quiet_thread is not None
    await quiet_thread.send("threads are fine")
    mute_thread = guild_of(client).get_thread(NO_THREADS_THREAD)
    assert mute_thread is not None
    with pytest.raises(discord.Forbidden) as in_thread:
        await mute_thread.send("nope")
    assert in_thread.value.code == 50013
    assert [len(fake.messages_in(t)) for t in (QUIET_THREAD, NO_THREADS_THREAD)] == [1, 0]

    # A private thread the bot is not in: Missing Access, to reads and posts alike.
    with pytest.raises(discord.Forbidden) as private:
        await client.fetch_channel(PRIVATE)
    assert private.value.code == 50001
    with pytest.raises(discord.Forbidden):
        await client.get_partial_messageable(PRIVATE).send("nope")


async def test_archived_and_locked_threads(fake: FakeDiscord, client: Client) -> None:
    # Not in the cache (archived): the bot has to fetch it.
    locked = await client.fetch_channel(LOCKED)
    assert isinstance(locked, discord.Thread) and locked.archived and locked.locked
    with pytest.raises(discord.HTTPException) as archived_error:
        await locked.send("too late")
    assert (archived_error.value.status, archived_error.value.code) == (400, 50083)
    assert "Thread is archived" in archived_error.value.text

    frozen = guild_of(client).get_thread(LOCKED_ACTIVE)
    assert frozen is not None
    with pytest.raises(discord.HTTPException) as locked_error:
        await frozen.send("no")
    assert locked_error.value.code == 160005
    assert fake.messages_in(LOCKED) == fake.messages_in(LOCKED_ACTIVE) == []

    # An archived thread that is not locked: Discord takes the post and unarchives it.
    old = await client.fetch_channel(ARCHIVED)
    assert isinstance(old, discord.Thread) and old.archived
    await old.send("back")
    assert fake.thread(ARCHIVED).archived is False
    assert [m["content"] for m in fake.messages_in(ARCHIVED)] == ["back"]
    update = next(d for d in fake.dispatches if d.event == "THREAD_UPDATE")
    assert update.data["thread_metadata"]["archived"] is False
    # THREAD_UPDATE of an unknown active thread: discord.py now caches it.
    cached = await eventually(lambda: guild_of(client).get_thread(ARCHIVED))
    assert cached.archived is False


async def test_a_thread_archived_by_a_moderator_leaves_the_cache(
    fake: FakeDiscord, client: Client
) -> None:
    await fake.update_thread(THREAD, archived=True, locked=True)
    await eventually(lambda: guild_of(client).get_thread(THREAD) is None)
    with pytest.raises(discord.HTTPException) as error:
        await client.get_partial_messageable(THREAD).send("x")
    assert error.value.code == 50083


async def test_thread_edits_follow_discords_rules(fake: FakeDiscord, client: Client) -> None:
    # A member may unarchive a thread it did not start, unless the thread is locked.
    old = await client.fetch_channel(ARCHIVED)
    assert isinstance(old, discord.Thread)
    unarchived = await old.edit(archived=False)
    assert unarchived.archived is False and fake.thread(ARCHIVED).archived is False
    locked = await client.fetch_channel(LOCKED)
    assert isinstance(locked, discord.Thread)
    with pytest.raises(discord.Forbidden):
        await locked.edit(archived=False)
    # Renaming or archiving needs MANAGE_THREADS or being the thread's creator.
    thread = guild_of(client).get_thread(THREAD)
    assert thread is not None
    with pytest.raises(discord.Forbidden):
        await thread.edit(name="renamed")
    forum_post, _ = await forum_of(client).create_thread(name="Mine", content="x")
    renamed = await forum_post.edit(name="Still mine", archived=True)
    assert (renamed.name, renamed.archived) == ("Still mine", True)
    assert fake.threads_in(FORUM)[0]["thread_metadata"]["archived"] is True
    updates = [d.data["id"] for d in fake.dispatches if d.event == "THREAD_UPDATE"]
    assert updates == [str(ARCHIVED), str(forum_post.id)]


async def test_role_pings_follow_allowed_mentions_and_permissions(
    fake: FakeDiscord, client: Client
) -> None:
    news = guild_of(client).get_channel(NEWS)
    assert isinstance(news, discord.TextChannel)
    content = f"<@&{PINGS}> <@&{STAFF}> @everyone"
    await news.send(content)  # the client default: nothing pings
    await news.send(content, allowed_mentions=discord.AllowedMentions(roles=True, everyone=True))
    sent = fake.messages_in(NEWS)
    assert [m["allowed_mentions"] for m in sent] == [
        {"parse": []},
        {"parse": ["everyone", "roles"]},
    ]
    assert sent[0]["mention_roles"] == [] and sent[0]["mention_everyone"] is False
    # STAFF is not mentionable and the bot lacks MENTION_EVERYONE: only PINGS pings.
    assert sent[1]["mention_roles"] == [str(PINGS)] and sent[1]["mention_everyone"] is False


async def test_mention_everyone_lets_the_bot_ping_any_role() -> None:
    guild = make_guild()
    guild.bot_permissions = PLAIN_MEMBER | MENTION_EVERYONE
    async with FakeDiscord(guilds=[guild], token=TOKEN) as fake:
        with fake.patch_discord():
            client = Client()  # REST only: no gateway needed to post
            try:
                await client.login(TOKEN)
                pings = discord.AllowedMentions(roles=True, everyone=True)
                params = discord.http.handle_message_parameters(
                    f"<@&{STAFF}> @here", allowed_mentions=pings
                )
                await client.http.send_message(NEWS, params=params)
            finally:
                await client.close()
        (sent,) = fake.messages_in(NEWS)
        assert sent["mention_roles"] == [str(STAFF)] and sent["mention_everyone"] is True


async def test_threads_started_in_a_text_channel(fake: FakeDiscord, client: Client) -> None:
    news = guild_of(client).get_channel(NEWS)
    assert isinstance(news, discord.TextChannel)
    bare = await news.create_thread(name="Talk", type=discord.ChannelType.public_thread)
    assert (bare.parent_id, bare.type) == (NEWS, discord.ChannelType.public_thread)
    message = await news.send("Big news")
    on_message = await message.create_thread(name="Big news", auto_archive_duration=60)
    assert on_message.id == message.id and on_message.auto_archive_duration == 60
    assert [t["name"] for t in fake.threads_in(NEWS)] == ["Talk", "Big news"]
    await on_message.send("more")
    assert [m["content"] for m in fake.messages_in(on_message.id)] == ["more"]
    with pytest.raises(discord.HTTPException) as again:
        await message.create_thread(name="Twice")
    assert again.value.code == 160004
    with pytest.raises(discord.HTTPException) as bad_duration:
        await news.create_thread(name="x", auto_archive_duration=30)  # type: ignore[arg-type]
    assert bad_duration.value.code == 50035


async def test_commands_in_a_thread_and_about_threads(fake: FakeDiscord, client: Client) -> None:
    await client.tree.sync()
    iid = await fake.slash("where", {"target": THREAD}, channel_id=THREAD)
    answer = (await fake.wait_for_callback(iid)).json["data"]["content"]
    assert answer == f"Thread {THREAD} -> AppCommandThread {THREAD} public_thread"
    iid = await fake.slash("where", {"target": FORUM}, channel_id=OLD_POST)
    answer = (await fake.wait_for_callback(iid)).json["data"]["content"]
    assert answer == f"Thread {OLD_POST} -> AppCommandChannel {FORUM} forum"
    assert fake.messages_in(THREAD) == []  # an interaction answer is not a channel post

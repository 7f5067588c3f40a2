"""Follows through the real bot: the real discord.py client against the loopback fake Discord,
articles from seed files and from a loopback feed server, a real database (both engines)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.config import FollowsConfig, SourceConfig
from tests.botharness import (
    BOB,
    GENERAL,
    GUILD_ID,
    MOD_ROLE,
    MODERATOR,
    NEWS_CHANNEL,
    BotHarness,
    running_bot,
)
from tests.fakediscord import EPHEMERAL, PLAIN_MEMBER, FakeChannel, FakeGuild, FakeRole
from tests.feedserver import FeedServer, rss

pytestmark = pytest.mark.usefixtures("backend")

PING_ROLE = 555_555_555_555_555_777
SEND_MESSAGES = 1 << 11


def seed(title: str, url: str, *, topics: tuple[str, ...] = ("Harbour",)) -> str:
    listed = "".join(f"  - {t}\n" for t in topics)
    return (
        f'---\ntitle: "{title}"\nexcerpt: "Reported from the quay."\n'
        f"publishedDateTime: {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}\n"
        f'webUrl: "{url}"\nprovider:\n  name: Quay Post\n  domain: quay.example\n'
        f"topics:\n{listed}---\n"
    )


async def add_story(harness: BotHarness, name: str, title: str, **kw: Any) -> str:
    """A new seed file, loaded as /seeds reload would; its URL."""
    url = f"https://quay.example/{name}"
    harness.clock.now += timedelta(seconds=1)
    (Path(harness.config.seeds_dir) / f"{name}.md").write_text(seed(title, url, **kw), "utf-8")
    assert harness.library is not None
    await harness.library.reload()
    return url


async def follow(
    harness: BotHarness, options: dict[str, Any], *, channel_id: int = NEWS_CHANNEL
) -> dict[str, Any]:
    """/follow by a moderator in ``channel_id``, then its Follow button; the saved answer."""
    fake = harness.fake
    iid = await fake.slash(
        "follow", options, user=MODERATOR, roles=[MOD_ROLE], channel_id=channel_id
    )
    preview = (await fake.wait_for_callback(iid)).json
    assert preview["data"]["flags"] & EPHEMERAL, preview
    buttons = [c for row in preview["data"]["components"] for c in row["components"]]
    save = next(b for b in buttons if b["label"] == "Follow")
    before = len(fake.requests)
    click = await fake.click(save["custom_id"], user=MODERATOR, roles=[MOD_ROLE],
                             channel_id=channel_id)  # fmt: skip
    saved = (await fake.wait_for_callback(click)).json
    harness.clock.now += timedelta(seconds=1)  # the harness's clock only moves when told
    return saved | {"preview": preview, "_before": before}


async def posts_in(harness: BotHarness, channel_id: int, count: int, timeout: float = 10) -> list:
    """Wait until the bot has posted ``count`` messages in the channel; them."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = [m for m in harness.fake.messages_in(channel_id) if m["author"]["bot"]]
        if len(found) >= count or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.05)


async def quiet(harness: BotHarness, channel_id: int, seconds: float = 1.0) -> list:
    await asyncio.sleep(seconds)
    return [m for m in harness.fake.messages_in(channel_id) if m["author"]["bot"]]


async def test_a_follow_posts_each_new_match_once_and_never_the_backlog(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as harness:
        await add_story(harness, "old", "Ferry strike halts harbour crossings")
        saved = await follow(harness, {"query": "ferry strike"})
        content = saved["data"]["content"]
        assert content.startswith("Following “ferry strike” in <#")
        # The preview showed the old story the follow would have posted...
        assert "Ferry strike halts" in str(saved["preview"]["data"]["embeds"][0])
        # ...but the backlog is not posted.
        assert await quiet(harness, NEWS_CHANNEL) == []

        await add_story(harness, "new", "Ferry strike enters its second week")
        await add_story(harness, "other", "Lighthouse repainted for the winter")
        posts = await posts_in(harness, NEWS_CHANNEL, 1)
        assert [p["embeds"][0]["title"] for p in posts] == ["Ferry strike enters its second week"]
        assert posts[0]["embeds"][0]["url"] == "https://quay.example/new"

        # A restart, and another change: the story is not posted a second time.
        await harness.restart()
        await add_story(harness, "calm", "Harbour calm as crossings resume")
        assert len(await quiet(harness, NEWS_CHANNEL, 1.5)) == 1


async def test_a_feed_entry_that_matches_is_posted_with_only_the_chosen_role_pinged(
    tmp_path: Path,
) -> None:
    guild = FakeGuild(
        GUILD_ID,
        "Newsroom",
        channels=[FakeChannel(GENERAL, "general"), FakeChannel(NEWS_CHANNEL, "news")],
        roles=[FakeRole(MOD_ROLE, "News mods"), FakeRole(PING_ROLE, "Harbour watchers")],
    )
    async with FeedServer() as feeds:
        feeds.set_feed("/quay.xml", rss([]))
        source = SourceConfig("quay", "feed", feeds.url("/quay.xml"), every=1.0)
        async with running_bot(tmp_path, guilds=[guild], sources=(source,)) as harness:
            await follow(harness, {"query": "dredging", "role": str(PING_ROLE)})
            feeds.set_feed("/quay.xml", rss([{
                "title": "Dredging @everyone starts at the north quay",
                "link": "https://quay.example/dredging", "id": "d1",
                "summary": "Work begins.", "published": datetime.now(UTC) - timedelta(minutes=5),
            }]))  # fmt: skip
            posts = await posts_in(harness, NEWS_CHANNEL, 1, timeout=20)
            assert len(posts) == 1
            post = posts[0]
            assert post["content"] == f"<@&{PING_ROLE}>"
            mentions = post["allowed_mentions"]
            assert mentions["parse"] == []  # no @everyone, no user, whatever a title holds
            assert [int(role) for role in mentions["roles"]] == [PING_ROLE]
            assert not mentions.get("users")
            assert post["embeds"][0]["title"].startswith("Dredging")


async def test_more_than_five_matches_in_one_pass_go_out_as_one_list(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as harness:
        await follow(harness, {"query": "regatta"})
        seeds = Path(harness.config.seeds_dir)
        for n in range(7):
            url = f"https://quay.example/regatta-{n}"
            (seeds / f"regatta-{n}.md").write_text(seed(f"Regatta heat {n} results", url), "utf-8")
        assert harness.library is not None
        await harness.library.reload()
        posts = await posts_in(harness, NEWS_CHANNEL, 1)
        await asyncio.sleep(0.5)
        posts = [m for m in harness.fake.messages_in(NEWS_CHANNEL) if m["author"]["bot"]]
        assert len(posts) == 1
        embed = posts[0]["embeds"][0]
        assert embed["title"] == "7 new stories for “regatta”"
        assert embed["description"].count("Regatta heat") == 7


async def test_a_channel_that_refuses_pauses_the_follow_and_following_says_so(
    tmp_path: Path,
) -> None:
    async with running_bot(tmp_path) as harness:
        await follow(harness, {"query": "tugboat"})
        # The bot loses Send Messages there (as a moderator editing the channel would).
        channel = harness.fake.guilds[0].channel(NEWS_CHANNEL)
        assert channel is not None
        channel.permission_overwrites.append(
            {"id": GUILD_ID, "type": 0, "allow": 0, "deny": SEND_MESSAGES}
        )
        await add_story(harness, "tug", "Tugboat race draws crowds")
        await asyncio.sleep(1.0)
        listed = await harness.command("following", user=MODERATOR, roles=[MOD_ROLE])
        text = listed["data"]["embeds"][0]["description"]
        assert "“tugboat”" in text and "paused" in text and "Missing Permissions" in text
        # Paused: a later match is not tried again.
        sent = len([r for r in harness.fake.requests if r.path.endswith("/messages")])
        await add_story(harness, "tug2", "Tugboat race winners named")
        await asyncio.sleep(1.0)
        assert len([r for r in harness.fake.requests if r.path.endswith("/messages")]) == sent


async def test_follow_refuses_non_moderators_bad_channels_and_past_the_limit(
    tmp_path: Path,
) -> None:
    async with running_bot(tmp_path, follows=FollowsConfig(max_per_guild=1)) as harness:
        refused = await harness.command(
            "follow", options={"query": "x"}, user=BOB, permissions=PLAIN_MEMBER
        )
        assert "Manage Server" in refused["data"]["content"]
        await follow(harness, {"query": "harbour"})
        again = await harness.command(
            "follow", options={"query": "quay"}, user=MODERATOR, roles=[MOD_ROLE],
            channel_id=NEWS_CHANNEL,
        )  # fmt: skip
        assert "the most allowed (1)" in again["data"]["content"]

        listed = await harness.command("following", user=MODERATOR, roles=[MOD_ROLE])
        assert "`1` “harbour”" in listed["data"]["embeds"][0]["description"]
        gone = await harness.command(
            "unfollow", options={"id": 1}, user=MODERATOR, roles=[MOD_ROLE]
        )
        assert gone["data"]["content"] == "Follow 1 removed."
        missing = await harness.command(
            "unfollow", options={"id": 1}, user=MODERATOR, roles=[MOD_ROLE]
        )
        assert "no follow 1" in missing["data"]["content"]


FORUM = 222_222_222_222_222_230
THREAD = 222_222_222_222_222_231


def guild_with_forum_and_thread(*, archived: bool = False) -> FakeGuild:
    return FakeGuild(
        GUILD_ID,
        "Newsroom",
        channels=[
            FakeChannel(GENERAL, "general"),
            FakeChannel(NEWS_CHANNEL, "news"),
            FakeChannel.forum(FORUM, "harbour-stories"),
            FakeChannel.thread(THREAD, "strike-watch", NEWS_CHANNEL, archived=archived),
        ],
        roles=[FakeRole(MOD_ROLE, "News mods")],
    )


async def test_a_follow_into_a_forum_opens_one_post_per_story_titled_with_the_headline(
    tmp_path: Path,
) -> None:
    async with running_bot(tmp_path, guilds=[guild_with_forum_and_thread()]) as harness:
        saved = await follow(harness, {"query": "lighthouse", "channel": str(FORUM)})
        assert "Following “lighthouse”" in saved["data"]["content"]
        await add_story(harness, "l1", "Lighthouse keeper retires after forty years")
        await add_story(harness, "l2", "Lighthouse lamp restored")
        for _ in range(100):
            if len(harness.fake.threads_in(FORUM)) >= 2:
                break
            await asyncio.sleep(0.05)
        threads = harness.fake.threads_in(FORUM)
        assert [t["name"] for t in threads] == [
            "Lighthouse keeper retires after forty years",
            "Lighthouse lamp restored",
        ]
        starter = harness.fake.messages_in(int(threads[0]["id"]))[0]
        assert starter["embeds"][0]["url"] == "https://quay.example/l1"


@pytest.mark.parametrize("archived", [False, True])
async def test_a_follow_into_a_thread_posts_in_it_even_once_archived(
    tmp_path: Path, archived: bool
) -> None:
    guild = guild_with_forum_and_thread()
    async with running_bot(tmp_path, guilds=[guild]) as harness:
        await follow(harness, {"query": "strike"}, channel_id=THREAD)
        thread = guild.channel(THREAD)
        assert thread is not None
        thread.archived = archived  # it went idle since the follow was made
        await add_story(harness, "s1", "Strike talks resume at the port")
        posts = await posts_in(harness, THREAD, 1)
        assert [p["embeds"][0]["title"] for p in posts] == ["Strike talks resume at the port"]
        assert await quiet(harness, NEWS_CHANNEL, 0.2) == []


async def test_follow_refuses_a_channel_where_the_bot_cannot_post_embeds(tmp_path: Path) -> None:
    guild = guild_with_forum_and_thread()
    news = guild.channel(NEWS_CHANNEL)
    assert news is not None
    news.permission_overwrites.append({"id": GUILD_ID, "type": 0, "allow": 0, "deny": 1 << 14})
    async with running_bot(tmp_path, guilds=[guild]) as harness:
        body = await harness.command(
            "follow", options={"query": "harbour"}, user=MODERATOR, roles=[MOD_ROLE],
            channel_id=NEWS_CHANNEL,
        )  # fmt: skip
        assert body["data"]["flags"] & EPHEMERAL
        assert "I need Embed Links there" in body["data"]["content"]
        assert harness.library is not None
        assert await harness.library.store.follows(GUILD_ID) == []


async def test_a_locked_thread_pauses_its_follow(tmp_path: Path) -> None:
    guild = guild_with_forum_and_thread()
    async with running_bot(tmp_path, guilds=[guild]) as harness:
        await follow(harness, {"query": "strike"}, channel_id=THREAD)
        await harness.fake.update_thread(THREAD, locked=True)  # a moderator locks it
        await add_story(harness, "s1", "Strike talks resume at the port")
        await asyncio.sleep(1.0)
        assert harness.fake.messages_in(THREAD) == []
        listed = await harness.command("following", user=MODERATOR, roles=[MOD_ROLE])
        assert "paused" in listed["data"]["embeds"][0]["description"]

"""The follow service below Discord: a real database (both engines), a real index, and a poster
that records what it was asked to post (the service's own interface, not discord.py's)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.articles import Article
from bot.config import Config
from bot.follows import BURST, FollowService, PostFailed, PostRefused, post_nonce, posts_for
from bot.library import Library
from bot.store import Follow, FollowLimitReached

SEEDS = Path(__file__).resolve().parent / "data" / "seeds"


class Poster:
    """Records posts; ``refuse``/``fail`` make the next posts raise."""

    def __init__(self) -> None:
        self.posts: list[tuple[int, list[str], str]] = []
        self.refuse: str | None = None
        self.fail: str | None = None
        self.delay = 0.0

    async def post(self, follow: Follow, articles: Sequence[Article], nonce: str) -> int:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.refuse:
            raise PostRefused(self.refuse)
        if self.fail:
            raise PostFailed(self.fail)
        self.posts.append((follow.id, [a.url for a in articles], nonce))
        return len(self.posts)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def seed(name: str, title: str) -> str:
    return (
        f'---\ntitle: "{title}"\nexcerpt: "From the quay."\n'
        "publishedDateTime: 2026-10-31T08:00:00Z\n"
        f'webUrl: "https://quay.example/{name}"\ntopics:\n  - Harbour\n---\n'
    )


async def add(library: Library, clock: Clock, *stories: tuple[str, str]) -> None:
    clock.tick()
    folder = Path(library.config.seeds_dir)
    for name, title in stories:
        (folder / f"{name}.md").write_text(seed(name, title), encoding="utf-8")
    await library.reload()


async def new_follow(library: Library, clock: Clock, query: str, guild: int = 1) -> Follow:
    follow = await library.store.add_follow(
        guild_id=guild, channel_id=10 + guild, query=query, topic=None, source=None,
        role_id=None, created_by=7, now=clock(), max_per_guild=25,
    )  # fmt: skip
    clock.tick()
    return follow


@pytest.fixture
def config(database: Path | str, tmp_path: Path) -> Config:
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    return Config(seeds_dir=seeds, database=database)


async def test_each_match_is_posted_once_and_the_backlog_never(config: Config) -> None:
    clock = Clock()
    poster = Poster()
    async with Library.open(config, clock=clock) as library:
        await add(library, clock, ("old", "Ferry strike halts crossings"))
        follow = await new_follow(library, clock, "ferry strike")
        service = FollowService(library, poster, clock=clock)
        assert await service.run_once() == []  # the backlog is not posted
        await add(library, clock, ("new", "Ferry strike enters week two"), ("x", "Gulls nest"))
        delivered = await service.run_once()
        assert [(d.follow_id, d.posted) for d in delivered] == [
            (follow.id, ("https://quay.example/new",))
        ]
        assert poster.posts == [
            (follow.id, ["https://quay.example/new"], post_nonce(follow.id, ["https://quay.example/new"]))
        ]  # fmt: skip
        assert await service.run_once() == []
        assert len(poster.posts) == 1
        # The follow's mark moved, and a new process (a restart) posts nothing again.
        [saved] = await library.store.follows(1)
        assert saved.checked_until > follow.created_at and saved.last_post_at is not None
    async with Library.open(config, clock=clock) as library:
        await library.start_index()
        again = FollowService(library, poster, clock=clock)
        assert await again.run_once() == []
    assert len(poster.posts) == 1


async def test_two_processes_post_each_story_once_between_them(config: Config) -> None:
    clock = Clock()
    first, second = Poster(), Poster()
    first.delay = second.delay = 0.05
    async with (
        Library.open(config, clock=clock) as one,
        Library.open(config, clock=clock) as two,
    ):
        await new_follow(one, clock, "regatta")
        await add(one, clock, *[(f"r{n}", f"Regatta heat {n}") for n in range(3)])
        await two.sync_index()
        await asyncio.gather(
            FollowService(one, first, clock=clock).run_once(),
            FollowService(two, second, clock=clock).run_once(),
        )
    posted = [url for _f, urls, _n in first.posts + second.posts for url in urls]
    assert sorted(posted) == [f"https://quay.example/r{n}" for n in range(3)]


async def test_a_refusal_pauses_and_a_passing_failure_is_tried_again(config: Config) -> None:
    clock = Clock()
    poster = Poster()
    async with Library.open(config, clock=clock) as library:
        refused = await new_follow(library, clock, "tugboat", guild=1)
        service = FollowService(library, poster, clock=clock)
        poster.fail = "503 Service Unavailable"
        await add(library, clock, ("t1", "Tugboat race"))
        [failed] = await service.run_once()
        assert failed.failed == "503 Service Unavailable" and not failed.posted
        poster.fail = None
        [retried] = await service.run_once()
        assert retried.posted == ("https://quay.example/t1",)

        poster.refuse = "the bot may not post there any more (Missing Permissions)"
        await add(library, clock, ("t2", "Tugboat race results"))
        [paused] = await service.run_once()
        assert paused.paused and "Missing Permissions" in paused.paused
        [saved] = await library.store.follows(1)
        assert saved.id == refused.id and saved.paused == paused.paused
        poster.refuse = None
        await add(library, clock, ("t3", "Tugboat race rerun"))
        assert await service.run_once() == []  # paused: not tried again
        assert [urls for _f, urls, _n in poster.posts] == [["https://quay.example/t1"]]


async def test_a_burst_is_one_post_and_other_shards_guilds_are_left_alone(config: Config) -> None:
    clock = Clock()
    poster = Poster()
    async with Library.open(config, clock=clock) as library:
        mine = await new_follow(library, clock, "regatta", guild=1)
        await new_follow(library, clock, "regatta", guild=2)
        service = FollowService(library, poster, clock=clock, owns_guild=lambda g: g == 1)
        await add(library, clock, *[(f"r{n}", f"Regatta heat {n}") for n in range(BURST + 2)])
        [burst] = await service.run_once()
        assert burst.burst and burst.follow_id == mine.id
        assert len(poster.posts) == 1 and len(poster.posts[0][1]) == BURST + 2


def test_posts_for_groups_past_the_burst_limit() -> None:
    articles = [
        Article(url=f"https://a.example/{n}", title="t", excerpt="", published=datetime.now(UTC))
        for n in range(BURST + 1)
    ]
    assert [len(p) for p in posts_for(articles[:BURST])] == [1] * BURST
    assert [len(p) for p in posts_for(articles)] == [BURST + 1]


async def test_the_store_keeps_the_limit_and_removes_only_its_guilds_follows(
    config: Config,
) -> None:
    clock = Clock()
    async with Library.open(config, clock=clock) as library:
        store = library.store
        kept = await store.add_follow(
            guild_id=1, channel_id=5, query="a", topic="AI", source="wired", role_id=9,
            created_by=7, now=clock(), max_per_guild=1,
        )  # fmt: skip
        with pytest.raises(FollowLimitReached):
            await store.add_follow(
                guild_id=1, channel_id=5, query="b", topic=None, source=None, role_id=None,
                created_by=7, now=clock(), max_per_guild=1,
            )  # fmt: skip
        other = await store.add_follow(
            guild_id=2, channel_id=6, query="b", topic=None, source=None, role_id=None,
            created_by=7, now=clock(), max_per_guild=1,
        )  # fmt: skip
        assert other.id == kept.id + 1
        assert not await store.remove_follow(1, other.id)  # not guild 1's
        assert [f.query for f in await store.follows(2)] == ["b"]
        [read] = await store.follows(1)
        assert (read.topic, read.source, read.role_id, read.created_at) == (
            "AI",
            "wired",
            9,
            clock(),
        )
        assert await store.remove_follow(2, other.id)
        assert await store.follows(2) == []


async def test_a_load_larger_than_a_page_all_first_seen_at_once_is_read_through(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.follows

    monkeypatch.setattr(bot.follows, "MAX_BATCH", 3)
    clock = Clock()
    poster = Poster()
    async with Library.open(config, clock=clock) as library:
        follow = await new_follow(library, clock, "regatta")
        service = FollowService(library, poster, clock=clock)
        # Seven articles in one load share one first_seen; the match sorts last by URL.
        await add(library, clock, *[(f"a{n}", f"Gulls nest {n}") for n in range(6)],
                  ("z", "Regatta moved to Sunday"))  # fmt: skip
        await service.run_once()
        await add(library, clock, ("zz", "Regatta results"))
        await service.run_once()
    assert [urls for _f, urls, _n in poster.posts] == [
        ["https://quay.example/z"],
        ["https://quay.example/zz"],
    ]
    assert follow.id == poster.posts[0][0]


async def test_a_pass_with_nothing_new_matches_nothing_again(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.search import SearchIndex

    clock = Clock()
    asked: list[int] = []
    original = SearchIndex.follow_matches

    def counting(self: SearchIndex, follows: object, urls: Sequence[str]) -> object:
        asked.append(len(urls))
        return original(self, follows, urls)  # type: ignore[arg-type]

    monkeypatch.setattr(SearchIndex, "follow_matches", counting)
    async with Library.open(config, clock=clock) as library:
        await library.reload()  # the shipped seeds, before the follow
        await new_follow(library, clock, "regatta")
        service = FollowService(library, Poster(), clock=clock)
        await add(library, clock, ("r1", "Regatta heat one"))
        await service.run_once()
        await service.run_once()  # the bot's idle pass: the same article is not matched again
        await add(library, clock, ("r2", "Regatta heat two"))
        await service.run_once()
    assert asked == [1, 1]


async def test_a_long_outage_keeps_the_follows_mark_until_the_post_goes_out(
    config: Config,
) -> None:
    clock = Clock()
    poster = Poster()
    async with Library.open(config, clock=clock) as library:
        await new_follow(library, clock, "tugboat")
        service = FollowService(library, poster, clock=clock)
        poster.fail = "503 Service Unavailable"
        await add(library, clock, ("t1", "Tugboat race"))
        for _ in range(3):  # Discord away for minutes, newer articles meanwhile
            await service.run_once()
            clock.now += timedelta(minutes=2)
            await add(library, clock, ("g" + str(clock.now.minute), "Gulls nest"))
        poster.fail = None
        await service.run_once()
    assert [urls for _f, urls, _n in poster.posts] == [["https://quay.example/t1"]]


async def test_a_follow_saved_after_a_pass_read_the_follows_still_gets_its_articles(
    config: Config,
) -> None:
    clock = Clock()
    poster = Poster()
    async with Library.open(config, clock=clock) as library:
        await library.reload()
        await new_follow(library, clock, "regatta", guild=1)
        made_at = clock()  # the second follow is made now, but its save lands after a pass
        service = FollowService(library, poster, clock=clock)
        await add(library, clock, ("r1", "Regatta heat one"))
        await service.run_once()  # sees only the first follow
        late = await library.store.add_follow(
            guild_id=2, channel_id=12, query="regatta", topic=None, source=None,
            role_id=None, created_by=7, now=made_at, max_per_guild=25,
        )  # fmt: skip
        await service.run_once()
    assert sorted((f, urls) for f, urls, _n in poster.posts) == [
        (1, ["https://quay.example/r1"]),
        (late.id, ["https://quay.example/r1"]),
    ]

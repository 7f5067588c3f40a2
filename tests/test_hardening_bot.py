"""Hardening: the real bot against a hostile or failing Discord, and hostile input.

Every test runs the real bot (tests/botharness.py) over sockets against the loopback fake and
injects faults there: rate limits, 5xx, refused channels, dropped gateway sockets, expired
interaction tokens. Input is hostile too: mention and markdown payloads in seed titles, forged
button ids, over-long queries, members without the right to moderate.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import discord
import pytest

from bot.config import DigestConfig, SearchConfig
from bot.digest import digest_nonce
from tests.botharness import (
    ALICE,
    BOB,
    GENERAL,
    GUILD_ID,
    MOD_ROLE,
    MODERATOR,
    NEWS_CHANNEL,
    TOKEN,
    BotHarness,
    Clock,
    buttons_of,
    embed_of,
    running_bot,
    write_lock_held_elsewhere,
)
from tests.fakediscord import EPHEMERAL, MANAGE_GUILD, PLAIN_MEMBER, FakeUser, RecordedRequest

DIGEST_TITLE = "News digest — Mon 2 Mar"
DAY = date(2026, 3, 2)
POST_PATH = f"/channels/{GENERAL}/messages"
BEFORE_DIGEST = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
DIGEST_DUE = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)
CAROL = FakeUser(333_333_333_333_333_334, "carol")
DAVE = FakeUser(333_333_333_333_333_335, "dave")
OTHER_ROLE = 555_555_555_555_555_556

# Fixtures of near-identical articles from one day would be one story by meaning, shown
# once: these tests are about other things, so they search by words only.
WORDS_ONLY = SearchConfig(cooldown_seconds=0, semantic=False)


# --- helpers --------------------------------------------------------------------------------


def digest_config(**changes: Any) -> DigestConfig:
    """A daily digest at 09:00 UTC in #general, checked every 20 ms."""
    values: dict[str, Any] = {
        "check_seconds": 0.02,
        "channels": {GUILD_ID: GENERAL},
        "time": "09:00",
        "timezone": "UTC",
    }
    return DigestConfig(**(values | changes))


def write_seed(
    path: Path,
    *,
    title: str,
    url: str,
    excerpt: str = "",
    related: Sequence[tuple[str, str]] = (),
    published: str = "2026-03-01T10:00:00Z",
    topics: Sequence[str] = ("AI",),
) -> None:
    """A seed file; strings go through json.dumps (a JSON string is a YAML double-quoted one)."""
    q = json.dumps
    lines = [
        "---",
        f"title: {q(title)}",
        f"excerpt: {q(excerpt)}",
        f"publishedDateTime: {published}",
        f"webUrl: {q(url)}",
        "type: article",
        "provider:",
        "  name: Example News",
        "  domain: news.example",
        "topics:",
        *[f"  - {q(t)}" for t in topics],
    ]
    if related:
        lines.append("related:")
        for rel_title, rel_url in related:
            lines += [
                f"  - title: {q(rel_title)}",
                f"    webUrl: {q(rel_url)}",
                "    publishedDateTime: 2026-02-20T10:00:00Z",
                "    provider:",
                "      name: Elsewhere",
                "      domain: elsewhere.example",
            ]
    lines.append("---\n")
    path.write_text("\n".join(lines), encoding="utf-8")


def is_ephemeral(body: dict[str, Any]) -> bool:
    return bool(int(body["data"].get("flags") or 0) & EPHEMERAL)


def channel_posts(harness: BotHarness, channel: int = GENERAL) -> list[RecordedRequest]:
    path = f"/channels/{channel}/messages"
    return [r for r in harness.fake.requests if r.method == "POST" and r.path == path]


def errors_in(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


async def until(
    check: Callable[[], Any], what: str, timeout: float = 10.0, step: float = 0.01
) -> Any:
    """Bounded polling: the first truthy ``check()``, or AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(step)


async def eventually(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 10.0) -> Any:
    """Bounded polling of an async ``check`` (e.g. a store query)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def callbacks(
    harness: BotHarness, interaction_ids: Sequence[str], timeout: float = 30.0
) -> list[dict[str, Any]]:
    """The callback body of each interaction, in order (one bounded poll for all of them)."""
    found: dict[str, dict[str, Any]] = {}
    seen = 0

    def collect() -> bool:
        nonlocal seen
        requests = harness.fake.requests
        for rec in requests[seen:]:
            match = re.fullmatch(r"/interactions/(\d+)/[^/]+/callback", rec.path)
            if match and rec.method == "POST" and match[1] not in found:
                assert rec.status == 200, (rec.status, rec.response)
                found[match[1]] = rec.json
        seen = len(requests)
        return all(i in found for i in interaction_ids)

    await until(collect, f"{len(interaction_ids)} interaction callbacks", timeout)
    return [found[i] for i in interaction_ids]


async def post_digest_now(harness: BotHarness) -> str:
    """``/digest now`` by a moderator; returns the follow-up's text."""
    after = len(harness.fake.requests)
    iid = await harness.fake.slash("digest", {}, subcommand="now", user=MODERATOR, roles=[MOD_ROLE])
    assert (await harness.fake.wait_for_callback(iid)).json["type"] == 5
    followup = await harness.fake.wait_for_request(
        lambda r: r.method == "POST" and r.path.startswith("/webhooks/") and r.json is not None,
        after=after,
    )
    return str(followup.json["content"])


async def digest_status(harness: BotHarness) -> dict[str, str]:
    body = await harness.command("digest", "status", user=ALICE)
    return {f["name"]: f["value"] for f in embed_of(body)["fields"]}


class _FastBackoff:
    """``asyncio`` as discord.http sees it, with every sleep cut to 10 ms at most.

    That sleep is the 5xx backoff (1 + 2n s; five 500s cost 25 s); the retry logic under test
    is unchanged. Not for 429 tests, whose point is the wait.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    async def sleep(delay: float, result: Any = None) -> Any:
        return await asyncio.sleep(min(delay, 0.01), result)


@pytest.fixture
def fast_5xx_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discord.http, "asyncio", _FastBackoff())


# --- concurrency: /news while a reload swaps the corpus ----------------------------------

QUERY = "zephyr harbour"


def corpus_seeds(folder: Path, *, new: bool) -> None:
    """Old: 6 OLDMARK stories. New: stories 0-2 retitled NEWMARK, 3-5 gone, 5 new NEWMARK ones."""
    for path in folder.glob("*.md"):
        path.unlink()
    mark = "NEWMARK" if new else "OLDMARK"
    kept = range(3) if new else range(6)
    for i in kept:
        write_seed(
            folder / f"story-{i}.md",
            title=f"{mark} Zephyr harbour report {i}",
            url=f"https://news.example/story-{i}",
            excerpt=f"{mark} excerpt {i}",
            related=[(f"{mark} related {i}", f"https://elsewhere.example/{mark}/{i}")],
        )
    if new:
        for i in range(5):
            write_seed(
                folder / f"fresh-{i}.md",
                title=f"NEWMARK Zephyr harbour bulletin {i}",
                url=f"https://news.example/fresh-{i}",
                excerpt=f"NEWMARK excerpt fresh {i}",
            )


async def test_news_answers_while_another_process_holds_the_write_lock(tmp_path: Path) -> None:
    # A `newsbot load` committing many articles holds SQLite's write lock for a while. Each
    # answer's save waits for it; the answers themselves, and the next ones, must not.
    async with running_bot(tmp_path) as harness:
        assert harness.bot is not None and harness.library is not None
        news_cog = harness.bot.get_cog("NewsCog")
        with write_lock_held_elsewhere(harness.library.store.path):
            bodies = []
            for user in (ALICE, BOB, ALICE, BOB):
                iid = await harness.fake.slash("news", {"query": "facial recognition"}, user=user)
                bodies.append((await harness.fake.wait_for_callback(iid, timeout=3)).json)
            assert all(embed_of(b)["title"] and buttons_of(b) for b in bodies)
            assert news_cog.saving, "the saves did not wait for the other process"
        await until(lambda: not news_cog.saving, "the waiting saves to land")
        for body in bodies:
            search_id = int(buttons_of(body)[0]["custom_id"].split(":")[2])
            saved = await harness.library.store.load_search(search_id)
            assert saved is not None and embed_of(body)["url"] == saved.urls[0]


async def test_news_answers_during_a_reload_each_come_from_one_corpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    corpus_seeds(seeds, new=False)
    users = [ALICE, BOB, CAROL, DAVE]
    async with running_bot(tmp_path, search=WORDS_ONLY) as harness:
        library, fake = harness.library, harness.fake
        assert library is not None
        old_titles = {a.url: a.title for a in await library.store.all_articles()}
        old_count = len(library.index.search(QUERY, limit=10))
        assert old_count == 6
        old_index = library.index

        # The reload is held just before its write transaction, so wave 1 provably runs while
        # it is in progress.
        reached, release = asyncio.Event(), asyncio.Event()
        apply_reload = library.store.apply_reload

        async def held_apply(*args: Any, **kwargs: Any) -> None:
            reached.set()
            await release.wait()
            await apply_reload(*args, **kwargs)

        monkeypatch.setattr(library.store, "apply_reload", held_apply)
        corpus_seeds(seeds, new=True)
        reload_id = await fake.slash(
            "seeds", {}, subcommand="reload", user=MODERATOR, roles=[MOD_ROLE]
        )
        assert (await fake.wait_for_callback(reload_id)).json["type"] == 5
        await asyncio.wait_for(reached.wait(), 10)

        async def dispatch(count: int) -> list[str]:
            return list(
                await asyncio.gather(
                    *(fake.slash("news", {"query": QUERY}, user=users[i % 4]) for i in range(count))
                )
            )

        # Wave 2 straddles the write and the swap: every answer is held at its first await
        # (saving the search) until half of them searched before the swap and half after, then
        # all 90 complete together. Any read of the corpus after that await would mix them.
        saved = held = 0
        holding = False
        release_saves = asyncio.Event()
        save_search = library.store.save_search

        async def held_save(*args: Any, **kwargs: Any) -> int:
            nonlocal saved, held
            if holding:
                held += 1
                await release_saves.wait()
            search_id = await save_search(*args, **kwargs)
            saved += 1
            return search_id

        monkeypatch.setattr(library.store, "save_search", held_save)
        first = await callbacks(harness, await dispatch(100))
        assert library.reloading
        # An answer's search is saved after its reply went out: wave 1's last saves may start
        # after its last callback, and must not be counted among wave 2's.
        await until(lambda: saved == 100, "wave 1's searches to be saved")
        holding = True
        before_swap = await dispatch(45)
        await until(lambda: held == 45, "45 answers in flight")
        release.set()
        await until(lambda: library.index is not old_index, "the new index to be swapped in")
        after_swap = await dispatch(45)
        await until(lambda: held == 90, "90 answers in flight")
        release_saves.set()
        second = await callbacks(harness, before_swap + after_swap)
        monkeypatch.setattr(library.store, "save_search", save_search)
        third = await callbacks(harness, await dispatch(10))

        followup = await fake.wait_for_request(
            lambda r: r.method == "POST" and r.path.startswith("/webhooks/")
        )
        assert "added 5, updated 3" in followup.json["embeds"][0]["description"]
        assert "removed 3" in followup.json["embeds"][0]["description"]
        new_titles = {a.url: a.title for a in await library.store.all_articles()}
        new_count = len(library.index.search(QUERY, limit=10))
        assert new_count == 8
        corpora = {
            "OLDMARK": (old_titles, old_count),
            "NEWMARK": (new_titles, new_count),
        }

        async def corpus_of(body: dict[str, Any]) -> str:
            """Which corpus one answer came from; fails if it mixes the two."""
            assert body["type"] == 4
            assert not is_ephemeral(body), body  # every corpus has hits for the query
            text = json.dumps(body)
            marks = [m for m in corpora if m in text]
            assert len(marks) == 1, f"an answer mixing corpora: {marks}"
            titles, count = corpora[marks[0]]
            embed = embed_of(body)
            footer = embed["footer"]["text"]
            assert footer.endswith(f"1 of {count}"), f"{marks[0]} story, other corpus: {footer}"
            search_id = int(buttons_of(body)[0]["custom_id"].split(":")[2])
            saved = await library.store.load_search(search_id)
            assert saved is not None
            assert len(saved.urls) == count
            assert set(saved.urls) <= set(titles), "saved hits from the other corpus"
            assert embed["url"] == saved.urls[0]
            assert titles[embed["url"]] in embed["title"].replace("\\", "")
            return marks[0]

        # Each answer's search is saved after it went out; reads do not queue behind writes.
        assert harness.bot is not None
        news_cog = harness.bot.get_cog("NewsCog")
        await until(lambda: not news_cog.saving, "every answer's search to be saved")
        kinds = [[await corpus_of(b) for b in batch] for batch in (first, second, third)]
        assert len(first) + len(second) + len(third) == 200
        assert set(kinds[0]) == {"OLDMARK"}  # not swapped before the write
        # Each answer comes from the corpus it searched, even when it completes after the swap.
        assert kinds[1] == ["OLDMARK"] * 45 + ["NEWMARK"] * 45
        assert set(kinds[2]) == {"NEWMARK"}
        assert not library.reloading


# --- the digest claim survives a crash -----------------------------------------------------


async def claim_as_a_crashed_bot(tmp_path: Path, claimed_at: datetime) -> None:
    """The digest_log row a bot leaves when it dies between claiming and posting."""
    from bot.store import Store

    async with await Store.open(tmp_path / "newsbot.sqlite3") as store:
        assert await store.claim_digest(GUILD_ID, "2026-03-02", claimed_at)


async def test_a_first_digest_posts_without_reading_the_channel_history(tmp_path: Path) -> None:
    clock = Clock(DIGEST_DUE)
    async with running_bot(tmp_path, clock=clock, digest=digest_config()) as harness:
        await harness.fake.wait_for_request(lambda r: r.method == "POST" and r.path == POST_PATH)
        # A bot without Read Message History must still post: a first attempt has no earlier
        # post to look for.
        assert not any(r.method == "GET" and r.path == POST_PATH for r in harness.fake.requests)


async def test_a_retried_digest_posts_even_when_the_history_is_forbidden(tmp_path: Path) -> None:
    await claim_as_a_crashed_bot(tmp_path, DIGEST_DUE - timedelta(minutes=20))
    clock = Clock(BEFORE_DIGEST)
    async with running_bot(tmp_path, clock=clock, digest=digest_config()) as harness:
        missing_access = {"code": 50001, "message": "Missing Access"}
        harness.fake.fail_next("GET", POST_PATH, 403, missing_access)
        clock.now = DIGEST_DUE  # the crashed bot's claim is stale: this is a retry
        await harness.fake.wait_for_request(lambda r: r.method == "POST" and r.path == POST_PATH)
        assert any(r.method == "GET" and r.path == POST_PATH for r in harness.fake.requests)
        await harness.ticks(3)
        assert len(channel_posts(harness)) == 1


async def test_a_stale_claim_left_by_a_crashed_bot_is_taken_over_and_posted_once(
    tmp_path: Path,
) -> None:
    await claim_as_a_crashed_bot(tmp_path, DIGEST_DUE - timedelta(minutes=20))
    clock = Clock(DIGEST_DUE)
    async with running_bot(tmp_path, clock=clock, digest=digest_config()) as harness:
        post = await harness.fake.wait_for_request(
            lambda r: r.method == "POST" and r.path == POST_PATH
        )
        assert post.json["embeds"][0]["title"] == DIGEST_TITLE
        await harness.ticks(3)
        assert len(harness.fake.messages_in(GENERAL)) == 1
        assert harness.library is not None
        record = await harness.library.store.last_digest(GUILD_ID)
        assert record is not None
        assert (record.status, record.attempts) == ("posted", 2)

        # Never twice, across restarts.
        await harness.restart()
        await harness.ticks(3)
        clock.now += timedelta(hours=1)
        await harness.ticks(3)
        assert len(harness.fake.messages_in(GENERAL)) == 1


async def test_a_fresh_claim_is_left_alone_until_it_goes_stale(tmp_path: Path) -> None:
    # Another poster claimed the day 5 minutes ago: it may be posting right now.
    await claim_as_a_crashed_bot(tmp_path, DIGEST_DUE - timedelta(minutes=5))
    clock = Clock(DIGEST_DUE)
    async with running_bot(tmp_path, clock=clock, digest=digest_config()) as harness:
        await harness.ticks(5)
        assert channel_posts(harness) == []
        clock.now = DIGEST_DUE + timedelta(minutes=11)  # the claim is 16 minutes old now
        await harness.fake.wait_for_request(lambda r: r.method == "POST" and r.path == POST_PATH)
        await harness.ticks(3)
        assert len(channel_posts(harness)) == 1


async def test_a_digest_the_crashed_bot_had_posted_is_recorded_not_posted_again(
    tmp_path: Path,
) -> None:
    clock = Clock(BEFORE_DIGEST)
    async with running_bot(tmp_path, clock=clock, digest=digest_config()) as harness:
        assert harness.bot is not None and harness.library is not None
        # The previous process claimed the day, posted (Discord accepted it), then died
        # before recording it.
        assert await harness.library.store.claim_digest(
            GUILD_ID, "2026-03-02", DIGEST_DUE - timedelta(minutes=20)
        )
        channel = harness.bot.get_channel(GENERAL)
        assert isinstance(channel, discord.TextChannel)
        posted = await channel.send(embed=discord.Embed(title=DIGEST_TITLE))
        await harness.restart()

        clock.now = DIGEST_DUE
        store = harness.library.store
        record = await eventually(
            lambda: store.last_digest(GUILD_ID, posted_only=True), "the day to be settled"
        )
        assert record.message_id == posted.id
        # The history was checked, and no second digest was posted.
        assert any(r.method == "GET" and r.path == POST_PATH for r in harness.fake.requests), (
            "the channel history was not consulted"
        )
        await harness.ticks(3)
        assert len(harness.fake.messages_in(GENERAL)) == 1
        await harness.restart()
        await harness.ticks(3)
        assert len(harness.fake.messages_in(GENERAL)) == 1


async def test_a_digest_titled_message_by_someone_else_does_not_count_as_posted(
    tmp_path: Path,
) -> None:
    clock = Clock(BEFORE_DIGEST)
    async with running_bot(tmp_path, clock=clock, digest=digest_config()) as harness:
        assert harness.bot is not None
        channel = harness.bot.get_channel(GENERAL)
        assert isinstance(channel, discord.TextChannel)
        spoof = await channel.send(embed=discord.Embed(title=DIGEST_TITLE))
        stored = harness.fake.message(spoof.id)
        assert stored is not None
        stored["author"] = ALICE.payload()  # as if another bot or webhook had posted it
        clock.now = DIGEST_DUE
        await until(lambda: len(channel_posts(harness)) == 2, "the real digest")
        await harness.ticks(3)
        assert len(channel_posts(harness)) == 2


# --- Discord faults on the digest post -----------------------------------------------------


async def test_a_429_on_the_digest_post_waits_retry_after_then_posts_once(
    tmp_path: Path,
) -> None:
    clock = Clock(BEFORE_DIGEST)
    async with running_bot(tmp_path, clock=clock, digest=digest_config()) as harness:
        body = {"message": "You are being rate limited.", "retry_after": 0.4, "global": False}
        harness.fake.fail_next("POST", POST_PATH, 429, body)
        clock.now = DIGEST_DUE
        await until(lambda: len(channel_posts(harness)) == 2, "the retried post")
        limited, accepted = channel_posts(harness)
        assert (limited.status, accepted.status) == (429, 200)
        assert accepted.at - limited.at >= 0.35  # it waited retry_after
        assert accepted.json["nonce"] == limited.json["nonce"]
        await harness.ticks(3)
        assert len(harness.fake.messages_in(GENERAL)) == 1
        assert (await digest_status(harness))["Last digest"] == "2026-03-02: posted"


@pytest.mark.usefixtures("fast_5xx_retries")
async def test_a_few_500s_are_retried_by_discord_py_and_the_digest_posts_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock(BEFORE_DIGEST)
    async with running_bot(tmp_path, clock=clock, digest=digest_config()) as harness:
        harness.fake.fail_next("POST", POST_PATH, 500, times=3)
        clock.now = DIGEST_DUE
        await until(lambda: len(channel_posts(harness)) == 4, "the fourth try")
        await harness.ticks(3)
        assert [r.status for r in channel_posts(harness)] == [500, 500, 500, 200]
        assert len(harness.fake.messages_in(GENERAL)) == 1
        assert harness.library is not None
        record = await harness.library.store.last_digest(GUILD_ID)
        assert record is not None and (record.status, record.attempts) == ("posted", 1)
        # Retried inside one send: the day never failed, so the bot has nothing to report.
        notes = [r for r in caplog.records if r.name.startswith("bot.") and r.levelno >= 30]
        assert notes == []


@pytest.mark.usefixtures("fast_5xx_retries")
async def test_a_500_after_discord_took_the_post_is_retried_with_its_nonce_and_posts_once(
    tmp_path: Path,
) -> None:
    clock = Clock(BEFORE_DIGEST)
    async with running_bot(tmp_path, clock=clock, digest=digest_config()) as harness:
        # The message is created, then the answer is lost: the retry must not post it again.
        harness.fake.fail_next("POST", POST_PATH, 500, process=True)
        clock.now = DIGEST_DUE
        await until(lambda: len(channel_posts(harness)) == 2, "the retried post")
        await harness.ticks(3)
        lost, retried = channel_posts(harness)
        assert (lost.status, retried.status) == (500, 200)
        assert lost.json["nonce"] == retried.json["nonce"] == digest_nonce(GUILD_ID, DAY)
        assert retried.json["enforce_nonce"] is True
        assert len(harness.fake.messages_in(GENERAL)) == 1
        assert harness.library is not None
        record = await harness.library.store.last_digest(GUILD_ID)
        assert record is not None and record.status == "posted"
        assert record.message_id == int(harness.fake.messages_in(GENERAL)[0]["id"])


@pytest.mark.usefixtures("fast_5xx_retries")
async def test_a_digest_whose_answers_were_all_lost_is_not_posted_twice_even_off_history(
    tmp_path: Path,
) -> None:
    # Due at 20:00 only: here the moderator's /digest now does the posting, twice.
    clock = Clock(BEFORE_DIGEST)
    async with running_bot(tmp_path, clock=clock, digest=digest_config(time="20:00")) as harness:
        fake = harness.fake
        # Discord creates the digest, but all five answers discord.py waits for are lost.
        fake.fail_next("POST", POST_PATH, 500, times=5, process=True)
        assert (await post_digest_now(harness)).startswith("Could not post the digest")
        digests = [m for m in fake.messages_in(GENERAL) if m["embeds"]]
        assert len(digests) == 1
        # A busy channel: the digest scrolls out of the history the bot looks through.
        assert harness.bot is not None
        channel = harness.bot.get_channel(GENERAL)
        assert isinstance(channel, discord.TextChannel)
        for i in range(30):
            await channel.send(f"chatter {i}")
        # Only the (guild, day) nonce can tell Discord it is the same message now.
        reply = await post_digest_now(harness)
        assert reply.startswith("Posted:") and reply.endswith(f"/{digests[0]['id']}")
        assert [m for m in fake.messages_in(GENERAL) if m["embeds"]] == digests
        assert harness.library is not None
        record = await harness.library.store.last_digest(GUILD_ID)
        assert record is not None and record.status == "posted"
        assert record.message_id == int(digests[0]["id"])


@pytest.mark.usefixtures("fast_5xx_retries")
async def test_500s_beyond_discord_py_retries_mark_the_day_failed_and_the_next_tick_posts_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock(BEFORE_DIGEST)
    async with running_bot(tmp_path, clock=clock, digest=digest_config()) as harness:
        harness.fake.fail_next("POST", POST_PATH, 500, times=5)  # discord.py's 5 tries
        clock.now = DIGEST_DUE
        await until(lambda: len(channel_posts(harness)) == 6, "the post on the next tick")
        await harness.ticks(3)
        statuses = [r.status for r in channel_posts(harness)]
        assert statuses == [500] * 5 + [200]
        assert len(harness.fake.messages_in(GENERAL)) == 1
        assert harness.library is not None
        record = await harness.library.store.last_digest(GUILD_ID)
        assert record is not None and (record.status, record.attempts) == ("posted", 2)
        retry_notes = [r for r in caplog.records if "will retry" in r.getMessage()]
        assert len(retry_notes) == 1 and retry_notes[0].levelno == logging.WARNING
        assert errors_in(caplog) == []


@pytest.mark.parametrize(
    ("status", "code", "message", "reason"),
    [
        (403, 50013, "Missing Permissions", "Missing Permissions"),
        (404, 10003, "Unknown Channel", "Unknown Channel"),
    ],
    ids=["403-missing-permissions", "404-unknown-channel"],
)
async def test_a_refused_digest_channel_is_logged_once_shown_in_status_and_not_retried(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    status: int,
    code: int,
    message: str,
    reason: str,
) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock(BEFORE_DIGEST)
    async with running_bot(tmp_path, clock=clock, digest=digest_config()) as harness:
        # The channel refuses every post, as a real one would until a moderator fixes it.
        harness.fake.fail_next(
            "POST", POST_PATH, status, {"code": code, "message": message}, times=1000
        )
        clock.now = DIGEST_DUE
        await until(lambda: channel_posts(harness), "the refused post")
        await harness.ticks(10)
        clock.now += timedelta(minutes=30)  # long past the claim's stale window
        await harness.ticks(5)
        assert len(channel_posts(harness)) == 1, "a retry storm on a refusing channel"
        refusals = errors_in(caplog)
        assert len(refusals) == 1, [r.getMessage() for r in refusals]
        assert reason in refusals[0].getMessage()
        last = (await digest_status(harness))["Last digest"]
        assert last.startswith("2026-03-02: failed — ")
        assert reason in last


# --- the gateway drops -----------------------------------------------------------------


async def test_an_interaction_sent_while_the_gateway_is_down_is_answered_after_the_resume(
    tmp_path: Path,
) -> None:
    async with running_bot(tmp_path) as harness:
        fake = harness.fake
        await fake.close_gateway()
        # Dispatched while the socket is down: the fake keeps it and replays it on RESUME.
        iid = await fake.slash("news", {"query": "facial recognition"}, user=ALICE)
        body = (await fake.wait_for_callback(iid, timeout=10)).json
        assert body["type"] == 4
        assert "facial recognition" in embed_of(body)["title"].lower()
        assert fake.resume_count == 1 and fake.identify_count == 1
        assert any("/resume" in c for c in fake.gateway_connections)
        # And the session goes on as usual.
        assert (await harness.news("police", user=BOB))["type"] == 4


# --- an expired interaction token ----------------------------------------------------------


async def test_an_expired_interaction_is_logged_not_answered_again_and_the_bot_carries_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_bot(tmp_path) as harness:
        fake = harness.fake
        fake.fail_next(
            "POST",
            r"/interactions/\d+/[^/]+/callback",
            404,
            {"code": 10062, "message": "Unknown interaction"},
        )
        iid = await fake.slash("news", {"query": "facial recognition"}, user=ALICE)
        expired = await fake.wait_for_callback(iid)
        assert expired.status == 404
        note = await until(
            lambda: [r for r in caplog.records if "expired before" in r.getMessage()], "the note"
        )
        assert len(note) == 1 and note[0].levelno == logging.WARNING
        # A dead token cannot be answered: no apology is attempted on it.
        after = await harness.news("police", user=BOB)
        assert after["type"] == 4
        tries = [r for r in fake.requests if r.path.startswith(f"/interactions/{iid}/")]
        assert len(tries) == 1
        # The same for a button (buttons have their own error path).
        fake.fail_next(
            "POST",
            r"/interactions/\d+/[^/]+/callback",
            404,
            {"code": 10062, "message": "Unknown interaction"},
        )
        click = await fake.click(buttons_of(after)[1]["custom_id"], user=BOB)
        assert (await fake.wait_for_callback(click)).status == 404
        await until(
            lambda: len([r for r in caplog.records if "expired before" in r.getMessage()]) == 2,
            "the second note",
        )
        assert (await harness.news("facial recognition", user=BOB))["type"] == 4
        assert len([r for r in fake.requests if r.path.startswith(f"/interactions/{click}/")]) == 1
        assert errors_in(caplog) == []
        await harness.ticks(2)  # the digest loop is alive


# --- abuse ---------------------------------------------------------------------------------


async def test_the_query_length_cap_is_enforced_with_a_clear_ephemeral_reply(
    tmp_path: Path,
) -> None:
    async with running_bot(tmp_path) as harness:
        at_cap = ("facial recognition police " * 10)[:200]
        body = await harness.news(at_cap)
        assert "characters long" not in json.dumps(body)
        for length in (201, 6000):  # 6000: the most Discord lets a string option carry
            body = await harness.news("x" * length)
            assert body["type"] == 4 and is_ephemeral(body)
            content = body["data"]["content"]
            assert f"{length} characters" in content and "200" in content
            assert len(content) <= 2000 and "xxxx" not in content  # the query is not echoed
        blank = await harness.news("   ")
        assert is_ephemeral(blank) and "what to look for" in blank["data"]["content"]
        # Autocomplete is not rate limited: a huge partial query must still be answered fast.
        iid = await harness.fake.autocomplete("news", {"query": "facial " * 850}, "query")
        choices = (await harness.fake.wait_for_callback(iid)).json["data"]["choices"]
        assert len(choices) <= 25
        assert all(1 <= len(c["name"]) <= 100 and 1 <= len(c["value"]) <= 100 for c in choices)


async def test_the_news_cooldown_is_per_user_and_says_how_long_to_wait(tmp_path: Path) -> None:
    async with running_bot(tmp_path, search=SearchConfig(cooldown_seconds=5)) as harness:
        first = await harness.news("facial recognition", user=ALICE)
        assert first["type"] == 4 and not is_ephemeral(first)
        second = await harness.news("police", user=ALICE)
        assert is_ephemeral(second)
        wait = re.search(r"try again in (\d+(?:\.\d+)?) s", second["data"]["content"])
        assert wait is not None, second["data"]["content"]
        assert 0 < float(wait[1]) <= 5
        # Someone else is not slowed down by Alice...
        other = await harness.news("police", user=BOB)
        assert other["type"] == 4 and not is_ephemeral(other)
        # ...and Alice's buttons are not a command: paging works during her cooldown.
        nxt = buttons_of(first)[1]["custom_id"]
        page = await harness.fake.wait_for_callback(await harness.fake.click(nxt, user=ALICE))
        assert page.json["type"] == 7


# --- mentions are never pinged -------------------------------------------------------------

PINGS = "@everyone @here <@123> <@&456>"


async def test_no_message_the_bot_sends_can_ping_anyone(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for i in range(2):
        write_seed(
            seeds / f"ping-{i}.md",
            title=f"Zephyr alert {i} {PINGS}",
            url=f"https://news.example/ping-{i}",
            excerpt=f"Read this {PINGS} now",
            related=[(f"Related {PINGS}", f"https://elsewhere.example/ping-{i}")],
            topics=["@everyone"],
        )
    clock = Clock(BEFORE_DIGEST)
    bot_config = {"digest": digest_config(), "search": WORDS_ONLY}
    async with running_bot(tmp_path, clock=clock, **bot_config) as harness:
        fake = harness.fake
        first = await harness.news("zephyr alert")
        assert first["type"] == 4
        _prev, nxt, related = buttons_of(first)
        page2 = await fake.wait_for_callback(await fake.click(nxt["custom_id"], user=ALICE))
        assert page2.json["type"] == 7
        await fake.wait_for_callback(await fake.click(related["custom_id"], user=ALICE))
        no_hit = await harness.news(f"{PINGS} quantum marmalade")
        if is_ephemeral(no_hit):  # text content, not an embed: the mentions are defused too
            assert "@everyone" not in no_hit["data"]["content"]
        await harness.news("zephyr", topic="<@123> nonexistent")
        await harness.command("digest", "preview", user=ALICE)
        assert (await post_digest_now(harness)).startswith("Posted:")
        (seeds / f"{PINGS}.md").write_text("not a seed\n", encoding="utf-8")
        await harness.command("seeds", "reload", user=MODERATOR, roles=[MOD_ROLE])
        await fake.wait_for_request(
            lambda r: (
                r.method == "POST"
                and r.path.startswith("/webhooks/")
                and "Seeds reloaded" in json.dumps(r.json)
            )
        )

        sent: list[RecordedRequest] = []
        for rec in fake.requests:
            message_route = re.fullmatch(
                r"/(webhooks/\d+/[^/]+|channels/\d+/messages)(/.*)?", rec.path
            )
            if rec.path.endswith("/callback"):
                if rec.json["type"] in (4, 7):
                    sent.append(rec)
            elif message_route and rec.method in ("POST", "PATCH"):
                sent.append(rec)
        # Callbacks (types 4 and 7), follow-ups, and the channel post were all exercised.
        assert {r.path.split("/")[1] for r in sent} == {"interactions", "webhooks", "channels"}
        assert {r.json["type"] for r in sent if r.path.endswith("/callback")} == {4, 7}
        assert len(sent) >= 8
        for rec in sent:
            payload = rec.json["data"] if rec.path.endswith("/callback") else rec.json
            assert payload.get("allowed_mentions") == {"parse": []}, (rec.method, rec.path)


# --- markdown cannot forge links -----------------------------------------------------------

# Discord's (simple-markdown's) masked-link rule, and its escape rule.
_LINK_INSIDE = r"(?:\[[^\]]*\]|[^\[\]]|\](?=[^\[]*\]))*"
_LINK_HREF = r"\s*<?((?:\([^)]*\)|[^\s\\])*?)>?(?:\s+['\"]([\s\S]*?)['\"])?\s*"
_MASKED_LINK = re.compile(r"\[(" + _LINK_INSIDE + r")\]\(" + _LINK_HREF + r"\)")


def masked_links(text: str) -> list[str]:
    """The targets of the masked links Discord would render in ``text``.

    Scans like Discord's parser: a backslash escapes the punctuation after it, a ``[`` starts
    a link if the link rule matches there (on the raw text: escapes inside the link text do
    not protect a ``]``), and link text is scanned again for links nested in it.
    """
    targets: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and not text[i + 1].isalnum():
            i += 2
            continue
        if char == "[":
            match = _MASKED_LINK.match(text, i)
            if match:
                targets.append(match[2])
                targets.extend(masked_links(match[1]))
                i = match.end()
                continue
        i += 1
    return targets


def test_the_masked_link_oracle_reads_links_the_way_discord_does() -> None:
    assert masked_links("see [a story](https://real.example/x) now") == ["https://real.example/x"]
    assert masked_links(r"\[not a link\](https://evil.example)") == []
    # A backslash does not protect a ']' inside link text: this points at evil.example.
    assert masked_links(r"[Evil\](https://evil.example) \[x](https://real.example)") == [
        "https://evil.example"
    ]
    assert masked_links(r"\\[two](https://evil.example)") == ["https://evil.example"]
    assert masked_links("[a (b) c](https://real.example/a_%28b%29)") == [
        "https://real.example/a_%28b%29"
    ]


EVIL_RELATED = [
    ("Related](https://evil.example/r1) [one", "https://elsewhere.example/one"),
    ("[two](https://evil.example/r2)", "https://elsewhere.example/two"),
    ("three \\", "https://elsewhere.example/three"),
    ("four ) ( ] [ ] (https://evil.example/r4)", "https://elsewhere.example/four"),
    ("five \\](https://evil.example/r5)", "https://en.wikipedia.org/wiki/Zephyr_(wind)"),
]


async def test_markdown_in_titles_and_excerpts_cannot_forge_or_redirect_links(
    tmp_path: Path,
) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    write_seed(
        seeds / "evil.md",
        title="Evil](https://evil.example/title) [x Zephyr",
        url="https://news.example/evil-(1)",
        excerpt=(
            "Zephyr [click](https://evil.example/e1) and [two](https://evil.example/e2)"
            " \\[sneaky](https://evil.example/bs) ] [ <https://evil.example/angle>"
        ),
        related=EVIL_RELATED,
    )
    write_seed(
        seeds / "plain.md",
        title="Plain zephyr story [brackets] (parens) \\",
        url="https://news.example/plain",
        excerpt="Nothing to see.",
        related=[("x](https://evil.example/p1", "https://elsewhere.example/p1")],
    )
    real = {
        "https://news.example/evil-(1)",
        "https://news.example/plain",
        "https://elsewhere.example/p1",
        *(url for _, url in EVIL_RELATED),
    }
    clock = Clock(BEFORE_DIGEST)
    async with running_bot(tmp_path, clock=clock, digest=digest_config()) as harness:
        fake = harness.fake
        first = await harness.news("zephyr")
        assert first["type"] == 4
        _, nxt, related = buttons_of(first)
        page2 = await fake.wait_for_callback(await fake.click(nxt["custom_id"], user=ALICE))
        assert page2.json["type"] == 7
        for button in (related, buttons_of(page2.json)[-1]):  # both pages' related stories
            shown = await fake.wait_for_callback(await fake.click(button["custom_id"], user=ALICE))
            assert embed_of(shown.json)["title"].startswith("Related to:")
        await harness.command("digest", "preview", user=ALICE)
        assert (await post_digest_now(harness)).startswith("Posted:")

        embeds: list[dict[str, Any]] = []
        for rec in fake.requests:
            payload = rec.json
            if rec.path.endswith("/callback"):
                payload = rec.json.get("data") or {}
            if isinstance(payload, dict):
                embeds += payload.get("embeds") or []
        assert len(embeds) >= 6
        all_targets: list[str] = []
        for embed in embeds:
            if "url" in embed:
                assert unquote(embed["url"]) in real
            texts = [embed.get("title", ""), embed.get("description", "")]
            texts += [f["value"] for f in embed.get("fields", [])]
            for text in texts:
                targets = masked_links(text)
                all_targets += targets
                for target in targets:
                    assert "evil.example" not in target, (target, text)
                    assert unquote(target) in real, (target, text)
        # The links that should be there are: every related story, linked to its own URL.
        assert {unquote(t) for t in all_targets} >= {url for _, url in EVIL_RELATED}


# --- moderator commands -------------------------------------------------------------------

MODERATOR_COMMANDS: list[tuple[str, str, dict[str, Any]]] = [
    ("seeds", "reload", {}),
    ("seeds", "status", {}),
    ("digest", "channel", {"channel": NEWS_CHANNEL}),
    ("digest", "time", {"time": "10:30", "timezone": "Europe/Paris"}),
    ("digest", "off", {}),
    ("digest", "now", {}),
]


async def test_moderator_commands_refuse_members_without_the_right_and_dms_changing_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock(BEFORE_DIGEST)
    async with running_bot(tmp_path, clock=clock, digest=digest_config()) as harness:
        library = harness.library
        assert library is not None
        # A new story waiting in the folder: a reload that slipped through would load it.
        seeds = Path(harness.config.seeds_dir)
        write_seed(seeds / "extra.md", title="Zebra crossing news", url="https://news.example/z")
        files_before = await library.store.seed_files()
        requests_before = len(harness.fake.requests)

        refusals = 0
        for group, sub, options in MODERATOR_COMMANDS:
            for who in (
                {"user": BOB, "permissions": PLAIN_MEMBER},
                {"user": BOB, "permissions": PLAIN_MEMBER, "roles": [OTHER_ROLE]},
            ):
                body = await harness.command(group, sub, options, **who)
                assert body["type"] == 4 and is_ephemeral(body), (group, sub, body)
                assert "Manage Server" in body["data"]["content"], (group, sub)
                refusals += 1
            dm_options = {k: v for k, v in options.items() if k != "channel"}
            body = await harness.command(group, sub, dm_options, user=ALICE, guild_id=None)
            assert body["type"] == 4 and is_ephemeral(body), (group, sub, body)
            assert "in a server" in body["data"]["content"], (group, sub)
            refusals += 1
        # Not moderator commands, but server-only: a DM gets the same plain refusal.
        for sub in ("status", "preview"):
            body = await harness.command("digest", sub, user=ALICE, guild_id=None)
            assert is_ephemeral(body) and "in a server" in body["data"]["content"], sub
            refusals += 1

        # Nothing happened: one ephemeral answer each, and no state anywhere changed.
        after = harness.fake.requests[requests_before:]
        assert [r.path.split("/")[1] for r in after] == ["interactions"] * refusals
        assert await library.store.get_guild_settings(GUILD_ID) is None
        assert await library.store.last_digest(GUILD_ID) is None
        assert await library.store.seed_files() == files_before
        assert len(library.index) == 5
        assert channel_posts(harness) == []
        assert errors_in(caplog) == []


@pytest.mark.parametrize(
    "who",
    [
        {"user": MODERATOR, "permissions": PLAIN_MEMBER | MANAGE_GUILD},
        {"user": MODERATOR, "permissions": PLAIN_MEMBER, "roles": [MOD_ROLE]},
    ],
    ids=["manage-server-permission", "moderator-role"],
)
async def test_moderator_commands_run_for_manage_server_or_the_moderator_role(
    tmp_path: Path, who: dict[str, Any]
) -> None:
    clock = Clock(BEFORE_DIGEST)
    async with running_bot(tmp_path, clock=clock) as harness:
        library = harness.library
        assert library is not None
        seeds = Path(harness.config.seeds_dir)
        write_seed(seeds / "extra.md", title="Zebra crossing news", url="https://news.example/z")
        fake = harness.fake

        reload = await harness.command("seeds", "reload", **who)
        assert reload["type"] == 5
        await fake.wait_for_request(
            lambda r: (
                r.method == "POST"
                and r.path.startswith("/webhooks/")
                and "added 1" in json.dumps(r.json)
            )
        )
        assert len(library.index) == 6
        status = await harness.command("seeds", "status", **who)
        assert embed_of(status)["title"] == "News collection"

        body = await harness.command("digest", "channel", {"channel": NEWS_CHANNEL}, **who)
        assert "will be posted in" in body["data"]["content"]
        body = await harness.command(
            "digest", "time", {"time": "10:30", "timezone": "Europe/Paris"}, **who
        )
        assert "now at 10:30 (Europe/Paris)" in body["data"]["content"]
        settings = await library.store.get_guild_settings(GUILD_ID)
        assert settings is not None
        assert (settings.digest_channel_id, settings.digest_time) == (NEWS_CHANNEL, "10:30")

        now = await harness.command("digest", "now", **who)
        assert now["type"] == 5
        await until(lambda: channel_posts(harness, NEWS_CHANNEL), "the digest in #news")
        body = await harness.command("digest", "off", **who)
        assert "is off" in body["data"]["content"]
        settings = await library.store.get_guild_settings(GUILD_ID)
        assert settings is not None and settings.digest_enabled is False


# --- the token never leaks ----------------------------------------------------------------


# The token and its distinctive dot-separated parts (a base64 user id, a base64 secret); short
# ones like "fake" would match ordinary words.
SECRETS = [TOKEN, *(part for part in TOKEN.split(".") if len(part) >= 8)]


@pytest.mark.usefixtures("fast_5xx_retries")
async def test_the_token_never_appears_in_logs_replies_or_requests(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = Clock(BEFORE_DIGEST)
    async with running_bot(tmp_path, clock=clock, digest=digest_config()) as harness:
        fake = harness.fake
        assert harness.library is not None
        # A command handler that raises.
        index_type = type(harness.library.index)

        def explode(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("the index exploded")

        with monkeypatch.context() as patch:
            patch.setattr(index_type, "search", explode)
            body = await harness.news("facial recognition")
        assert "something went wrong" in body["data"]["content"]
        # An expired interaction.
        fake.fail_next(
            "POST",
            r"/interactions/\d+/[^/]+/callback",
            404,
            {"code": 10062, "message": "Unknown interaction"},
        )
        await fake.wait_for_callback(await fake.slash("news", {"query": "police"}))
        # The digest: five 500s (the day fails), then a 403 on the retry.
        fake.fail_next("POST", POST_PATH, 500, times=5)
        fake.fail_next("POST", POST_PATH, 403, {"code": 50013, "message": "Missing Permissions"})
        clock.now = DIGEST_DUE
        await until(lambda: len(channel_posts(harness)) == 6, "the refused retry")
        await until(lambda: errors_in(caplog), "the refusal to be logged")
        await harness.ticks(2)
        # A reply that went through the error path.
        status = await harness.command("digest", "status", user=ALICE)
        assert "Missing Permissions" in json.dumps(status)

    logged = caplog.text + "\n".join(
        f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records
    )
    sent = "\n".join(
        f"{r.method} {r.path} {r.query} {json.dumps(r.json)} {r.response!r}" for r in fake.requests
    )
    frames = "\n".join(json.dumps(f) for f in fake.gateway_received if f.get("op") not in (2, 6))
    for secret in SECRETS:
        assert secret not in logged, f"{secret!r} was logged"
        assert secret not in sent, f"{secret!r} was sent in a request"
        assert secret not in frames, f"{secret!r} was sent on the gateway"
    # The check can see the token where it belongs: the Authorization header and IDENTIFY.
    assert any(r.headers.get("Authorization") == f"Bot {TOKEN}" for r in fake.requests)
    assert any(f.get("op") == 2 and f["d"]["token"] == TOKEN for f in fake.gateway_received)
    assert len(caplog.records) > 100  # DEBUG really was captured, discord.py's included
    assert any(r.name.startswith("discord.") for r in caplog.records)


# --- one bad request never breaks the bot -----------------------------------------------------


async def test_one_bad_interaction_never_breaks_the_bot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_bot(tmp_path) as harness:
        fake = harness.fake

        async def answer(dispatch: Awaitable[str]) -> dict[str, Any]:
            return (await fake.wait_for_callback(await dispatch)).json

        # A command Discord still lists but this bot no longer has.
        body = await answer(fake.slash("headlines", {"query": "x"}))
        assert is_ephemeral(body) and "no longer" in body["data"]["content"]
        # Buttons whose saved search does not exist (expired, or a forged id).
        for custom_id in (
            "news:next:999999:1",
            "news:prev:999999:0",
            "news:related:999999:0",
            "news:next:" + "9" * 80 + ":1",
        ):
            body = await answer(fake.click(custom_id))
            assert is_ephemeral(body), custom_id
            assert "expired" in body["data"]["content"], custom_id
        # Ids that match no template: ignored, nothing is sent.
        ignored = [await fake.click(c) for c in ("news:next:abc:1", "news:", "x" * 100)]
        assert (await harness.news("facial recognition"))["type"] == 4
        for iid in ignored:
            with pytest.raises(TimeoutError):
                await fake.wait_for_callback(iid, timeout=0.2)
        assert errors_in(caplog) == []
        await harness.ticks(2)


async def test_after_a_refused_post_a_new_channel_gets_todays_digest(tmp_path: Path) -> None:
    clock = Clock(BEFORE_DIGEST)
    async with running_bot(tmp_path, clock=clock, digest=digest_config()) as harness:
        missing = {"code": 50013, "message": "Missing Permissions"}
        harness.fake.fail_next("POST", POST_PATH, 403, missing, times=1000)
        clock.now = DIGEST_DUE
        await until(lambda: channel_posts(harness), "the refused post")
        await harness.ticks(3)
        # The moderator follows the advice and picks a channel the bot may post in.
        clock.now = DIGEST_DUE + timedelta(minutes=5)
        await harness.command(
            "digest", "channel", {"channel": NEWS_CHANNEL}, user=MODERATOR,
            permissions=PLAIN_MEMBER | MANAGE_GUILD,
        )  # fmt: skip
        await until(lambda: channel_posts(harness, NEWS_CHANNEL), "the digest in the new channel")
        await harness.ticks(3)
        assert len(channel_posts(harness, NEWS_CHANNEL)) == 1


async def test_news_answers_before_its_search_is_saved_and_its_buttons_wait_for_the_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process's reload may hold SQLite's write lock: the answer must not wait for it.
    async with running_bot(tmp_path) as harness:
        assert harness.library is not None
        store, fake = harness.library.store, harness.fake
        save_search = store.save_search
        release = asyncio.Event()
        started = asyncio.Event()

        async def slow_save(*args: Any, **kwargs: Any) -> int:
            started.set()
            await release.wait()
            return await save_search(*args, **kwargs)

        monkeypatch.setattr(store, "save_search", slow_save)
        first = await harness.news("facial recognition", user=ALICE)  # answered, save held
        assert first["type"] == 4 and buttons_of(first)
        await asyncio.wait_for(started.wait(), 5)
        _prev, nxt, _related = buttons_of(first)
        click = await fake.click(nxt["custom_id"], user=ALICE)
        with pytest.raises(TimeoutError):  # the button waits for the save...
            await fake.wait_for_callback(click, timeout=0.3)
        release.set()
        page2 = await fake.wait_for_callback(click)
        assert page2.json["type"] == 7  # the next page, not "these results have expired"
        assert "2 of" in embed_of(page2.json)["footer"]["text"]

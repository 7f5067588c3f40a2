"""The digest service on both backends: exactly once, across processes, faults and restarts.

The poster here is a small in-memory channel (the service's own protocol, not a stand-in for
discord.py, which tests/test_bot.py drives for real); two services on one database are two
processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bot.articles import Article
from bot.config import DigestConfig
from bot.digests import (
    AlreadyDone,
    DigestContent,
    DigestService,
    NotDue,
    NothingNew,
    Outcome,
    Posted,
    PostFailed,
    PostRefused,
    Refused,
    RetryLater,
)
from bot.loader import ReloadChanges
from bot.store import Store

GUILD = 1 << 22
NOW = datetime(2026, 3, 2, 9, 5, tzinfo=UTC)  # five minutes after the default 09:00 UTC
TODAY = date(2026, 3, 2)
CONFIG = DigestConfig(channels={GUILD: 10})


@dataclass
class Channel:
    """Channels by id: their messages' digest days; a channel may refuse or fail."""

    messages: dict[int, list[tuple[int, date]]] = field(default_factory=dict)
    refusing: set[int] = field(default_factory=set)
    failing: int = 0  # the next N posts fail
    hang: asyncio.Event | None = None  # posts wait for this (a poster stuck mid-post)
    posts: int = 0

    async def post(self, guild_id: int, channel_id: int, digest: DigestContent, nonce: str) -> int:
        self.posts += 1
        if channel_id in self.refusing:
            raise PostRefused("the bot may not post in the digest channel (Missing Permissions)")
        if self.failing:
            self.failing -= 1
            raise PostFailed("Discord answered 503")
        message_id = 1000 + self.posts
        self.messages.setdefault(channel_id, []).append((message_id, digest.day))
        if self.hang is not None:
            await self.hang.wait()  # the post landed; the poster never hears back
        return message_id

    async def find_earlier(
        self, guild_id: int, channel_id: int, digest: DigestContent
    ) -> int | None:
        for message_id, day in self.messages.get(channel_id, []):
            if day == digest.day:
                return message_id
        return None

    def days(self, channel_id: int = 10) -> list[date]:
        return [day for _, day in self.messages.get(channel_id, [])]


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def store(database: Path | str) -> AsyncIterator[Store]:
    async with await Store.open(database) as opened:
        await put(opened, story(1))
        yield opened


def story(n: int) -> Article:
    return Article(
        url=f"https://example.com/{n}",
        title=f"Story {n}",
        excerpt="",
        published=datetime(2026, 3, 1, tzinfo=UTC) + timedelta(hours=n),
        provider="Example",
        provider_domain="example.com",
    )


async def put(store: Store, *articles: Article, now: datetime = NOW - timedelta(hours=1)) -> None:
    state = await store.reload_state()
    changes = ReloadChanges(upsert_articles=[(a, f"/seeds/{a.url[-3:]}.md") for a in articles])
    await store.apply_reload(changes, state=state, now=now)


async def post_and_hang(store: Store) -> tuple[Channel, asyncio.Task[Outcome]]:
    """A poster whose post reached the channel and then never heard back (until released)."""
    await put(store, story(1))
    channel = Channel(hang=asyncio.Event())
    stuck = asyncio.create_task(DigestService(store, CONFIG, Clock()).run_due(GUILD, channel))
    async with asyncio.timeout(5):
        while not channel.messages:
            await asyncio.sleep(0.01)
    return channel, stuck


async def test_a_due_digest_is_posted_once(store: Store) -> None:
    service, channel = DigestService(store, CONFIG, Clock()), Channel()
    outcome = await service.run_due(GUILD, channel)
    assert isinstance(outcome, Posted) and outcome.day == TODAY and outcome.channel_id == 10
    assert isinstance(await service.run_due(GUILD, channel), NotDue)  # today's is done
    assert channel.days() == [TODAY]


async def test_not_due_before_the_time_and_off_without_a_channel(store: Store) -> None:
    early = DigestService(store, CONFIG, Clock(NOW - timedelta(hours=1)))
    assert await early.run_due(GUILD, Channel()) == NotDue("not yet time")
    nowhere = DigestService(store, DigestConfig(), Clock())
    assert isinstance(await nowhere.run_due(GUILD, Channel()), NotDue)


async def test_nothing_new_marks_the_day_without_posting(store: Store) -> None:
    service, channel = DigestService(store, CONFIG, Clock()), Channel()
    assert isinstance(await service.run_due(GUILD, channel), Posted)
    tomorrow = Clock(NOW + timedelta(days=1))
    later = DigestService(store, CONFIG, tomorrow)
    assert await later.run_due(GUILD, channel) == NothingNew(TODAY + timedelta(days=1))
    assert channel.posts == 1


async def test_two_processes_racing_post_one_digest(database: Path | str) -> None:
    async with await Store.open(database) as a, await Store.open(database) as b:
        await put(a, story(1))
        channel = Channel()
        services = [DigestService(s, CONFIG, Clock()) for s in (a, b, a, b)]
        outcomes = await asyncio.gather(*(s.run_due(GUILD, channel) for s in services))
    assert sum(isinstance(o, Posted) for o in outcomes) == 1
    assert all(isinstance(o, Posted | AlreadyDone | NotDue) for o in outcomes)
    assert channel.days() == [TODAY]


async def test_a_poster_that_dies_mid_post_is_taken_over_without_a_second_post(
    database: Path | str,
) -> None:
    async with await Store.open(database) as dying, await Store.open(database) as other:
        channel, stuck = await post_and_hang(dying)
        service = DigestService(other, CONFIG, Clock(NOW + timedelta(minutes=1)))
        # The poster is alive: nobody takes its day.
        assert isinstance(await service.run_due(GUILD, Channel()), AlreadyDone)
        stuck.cancel()  # it dies: no heartbeat any more
        other.holder_timeout = timedelta(0)
        outcome = await service.run_due(GUILD, channel)
    # Taken over, found in the channel's history, not posted again.
    assert outcome == Posted(TODAY, 10, 1001, earlier=True)
    assert channel.days() == [TODAY]


async def test_a_refused_channel_is_not_retried_until_a_new_channel_is_set(store: Store) -> None:
    clock = Clock()
    service, channel = DigestService(store, CONFIG, clock), Channel(refusing={10})
    outcome = await service.run_due(GUILD, channel)
    assert isinstance(outcome, Refused) and "Missing Permissions" in outcome.reason
    for minutes in (1, 2, 3, 60):
        clock.now = NOW + timedelta(minutes=minutes)
        assert isinstance(await service.run_due(GUILD, channel), AlreadyDone)
    assert channel.posts == 1  # no retry storm against a channel that refuses
    record = await store.last_digest(GUILD)
    assert record is not None and record.final and record.status == "failed"

    await service.set_channel(GUILD, 20)
    assert isinstance(await service.run_due(GUILD, channel), Posted)
    assert channel.days(20) == [TODAY]
    assert isinstance(await service.run_due(GUILD, channel), NotDue)  # and only once


async def test_a_refusal_survives_a_restart_and_post_now_tries_again(
    database: Path | str,
) -> None:
    channel = Channel(refusing={10})
    async with await Store.open(database) as store:
        await put(store, story(1))
        assert isinstance(
            await DigestService(store, CONFIG, Clock()).run_due(GUILD, channel), Refused
        )
    async with await Store.open(database) as store:  # a restart forgets nothing
        service = DigestService(store, CONFIG, Clock(NOW + timedelta(minutes=5)))
        assert isinstance(await service.run_due(GUILD, channel), AlreadyDone)
        channel.refusing.clear()  # the moderator fixes the permissions, then asks
        assert isinstance(await service.post_now(GUILD, channel), Posted)
        assert isinstance(await service.post_now(GUILD, channel), AlreadyDone)
    assert channel.days() == [TODAY]


async def test_a_failed_post_is_retried_up_to_the_limit(store: Store) -> None:
    clock = Clock()
    service, channel = DigestService(store, CONFIG, clock), Channel(failing=5)
    outcomes = []
    for minute in range(5):
        clock.now = NOW + timedelta(minutes=minute)
        outcomes.append(await service.run_due(GUILD, channel))
    assert [type(o) for o in outcomes] == [RetryLater] * 3 + [AlreadyDone] * 2
    assert channel.posts == 3


async def test_a_retry_after_a_lost_answer_finds_the_earlier_post(store: Store) -> None:
    # The post reached the channel but its answer was lost (a timeout): recorded as failed.
    channel = Channel()
    await store.claim_digest(GUILD, TODAY, NOW)
    await channel.post(GUILD, 10, DigestContent([], 0, TODAY, "UTC", NOW), "nonce")
    await store.mark_digest_failed(GUILD, TODAY, "timeout", NOW)
    outcome = await DigestService(store, CONFIG, Clock()).run_due(GUILD, channel)
    assert isinstance(outcome, Posted) and outcome.earlier
    assert channel.days() == [TODAY]


async def test_post_now_after_a_lost_answer_finds_the_earlier_post(store: Store) -> None:
    # A scheduled post reached the channel, its answer was lost (PostFailed), and the
    # scheduler's tries are used up; a moderator's /digest now must not post it again.
    channel = Channel()
    for attempt in range(3):
        assert await store.claim_digest(GUILD, TODAY, NOW, max_attempts=3)
        if attempt == 0:
            await channel.post(GUILD, 10, DigestContent([], 0, TODAY, "UTC", NOW), "nonce")
        await store.mark_digest_failed(GUILD, TODAY, "timeout", NOW)
    outcome = await DigestService(store, CONFIG, Clock()).post_now(GUILD, channel)
    assert isinstance(outcome, Posted) and outcome.earlier
    assert channel.days() == [TODAY]


async def test_a_poster_whose_claim_was_taken_over_records_nothing(
    database: Path | str,
) -> None:
    async with await Store.open(database) as slow, await Store.open(database) as other:
        channel, stuck = await post_and_hang(slow)
        other.holder_timeout = timedelta(0)  # the slow poster looks dead
        taken = await DigestService(other, CONFIG, Clock()).run_due(GUILD, channel)
        assert isinstance(taken, Posted) and taken.earlier  # found its post, did not repeat it
        channel.hang.set()  # the slow poster hears back at last
        late = await stuck
        assert isinstance(late, AlreadyDone)
        record = await other.last_digest(GUILD)
        assert record is not None and record.status == "posted"
    assert channel.days() == [TODAY]


async def test_preview_covers_what_is_new_since_the_last_digest(store: Store) -> None:
    service, channel = DigestService(store, CONFIG, Clock()), Channel()
    first = await service.preview(GUILD)
    assert [a.title for a in first.stories] == ["Story 1"]
    await service.run_due(GUILD, channel)
    await put(store, story(2), now=NOW + timedelta(hours=1))
    service.clock = Clock(NOW + timedelta(hours=2))
    preview = await service.preview(GUILD)
    assert [a.title for a in preview.stories] == ["Story 2"]
    assert preview.since == NOW


async def test_settings_fall_back_to_the_config_and_time_changes_keep_on_or_off(
    store: Store,
) -> None:
    service = DigestService(store, replace(CONFIG, timezone="Asia/Tokyo"), Clock())
    assert (await service.settings(GUILD)).channel_id == 10
    settings = await service.set_time(GUILD, "7:45", "Europe/Paris")
    assert (settings.time, settings.timezone, settings.enabled) == ("07:45", "Europe/Paris", True)
    await service.turn_off(GUILD)
    settings = await service.set_time(GUILD, "08:00", None)
    assert (settings.enabled, settings.timezone) == (False, "Europe/Paris")
    with pytest.raises(ValueError):
        await service.set_time(GUILD, "25:00", None)

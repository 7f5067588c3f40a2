"""Digest scheduling across time zones and DST, the grace window, and story selection."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.articles import Article
from bot.digest import (
    NONCE_MAX_LENGTH,
    DigestSchedule,
    digest_nonce,
    due_day,
    next_run,
    parse_local_time,
    parse_timezone,
    scheduled_at,
    select_digest,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def schedule(hhmm: str, zone: str) -> DigestSchedule:
    return DigestSchedule(parse_local_time(hhmm), zone)


# --- parsing user input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("09:30", time(9, 30)),
        ("9:30", time(9, 30)),
        (" 23:59 ", time(23, 59)),
        ("00:00", time(0, 0)),
    ],
)
def test_parse_local_time_accepts_24_hour_hh_mm(text: str, expected: time) -> None:
    assert parse_local_time(text) == expected


@pytest.mark.parametrize(
    "text", ["25:00", "24:00", "12:60", "9", "09:30:00", "9.30", "", "ab:cd", "-1:00", "１２:００"]
)
def test_parse_local_time_rejects_with_a_clear_message(text: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_local_time(text)
    assert str(error.value).startswith(f"'{text.strip()}' is not a time: use HH:MM, 24-hour")


@pytest.mark.parametrize(
    "name", ["Europe/Paris", "UTC", "Asia/Tokyo", " America/New_York ", "Etc/GMT+5"]
)
def test_parse_timezone_accepts_iana_names(name: str) -> None:
    assert parse_timezone(name) == ZoneInfo(name.strip())


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Mars/Olympus", "'Mars/Olympus' is not an IANA time zone, e.g. Europe/Paris"),
        ("", "'' is not an IANA time zone"),
        ("Europe", "'Europe' is not an IANA time zone"),  # a directory, not a zone
        ("localtime", "'localtime' is not an IANA time zone, e.g. Europe/Paris"),  # host-specific
        ("/etc/localtime", "is not an IANA time zone"),
        ("../../etc/passwd", "is not an IANA time zone"),
        ("europe/paris", "(did you mean Europe/Paris?)"),
    ],
)
def test_parse_timezone_rejects_with_a_clear_message(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_timezone(name)


@pytest.mark.parametrize(
    ("local_time", "zone"),
    [(time(9, 30), "Mars/Olympus"), (time(9, 30, tzinfo=UTC), "UTC")],
)
def test_a_schedule_is_validated_when_built(local_time: time, zone: str) -> None:
    with pytest.raises(ValueError):
        DigestSchedule(local_time, zone)


# --- scheduled_at ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hhmm", "zone", "day", "expected_utc", "expected_local"),
    [
        ("09:30", "Europe/Paris", date(2024, 7, 1), utc(2024, 7, 1, 7, 30), "09:30"),
        ("09:30", "Europe/Paris", date(2024, 1, 15), utc(2024, 1, 15, 8, 30), "09:30"),
        ("09:00", "Asia/Tokyo", date(2024, 6, 1), utc(2024, 6, 1, 0, 0), "09:00"),
        ("08:59", "Asia/Tokyo", date(2024, 6, 1), utc(2024, 5, 31, 23, 59), "08:59"),
        # New York springs forward at 02:00 -> 03:00: 02:30 does not exist, moves to 03:30 EDT.
        ("02:30", "America/New_York", date(2024, 3, 10), utc(2024, 3, 10, 7, 30), "03:30"),
        ("01:30", "America/New_York", date(2024, 3, 10), utc(2024, 3, 10, 6, 30), "01:30"),
        ("03:30", "America/New_York", date(2024, 3, 10), utc(2024, 3, 10, 7, 30), "03:30"),
        # New York falls back at 02:00 -> 01:00: 01:30 happens twice; the first (EDT) is used.
        ("01:30", "America/New_York", date(2024, 11, 3), utc(2024, 11, 3, 5, 30), "01:30"),
        # London falls back at 02:00 BST -> 01:00 GMT: the first 01:30 is BST, 00:30 UTC.
        ("01:30", "Europe/London", date(2024, 10, 27), utc(2024, 10, 27, 0, 30), "01:30"),
        # London springs forward at 01:00 GMT -> 02:00 BST: 01:30 moves to 02:30 BST.
        ("01:30", "Europe/London", date(2024, 3, 31), utc(2024, 3, 31, 1, 30), "02:30"),
    ],
)
def test_scheduled_at(
    hhmm: str, zone: str, day: date, expected_utc: datetime, expected_local: str
) -> None:
    result = scheduled_at(day, schedule(hhmm, zone))
    assert result == expected_utc
    assert result.tzinfo is UTC  # an unambiguous instant, safe to compare and subtract
    assert f"{result.astimezone(ZoneInfo(zone)):%H:%M}" == expected_local


# --- next_run -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hhmm", "zone", "now", "expected"),
    [
        ("09:30", "Europe/Paris", utc(2024, 7, 1, 7, 0), utc(2024, 7, 1, 7, 30)),
        ("09:30", "Europe/Paris", utc(2024, 7, 1, 7, 29, 59), utc(2024, 7, 1, 7, 30)),
        # Strictly after: at the scheduled instant itself the next run is tomorrow's.
        ("09:30", "Europe/Paris", utc(2024, 7, 1, 7, 30), utc(2024, 7, 2, 7, 30)),
        ("09:30", "Europe/Paris", utc(2024, 7, 1, 7, 30, 1), utc(2024, 7, 2, 7, 30)),
        # The local date is already tomorrow in Tokyo while it is still today in UTC.
        ("09:00", "Asia/Tokyo", utc(2024, 6, 1, 23, 30), utc(2024, 6, 2, 0, 0)),
        ("09:00", "Asia/Tokyo", utc(2024, 6, 2, 0, 0), utc(2024, 6, 3, 0, 0)),
        # Spring forward: the nonexistent 02:30 runs at 03:30 EDT, then 02:30 EDT next day.
        ("02:30", "America/New_York", utc(2024, 3, 9, 12, 0), utc(2024, 3, 10, 7, 30)),
        ("02:30", "America/New_York", utc(2024, 3, 10, 7, 30), utc(2024, 3, 11, 6, 30)),
        # Fall back: after the first 01:30 the repeated 01:30 GMT is *not* another run.
        ("01:30", "Europe/London", utc(2024, 10, 27, 0, 0), utc(2024, 10, 27, 0, 30)),
        ("01:30", "Europe/London", utc(2024, 10, 27, 0, 30), utc(2024, 10, 28, 1, 30)),
        # "now" in another zone is the same instant.
        (
            "09:30",
            "Europe/Paris",
            datetime(2024, 6, 30, 23, 0, tzinfo=ZoneInfo("America/Los_Angeles")),
            utc(2024, 7, 1, 7, 30),
        ),
    ],
)
def test_next_run(hhmm: str, zone: str, now: datetime, expected: datetime) -> None:
    result = next_run(now, schedule(hhmm, zone))
    assert result == expected
    assert result.tzinfo is UTC
    assert result > now


def test_next_run_refuses_a_naive_now() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_run(datetime(2024, 7, 1, 7, 0), schedule("09:30", "Europe/Paris"))


# --- due_day --------------------------------------------------------------------------------

PARIS_0930 = schedule("09:30", "Europe/Paris")  # 07:30 UTC in July
PARIS_2330 = schedule("23:30", "Europe/Paris")  # 21:30 UTC in July
UTC_2330 = schedule("23:30", "UTC")
TOKYO_0700 = schedule("07:00", "Asia/Tokyo")  # 22:00 UTC the day before
NY_0230 = schedule("02:30", "America/New_York")
LONDON_0130 = schedule("01:30", "Europe/London")
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("sched", "now", "last_day", "grace", "expected"),
    [
        # grace window edges: exactly at, exactly at the end, one second past either side
        (PARIS_0930, utc(2024, 7, 1, 7, 30), None, H, date(2024, 7, 1)),
        (PARIS_0930, utc(2024, 7, 1, 8, 30), None, H, date(2024, 7, 1)),
        (PARIS_0930, utc(2024, 7, 1, 8, 30, 1), None, H, None),
        (PARIS_0930, utc(2024, 7, 1, 7, 29, 59), None, H, None),
        (PARIS_0930, utc(2024, 7, 1, 7, 30), None, timedelta(0), date(2024, 7, 1)),
        (PARIS_0930, utc(2024, 7, 1, 7, 30, 1), None, timedelta(0), None),
        # already posted today (or, after a clock step back, a later day): nothing
        (PARIS_0930, utc(2024, 7, 1, 7, 45), date(2024, 7, 1), H, None),
        (PARIS_0930, utc(2024, 7, 1, 7, 45), date(2024, 7, 2), H, None),
        (PARIS_0930, utc(2024, 7, 1, 7, 45), date(2024, 6, 30), H, date(2024, 7, 1)),
        # the grace window crosses local midnight: yesterday's digest is still due
        (PARIS_2330, utc(2024, 7, 1, 23, 0), None, 6 * H, date(2024, 7, 1)),  # 01:00 local
        (PARIS_2330, utc(2024, 7, 1, 23, 0), date(2024, 7, 1), 6 * H, None),
        (PARIS_2330, utc(2024, 7, 2, 3, 30), None, 6 * H, date(2024, 7, 1)),  # exactly 6 h
        (PARIS_2330, utc(2024, 7, 2, 3, 30, 1), None, 6 * H, None),
        (UTC_2330, utc(2024, 7, 2, 1, 0), None, 6 * H, date(2024, 7, 1)),
        (UTC_2330, utc(2024, 7, 2, 1, 0), date(2024, 6, 30), 6 * H, date(2024, 7, 1)),
        # today's slot wins over yesterday's when both are inside a long grace
        (PARIS_0930, utc(2024, 7, 1, 8, 0), None, 25 * H, date(2024, 7, 1)),
        (PARIS_0930, utc(2024, 7, 1, 7, 0), None, 25 * H, date(2024, 6, 30)),
        (PARIS_0930, utc(2024, 7, 1, 7, 0), date(2024, 6, 30), 25 * H, None),
        # never older than yesterday, however long the grace: a down bot posts no backlog
        (PARIS_0930, utc(2024, 7, 3, 7, 0), None, 72 * H, date(2024, 7, 2)),
        # the *local* date counts: 07:05 on 1 June in Tokyo is still 31 May in UTC
        (TOKYO_0700, utc(2024, 5, 31, 22, 5), None, H, date(2024, 6, 1)),
        (TOKYO_0700, utc(2024, 5, 31, 21, 55), None, H, None),
        # spring forward: the nonexistent 02:30 is due from 03:30 EDT (07:30 UTC)
        (NY_0230, utc(2024, 3, 10, 7, 29, 59), None, 10 * timedelta(minutes=1), None),
        (NY_0230, utc(2024, 3, 10, 7, 30), None, 10 * timedelta(minutes=1), date(2024, 3, 10)),
        (NY_0230, utc(2024, 3, 10, 7, 40, 1), None, 10 * timedelta(minutes=1), None),
        # fall back: due at the first 01:30 (BST); the repeated 01:30 GMT is an hour later,
        # which is past a 30-minute grace, and not a second digest once posted.
        (LONDON_0130, utc(2024, 10, 27, 0, 30), None, H / 2, date(2024, 10, 27)),
        (LONDON_0130, utc(2024, 10, 27, 1, 30), None, H / 2, None),
        (LONDON_0130, utc(2024, 10, 27, 1, 30), None, H, date(2024, 10, 27)),
        (LONDON_0130, utc(2024, 10, 27, 1, 30), date(2024, 10, 27), H, None),
    ],
)
def test_due_day(
    sched: DigestSchedule,
    now: datetime,
    last_day: date | None,
    grace: timedelta,
    expected: date | None,
) -> None:
    assert due_day(now, sched, last_day=last_day, grace=grace) == expected


@pytest.mark.parametrize(
    ("now", "grace", "message"),
    [
        (datetime(2024, 7, 1, 7, 30), H, "aware"),
        (utc(2024, 7, 1, 7, 30), -H, "negative"),
    ],
)
def test_due_day_rejects_bad_arguments(now: datetime, grace: timedelta, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        due_day(now, PARIS_0930, last_day=None, grace=grace)


# --- select_digest --------------------------------------------------------------------------


def story(name: str, quality: float | None, day: int) -> Article:
    return Article(
        url=f"https://example.com/{name}",
        title=name,
        excerpt="",
        published=utc(2024, 7, day, 12, 0),
        quality=quality,
    )


A = story("a", 90.0, 1)
B = story("b", None, 9)  # newest, but no quality: ranks after every scored story
C = story("c", 90.0, 2)  # same quality as A, newer: first
D = story("d", 50.0, 5)
E = story("e", float("nan"), 8)  # NaN ranks like a missing quality, not arbitrarily
F = story("f", 90.0, 2)  # same quality and time as C: URL decides
ALL = [A, B, C, D, E, F]


@pytest.mark.parametrize(
    ("candidates", "limit", "chosen", "rest"),
    [
        (ALL, 10, [C, F, A, D, B, E], 0),
        (ALL, 3, [C, F, A], 3),
        (list(reversed(ALL)), 3, [C, F, A], 3),  # input order does not matter
        (ALL, 0, [], 6),
        ([], 5, [], 0),
        ([A, A, story("a", 10.0, 3), B], 5, [A, B], 0),  # a URL counts once
        ([B, E], 1, [B], 1),
    ],
)
def test_select_digest(
    candidates: list[Article], limit: int, chosen: list[Article], rest: int
) -> None:
    assert select_digest(iter(candidates), limit) == (chosen, rest)


def test_select_digest_rejects_a_negative_limit() -> None:
    with pytest.raises(ValueError, match="limit"):
        select_digest(ALL, -1)


# --- digest_nonce ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("guild_id", "day", "expected"),
    [
        # Fixed values: a nonce built with hash() would change every process and not dedupe.
        (123456789012345678, date(2022, 11, 21), "dg20221121fc3beb4a219127"),
        (2**64 - 1, date(2024, 2, 29), "dg202402298729b3e9520959"),
    ],
)
def test_digest_nonce_is_stable_and_short(guild_id: int, day: date, expected: str) -> None:
    assert digest_nonce(guild_id, day) == expected
    assert len(expected) <= NONCE_MAX_LENGTH == 25


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ((1, date(2024, 7, 1)), (2, date(2024, 7, 1))),
        ((1, date(2024, 7, 1)), (1, date(2024, 7, 2))),
        ((12, date(2024, 7, 1)), (1, date(2024, 7, 12))),  # no accidental concatenation clash
    ],
)
def test_digest_nonce_differs_per_guild_and_day(
    first: tuple[int, date], second: tuple[int, date]
) -> None:
    assert digest_nonce(*first) != digest_nonce(*second)

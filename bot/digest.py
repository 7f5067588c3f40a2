"""Pure digest logic: when a guild's daily digest is due, and which stories it shows.

Nothing here reads the clock or touches Discord: ``now`` is always an argument, so the DST
and grace-window rules below are tested with plain tables instead of frozen clocks.

Time arithmetic is done in UTC on purpose. Python compares and subtracts two aware datetimes
that share a ``tzinfo`` by their *wall-clock* fields (ignoring ``fold`` and the offset), which
silently gives the wrong answer across a DST change. Converting both sides to UTC first makes
every comparison an honest comparison of instants, and every instant returned is UTC.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from .articles import Article

# Discord refuses a message nonce longer than 25 characters.
NONCE_MAX_LENGTH = 25

# [0-9], not \d: \d also matches other scripts' digits, which nobody means in a config value.
_HH_MM = re.compile(r"([0-9]{1,2}):([0-9]{2})")


@dataclass(frozen=True)
class DigestSchedule:
    """A guild's daily digest: post at ``local_time`` (naive wall-clock) in ``timezone``."""

    local_time: time
    timezone: str  # an IANA name such as "Europe/Paris"

    def __post_init__(self) -> None:
        # Validate once at construction, so scheduled_at() can never fail later inside a loop.
        if self.local_time.tzinfo is not None:
            raise ValueError("the digest time is wall-clock time: give it without a time zone")
        parse_timezone(self.timezone)

    @property
    def zone(self) -> ZoneInfo:
        return parse_timezone(self.timezone)


def parse_local_time(text: str) -> time:
    """``"09:30"`` -> ``time(9, 30)``; ``ValueError`` with a user-facing message otherwise."""
    match = _HH_MM.fullmatch(text.strip())
    if match is not None:
        hour, minute = int(match[1]), int(match[2])
        if hour < 24 and minute < 60:
            return time(hour, minute)
    raise ValueError(f"'{_clip(text)}' is not a time: use HH:MM, 24-hour (for example 09:30)")


def parse_timezone(name: str) -> ZoneInfo:
    """An IANA name -> ``ZoneInfo``; ``ValueError`` with a user-facing message otherwise."""
    cleaned = name.strip()
    # "localtime" and absolute paths resolve on some systems but mean "wherever the bot runs",
    # which is never what a guild moderator intends.
    if cleaned and cleaned != "localtime" and not cleaned.startswith(("/", ".")):
        try:
            return ZoneInfo(cleaned)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass  # ValueError: malformed keys such as "a//b"; OSError: a directory name
    message = f"'{_clip(name)}' is not an IANA time zone, e.g. Europe/Paris"
    suggestion = _zone_names_by_folded_case().get(cleaned.casefold())
    if suggestion is not None and suggestion != cleaned:  # a case slip: "europe/paris"
        message += f" (did you mean {suggestion}?)"
    raise ValueError(message)


def scheduled_at(day: date, schedule: DigestSchedule) -> datetime:
    """The instant of ``day``'s digest, as an aware UTC datetime.

    DST: a wall-clock time that does not exist (spring forward, 02:30 in New York) moves
    forward by the size of the gap (03:30 EDT); an ambiguous one (fall back, 01:30 in London)
    is the first occurrence (BST). ``fold=0`` gives exactly that with zoneinfo.

    UTC, not the schedule's zone: an instant in a zone's repeated hour compares *unequal* to
    the same instant in any other zone (PEP 495), and same-zone subtraction is wall-clock
    arithmetic; UTC values have neither trap. Discord's ``<t:...>`` timestamps show every
    reader their own local time anyway; ``.astimezone(schedule.zone)`` gives the guild's.
    """
    naive = datetime.combine(day, schedule.local_time)
    return naive.replace(tzinfo=schedule.zone, fold=0).astimezone(UTC)


def next_run(now: datetime, schedule: DigestSchedule) -> datetime:
    """The first scheduled instant strictly after ``now`` (today's if ahead, else tomorrow's),
    as an aware UTC datetime."""
    now_utc = _as_utc(now)
    today = now_utc.astimezone(schedule.zone).date()
    # Checking yesterday..day-after-tomorrow, not just today/tomorrow, keeps this right even in
    # zones that skipped a whole calendar day (Pacific/Apia, 2011-12-30), where two local dates
    # can share one instant; the earliest future slot wins.
    candidates = (
        scheduled_at(today + timedelta(days=offset), schedule) for offset in (-1, 0, 1, 2)
    )
    return min(c for c in candidates if c > now_utc)


def due_day(
    now: datetime,
    schedule: DigestSchedule,
    *,
    last_day: date | None,
    grace: timedelta,
) -> date | None:
    """The local day whose digest should be posted at ``now``, or ``None``.

    A slot is due from its scheduled instant (inclusive) until ``grace`` after it (inclusive),
    and only if no digest for that day or a later one was posted (``last_day``). Today's slot is
    preferred; yesterday's is considered too because a grace window can cross local midnight
    (23:30 + 6 h is still due at 01:00 the next day). Nothing older is ever returned, so a bot
    that was down for days posts one digest, not a backlog.
    """
    if grace < timedelta(0):
        raise ValueError("grace must not be negative")
    now_utc = _as_utc(now)
    today = now_utc.astimezone(schedule.zone).date()
    for day in (today, today - timedelta(days=1)):
        if last_day is not None and last_day >= day:
            # Already posted this day (or a later one): an older slot must not post either.
            return None
        elapsed = now_utc - scheduled_at(day, schedule)
        if timedelta(0) <= elapsed <= grace:
            return day
    return None


def select_digest(
    candidates: Iterable[Article],
    limit: int,
    collapse: Callable[[list[str]], list[str]] | None = None,
) -> tuple[list[Article], int]:
    """The top ``limit`` stories and how many were left out.

    ``collapse`` takes the ranked URLs and keeps one per story (several outlets telling one
    event; see :meth:`bot.search.SearchIndex.collapse_urls`): the others are neither listed nor
    counted, since they are not more news.

    Order: quality descending (missing or NaN quality last), then newest first, then URL, so
    the same candidates always give the same digest. Duplicate URLs count once: the store may
    hand the same article over twice when it was reloaded, and a repeat is not "one more story".
    """
    if limit < 0:
        raise ValueError("limit must not be negative")
    unique: dict[str, Article] = {}
    for article in candidates:
        unique.setdefault(article.url, article)
    ranked = sorted(unique.values(), key=_digest_rank)
    if collapse is not None:
        kept = set(collapse([a.url for a in ranked]))
        ranked = [a for a in ranked if a.url in kept]
    chosen = ranked[:limit]
    return chosen, len(ranked) - len(chosen)


# A guild's first digest covers this much; later ones cover what came since the previous one.
FIRST_DIGEST_WINDOW = timedelta(hours=24)


def digest_since(previous_claimed_at: datetime | None, now: datetime) -> datetime:
    """Stories first seen after this moment are "new" for the digest being made at ``now``."""
    return previous_claimed_at if previous_claimed_at is not None else now - FIRST_DIGEST_WINDOW


def digest_nonce(guild_id: int, day: date) -> str:
    """A stable message nonce for one guild's digest of one local day (<= 25 characters).

    discord.py sends ``enforce_nonce``, so a retried post with the same nonce within Discord's
    de-duplication window (a few minutes) returns the original message instead of a second one.
    A guild id is up to 20 digits, too long to embed verbatim next to the date, so it is hashed;
    the date stays readable for whoever inspects the message payload.
    """
    digest = hashlib.sha256(f"{guild_id}:{day.isoformat()}".encode()).hexdigest()
    nonce = f"dg{day:%Y%m%d}{digest[:14]}"
    assert len(nonce) <= NONCE_MAX_LENGTH
    return nonce


# --- helpers --------------------------------------------------------------------------------


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        # A naive "now" is ambiguous (server local? UTC?); refuse it rather than guess.
        raise ValueError("an aware datetime is required, e.g. datetime.now(UTC)")
    return moment.astimezone(UTC)


def _digest_rank(article: Article) -> tuple[bool, float, float, str]:
    quality = article.quality
    missing = quality is None or math.isnan(quality)
    score = 0.0 if quality is None or missing else -quality
    return (missing, score, -article.published.timestamp(), article.url)


@lru_cache(maxsize=1)
def _zone_names_by_folded_case() -> dict[str, str]:
    # Only built when a name was wrong: scanning the zone database is slow-ish, and cached.
    return {name.casefold(): name for name in available_timezones()}


def _clip(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"

"""The digest service: every decision about a guild's daily digest, with no Discord in it.

The cog (``bot/cogs/digest.py``) and ``newsbot digest`` both call this; the cog supplies a
:class:`DigestPoster` that knows how to put a digest in a channel. Each call returns an outcome
(:class:`Posted`, :class:`NothingNew`, :class:`Refused`, :class:`RetryLater`,
:class:`AlreadyDone`, :class:`NotDue`) for the caller to report as it likes.

Exactly once, whatever restarts happen and however many processes run, rests on three things:

1. the digest log in the database: a day is *claimed* in one atomic statement before posting
   and marked *posted* after, so two ticks or two processes never both post; a claim whose
   holder died (its heartbeat went silent) is taken over, and a bot that was down posts on
   start while it is still within the grace window (:func:`bot.digest.due_day`);
2. a nonce derived from (guild, local date): Discord answers a repeated create with the first
   message, so a post retried after a lost answer does not appear twice;
3. a day claimed before (its poster died, or a post failed) first looks in the channel's
   recent history for that day's digest before posting again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol

from .articles import Article
from .config import DigestConfig
from .digest import (
    DigestSchedule,
    digest_nonce,
    digest_since,
    due_day,
    parse_local_time,
    parse_timezone,
    select_digest,
)
from .store import DigestRecord, Store

log = logging.getLogger(__name__)

#: Automatic tries for one day before the scheduler gives up on it (a moderator can still
#: post it with /digest now, or by choosing another channel).
MAX_ATTEMPTS = 3


# --- what the service works with ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EffectiveSettings:
    """A guild's digest settings: its own where it set them, the config's elsewhere."""

    enabled: bool
    channel_id: int | None
    time: str
    timezone: str

    @property
    def schedule(self) -> DigestSchedule:
        return DigestSchedule(parse_local_time(self.time), self.timezone)

    def local_day(self, now: datetime) -> date:
        return now.astimezone(parse_timezone(self.timezone)).date()


@dataclass(frozen=True, slots=True)
class DigestContent:
    """One digest: the stories chosen, how many more there were, its local day and zone."""

    stories: list[Article]
    rest: int
    day: date
    timezone: str
    since: datetime  # it covers the stories first seen after this moment


class PostRefused(Exception):
    """The channel will not take the digest (no permission, gone, not a text channel)."""


class PostFailed(Exception):
    """The post failed for a reason that may pass (Discord 5xx, the network)."""


class DigestPoster(Protocol):
    """What the service needs from Discord; ``str()`` of the exceptions is shown to moderators."""

    async def post(self, guild_id: int, channel_id: int, digest: DigestContent, nonce: str) -> int:
        """Post ``digest``; the message id. Raises PostRefused or PostFailed."""

    async def find_earlier(
        self, guild_id: int, channel_id: int, digest: DigestContent
    ) -> int | None:
        """The id of this day's digest if it is already in the channel, else None."""


# --- outcomes -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Posted:
    day: date
    channel_id: int
    message_id: int
    earlier: bool = False  # found in the channel (posted before a crash), not posted now


@dataclass(frozen=True, slots=True)
class NothingNew:
    day: date


@dataclass(frozen=True, slots=True)
class Refused:
    day: date
    reason: str


@dataclass(frozen=True, slots=True)
class RetryLater:
    day: date
    reason: str


@dataclass(frozen=True, slots=True)
class AlreadyDone:
    """Posted already, being posted by someone else right now, or given up on."""

    day: date
    record: DigestRecord | None


@dataclass(frozen=True, slots=True)
class NotDue:
    reason: str


Outcome = Posted | NothingNew | Refused | RetryLater | AlreadyDone | NotDue


# --- the service --------------------------------------------------------------------------------


class DigestService:
    def __init__(
        self,
        store: Store,
        config: DigestConfig,
        clock: Callable[[], datetime],
        collapse: Callable[[list[str]], list[str]] | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        # One story per event across outlets (the search index's, when it has vectors).
        self.collapse = collapse

    async def settings(self, guild_id: int) -> EffectiveSettings:
        defaults = self.config
        own = await self.store.get_guild_settings(guild_id)
        if own is None:
            return EffectiveSettings(
                enabled=defaults.enabled,
                channel_id=defaults.channels.get(guild_id),
                time=defaults.time,
                timezone=defaults.timezone,
            )
        return EffectiveSettings(
            enabled=own.digest_enabled,
            channel_id=own.digest_channel_id or defaults.channels.get(guild_id),
            time=own.digest_time or defaults.time,
            timezone=own.digest_timezone or defaults.timezone,
        )

    # --- settings changes ----------------------------------------------------------------------

    async def set_channel(self, guild_id: int, channel_id: int) -> EffectiveSettings:
        """Post in ``channel_id`` from now on (and turn the digest on).

        Today's digest, if it failed (the old channel refused it), gets a fresh try there: the
        old channel's refusal says nothing of the new one.
        """
        now = self.clock()
        await self.store.set_guild_settings(
            guild_id, now=now, digest_channel_id=channel_id, digest_enabled=True
        )
        settings = await self.settings(guild_id)
        await self.store.grant_digest_attempt(guild_id, settings.local_day(now))
        return settings

    async def set_time(self, guild_id: int, time: str, timezone: str | None) -> EffectiveSettings:
        """Change the local time (and zone); on or off stays as it is. ValueError if invalid."""
        local = parse_local_time(time)
        zone = parse_timezone(timezone).key if timezone else None
        # The row written here must carry the current on/off state, or it would default to off.
        current = await self.settings(guild_id)
        changes: dict[str, object] = {
            "digest_time": f"{local:%H:%M}",
            "digest_enabled": current.enabled,
        }
        if zone:
            changes["digest_timezone"] = zone
        await self.store.set_guild_settings(guild_id, now=self.clock(), **changes)
        return await self.settings(guild_id)

    async def turn_off(self, guild_id: int) -> None:
        await self.store.set_guild_settings(guild_id, now=self.clock(), digest_enabled=False)

    # --- digests -------------------------------------------------------------------------------

    async def preview(
        self, guild_id: int | None, *, since: datetime | None = None
    ) -> DigestContent:
        """What the guild's next digest would hold now (``guild_id`` None: the defaults)."""
        now = self.clock()
        if guild_id is None:
            zone = self.config.timezone
            last = None
        else:
            zone = (await self.settings(guild_id)).timezone
            last = await self.store.last_digest(guild_id, posted_only=True)
        day = now.astimezone(parse_timezone(zone)).date()
        return await self._content(since or _since(last, now), day, zone)

    async def run_due(self, guild_id: int, poster: DigestPoster) -> Outcome:
        """The scheduler's tick for one guild: post its digest if one is due and unclaimed."""
        now = self.clock()
        settings = await self.settings(guild_id)
        if not settings.enabled or settings.channel_id is None:
            return NotDue("the digest is off or has no channel")
        last_posted = await self.store.last_digest(guild_id, posted_only=True)
        day = due_day(
            now,
            settings.schedule,
            last_day=date.fromisoformat(last_posted.local_date) if last_posted else None,
            grace=timedelta(hours=self.config.grace_hours),
        )
        if day is None:
            return NotDue("not yet time")
        if not await self.store.claim_digest(guild_id, day, now, max_attempts=MAX_ATTEMPTS):
            return AlreadyDone(day, await self.store.last_digest(guild_id))
        return await self._post_claimed(guild_id, settings, day, last_posted, poster)

    async def post_now(self, guild_id: int, poster: DigestPoster) -> Outcome:
        """A moderator's /digest now: post today's digest at once (it counts as today's).

        A day whose tries were used up gets one more: a person asked, after fixing things.
        """
        now = self.clock()
        settings = await self.settings(guild_id)
        if settings.channel_id is None:
            return NotDue("no digest channel yet")
        day = settings.local_day(now)
        last_posted = await self.store.last_digest(guild_id, posted_only=True)
        await self.store.grant_digest_attempt(guild_id, day)
        if not await self.store.claim_digest(guild_id, day, now, max_attempts=MAX_ATTEMPTS):
            return AlreadyDone(day, await self.store.last_digest(guild_id))
        return await self._post_claimed(guild_id, settings, day, last_posted, poster)

    async def _post_claimed(
        self,
        guild_id: int,
        settings: EffectiveSettings,
        day: date,
        last_posted: DigestRecord | None,
        poster: DigestPoster,
    ) -> Outcome:
        """Post the claimed day's digest and record the outcome."""
        assert settings.channel_id is not None
        now = self.clock()
        content = await self._content(_since(last_posted, now), day, settings.timezone)
        if not content.stories and not self.config.post_when_empty:
            if not await self.store.mark_digest_posted(guild_id, day, 0, now):  # day done
                return AlreadyDone(day, await self.store.last_digest(guild_id))
            log.info("digest %s/%s: nothing new, not posted", guild_id, day)
            return NothingNew(day)
        # A day tried before (by a process that died, or a post that failed, perhaps after
        # Discord created the message) may already be in the channel; a first try cannot be.
        claim = await self.store.last_digest(guild_id)
        retrying = (
            claim is not None
            and claim.local_date == day.isoformat()
            and (claim.attempts > 1 or claim.failed_at is not None)
        )
        channel = settings.channel_id
        try:
            earlier = await poster.find_earlier(guild_id, channel, content) if retrying else None
            message_id = earlier or await poster.post(
                guild_id, channel, content, digest_nonce(guild_id, day)
            )
        except PostRefused as exc:
            # Not retried by the scheduler: a new channel or /digest now tries again.
            log.error("digest %s/%s: channel %s refused: %s", guild_id, day, channel, exc)
            await self.store.mark_digest_failed(guild_id, day, str(exc), now, give_up=True)
            return Refused(day, str(exc))
        except PostFailed as exc:
            log.warning("digest %s/%s failed, will retry: %s", guild_id, day, exc)
            await self.store.mark_digest_failed(guild_id, day, str(exc), now)
            return RetryLater(day, str(exc))
        if not await self.store.mark_digest_posted(guild_id, day, message_id, now):
            # Another process took the claim over meanwhile (this one looked dead); it looks
            # in the channel before posting, so the day still appears once.
            return AlreadyDone(day, await self.store.last_digest(guild_id))
        log.info("digest %s/%s posted as message %s", guild_id, day, message_id)
        return Posted(day, channel, message_id, earlier=earlier is not None)

    async def _content(self, since: datetime, day: date, zone: str) -> DigestContent:
        candidates = await self.store.articles_first_seen_after(since)
        stories, rest = select_digest(candidates, self.config.max_stories, self.collapse)
        return DigestContent(stories, rest, day, zone, since)


def _since(last_posted: DigestRecord | None, now: datetime) -> datetime:
    return digest_since(last_posted.claimed_at if last_posted else None, now)

"""The daily digest: ``/digest`` settings and the loop that posts it once per guild and day.

Exactly-once, whatever restarts happen, rests on three things:

1. the digest log in SQLite: a day is *claimed* in one atomic statement before posting and
   marked *posted* after, so two ticks (or two processes) never both post, and a bot that was
   down posts on start if it is still within the grace window (``digest.due_day``);
2. a nonce derived from (guild, local date): Discord answers a repeated create with the first
   message, so a post retried after a lost answer does not appear twice;
3. after a crash between posting and recording, the channel's recent history is checked for
   that day's digest before posting again.
"""

from __future__ import annotations

import logging
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands, tasks

from ..checks import moderator_only
from ..client import UserError
from ..digest import (
    DigestSchedule,
    digest_nonce,
    digest_since,
    due_day,
    next_run,
    parse_local_time,
    parse_timezone,
    select_digest,
)
from ..embeds import BRAND_COLOUR, digest_embed
from ..metrics import record_digest

if TYPE_CHECKING:
    from ..client import NewsBot
    from ..store import DigestRecord

log = logging.getLogger(__name__)

# How far back a re-claimed day looks for a digest that was posted but never recorded.
HISTORY_LOOKBACK = 25


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


@app_commands.guild_only()
class DigestCog(commands.GroupCog, group_name="digest", group_description="The daily news digest"):
    def __init__(self, bot: NewsBot) -> None:
        self.bot = bot
        # (guild, day) pairs whose channel refused us for good this run: logged once, not
        # retried every tick (a retry storm helps nobody; /digest status shows the error).
        self._refused: set[tuple[int, date]] = set()
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        # guild_only() only tells Discord where to offer these commands; an interaction from a
        # DM can still arrive (a stale client, an old sync), and every command here needs a
        # guild: refuse it politely instead of failing an assertion with a traceback.
        if interaction.guild_id is None:
            raise app_commands.NoPrivateMessage()
        return True

    async def cog_load(self) -> None:
        self.scheduler.change_interval(seconds=self.bot.config.digest.check_seconds)
        self.scheduler.start()

    async def cog_unload(self) -> None:
        self.scheduler.cancel()

    # --- the scheduler ------------------------------------------------------------------------

    @tasks.loop(seconds=30)
    async def scheduler(self) -> None:
        now = self.bot.clock()
        for guild in list(self.bot.guilds):
            try:
                await self.run_due_digest(guild.id, now)
            except Exception:
                # One guild's trouble must not stop the others, nor the loop.
                log.exception("digest for guild %s failed", guild.id)

    @scheduler.before_loop
    async def _wait_until_ready(self) -> None:
        await self.bot.wait_until_ready()

    async def run_due_digest(self, guild_id: int, now: datetime) -> None:
        settings = await self.settings_for(guild_id)
        if not settings.enabled or settings.channel_id is None:
            return
        store = self.bot.library.store
        last_posted = await store.last_digest(guild_id, posted_only=True)
        day = due_day(
            now,
            settings.schedule,
            last_day=date.fromisoformat(last_posted.local_date) if last_posted else None,
            grace=timedelta(hours=self.bot.config.digest.grace_hours),
        )
        if day is None or (guild_id, day) in self._refused:
            return
        if not await store.claim_digest(guild_id, day, now):
            return
        await self._post_claimed(guild_id, settings, day, now, since=_since(last_posted, now))

    async def _post_claimed(
        self,
        guild_id: int,
        settings: EffectiveSettings,
        day: date,
        now: datetime,
        *,
        since: datetime,
    ) -> discord.Message | None:
        """Post the claimed day's digest and record the outcome; never raises Discord errors."""
        store = self.bot.library.store
        assert settings.channel_id is not None
        embed = await self.build_digest(since, day, settings.timezone)
        if embed is None:
            await store.mark_digest_posted(guild_id, day, 0, now)  # nothing new: day done
            log.info("digest %s/%s: nothing new, not posted", guild_id, day)
            return None
        # A day claimed before (by a process that crashed, or a post that failed) may already
        # be in the channel; a first attempt cannot be.
        claim = await store.last_digest(guild_id)
        retrying = claim is not None and claim.local_date == day.isoformat() and claim.attempts > 1
        try:
            channel = await self._channel(guild_id, settings.channel_id)
            earlier = await self._already_posted(channel, embed) if retrying else None
            message = earlier or await channel.send(embed=embed, nonce=digest_nonce(guild_id, day))
        except (discord.Forbidden, discord.NotFound, ChannelUnusable) as exc:
            self._refused.add((guild_id, day))
            await store.mark_digest_failed(guild_id, day, _describe(exc), now)
            record_digest(self.bot, "refused")
            log.error(
                "digest %s/%s: channel %s refused: %s", guild_id, day, settings.channel_id, exc
            )
            return None
        except (discord.HTTPException, OSError) as exc:
            # discord.py already retried 5xx answers with backoff; the next tick tries again.
            await store.mark_digest_failed(guild_id, day, _describe(exc), now)
            record_digest(self.bot, "failed")
            log.warning("digest %s/%s failed, will retry: %s", guild_id, day, exc)
            return None
        await store.mark_digest_posted(guild_id, day, message.id, now)
        record_digest(self.bot, "posted")
        log.info("digest %s/%s posted as message %s", guild_id, day, message.id)
        return message

    async def build_digest(self, since: datetime, day: date, tz_name: str) -> discord.Embed | None:
        candidates = await self.bot.library.store.articles_first_seen_after(since)
        chosen, rest = select_digest(candidates, self.bot.config.digest.max_stories)
        if not chosen and not self.bot.config.digest.post_when_empty:
            return None
        return digest_embed(chosen, rest, day, tz_name=tz_name)

    async def settings_for(self, guild_id: int) -> EffectiveSettings:
        defaults = self.bot.config.digest
        own = await self.bot.library.store.get_guild_settings(guild_id)
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

    async def _channel(self, guild_id: int, channel_id: int) -> discord.abc.Messageable:
        channel = self.bot.get_channel(channel_id) or await self.bot.fetch_channel(channel_id)
        guild = getattr(channel, "guild", None)
        if guild is None or guild.id != guild_id:
            raise ChannelUnusable("the digest channel is not in this server")
        if not isinstance(channel, discord.abc.Messageable):
            raise ChannelUnusable("the digest channel cannot hold messages")
        return channel

    def _forget_refusals(self, guild_id: int) -> None:
        """New settings deserve a new try today: the old channel's refusal says nothing of them."""
        self._refused = {key for key in self._refused if key[0] != guild_id}

    async def _already_posted(
        self, channel: discord.abc.Messageable, embed: discord.Embed
    ) -> discord.Message | None:
        """A digest with this title already in the channel (posted, then we crashed)."""
        me = self.bot.user
        try:
            async for message in channel.history(limit=HISTORY_LOOKBACK):
                if message.author == me and any(e.title == embed.title for e in message.embeds):
                    return message
        except discord.Forbidden:
            # Without Read Message History we cannot look; the nonce still stops a duplicate
            # within Discord's few minutes, and not posting at all would be worse.
            log.warning("cannot read the digest channel's history to look for an earlier post")
        return None

    # --- commands -----------------------------------------------------------------------------

    @app_commands.command(name="channel", description="Post the daily digest in this channel")
    @app_commands.describe(channel="Where the digest goes")
    @moderator_only()
    async def set_channel(
        self, interaction: discord.Interaction, channel: discord.TextChannel
    ) -> None:
        assert interaction.guild_id is not None
        await self.bot.library.store.set_guild_settings(
            interaction.guild_id,
            now=self.bot.clock(),
            digest_channel_id=channel.id,
            digest_enabled=True,
        )
        self._forget_refusals(interaction.guild_id)
        settings = await self.settings_for(interaction.guild_id)
        await interaction.response.send_message(
            f"The daily digest will be posted in {channel.mention} at {settings.time} "
            f"({settings.timezone}).",
            ephemeral=True,
        )

    @app_commands.command(name="time", description="Set the digest's local time and time zone")
    @app_commands.describe(time="HH:MM, 24-hour", timezone="IANA time zone, e.g. Europe/Paris")
    @moderator_only()
    async def set_time(
        self, interaction: discord.Interaction, time: str, timezone: str | None = None
    ) -> None:
        assert interaction.guild_id is not None
        try:
            local = parse_local_time(time)
            zone = parse_timezone(timezone).key if timezone else None
        except ValueError as exc:
            raise UserError(str(exc)) from None
        # Changing the time leaves the digest on or off as it is (only /digest channel turns it
        # on); the row written here must carry that state, or it would default to off.
        current = await self.settings_for(interaction.guild_id)
        changes: dict[str, object] = {
            "digest_time": f"{local:%H:%M}",
            "digest_enabled": current.enabled,
        }
        if zone:
            changes["digest_timezone"] = zone
        await self.bot.library.store.set_guild_settings(
            interaction.guild_id, now=self.bot.clock(), **changes
        )
        self._forget_refusals(interaction.guild_id)
        settings = await self.settings_for(interaction.guild_id)
        text = f"The daily digest is now at {settings.time} ({settings.timezone})"
        if settings.enabled and settings.channel_id:
            when = next_run(self.bot.clock(), settings.schedule)
            text += f"; next one {discord.utils.format_dt(when, 'F')}."
        else:
            text += ". It is off until a channel is set with `/digest channel`."
        await interaction.response.send_message(text, ephemeral=True)

    @set_time.autocomplete("timezone")
    async def timezone_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        wanted = current.casefold().replace(" ", "_")
        names = sorted(n for n in _timezones() if wanted in n.casefold())
        return [app_commands.Choice(name=n, value=n) for n in names[:25]]

    @app_commands.command(name="off", description="Stop posting the daily digest here")
    @moderator_only()
    async def turn_off(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        await self.bot.library.store.set_guild_settings(
            interaction.guild_id, now=self.bot.clock(), digest_enabled=False
        )
        await interaction.response.send_message(
            "The daily digest is off. `/digest channel` turns it back on.", ephemeral=True
        )

    @app_commands.command(name="preview", description="See what the next digest would hold")
    async def preview(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        now = self.bot.clock()
        settings = await self.settings_for(interaction.guild_id)
        last = await self.bot.library.store.last_digest(interaction.guild_id, posted_only=True)
        day = settings.local_day(now)
        embed = await self.build_digest(_since(last, now), day, settings.timezone)
        if embed is None:
            await interaction.response.send_message(
                "Nothing new since the last digest.", ephemeral=True
            )
            return
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="now", description="Post the digest right away")
    @moderator_only()
    async def post_now(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        guild_id = interaction.guild_id
        settings = await self.settings_for(guild_id)
        if settings.channel_id is None:
            raise UserError("No digest channel yet: set one with `/digest channel`.")
        await interaction.response.defer(ephemeral=True, thinking=True)
        now = self.bot.clock()
        store = self.bot.library.store
        last = await store.last_digest(guild_id, posted_only=True)
        day = settings.local_day(now)
        # Counted as today's digest when today's is still to come, so it is not posted twice.
        if await store.claim_digest(guild_id, day, now):
            self._refused.discard((guild_id, day))
            message = await self._post_claimed(
                guild_id, settings, day, now, since=_since(last, now)
            )
            record = await store.last_digest(guild_id)
            if message is not None:
                text = f"Posted: {message.jump_url}"
            elif record is not None and record.status == "failed":
                text = f"Could not post the digest: {record.error}"
            else:
                text = "Nothing new since the last digest: nothing was posted."
        else:
            record = await store.last_digest(guild_id)
            if (
                record is not None
                and record.local_date == day.isoformat()
                and (record.status == "failed")
            ):
                text = (
                    f"Could not post today's digest after {record.attempts} attempts: "
                    f"{record.error}. Fix the channel, then try again tomorrow or pick another "
                    "channel with `/digest channel`."
                )
            else:
                text = "Today's digest has already been posted (or is being posted right now)."
        await interaction.followup.send(text, ephemeral=True)

    @app_commands.command(name="status", description="Show the digest settings and the last one")
    async def status(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        settings = await self.settings_for(interaction.guild_id)
        last = await self.bot.library.store.last_digest(interaction.guild_id)
        embed = discord.Embed(title="Daily digest", colour=BRAND_COLOUR)
        embed.add_field(name="State", value="on" if settings.enabled else "off")
        embed.add_field(
            name="Channel",
            value=f"<#{settings.channel_id}>" if settings.channel_id else "not set",
        )
        embed.add_field(name="Time", value=f"{settings.time} ({settings.timezone})")
        if settings.enabled and settings.channel_id:
            when = next_run(self.bot.clock(), settings.schedule)
            embed.add_field(name="Next", value=discord.utils.format_dt(when, "F"), inline=False)
        if last is None:
            embed.add_field(name="Last digest", value="none yet", inline=False)
        else:
            line = f"{last.local_date}: {last.status}"
            if last.status == "posted" and not last.message_id:
                line += " (nothing new, nothing posted)"
            if last.error:
                line += f" — {last.error}"
            embed.add_field(name="Last digest", value=line[:1024], inline=False)
        await interaction.response.send_message(embed=embed, ephemeral=True)


def _since(last_posted: DigestRecord | None, now: datetime) -> datetime:
    return digest_since(last_posted.claimed_at if last_posted else None, now)


def _describe(exc: Exception) -> str:
    if isinstance(exc, discord.Forbidden):
        return "the bot may not post in the digest channel (Missing Permissions)"
    if isinstance(exc, discord.NotFound):
        return f"the digest channel does not exist any more ({exc.text or 'Unknown Channel'})"
    if isinstance(exc, ChannelUnusable):
        return str(exc)
    if isinstance(exc, discord.HTTPException):
        return f"Discord answered {exc.status}: {exc.text or exc}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]


class ChannelUnusable(Exception):
    """The configured digest channel exists but cannot take the digest."""


_TIMEZONES: list[str] = []


def _timezones() -> list[str]:
    if not _TIMEZONES:
        # Only the names /digest time accepts ('localtime' and the like are refused there).
        for name in zoneinfo.available_timezones():
            try:
                parse_timezone(name)
            except ValueError:
                continue
            _TIMEZONES.append(name)
    return _TIMEZONES


async def setup(bot: NewsBot) -> None:
    await bot.add_cog(DigestCog(bot))

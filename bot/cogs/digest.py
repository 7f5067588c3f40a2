"""The daily digest in Discord: ``/digest`` and the loop that posts it.

Every decision (is it due, is it claimed, what does it hold, what went wrong) is the digest
service's (:mod:`bot.digests`); this cog reads interactions, implements the service's poster
with discord.py, and words the outcomes.
"""

from __future__ import annotations

import asyncio
import logging
import zoneinfo
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands, tasks

from ..checks import moderator_only
from ..digest import next_run, parse_timezone
from ..digests import (
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
from ..embeds import BRAND_COLOUR, digest_embed
from ..errors import UserError
from ..metrics import record_digest

if TYPE_CHECKING:
    from ..client import NewsBot

log = logging.getLogger(__name__)

# How far back a re-claimed day looks for a digest that was posted but never recorded.
HISTORY_LOOKBACK = 25
# Guilds whose digest one scheduler tick works on at the same time.
DIGESTS_AT_ONCE = 8


class ChannelUnusable(Exception):
    """The configured digest channel exists but cannot take the digest."""


class DiscordPoster:
    """The digest service's poster, with discord.py: embeds, nonces, channel history."""

    def __init__(self, bot: NewsBot) -> None:
        self.bot = bot

    async def post(self, guild_id: int, channel_id: int, digest: DigestContent, nonce: str) -> int:
        try:
            channel = await self._channel(guild_id, channel_id)
            message = await channel.send(embed=_embed(digest), nonce=nonce)
        except (discord.Forbidden, discord.NotFound, ChannelUnusable) as exc:
            raise PostRefused(_describe(exc)) from exc
        except (discord.HTTPException, OSError) as exc:
            # discord.py already retried 5xx answers with backoff; the next tick tries again.
            raise PostFailed(_describe(exc)) from exc
        return message.id

    async def find_earlier(
        self, guild_id: int, channel_id: int, digest: DigestContent
    ) -> int | None:
        """This day's digest already in the channel (posted, then the poster died)."""
        title = _embed(digest).title
        me = self.bot.user
        try:
            channel = await self._channel(guild_id, channel_id)
            async for message in channel.history(limit=HISTORY_LOOKBACK):
                if message.author == me and any(e.title == title for e in message.embeds):
                    return message.id
        except discord.Forbidden:
            # Without Read Message History we cannot look; the nonce still stops a duplicate
            # within Discord's few minutes, and not posting at all would be worse.
            log.warning("cannot read the digest channel's history to look for an earlier post")
        except (discord.NotFound, ChannelUnusable) as exc:
            raise PostRefused(_describe(exc)) from exc
        except (discord.HTTPException, OSError) as exc:
            raise PostFailed(_describe(exc)) from exc
        return None

    async def _channel(self, guild_id: int, channel_id: int) -> discord.abc.Messageable:
        channel = self.bot.get_channel(channel_id) or await self.bot.fetch_channel(channel_id)
        guild = getattr(channel, "guild", None)
        if guild is None or guild.id != guild_id:
            raise ChannelUnusable("the digest channel is not in this server")
        if not isinstance(channel, discord.abc.Messageable):
            raise ChannelUnusable("the digest channel cannot hold messages")
        return channel


@app_commands.guild_only()
class DigestCog(commands.GroupCog, group_name="digest", group_description="The daily news digest"):
    def __init__(self, bot: NewsBot) -> None:
        self.bot = bot
        self.service = DigestService(
            bot.library.store, bot.config.digest, bot.clock, bot.library.collapse_stories
        )
        self.poster = DiscordPoster(bot)
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
        # Only the guilds of this process's shards: another process schedules the others.
        guild_ids = [g.id for g in self.bot.guilds if self.bot.on_own_shard(g.id)]
        # A few at a time: one channel whose post hangs (Discord slow, a retry after a 5xx)
        # must not hold every other server's digest back, and many servers' posts overlap
        # their round trips instead of queueing behind each other.
        slots = asyncio.Semaphore(DIGESTS_AT_ONCE)

        async def one(guild_id: int) -> None:
            async with slots:
                try:
                    await self.run_due_digest(guild_id)
                except Exception:
                    # One guild's trouble must not stop the others, nor the loop.
                    log.exception("digest for guild %s failed", guild_id)

        await asyncio.gather(*(one(guild_id) for guild_id in guild_ids))

    @scheduler.before_loop
    async def _wait_until_ready(self) -> None:
        await self.bot.wait_until_ready()

    async def run_due_digest(self, guild_id: int) -> Outcome:
        outcome = await self.service.run_due(guild_id, self.poster)
        self._count(outcome)
        return outcome

    def _count(self, outcome: Outcome) -> None:
        """The digests metric: what happened to each post attempt."""
        kind = {Posted: "posted", Refused: "refused", RetryLater: "failed"}.get(type(outcome))
        if kind is not None:
            record_digest(self.bot, kind)

    # --- commands -----------------------------------------------------------------------------

    @app_commands.command(name="channel", description="Post the daily digest in this channel")
    @app_commands.describe(channel="Where the digest goes")
    @moderator_only()
    async def set_channel(
        self, interaction: discord.Interaction, channel: discord.TextChannel
    ) -> None:
        assert interaction.guild_id is not None
        settings = await self.service.set_channel(interaction.guild_id, channel.id)
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
            settings = await self.service.set_time(interaction.guild_id, time, timezone)
        except ValueError as exc:
            raise UserError(str(exc)) from None
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
        await self.service.turn_off(interaction.guild_id)
        await interaction.response.send_message(
            "The daily digest is off. `/digest channel` turns it back on.", ephemeral=True
        )

    @app_commands.command(name="preview", description="See what the next digest would hold")
    async def preview(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        content = await self.service.preview(interaction.guild_id)
        if not content.stories and not self.bot.config.digest.post_when_empty:
            await interaction.response.send_message(
                "Nothing new since the last digest.", ephemeral=True
            )
            return
        await interaction.response.send_message(embed=_embed(content), ephemeral=True)

    @app_commands.command(name="now", description="Post the digest right away")
    @moderator_only()
    async def post_now(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        settings = await self.service.settings(interaction.guild_id)
        if settings.channel_id is None:
            raise UserError("No digest channel yet: set one with `/digest channel`.")
        await interaction.response.defer(ephemeral=True, thinking=True)
        outcome = await self.service.post_now(interaction.guild_id, self.poster)
        self._count(outcome)
        text = _post_now_text(outcome, interaction.guild_id)
        await interaction.followup.send(text, ephemeral=True)

    @app_commands.command(name="status", description="Show the digest settings and the last one")
    async def status(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        settings = await self.service.settings(interaction.guild_id)
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


def _post_now_text(outcome: Outcome, guild_id: int) -> str:
    match outcome:
        case Posted(channel_id=channel_id, message_id=message_id):
            url = f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"
            return f"Posted: {url}"
        case NothingNew():
            return "Nothing new since the last digest: nothing was posted."
        case Refused(reason=reason):
            return (
                f"Could not post the digest: {reason}. Fix the channel's permissions and "
                "run `/digest now` again, or pick another channel with `/digest channel`."
            )
        case RetryLater(reason=reason):
            return f"Could not post the digest: {reason}. It will be tried again shortly."
        case AlreadyDone(record=record) if record is not None and record.status == "posted":
            return "Today's digest has already been posted."
        case AlreadyDone():
            return "Today's digest is being posted right now."
        case NotDue(reason=reason):
            return f"Nothing was posted: {reason}."
    raise AssertionError(f"unexpected outcome {outcome!r}")  # pragma: no cover


def _embed(digest: DigestContent) -> discord.Embed:
    return digest_embed(digest.stories, digest.rest, digest.day, tz_name=digest.timezone)


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

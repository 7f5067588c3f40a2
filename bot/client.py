"""The Discord client: a thin adapter that wires the library into discord.py.

``NewsBot`` owns nothing it did not get: the library (store + index) and the config are opened
by the caller and injected, as in discord.py's ``examples/advanced_startup.py``. ``setup_hook``
loads the cogs, registers the persistent buttons and syncs the commands to the configured
guilds (never in ``on_ready``, which runs again after every reconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from .cluster import IDENTIFY_WINDOW
from .config import Config
from .errors import describe_error, handle_error
from .library import Library
from .metrics import BotMetrics, interaction_started, record_interaction

log = logging.getLogger(__name__)

# Loaded in this order by setup_hook; tests import each and check it has `setup`.
EXTENSIONS = (
    "bot.cogs.news",
    "bot.cogs.digest",
    "bot.cogs.seeds",
    "bot.cogs.sources",
    "bot.cogs.follows",
)


class NewsTree(app_commands.CommandTree):
    """One error handler for every command: the policy of :mod:`bot.errors`."""

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        interaction_started(interaction)  # the start of the reply latency metric
        return True

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError, /
    ) -> None:
        command = interaction.command.qualified_name if interaction.command else "?"
        record_interaction(interaction, "error" if describe_error(error) is None else "user_error")
        await handle_error(interaction, error, what=f"/{command}")


class IdentifyPacer:
    """Discord's login rate: shards whose ``shard_id % max_concurrency`` match share a bucket,
    and a bucket takes one IDENTIFY per window. discord.py sleeps a fixed 5 s before every
    shard but the first, which starts 16 shards in 75 s where a large bot's buckets allow 5 s.
    """

    def __init__(
        self,
        max_concurrency: int = 1,
        *,
        window: float = IDENTIFY_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_concurrency = max(1, max_concurrency)
        self.window = window
        self._clock = clock
        self._next: dict[int, float] = {}  # bucket -> earliest time of its next IDENTIFY

    def delay(self, shard_id: int) -> float:
        """Seconds to wait before ``shard_id`` may IDENTIFY; books that slot."""
        bucket = shard_id % self.max_concurrency
        now = self._clock()
        start = max(now, self._next.get(bucket, now))
        self._next[bucket] = start + self.window
        return start - now


class _NewsBotMixin:
    """What NewsBot adds to commands.Bot / commands.AutoShardedBot."""

    def __init__(
        self,
        library: Library,
        config: Config,
        *,
        clock: Callable[[], datetime] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**_bot_options(options))  # commands.Bot or commands.AutoShardedBot
        # Guilds whose command sync Discord refused at start-up, and why (`newsbot sync`
        # reports them; the bot itself goes on serving the others).
        self.sync_failures: dict[int, str] = {}
        self.library = library
        self.config = config
        # The time source, injectable so tests can move the digest clock.
        self.clock: Callable[[], datetime] = clock or _utcnow
        # Follows the database's corpus (another process's load or reload); see Library.watch.
        self._watcher: asyncio.Task[None] | None = None
        # on_ready runs again after every reconnect; the start-up note is for the first only.
        self._commands_noted = False
        # Prometheus collectors of this bot; served while it runs when metrics.enabled.
        self.metrics = BotMetrics(self)

    def on_own_shard(self, guild_id: int) -> bool:
        """Whether ``guild_id``'s events come to this process (Discord's shard formula)."""
        bot: Any = self
        count = bot.shard_count
        if not count:
            return True
        ids = bot.shard_ids
        return ids is None or (guild_id >> 22) % count in ids

    async def setup_hook(self) -> None:
        bot: Any = self
        # First: /healthz answers "not ready" (503) while the bot connects.
        await self.metrics.start(self.config.metrics)
        self._watcher = asyncio.create_task(self.library.watch(), name="newsbot-corpus-watch")
        for extension in EXTENSIONS:
            await bot.load_extension(extension)
        for guild_id in self.config.discord.guild_ids:
            guild = discord.Object(id=guild_id)
            bot.tree.copy_global_to(guild=guild)
            try:
                synced = await bot.tree.sync(guild=guild)
            except discord.HTTPException as exc:
                # A guild the bot was removed from must not stop it serving the others.
                log.error("could not sync commands to guild %s: %s", guild_id, exc)
                self.sync_failures[guild_id] = f"{exc.status} {exc.text}".strip()
            else:
                log.info("synced %d commands to guild %s", len(synced), guild_id)

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        await self.metrics.stop()
        await super().close()  # type: ignore[misc]

    async def on_app_command_completion(
        self, interaction: discord.Interaction, command: app_commands.Command[Any, ..., Any]
    ) -> None:
        record_interaction(interaction, "ok")

    async def on_ready(self) -> None:
        bot: Any = self
        log.info(
            "connected as %s to %d guilds; serving %d articles",
            bot.user,
            len(bot.guilds),
            len(self.library.index),
        )
        if not self._commands_noted and not self.config.discord.guild_ids:
            self._commands_noted = True
            await self._note_unsynced_commands()

    async def _note_unsynced_commands(self) -> None:
        """Say at start where the commands are when no guild is configured (the default).

        The bot does not sync globally by itself: Discord takes up to an hour to show global
        commands and rate-limits syncs, so that is `newsbot sync --global`, run once. Without
        this note a first start would show no command anywhere and log nothing about it.
        (Here, not in setup_hook: `newsbot sync` runs setup_hook too, and never gets ready.)
        """
        bot: Any = self
        try:
            published = await bot.tree.fetch_commands()
        except discord.HTTPException as exc:
            published = None
            log.warning("could not list the globally published commands: %s", exc)
        if published:
            log.info(
                "discord.guild_ids is empty: serving the %d commands published globally "
                "(`newsbot sync --global` updates them)",
                len(published),
            )
            return
        log.warning(
            "no slash commands synced: discord.guild_ids is empty%s, so /news shows nowhere. "
            "List your server ids under discord.guild_ids in the config (commands appear there "
            "at once, on the next start), or run `newsbot sync --global` once (they appear in "
            "every server within an hour)",
            "" if published is None else " and none are published globally",
        )


def _intents() -> discord.Intents:
    # Guilds only: slash commands need no message content and no member list.
    intents = discord.Intents.none()
    intents.guilds = True
    return intents


class NewsBot(_NewsBotMixin, commands.Bot):
    pass


class ShardedNewsBot(_NewsBotMixin, commands.AutoShardedBot):
    def __init__(self, library: Library, config: Config, **options: Any) -> None:
        options.setdefault("shard_count", config.discord.shard_count)
        if config.discord.shard_ids:
            options.setdefault("shard_ids", list(config.discord.shard_ids))
        super().__init__(library, config, **options)
        self.identify_pacer = IdentifyPacer()

    async def setup_hook(self) -> None:
        # Discord says how many logins may run at once; read it before any shard connects.
        try:
            _shards, _url, limits = await self.http.get_bot_gateway()
            self.identify_pacer.max_concurrency = max(1, int(limits["max_concurrency"]))
        except (discord.HTTPException, KeyError, TypeError, ValueError) as exc:
            log.warning("could not read Discord's login concurrency, assuming 1: %s", exc)
        await super().setup_hook()

    async def launch_shard(self, gateway: Any, shard_id: int, *, initial: bool = False) -> None:
        # discord.py retries a failed shard launch forever, closed client or not: a bot
        # stopped while a shard waits for its login slot would never finish stopping.
        if self.is_closed():
            return
        await super().launch_shard(gateway, shard_id, initial=initial)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        delay = self.identify_pacer.delay(shard_id or 0)
        if delay > 0:
            log.debug("shard %s waits %.1f s for its login slot", shard_id, delay)
            await asyncio.sleep(delay)


def make_bot(
    library: Library, config: Config, *, clock: Callable[[], datetime] | None = None, **options: Any
) -> NewsBot | ShardedNewsBot:
    if config.discord.shard_count or config.discord.shard_ids:
        return ShardedNewsBot(library, config, clock=clock, **options)
    return NewsBot(library, config, clock=clock, **options)


def _bot_options(options: dict[str, Any]) -> dict[str, Any]:
    return {
        "command_prefix": commands.when_mentioned,
        "intents": _intents(),
        # Titles may contain @everyone: nothing the bot sends may ping anyone.
        "allowed_mentions": discord.AllowedMentions.none(),
        "tree_cls": NewsTree,
        "help_command": None,
        **options,
    }


def _utcnow() -> datetime:
    return datetime.now(UTC)

"""The Discord client: a thin adapter that wires the library into discord.py.

``NewsBot`` owns nothing it did not get: the library (store + index) and the config are opened
by the caller and injected, as in discord.py's ``examples/advanced_startup.py``. ``setup_hook``
loads the cogs, registers the persistent buttons and syncs the commands to the configured
guilds (never in ``on_ready``, which runs again after every reconnect).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from .config import Config
from .library import Library
from .metrics import BotMetrics, interaction_started, record_interaction

log = logging.getLogger(__name__)

# Loaded in this order by setup_hook; tests import each and check it has `setup`.
EXTENSIONS = ("bot.cogs.news", "bot.cogs.digest", "bot.cogs.seeds")


class UserError(app_commands.AppCommandError):
    """A mistake the user can fix; the message is shown to them (ephemerally) as it is."""


class NewsTree(app_commands.CommandTree):
    """One error handler for every command: users get a sentence, the log gets the traceback."""

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        interaction_started(interaction)  # the start of the reply latency metric
        return True

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError, /
    ) -> None:
        command = interaction.command.qualified_name if interaction.command else "?"
        record_interaction(interaction, "error" if describe_error(error) is None else "user_error")
        if interaction_expired(error):
            # Too late: the token is dead, so an apology would fail the same way. Not a bug in
            # the command either (the answer was just slow), so a warning, not a traceback.
            log.warning("/%s: %s", command, EXPIRED_NOTE)
            return
        message = describe_error(error)
        if message is None:
            log.error("/%s failed", command, exc_info=error)
            message = "Sorry, something went wrong on our side. Please try again in a moment."
        await reply_ephemeral(interaction, message)


# Discord's "Unknown interaction": the interaction's token expired (3 s to answer) or was never
# valid; nothing can be sent on it any more.
UNKNOWN_INTERACTION = 10062
EXPIRED_NOTE = "the interaction expired before the bot answered (Unknown interaction)"


def interaction_expired(error: BaseException) -> bool:
    """True when ``error`` (or the error a command raised) is Discord's Unknown interaction."""
    original = getattr(error, "original", error)  # CommandInvokeError wraps what was raised
    return isinstance(original, discord.NotFound) and original.code == UNKNOWN_INTERACTION


def describe_error(error: Exception) -> str | None:
    """The sentence a user should see for ``error``, or None for an unexpected failure."""
    if isinstance(error, UserError):
        return str(error)
    if isinstance(error, app_commands.CommandNotFound):
        # A command Discord still lists (a stale sync) that this bot no longer has: the user
        # did nothing wrong and neither did the bot, so no traceback in the log either.
        return "That command no longer exists here; Discord may take a moment to update the list."
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down a little: try again in {error.retry_after:.1f} s."
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command works in a server, not in direct messages."
    if isinstance(error, app_commands.MissingPermissions):
        needed = ", ".join(p.replace("_", " ").title() for p in error.missing_permissions)
        return f"You need the {needed} permission to do that."
    if isinstance(error, ModeratorOnly):
        return str(error)
    if isinstance(error, app_commands.CheckFailure):
        return "You are not allowed to use this command here."
    return None


class ModeratorOnly(app_commands.CheckFailure):
    def __init__(self) -> None:
        super().__init__(
            "Only moderators can do that: you need the Manage Server permission"
            " or a moderator role."
        )


async def reply_ephemeral(interaction: discord.Interaction, message: str) -> None:
    """Answer or follow up, whichever is still possible; never raise (the user may be gone)."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(message, ephemeral=True)
        else:
            await interaction.response.send_message(message, ephemeral=True)
    except discord.HTTPException as exc:
        log.warning("could not tell the user about an error: %s", exc)


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
        # on_ready runs again after every reconnect; the start-up note is for the first only.
        self._commands_noted = False
        # Prometheus collectors of this bot; served while it runs when metrics.enabled.
        self.metrics = BotMetrics(self)

    async def setup_hook(self) -> None:
        bot: Any = self
        # First: /healthz answers "not ready" (503) while the bot connects.
        await self.metrics.start(self.config.metrics)
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
        super().__init__(library, config, **options)


def make_bot(
    library: Library, config: Config, *, clock: Callable[[], datetime] | None = None, **options: Any
) -> NewsBot | ShardedNewsBot:
    if config.discord.shard_count:
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

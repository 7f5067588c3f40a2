"""Starting the bot for real: the token, Discord's endpoints, and the order things open in.

The library (store + index) is opened and the seeds loaded before the bot connects, so the bot
never answers from an empty or half-built corpus; everything is closed again with ``async
with`` when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import discord
import yarl

from .cluster import CHILD_SETUP_ERROR, in_cluster
from .config import Config
from .library import Library
from .metrics import MetricsError

log = logging.getLogger(__name__)

TOKEN_VARIABLE = "DISCORD_TOKEN"
# How often a cluster's child checks that its launcher is still there.
ORPHAN_CHECK_SECONDS = 1.0
NO_TOKEN = (
    f"no Discord bot token: set {TOKEN_VARIABLE} in the environment "
    f"or put {TOKEN_VARIABLE}=... in a .env file in the working directory"
)


def read_token(env_file: Path = Path(".env")) -> str | None:
    """The bot token from $DISCORD_TOKEN, else from a ``.env`` file; never from the config."""
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    if token:
        return token
    try:
        lines = env_file.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        key, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and key.strip() == TOKEN_VARIABLE:
            return value.strip().strip("'\"") or None
    return None


def point_discord_at(config: Config) -> None:
    """Send REST calls and the gateway where the config says (a proxy, a local test server).

    discord.py has no option for this: both are class attributes, read when a request is made
    or the socket opened, so they are set once, before the client starts.
    """
    discord.http.Route.BASE = config.discord.api_base.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(config.discord.gateway_url)


def _unreachable(config: Config, exc: BaseException) -> str:
    # One line, no traceback: a firewall or a typo in discord.api_base is a setup problem.
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return f"cannot reach Discord at {config.discord.api_base}: {reason}"


def quiet_voice_warnings() -> None:
    """discord.py warns at start that voice needs PyNaCl and davey; this bot has no voice."""
    discord.VoiceClient.warn_nacl = False
    discord.VoiceClient.warn_dave = False


def setup_error_status() -> int:
    """2 for a setup error; a cluster's child says 78 (EX_CONFIG), so that its launcher stops
    instead of restarting it (a child's 2 is a database or Discord away for a moment)."""
    return CHILD_SETUP_ERROR if in_cluster() else 2


def run_bot(config: Config) -> int:
    token = read_token()
    if token is None:
        print(f"newsbot: error: {NO_TOKEN}", file=sys.stderr)
        return setup_error_status()
    point_discord_at(config)
    quiet_voice_warnings()
    try:
        asyncio.run(serve(config, token))
    except discord.LoginFailure:
        print(f"newsbot: error: Discord refused the token in {TOKEN_VARIABLE}", file=sys.stderr)
        return setup_error_status()
    except (aiohttp.ClientError, OSError) as exc:
        print(f"newsbot: error: {_unreachable(config, exc)}", file=sys.stderr)
        return 2
    except MetricsError as exc:
        print(f"newsbot: error: {exc}", file=sys.stderr)
        return setup_error_status()
    except discord.PrivilegedIntentsRequired:  # pragma: no cover - guilds intent only
        print("newsbot: error: the bot asked for an intent Discord did not grant", file=sys.stderr)
        return setup_error_status()
    return 0


async def serve(config: Config, token: str) -> None:
    from .client import make_bot

    async with Library.open(config, role="bot") as library:
        await library.reload()  # the loader logs the report, rejected files included
        async with make_bot(library, config) as bot:
            # A service manager stops us with SIGTERM: close the gateway session and the store
            # cleanly instead of dying mid-write.
            running = asyncio.create_task(bot.start(token), name="newsbot-bot")
            cut_short = False
            closing: list[asyncio.Future[None]] = []  # referenced, so it is not collected

            def stop() -> None:
                nonlocal cut_short
                if not bot.is_ready() and not running.done():
                    # Still logging in (shards wait for their login slots): discord.py would
                    # go on launching shards after a close, so the start itself is cancelled.
                    cut_short = True
                    running.cancel()
                closing.append(asyncio.ensure_future(bot.close()))

            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError):  # not on Windows
                    loop.add_signal_handler(sig, stop)
            orphan_watch = asyncio.create_task(_stop_when_orphaned(stop)) if in_cluster() else None
            try:
                await running
            except asyncio.CancelledError:
                if not cut_short:
                    raise
                log.info("stopped while connecting")
            finally:
                if orphan_watch is not None:
                    orphan_watch.cancel()
        log.info("stopped")


async def _stop_when_orphaned(stop: Callable[[], None]) -> None:
    """A cluster's child stops when its launcher is gone (killed, out of memory): a launcher
    started again would otherwise run a second session for the same shards."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(ORPHAN_CHECK_SECONDS)
    log.error("the cluster launcher (pid %d) is gone: stopping", parent)
    stop()


def sync_commands(config: Config, *, globally: bool) -> int:
    """Publish the slash commands: to the configured guilds, or everywhere with ``--global``."""
    token = read_token()
    if token is None:
        print(f"newsbot: error: {NO_TOKEN}", file=sys.stderr)
        return 2
    if not globally and not config.discord.guild_ids:
        print(
            "newsbot: error: no guilds to sync to: list them in discord.guild_ids, "
            "or publish everywhere with --global (takes up to an hour to appear)",
            file=sys.stderr,
        )
        return 2
    point_discord_at(config)
    quiet_voice_warnings()
    try:
        count, failures = asyncio.run(_sync(config, token, globally=globally))
    except discord.LoginFailure:
        print(f"newsbot: error: Discord refused the token in {TOKEN_VARIABLE}", file=sys.stderr)
        return 2
    except discord.HTTPException as exc:
        print(f"newsbot: error: Discord refused the sync: {exc.status} {exc.text}", file=sys.stderr)
        return 2
    except (aiohttp.ClientError, OSError) as exc:
        print(f"newsbot: error: {_unreachable(config, exc)}", file=sys.stderr)
        return 2
    for guild_id, reason in failures.items():
        print(f"newsbot: error: guild {guild_id} refused the sync: {reason}", file=sys.stderr)
    if globally:
        print(f"synced {count} commands globally (Discord may take up to an hour to show them)")
        if config.discord.guild_ids:
            print(
                "removed the per-guild copies from discord.guild_ids, which would show twice; "
                "empty that list, or `newsbot run` adds them back"
            )
    else:
        synced = len(config.discord.guild_ids) - len(failures)
        print(f"synced {count} commands to {synced} of {len(config.discord.guild_ids)} guild(s)")
    return 2 if failures else 0


async def _sync(config: Config, token: str, *, globally: bool) -> tuple[int, dict[int, str]]:
    """(commands published, {guild id: why it refused}) after syncing like the bot does."""
    from .client import make_bot

    # A one-shot next to a running bot: its metrics port would clash with the bot's.
    config = dataclasses.replace(config, metrics=dataclasses.replace(config.metrics, enabled=False))
    async with Library.open(config) as library:
        bot = make_bot(library, config)
        async with bot:
            # login() runs setup_hook, which syncs the configured guilds; no gateway needed.
            await bot.login(token)
            if not globally:
                return len(bot.tree.get_commands()), dict(bot.sync_failures)
            count = len(await bot.tree.sync())
            # setup_hook copied the commands into each configured guild; beside the global ones
            # they would show twice there. Global commands now cover those guilds too.
            for guild_id in config.discord.guild_ids:
                guild = discord.Object(id=guild_id)
                bot.tree.clear_commands(guild=guild)
                try:
                    await bot.tree.sync(guild=guild)
                except discord.HTTPException as exc:
                    bot.sync_failures[guild_id] = f"{exc.status} {exc.text}".strip()
            return count, dict(bot.sync_failures)

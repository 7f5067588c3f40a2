"""Live sources in a running bot: the poll schedule, the folder watches, ``/sources``.

The polling itself is :class:`bot.sources.SourcePoller`'s; this cog starts it with the bot,
watches the folder sources (:func:`bot.watch.watch_folder`), and gives moderators
``/sources status`` and ``/sources poll``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from ..checks import moderator_only
from ..embeds import BRAND_COLOUR, sources_embed, truncate
from ..errors import UserError
from ..sources import PollResult, SourcePoller, current_state, next_delay
from ..store import StoreError
from ..watch import watch_folder

if TYPE_CHECKING:
    from ..client import NewsBot

log = logging.getLogger(__name__)


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class SourcesCog(
    commands.GroupCog, group_name="sources", group_description="The live news sources"
):
    def __init__(self, bot: NewsBot) -> None:
        self.bot = bot
        self.poller = SourcePoller(bot.library, bot.config)
        self._tasks: list[asyncio.Task[object]] = []
        super().__init__()

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        # Polling starts with the first connection, not in setup_hook: `newsbot sync` logs in
        # (running setup_hook) only to publish the commands, and must not poll anything.
        if not self._tasks:
            await self._start_sources()

    async def _start_sources(self) -> None:
        poller = self.poller
        seeds = Path(self.bot.config.seeds_dir).absolute()
        for source in poller.sources.values():
            if source.kind != "folder":
                continue
            if Path(source.location).absolute() == seeds:
                # `newsbot run` loaded it just before: that load is its first poll.
                await self._loaded_at_start(source.name)
            else:
                self._start(poller.poll(source.name, force=True), f"load-{source.name}")
            if self.bot.config.watch_folders:
                self._start(
                    watch_folder(
                        Path(source.location), functools.partial(poller.folder_changed, source.name)
                    ),
                    f"watch-{source.name}",
                )
        self._start(poller.run(), "sources-schedule")

    def _start(self, work: Coroutine[object, object, object], name: str) -> None:
        self._tasks.append(asyncio.create_task(work, name=name))

    async def _loaded_at_start(self, name: str) -> None:
        source = self.poller.sources[name]
        try:
            store = self.bot.library.store
            state = current_state(source, await store.source_state(name))
            now = self.poller.clock()
            await store.save_source_state(
                dataclasses.replace(
                    state,
                    last_poll=now,
                    last_success=now,
                    last_error=None,
                    failures=0,
                    next_poll=now + timedelta(seconds=next_delay(source.every, 0)),
                    outcome="loaded when the bot started",
                )
            )
        except StoreError as exc:
            log.warning("could not record the state of source %s: %s", name, exc)

    async def cog_unload(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.poller.close()

    @app_commands.command(name="status", description="Each source: last success, error, next poll")
    @moderator_only()
    async def status(self, interaction: discord.Interaction) -> None:
        rows = await self.poller.states()
        polling = self.poller.polling()
        await interaction.response.send_message(
            embed=sources_embed(rows, polling=polling), ephemeral=True
        )

    @app_commands.command(name="poll", description="Poll a source now (or every source)")
    @app_commands.describe(source="The source's name (default: every source)")
    @moderator_only()
    async def poll(self, interaction: discord.Interaction, source: str | None = None) -> None:
        names = [source] if source else []
        unknown = self.poller.unknown(names)
        if unknown:
            known = ", ".join(self.poller.sources)
            raise UserError(f"No source is named `{truncate(unknown[0], 100)}` (sources: {known}).")
        await interaction.response.defer(ephemeral=True, thinking=True)
        log.info("poll of %s asked by %s", source or "every source", interaction.user.id)
        results = await self.poller.poll_many(names)
        self.poller.wake()
        await interaction.followup.send(embed=_results_embed(results))

    @poll.autocomplete("source")
    async def _source_names(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        typed = current.casefold()
        return [
            app_commands.Choice(name=name, value=name)
            for name in self.poller.sources
            if typed in name.casefold()
        ][:25]


def _results_embed(results: list[PollResult]) -> discord.Embed:
    failed = [r for r in results if r.failed]
    embed = discord.Embed(
        title="Sources polled" if not failed else "Sources polled, with failures",
        colour=discord.Colour.orange() if failed else BRAND_COLOUR,
    )
    lines = [f"**{r.name}**: {truncate(r.summary(), 300)}" for r in results]
    embed.description = truncate("\n".join(lines), 4000)
    return embed


async def setup(bot: NewsBot) -> None:
    await bot.add_cog(SourcesCog(bot))

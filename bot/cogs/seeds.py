"""``/seeds reload`` and ``/seeds status``: moderators refresh the collection from Discord."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from ..checks import moderator_only
from ..embeds import BRAND_COLOUR, truncate
from ..errors import UserError
from ..library import ReloadBusy
from ..metrics import record_reload

if TYPE_CHECKING:
    from ..client import NewsBot
    from ..loader import LoadReport

log = logging.getLogger(__name__)

# How many rejected files a reload reply lists by name (the rest are counted).
SHOWN_REJECTIONS = 10


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class SeedsCog(commands.GroupCog, group_name="seeds", group_description="Manage the news seeds"):
    def __init__(self, bot: NewsBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="reload", description="Reload the seed files and show what changed")
    @moderator_only()
    async def reload(self, interaction: discord.Interaction) -> None:
        # Loading can take seconds on a large folder: defer, then answer with the report.
        await interaction.response.defer(ephemeral=True, thinking=True)
        log.info("seed reload asked by %s in guild %s", interaction.user.id, interaction.guild_id)
        try:
            # Told, not queued: a second reload right after the first would find nothing new.
            report = await record_reload(self.bot, self.bot.library.reload(wait=False))
        except ReloadBusy:
            raise UserError(
                "A reload is running right now (someone else started it); the collection is "
                "served as it ends. `/seeds status` shows it."
            ) from None
        await interaction.followup.send(embed=report_embed(report, len(self.bot.library.index)))

    @app_commands.command(name="status", description="Show the collection and its seed folder")
    @moderator_only()
    async def status(self, interaction: discord.Interaction) -> None:
        library = self.bot.library
        records = await library.store.seed_files()
        rejected = [r for r in records if r.error]
        embed = discord.Embed(title="News collection", colour=BRAND_COLOUR)
        embed.add_field(name="Articles", value=str(len(library.index)))
        embed.add_field(name="Seed files", value=str(len(records)))
        embed.add_field(name="Rejected files", value=str(len(rejected)))
        embed.add_field(name="Topics", value=str(len(library.index.topics())))
        embed.add_field(
            name="Seed folder", value=truncate(str(self.bot.config.seeds_dir), 1000), inline=False
        )
        if library.reloading:
            embed.description = "A reload is running now."
        if rejected:
            lines = [f"`{r.error}`" for r in rejected[:SHOWN_REJECTIONS]]
            embed.add_field(name="Rejected", value=_lines_within(lines, 1024), inline=False)
        await interaction.response.send_message(embed=embed, ephemeral=True)


def report_embed(report: LoadReport, articles: int) -> discord.Embed:
    """A load report as an embed: the counts, then the first rejected files and why."""
    embed = discord.Embed(
        title="Seeds reloaded" if report.ok else "Seeds reloaded, with rejected files",
        description=f"{report.summary()}\nNow serving {articles} articles.",
        colour=BRAND_COLOUR if report.ok else discord.Colour.orange(),
    )
    if report.rejected:
        lines = [f"`{truncate(reason, 300)}`" for _, reason in report.rejected[:SHOWN_REJECTIONS]]
        if len(report.rejected) > SHOWN_REJECTIONS:
            lines.append(f"…and {len(report.rejected) - SHOWN_REJECTIONS} more")
        embed.add_field(name="Rejected", value=_lines_within(lines, 1024), inline=False)
    if report.duplicates:
        lines = [truncate(d, 300) for d in report.duplicates[:5]]
        embed.add_field(name="Duplicate URLs", value=_lines_within(lines, 1024), inline=False)
    return embed


def _lines_within(lines: list[str], limit: int) -> str:
    """Whole lines only, as many as fit in ``limit`` characters."""
    kept: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) + 1 > limit:
            break
        kept.append(line)
        used += len(line) + 1
    return "\n".join(kept) or "…"


async def setup(bot: NewsBot) -> None:
    await bot.add_cog(SeedsCog(bot))

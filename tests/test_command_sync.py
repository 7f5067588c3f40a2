"""Where the commands are when no guild is configured: the start-up log says, and what to do."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from bot.config import DiscordConfig
from tests.botharness import running_bot

NOTE_START = ("no slash commands synced", "discord.guild_ids is empty: serving")


async def start_note(caplog: pytest.LogCaptureFixture, after: int = 0) -> logging.LogRecord:
    """The bot's note about its commands, logged once it is ready (waits for it)."""
    async with asyncio.timeout(10):
        while True:
            for record in caplog.records[after:]:
                if record.name == "bot.client" and record.getMessage().startswith(NOTE_START):
                    return record
            await asyncio.sleep(0.01)


async def test_without_guild_ids_the_log_says_at_start_that_no_command_shows_and_what_to_do(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot")
    async with running_bot(tmp_path, discord=DiscordConfig(guild_ids=())) as harness:
        note = await start_note(caplog)
        assert note.levelno == logging.WARNING
        message = note.getMessage()
        assert "discord.guild_ids is empty and none are published globally" in message
        assert "List your server ids under discord.guild_ids" in message
        assert "`newsbot sync --global`" in message
        # Nothing was synced anywhere: the bot does not publish globally by itself.
        assert not [r for r in harness.fake.requests if r.method == "PUT"]

        # Once published globally, a start says so instead of warning.
        assert harness.bot is not None
        await harness.bot.tree.sync()
        seen = len(caplog.records)
        await harness.restart()
        again = await start_note(caplog, after=seen)
        assert again.levelno == logging.INFO
        assert "serving the 7 commands published globally" in again.getMessage()


async def test_with_guild_ids_there_is_no_note(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot")
    async with running_bot(tmp_path):
        # on_ready logs "connected as ..." and, with guilds configured, returns right after.
        async with asyncio.timeout(10):
            while not any(r.getMessage().startswith("connected as") for r in caplog.records):
                await asyncio.sleep(0.01)
    assert not [r for r in caplog.records if r.getMessage().startswith(NOTE_START)]

"""Metrics and readiness: the real bot with metrics on a free port, scraped over HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from bot.client import make_bot
from bot.config import MetricsConfig
from bot.library import Library
from bot.metrics import MetricsError
from tests.botharness import MOD_ROLE, MODERATOR, TOKEN, make_config, make_guild, running_bot
from tests.fakediscord import FakeDiscord

METRICS = MetricsConfig(enabled=True, port=0)  # 0: any free port; the bot reports which


async def get(port: int, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return response.status, await response.text()


def interactions(command: str, outcome: str, count: int) -> str:
    return f'newsbot_interactions_total{{command="{command}",outcome="{outcome}"}} {count:.1f}'


async def scrape_until(port: int, line: str) -> str:
    """/metrics once ``line`` is in it: a command is counted just after its reply is sent."""
    async with asyncio.timeout(10):
        while True:
            status, text = await get(port, "/metrics")
            assert status == 200
            if line in text.splitlines():
                return text
            await asyncio.sleep(0.01)


async def test_metrics_count_a_news_command_and_healthz_says_ready(tmp_path: Path) -> None:
    async with running_bot(tmp_path, metrics=METRICS) as harness:
        assert harness.bot is not None
        port = harness.bot.metrics.port
        assert port  # the bound port, not the configured 0

        body = await harness.news("facial recognition")
        assert body["type"] == 4
        text = await scrape_until(
            port, 'newsbot_interactions_total{command="news",outcome="ok"} 1.0'
        )

        assert 'newsbot_reply_seconds_count{command="news"} 1.0' in text
        assert "newsbot_articles 5.0" in text
        assert "newsbot_corpus_generation " in text
        # One sample per shard once its first heartbeat is acknowledged (none before).
        assert "# TYPE newsbot_gateway_latency_seconds gauge" in text
        for outcome in ("posted", "refused", "failed"):
            assert f'newsbot_digests_total{{outcome="{outcome}"}} 0.0' in text
        assert "# TYPE newsbot_source_polls_total counter" in text
        assert (await get(port, "/healthz")) == (200, "ready\n")

        # A refusal the user can fix is a user_error, not an error.
        too_long = "x" * (harness.config.search.max_query_length + 1)
        await harness.news(too_long)
        await scrape_until(
            port, 'newsbot_interactions_total{command="news",outcome="user_error"} 1.0'
        )

        # A reload is timed and counted by result.
        await harness.command("seeds", "reload", user=MODERATOR, roles=[MOD_ROLE])
        await scrape_until(port, 'newsbot_reloads_total{result="ok"} 1.0')

    # Stopped with the bot: the port is closed.
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(port, "/healthz")


async def test_healthz_is_503_with_the_reason_before_the_bot_is_connected(tmp_path: Path) -> None:
    config = make_config(tmp_path, metrics=METRICS)
    async with FakeDiscord(guilds=[make_guild()], token=TOKEN) as fake, Library.open(config) as lib:
        with fake.patch_discord():
            await lib.reload()
            bot = make_bot(lib, config)
            async with bot:
                await bot.login(TOKEN)  # setup_hook: the metrics server is up, no gateway yet
                assert bot.metrics.port
                status, text = await get(bot.metrics.port, "/healthz")
                assert (status, text) == (503, "not ready: not connected to Discord yet\n")


async def test_healthz_is_503_while_no_article_is_loaded(tmp_path: Path) -> None:
    (tmp_path / "seeds").mkdir()  # an empty seeds folder: connected, but nothing to serve
    async with running_bot(tmp_path, metrics=METRICS) as harness:
        assert harness.bot is not None
        status, text = await get(harness.bot.metrics.port or 0, "/healthz")
    assert (status, text) == (503, "not ready: no articles loaded (the search index is empty)\n")


async def test_a_port_in_use_is_an_error_naming_the_keys(tmp_path: Path) -> None:
    async with running_bot(tmp_path / "one", metrics=METRICS) as harness:
        assert harness.bot is not None
        taken = MetricsConfig(enabled=True, port=harness.bot.metrics.port or 0)
        config = make_config(tmp_path / "two", metrics=taken)
        async with Library.open(config) as lib:
            bot = make_bot(lib, config)
            with pytest.raises(MetricsError, match=r"metrics\.host, metrics\.port"):
                await bot.metrics.start(config.metrics)
            await bot.close()

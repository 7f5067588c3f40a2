"""Prometheus metrics and a readiness check, served on a local port while the bot runs.

Each bot has its own ``CollectorRegistry`` (not prometheus_client's global one), so tests and
several bots in one process never clash over a metric name. Values that are cheap to read
(gateway latency, articles, corpus generation) are read at scrape time by a collector, not
pushed. The web app is aiohttp's (discord.py already depends on it); it starts in the bot's
``setup_hook`` and stops in ``close``.

The hooks the rest of the bot calls are the small functions at the end: ``interaction_started``
/ ``record_interaction``, ``record_reload``, ``record_digest`` and ``record_source_poll``; they
do nothing for an object without metrics, so code shared with the CLI needs no checks.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from .library import ReloadBusy

if TYPE_CHECKING:
    import discord

    from .config import MetricsConfig

log = logging.getLogger(__name__)

# Outcomes of an interaction: answered; refused with an explanation the user can act on (a bad
# query, a cooldown, a missing permission); failed on our side (logged with a traceback).
OK, USER_ERROR, ERROR = "ok", "user_error", "error"
DIGEST_OUTCOMES = ("posted", "refused", "failed")
RELOAD_RESULTS = ("ok", "rejected", "error", "busy")
# Discord's deadline for a first answer is 3 s, hence the buckets around it.
REPLY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
RELOAD_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_STARTED = "newsbot.started"  # the key in Interaction.extras: when the bot took it up


class MetricsError(Exception):
    """The metrics port could not be opened; ``str()`` is one line naming the config keys."""


class _Bot(Protocol):
    """What the metrics read from the bot (NewsBot or ShardedNewsBot)."""

    library: Any

    def is_ready(self) -> bool: ...
    def is_closed(self) -> bool: ...


class BotMetrics:
    """One bot's collectors, and the web server that exposes them."""

    def __init__(self, bot: _Bot) -> None:
        self.bot = bot
        self.registry = CollectorRegistry(auto_describe=True)
        self.interactions = Counter(
            "newsbot_interactions",
            "Application commands handled, by command and outcome (ok, user_error, error).",
            ["command", "outcome"],
            registry=self.registry,
        )
        self.reply_seconds = Histogram(
            "newsbot_reply_seconds",
            "Seconds from the bot taking up a command to the command's end (its reply sent).",
            ["command"],
            buckets=REPLY_BUCKETS,
            registry=self.registry,
        )
        self.reloads = Counter(
            "newsbot_reloads",
            "Seed reloads by result: ok, rejected (some file refused), error (nothing changed).",
            ["result"],
            registry=self.registry,
        )
        self.reload_seconds = Histogram(
            "newsbot_reload_seconds",
            "Seconds a seed reload took, index rebuild included.",
            buckets=RELOAD_BUCKETS,
            registry=self.registry,
        )
        self.digests = Counter(
            "newsbot_digests",
            "Daily digests by outcome: posted, refused (the channel refused), failed (retried).",
            ["outcome"],
            registry=self.registry,
        )
        # For the article sources (feeds, git) to come: nothing records polls yet.
        self.source_polls = Counter(
            "newsbot_source_polls",
            "Polls of an article source, by source and outcome.",
            ["source", "outcome"],
            registry=self.registry,
        )
        for outcome in DIGEST_OUTCOMES:
            self.digests.labels(outcome)  # shown as 0 before the first digest
        for result in RELOAD_RESULTS:
            self.reloads.labels(result)
        self.registry.register(_ScrapeTimeCollector(bot))
        self.port: int | None = None  # the bound port while serving (config port 0: any free)
        self._runner: web.AppRunner | None = None

    # --- the web server -----------------------------------------------------------------------

    async def start(self, config: MetricsConfig) -> None:
        if not config.enabled or self._runner is not None:
            return
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        runner = web.AppRunner(app, access_log=None)  # a scrape every 15 s is not news
        await runner.setup()
        try:
            await web.TCPSite(runner, config.host, config.port).start()
        except OSError as exc:
            await runner.cleanup()
            raise MetricsError(
                f"cannot serve metrics on {config.host}:{config.port} "
                f"(metrics.host, metrics.port): {exc.strerror or exc}"
            ) from None
        self._runner = runner
        self.port = runner.addresses[0][1]
        log.info("metrics at http://%s:%d/metrics, readiness at /healthz", config.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _healthz(self, request: web.Request) -> web.Response:
        reason = not_ready_reason(self.bot)
        if reason is None:
            return web.Response(text="ready\n")
        return web.Response(status=503, text=f"not ready: {reason}\n")


def not_ready_reason(bot: _Bot) -> str | None:
    """Why the bot should not get traffic yet, or None when it is connected and has articles."""
    if bot.is_closed():
        return "the bot is shutting down"
    if not bot.is_ready():
        return "not connected to Discord yet"
    if not len(bot.library.index):
        return "no articles loaded (the search index is empty)"
    return None


class _ScrapeTimeCollector(Collector):
    """Gauges read when Prometheus scrapes, so they are never stale and cost nothing between."""

    def __init__(self, bot: _Bot) -> None:
        self.bot = bot

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # collected fresh each time; no fixed description to register in advance

    def collect(self) -> Iterator[GaugeMetricFamily]:
        latency = GaugeMetricFamily(
            "newsbot_gateway_latency_seconds",
            "Heartbeat latency of each shard's gateway connection.",
            labels=["shard"],
        )
        for shard, seconds in _latencies(self.bot):
            if math.isfinite(seconds):  # nan/inf until the first heartbeat is acknowledged
                latency.add_metric([str(shard)], seconds)
        yield latency
        library = self.bot.library
        yield GaugeMetricFamily(
            "newsbot_articles", "Articles the search index serves.", value=len(library.index)
        )
        yield GaugeMetricFamily(
            "newsbot_corpus_generation",
            "Generation of the corpus the index was built from (bumped by each change).",
            value=getattr(library, "index_generation", 0),
        )


def _latencies(bot: Any) -> list[tuple[int, float]]:
    # AutoShardedBot has one latency per shard; a plain Bot only its single connection's.
    latencies = getattr(bot, "latencies", None)
    if latencies is not None:
        return list(latencies)
    return [(getattr(bot, "shard_id", None) or 0, bot.latency)]


# --- the hooks ------------------------------------------------------------------------------


def _of(bot: Any) -> BotMetrics | None:
    return getattr(bot, "metrics", None)


def interaction_started(interaction: discord.Interaction) -> None:
    """Note when the bot took up an interaction (from the tree's interaction_check)."""
    interaction.extras[_STARTED] = time.perf_counter()


def record_interaction(interaction: discord.Interaction, outcome: str) -> None:
    """Count a finished command and its reply latency (from completion or the error handler)."""
    metrics = _of(interaction.client)
    if metrics is None or interaction.command is None:
        return
    command = interaction.command.qualified_name
    metrics.interactions.labels(command, outcome).inc()
    started = interaction.extras.get(_STARTED)
    if started is not None:
        metrics.reply_seconds.labels(command).observe(time.perf_counter() - started)


_T = TypeVar("_T")


async def record_reload(bot: Any, reload: Awaitable[_T]) -> _T:
    """Await a reload, counting its duration and result (a LoadReport's ``ok``, or error)."""
    metrics = _of(bot)
    started = time.perf_counter()
    result = "error"
    try:
        report = await reload
        result = "ok" if getattr(report, "ok", True) else "rejected"
        return report
    except ReloadBusy:
        result = "busy"  # another reload was running: this one did not start
        raise
    finally:
        if metrics is not None:
            metrics.reloads.labels(result).inc()
            metrics.reload_seconds.observe(time.perf_counter() - started)


def record_digest(bot: Any, outcome: str) -> None:
    """Count a digest attempt's outcome: ``posted``, ``refused`` or ``failed``."""
    metrics = _of(bot)
    if metrics is not None:
        metrics.digests.labels(outcome).inc()


def record_source_poll(bot: Any, source: str, outcome: str) -> None:
    """Count a poll of an article source (for the feed and git sources to come)."""
    metrics = _of(bot)
    if metrics is not None:
        metrics.source_polls.labels(source, outcome).inc()

"""The cluster launcher: one child process per contiguous range of shards, kept running.

``newsbot cluster --processes N`` asks Discord how many shards to run and how many may log in at
once, splits the shards into N ranges and starts ``newsbot run --shard-ids A-B --shard-count K``
for each. It relays the children's output, restarts the ones that crash and stops them all on
SIGTERM or SIGINT. Like RoboDanny's and IdleRPG's launchers, the launcher never connects to the
gateway itself: a crash in one bot takes down one range of shards, not the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from .config import Config

log = logging.getLogger(__name__)
# The children's log lines, relayed.
children_log = logging.getLogger("bot.cluster.children")

#: Discord lets ``max_concurrency`` shards IDENTIFY per window, one per bucket
#: (``shard_id % max_concurrency``).
IDENTIFY_WINDOW = 5.0
#: The CLI's status for a setup problem (bad token, bad config): a restart cannot fix it.
SETUP_ERROR = 2
#: A child's status for a problem no restart can fix (a refused token, a bad config, a metrics
#: port in use): sysexits' EX_CONFIG. A child's 2 (the database or Discord out of reach for a
#: moment) is restarted like a crash.
CHILD_SETUP_ERROR = 78
#: What a shell reports for a program stopped by Ctrl-C.
INTERRUPTED = 128 + signal.SIGINT
#: Set in a child's environment: it logs to stderr for the launcher to relay, exits
#: CHILD_SETUP_ERROR on a setup error, and stops if the launcher dies.
CHILD_ENV = "NEWSBOT_CLUSTER_CHILD"
#: The child's number from 0, in its environment (its metrics port is the configured one + it).
CHILD_INDEX_ENV = "NEWSBOT_CLUSTER_INDEX"


def child_index() -> int | None:
    """This process's number in its cluster (from 0), or None outside a cluster."""
    index = os.environ.get(CHILD_INDEX_ENV, "")
    return int(index) if os.environ.get(CHILD_ENV) == "1" and index.isdigit() else None


def in_cluster() -> bool:
    """Whether this process is a child of ``newsbot cluster``."""
    return os.environ.get(CHILD_ENV) == "1"


#: The program a child runs, before the global options and ``run``.
NEWSBOT = (sys.executable, "-m", "bot")
# Discord asks every client to name itself this way (a bare aiohttp agent may be blocked).
USER_AGENT = "DiscordBot (https://github.com/Rapptz/discord.py, 2.7) newsbot-cluster"

#: (shards, shard count) -> the child's argv.
ArgvBuilder = Callable[[range, int], Sequence[str]]


class ClusterError(Exception):
    """A reason not to start the cluster; ``str()`` is one line for the terminal."""


@dataclass(frozen=True, slots=True)
class Timing:
    """The launcher's clocks, in seconds; tests shrink them."""

    identify_window: float = IDENTIFY_WINDOW
    backoff_first: float = 1.0
    backoff_max: float = 60.0
    # A child that stayed up this long crashed for a new reason: its backoff starts over.
    stable_after: float = 60.0
    # After a stop, children still running this much later are killed.
    stop_timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class GatewayInfo:
    """What ``GET /gateway/bot`` says about sharding and logins."""

    shards: int  # Discord's recommended shard count
    max_concurrency: int
    remaining: int  # logins (IDENTIFYs) left before the limit resets
    reset_after: float  # seconds until it resets


# --- pure parts ------------------------------------------------------------------------------


def shard_ranges(shard_count: int, processes: int) -> list[range]:
    """Shards 0..shard_count-1 as ``processes`` contiguous ranges; earlier ones get the extras."""
    if processes < 1:
        raise ValueError(f"processes must be at least 1, not {processes}")
    if shard_count < processes:
        raise ValueError(f"{shard_count} shards cannot give each of {processes} processes one")
    size, extra = divmod(shard_count, processes)
    ranges = []
    start = 0
    for index in range(processes):
        stop = start + size + (1 if index < extra else 0)
        ranges.append(range(start, stop))
        start = stop
    return ranges


def range_label(shards: range) -> str:
    """``range(3, 6)`` -> ``"3-5"``, the inclusive form ``newsbot run --shard-ids`` takes."""
    return f"{shards.start}-{shards.stop - 1}"


def child_argv(
    base_argv: Sequence[str],
    shards: range,
    shard_count: int,
    *,
    program: Sequence[str] = NEWSBOT,
) -> list[str]:
    """The command that runs ``shards`` of ``shard_count`` with the launcher's global options."""
    return [
        *program,
        *base_argv,
        "run",
        "--shard-ids",
        range_label(shards),
        "--shard-count",
        str(shard_count),
    ]


def login_hold(
    shards: int, *, shard_count: int, max_concurrency: int, window: float = IDENTIFY_WINDOW
) -> float:
    """Seconds to wait after starting a child of ``shards`` shards before starting another.

    Its shards need ``ceil(shards / max_concurrency)`` windows to log in; when every shard of
    the cluster has a bucket of its own, nobody waits.
    """
    if shard_count <= max_concurrency:
        return 0.0
    return math.ceil(shards / max_concurrency) * window


def next_backoff(previous: float | None, uptime: float, timing: Timing) -> float:
    """The pause before a restart: doubling up to the cap, from the start after a stable run."""
    if previous is None or uptime >= timing.stable_after:
        return timing.backoff_first
    return min(previous * 2, timing.backoff_max)


def signal_status(sig: signal.Signals) -> int:
    """The launcher's exit status after a stop by ``sig``: 0 for SIGTERM, 130 for SIGINT."""
    return INTERRUPTED if sig == signal.SIGINT else 0


def _describe_exit(status: int) -> str:
    if status < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-status).name}"
    return f"exited with status {status}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# --- Discord ---------------------------------------------------------------------------------


async def fetch_gateway(api_base: str, token: str, *, timeout: float = 10.0) -> GatewayInfo:
    """``GET {api_base}/gateway/bot``; a refusal or an outage is a ClusterError."""
    # Here, not at the top: every newsbot command imports this module for child_index(), and
    # only the launcher needs an HTTP client.
    import aiohttp

    url = f"{api_base.rstrip('/')}/gateway/bot"
    headers = {"Authorization": f"Bot {token}", "User-Agent": USER_AGENT}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(url, headers=headers) as response,
        ):
            if response.status == 401:
                raise ClusterError("Discord refused the token")
            if response.status != 200:
                raise ClusterError(
                    f"Discord answered GET /gateway/bot with {response.status} {response.reason}"
                )
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach Discord at {api_base}: {_one_line(exc)}") from None
    except ValueError:
        raise ClusterError("Discord's answer to GET /gateway/bot is not JSON") from None
    return _parse_gateway(body)


def _parse_gateway(body: Any) -> GatewayInfo:
    try:
        limit = body["session_start_limit"]
        info = GatewayInfo(
            shards=int(body["shards"]),
            max_concurrency=int(limit["max_concurrency"]),
            remaining=int(limit["remaining"]),
            reset_after=float(limit["reset_after"]) / 1000,  # Discord counts milliseconds
        )
    except (KeyError, TypeError, ValueError):
        raise ClusterError(
            "Discord's answer to GET /gateway/bot lacks shards or session_start_limit"
        ) from None
    if info.shards < 1 or info.max_concurrency < 1:
        raise ClusterError(f"Discord's answer to GET /gateway/bot makes no sense: {info}")
    return info


@dataclass(frozen=True, slots=True)
class _Plan:
    ranges: list[range]
    shard_count: int
    max_concurrency: int


async def _plan(
    config: Config,
    *,
    processes: int,
    shard_count: int | None,
    token: str,
    timing: Timing,
    stop: asyncio.Event,
) -> _Plan | None:
    """Which child runs which shards; None if a signal came while waiting for Discord's limit."""
    if processes < 1:
        raise ClusterError(f"--processes must be at least 1, not {processes}")
    source = "--shard-count" if shard_count is not None else "discord.shard_count"
    wanted = shard_count if shard_count is not None else config.discord.shard_count
    if wanted is not None and wanted < processes:  # a typo is cheaper to report than a request
        raise ClusterError(
            f"{source} {wanted} is fewer than --processes {processes}: "
            "each process needs at least one shard"
        )
    while True:
        info = await fetch_gateway(config.discord.api_base, token)
        total = wanted if wanted is not None else info.shards
        if total < processes:
            raise ClusterError(
                f"Discord recommends {total} shard(s), fewer than --processes {processes}: "
                f"pass --shard-count {processes} or more, or fewer processes"
            )
        if info.remaining >= total:
            return _Plan(shard_ranges(total, processes), total, info.max_concurrency)
        # Logging in past the daily limit gets the token reset by Discord: wait it out instead
        # of refusing, so a service manager need not be told to try again tomorrow.
        pause = max(info.reset_after, timing.identify_window)
        log.warning(
            "Discord allows %d more logins and the %d shards need one each; "
            "waiting %.0f s for the limit to reset",
            info.remaining,
            total,
            pause,
        )
        if await _sleep_or_stop(stop, pause):
            return None


# --- running the children ----------------------------------------------------------------


async def _sleep_or_stop(stop: asyncio.Event, delay: float) -> bool:
    """Sleep ``delay`` seconds; True (early) if ``stop`` is or becomes set."""
    if stop.is_set() or delay <= 0:
        return stop.is_set()
    try:
        await asyncio.wait_for(stop.wait(), delay)
    except TimeoutError:
        return False
    return True


class _Signals:
    """SIGTERM and SIGINT, caught for as long as the launcher runs, as an event and a callback."""

    def __init__(self) -> None:
        self.first: signal.Signals | None = None
        self.received = asyncio.Event()
        self.on_signal: Callable[[signal.Signals], None] | None = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[_Signals]:
        loop = asyncio.get_running_loop()
        caught = []
        # SIGHUP too: a closed terminal or ssh session must stop the children, not orphan them.
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            try:
                loop.add_signal_handler(sig, self._deliver, sig)
            except (NotImplementedError, RuntimeError):
                # Windows, or not the main thread (an embedding): the default actions stay.
                continue
            caught.append(sig)
        try:
            yield self
        finally:
            for sig in caught:
                loop.remove_signal_handler(sig)

    def _deliver(self, sig: signal.Signals) -> None:
        if self.first is None:
            self.first = sig
        self.received.set()
        if self.on_signal is not None:
            self.on_signal(sig)


class _LoginPacer:
    """Spaces child starts so their logins fit Discord's ``max_concurrency`` per window."""

    def __init__(self, shard_count: int, max_concurrency: int, window: float) -> None:
        self._hold = functools.partial(
            login_hold, shard_count=shard_count, max_concurrency=max_concurrency, window=window
        )
        self._lock = asyncio.Lock()  # FIFO: children start in the order they asked
        self._next = 0.0  # loop time before which no child may start

    async def turn(self, shards: int, stop: asyncio.Event) -> bool:
        """Wait until a child of ``shards`` shards may start; False if the cluster is stopping."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            if await _sleep_or_stop(stop, self._next - loop.time()):
                return False
            self._next = loop.time() + self._hold(shards)
            return True


@dataclass(eq=False, slots=True)
class _Child:
    number: int  # 1-based, for people
    shards: range
    process: asyncio.subprocess.Process | None = None


class Cluster:
    """Runs one child per shard range until they stop, restarting the ones that crash."""

    def __init__(
        self,
        ranges: Sequence[range],
        shard_count: int,
        *,
        max_concurrency: int,
        argv_for: ArgvBuilder,
        timing: Timing = Timing(),
        output: TextIO | None = None,
    ) -> None:
        self._children = [_Child(n, shards) for n, shards in enumerate(ranges, start=1)]
        self._shard_count = shard_count
        self._argv_for = argv_for
        self._timing = timing
        self._output = output
        self._pacer = _LoginPacer(shard_count, max_concurrency, timing.identify_window)
        self._stopping = asyncio.Event()
        self._stop_signal = signal.SIGTERM  # what the children are sent once stopping
        self._signalled = False
        self._status = 0
        self._kill_timer: asyncio.TimerHandle | None = None

    async def run(self, signals: _Signals) -> int:
        """Until every child has stopped; the exit status (see ``cluster_command``)."""
        if signals.first is not None:
            return signal_status(signals.first)
        signals.on_signal = self._on_signal
        tasks = [asyncio.create_task(self._supervise(child)) for child in self._children]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            # A bug or a cancellation here must not leave bots running without a launcher.
            self._kill_all()
            raise
        finally:
            signals.on_signal = None
            for task in tasks:
                task.cancel()
            if self._kill_timer is not None:
                self._kill_timer.cancel()
        return self._status

    # -- stopping -----------------------------------------------------------------------------

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._signalled:
            log.warning("%s again: killing the children", sig.name)
            self._kill_all()
            return
        self._signalled = True
        log.info("%s: stopping %d children", sig.name, len(self._children))
        # A hang-up means "stop" here; the children stop cleanly on SIGTERM (not on SIGHUP).
        self._stop(signal_status(sig), signal.SIGTERM if sig == signal.SIGHUP else sig)

    def _stop(self, status: int, sig: signal.Signals) -> None:
        if self._stopping.is_set():
            return
        self._status = status
        self._stop_signal = sig
        self._stopping.set()
        for child in self._children:
            if child.process is not None:
                _send(child.process, sig)
        loop = asyncio.get_running_loop()
        self._kill_timer = loop.call_later(self._timing.stop_timeout, self._kill_all)

    def _kill_all(self) -> None:
        for child in self._children:
            process = child.process
            if process is not None and process.returncode is None:
                log.warning("child %d (pid %d) still runs: killing it", child.number, process.pid)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()

    # -- one child ----------------------------------------------------------------------------

    async def _supervise(self, child: _Child) -> None:
        loop = asyncio.get_running_loop()
        backoff: float | None = None
        label = range_label(child.shards)
        while await self._pacer.turn(len(child.shards), self._stopping):
            started = loop.time()
            status = await self._run_once(child)
            if status is None or self._stopping.is_set():
                return
            uptime = loop.time() - started
            if status == 0:
                # A bot exits 0 only when asked to (its own SIGTERM): someone stopped it on
                # purpose, and restarting it would undo that.
                log.warning("child %d stopped (status 0): shards %s offline", child.number, label)
                return
            if status == CHILD_SETUP_ERROR:
                log.error(
                    "child %d (shards %s) stopped on a setup error a restart cannot fix: "
                    "stopping the cluster",
                    child.number,
                    label,
                )
                self._stop(SETUP_ERROR, signal.SIGTERM)
                return
            backoff = next_backoff(backoff, uptime, self._timing)
            # Its shards' login buckets are still busy with the last start for one window.
            delay = max(backoff, self._timing.identify_window - uptime)
            log.warning(
                "child %d (shards %s) %s after %.1f s; restarting in %.1f s",
                child.number,
                label,
                _describe_exit(status),
                uptime,
                delay,
            )
            if await _sleep_or_stop(self._stopping, delay):
                return

    async def _run_once(self, child: _Child) -> int | None:
        """Start the child and wait for it; its exit status, or None if it could not start."""
        argv = list(self._argv_for(child.shards, self._shard_count))
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                # Its own process group: Ctrl-C reaches the launcher alone, which forwards it
                # once, instead of every child seeing it twice.
                process_group=0,
                # The launcher writes the log (and its log_file) for everyone: a child logs to
                # stderr, which is relayed, so no two processes rotate one file.
                env={**os.environ, CHILD_ENV: "1", CHILD_INDEX_ENV: str(child.number - 1)},
            )
        except OSError as exc:
            log.error("child %d: cannot start %s: %s", child.number, argv[0], _one_line(exc))
            self._stop(SETUP_ERROR, signal.SIGTERM)
            return None
        child.process = process
        log.info(
            "child %d (pid %d): shards %s of %d",
            child.number,
            process.pid,
            range_label(child.shards),
            self._shard_count,
        )
        if self._stopping.is_set():  # the stop came while it was being started
            _send(process, self._stop_signal)
        prefix = f"[shards {range_label(child.shards)}] "
        assert process.stdout is not None and process.stderr is not None
        relays = {
            asyncio.create_task(self._relay(process.stdout, prefix)),
            asyncio.create_task(self._relay(process.stderr, prefix)),
        }
        try:
            status = await process.wait()
            # A grandchild may hold the pipes open after the child is gone: don't wait forever.
            _, pending = await asyncio.wait(relays, timeout=5.0)
        finally:
            for task in relays:
                task.cancel()
        if pending:
            log.debug("child %d: output still open after exit, no longer relayed", child.number)
        child.process = None
        return status

    async def _relay(self, stream: asyncio.StreamReader, prefix: str) -> None:
        """Copy ``stream`` line by line to the launcher's stderr, each line prefixed."""
        while True:
            try:
                line = await stream.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:  # end of output
                if exc.partial:
                    self._write(prefix, exc.partial)
                return
            except asyncio.LimitOverrunError as exc:  # an over-long line: relay it in pieces
                line = await stream.read(exc.consumed)
            self._write(prefix, line)

    def _write(self, prefix: str, line: bytes) -> None:
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if self._output is not None:
            self._output.write(f"{prefix}{text}\n")
            self._output.flush()
            return
        # Through the launcher's log (stderr, or its log_file, rotated by one process only),
        # at the level the child logged it: a child line reads "LEVEL logger: message".
        level_name, _, rest = text.partition(" ")
        level = logging.getLevelName(level_name)
        if isinstance(level, int):
            children_log.log(level, "%s%s", prefix, rest)
        else:  # not a log line (a traceback's continuation, a print)
            children_log.info("%s%s", prefix, text)


def _send(process: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
        process.send_signal(sig)


# --- entry points ----------------------------------------------------------------------------


async def run_cluster(
    config: Config,
    *,
    processes: int,
    shard_count: int | None,
    token: str,
    argv_for: ArgvBuilder,
    timing: Timing = Timing(),
    output: TextIO | None = None,
) -> int:
    """``cluster_command`` inside a running event loop, with every child's argv injectable."""
    signals = _Signals()
    with signals.installed():
        try:
            plan = await _plan(
                config,
                processes=processes,
                shard_count=shard_count,
                token=token,
                timing=timing,
                stop=signals.received,
            )
        except ClusterError as exc:
            print(f"newsbot: error: {exc}", file=sys.stderr)
            return SETUP_ERROR
        if plan is None:
            assert signals.first is not None
            return signal_status(signals.first)
        log.info(
            "%d shards in %d processes; Discord allows %d logins per %.0f s",
            plan.shard_count,
            len(plan.ranges),
            plan.max_concurrency,
            timing.identify_window,
        )
        cluster = Cluster(
            plan.ranges,
            plan.shard_count,
            max_concurrency=plan.max_concurrency,
            argv_for=argv_for,
            timing=timing,
            output=output,
        )
        return await cluster.run(signals)


def cluster_command(
    config: Config,
    *,
    processes: int,
    shard_count: int | None,
    base_argv: Sequence[str],
    token: str,
    argv_for: ArgvBuilder | None = None,
    timing: Timing | None = None,
) -> int:
    """``newsbot cluster``: run the bot's shards in ``processes`` child processes.

    The shard count is ``shard_count``, else ``discord.shard_count`` from the config, else what
    Discord recommends. Child *i* runs ``python -m bot *base_argv run --shard-ids A-B
    --shard-count K`` with the launcher's environment (``argv_for`` replaces that command), and
    starts once the previous child's logins fit Discord's ``max_concurrency``. A child that
    crashes is restarted with exponential backoff; one that exits 0 was stopped on purpose and
    stays stopped.

    Exit status: 0 after SIGTERM, or when every child stopped by itself with status 0; 130 after
    SIGINT (as a shell reports Ctrl-C); 2 for a setup problem (bad arguments, a refused token,
    Discord out of reach, or a child exiting 2). SIGTERM and SIGINT are forwarded to every
    child; children still running ``timing.stop_timeout`` (30 s) later, or at a second signal,
    are killed.
    """
    builder = argv_for or functools.partial(child_argv, tuple(base_argv))
    return asyncio.run(
        run_cluster(
            config,
            processes=processes,
            shard_count=shard_count,
            token=token,
            argv_for=builder,
            timing=timing or Timing(),
        )
    )

"""`newsbot cluster`: shard ranges, login pacing, restarts and signals, with stand-in children.

Each child is a tiny Python script (``CHILD``) that records what it was asked to run in an
events file and then behaves as the test's plan says for its shard range. Discord is the
loopback fake; the launcher itself runs in-process, or in a subprocess where a signal is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.cluster import (
    IDENTIFY_WINDOW,
    Timing,
    child_argv,
    fetch_gateway,
    login_hold,
    next_backoff,
    run_cluster,
    shard_ranges,
)
from bot.config import Config, DiscordConfig
from tests.fakediscord import FakeDiscord

REPO = Path(__file__).resolve().parents[1]
TOKEN = "cluster-token-Mzk0MjE.fake.c2VjcmV0"
# Small clocks so a test takes a fraction of a second; a stop never waits long for a straggler.
FAST = Timing(identify_window=0.01, backoff_first=0.05, backoff_max=0.2, stop_timeout=5.0)

CHILD = r"""
import json, os, signal, sys, time
from pathlib import Path

events = Path(os.environ["CLUSTER_TEST_EVENTS"])
plan = json.loads(os.environ["CLUSTER_TEST_PLAN"])
ids = sys.argv[sys.argv.index("--shard-ids") + 1]

def event(*words):
    with events.open("a") as f:
        f.write(" ".join(str(w) for w in words) + "\n")

def lines(kind):
    return [line.split() for line in events.read_text().splitlines() if line.startswith(kind)]

def stop(signum, frame):
    event("stopped", ids, signal.Signals(signum).name)
    sys.exit(0)

signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
event("start", ids, os.getpid(), time.time(), json.dumps(sys.argv[1:]).replace(" ", ""))
print(f"out from {ids}", flush=True)
print(f"err from {ids}", file=sys.stderr, flush=True)
mode = plan.get(ids, "exit0")
if mode in ("crash-once", "unreachable-once"):
    first = len([s for s in lines("start") if s[1] == ids]) == 1
    mode = ("exit1" if mode == "crash-once" else "exit2") if first else "exit0"
if mode == "serve":
    event("ready", ids)
    time.sleep(30)
    event("timeout", ids)
elif mode == "setup-error-when-others-ready":
    servers = sum(1 for m in plan.values() if m == "serve")
    deadline = time.monotonic() + 10
    while len(lines("ready")) < servers and time.monotonic() < deadline:
        time.sleep(0.01)
    sys.exit(78)
sys.exit(int(mode.removeprefix("exit")) if mode.startswith("exit") else 0)
"""


class Children:
    """The stand-in children of one test: their script, plan and what they recorded."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plan: dict[str, str]):
        self.script = tmp_path / "child.py"
        self.script.write_text(CHILD, encoding="utf-8")
        self.events = tmp_path / "events.txt"
        self.events.touch()
        # The launcher passes its environment on: that is how the children find the plan.
        monkeypatch.setenv("CLUSTER_TEST_EVENTS", str(self.events))
        monkeypatch.setenv("CLUSTER_TEST_PLAN", json.dumps(plan))

    def argv_for(self, base_argv: list[str] | None = None) -> functools.partial[list[str]]:
        return functools.partial(
            child_argv, base_argv or [], program=(sys.executable, str(self.script))
        )

    def lines(self, kind: str) -> list[list[str]]:
        text = self.events.read_text(encoding="utf-8")
        return [line.split() for line in text.splitlines() if line.split()[0] == kind]

    def starts(self) -> list[tuple[str, int, float, list[str]]]:
        """(shard ids, pid, start time, argv after the program) of every start, in order."""
        return [(s[1], int(s[2]), float(s[3]), json.loads(s[4])) for s in self.lines("start")]


def fake_config(fake: FakeDiscord) -> Config:
    return Config(discord=DiscordConfig(api_base=fake.api_base))


def gateway_body(fake: FakeDiscord, *, shards: int, remaining: int = 999, reset_after: int = 0,
                 max_concurrency: int = 1) -> dict[str, object]:  # fmt: skip
    limit = {
        "total": 1000,
        "remaining": remaining,
        "reset_after": reset_after,
        "max_concurrency": max_concurrency,
    }
    return {"url": fake.gateway_url, "shards": shards, "session_start_limit": limit}


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# --- pure parts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shards", "processes", "expected"),
    [
        (1, 1, ["0-0"]),
        (8, 1, ["0-7"]),
        (8, 3, ["0-2", "3-5", "6-7"]),
        (8, 4, ["0-1", "2-3", "4-5", "6-7"]),
        (10, 4, ["0-2", "3-5", "6-7", "8-9"]),
        (5, 5, ["0-0", "1-1", "2-2", "3-3", "4-4"]),
        (7, 2, ["0-3", "4-6"]),
    ],
)
def test_shard_ranges_are_contiguous_and_earlier_children_get_the_extra(
    shards: int, processes: int, expected: list[str]
) -> None:
    ranges = shard_ranges(shards, processes)
    assert [f"{r.start}-{r.stop - 1}" for r in ranges] == expected
    assert [s for r in ranges for s in r] == list(range(shards))


@pytest.mark.parametrize(("shards", "processes"), [(2, 3), (0, 1), (4, 0)])
def test_shard_ranges_refuse_a_process_without_shards(shards: int, processes: int) -> None:
    with pytest.raises(ValueError):
        shard_ranges(shards, processes)


def test_child_argv_repeats_the_global_options_before_run() -> None:
    argv = child_argv(["--config", "/etc/newsbot.yaml"], range(3, 6), 8)
    assert argv == [
        sys.executable, "-m", "bot", "--config", "/etc/newsbot.yaml",
        "run", "--shard-ids", "3-5", "--shard-count", "8",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("shards", "total", "concurrency", "windows"),
    [
        (3, 8, 1, 3),  # one login per window: one window per shard
        (3, 8, 2, 2),  # ceil(3 / 2)
        (4, 8, 2, 2),
        (16, 64, 16, 1),
        (2, 4, 16, 0),  # the whole cluster fits one window: everyone starts at once
        (4, 4, 4, 0),
    ],
)
def test_login_hold_is_whole_windows_of_max_concurrency(
    shards: int, total: int, concurrency: int, windows: int
) -> None:
    hold = login_hold(shards, shard_count=total, max_concurrency=concurrency, window=2.0)
    assert hold == windows * 2.0
    assert login_hold(1, shard_count=2, max_concurrency=1) == IDENTIFY_WINDOW


def test_restart_backoff_doubles_to_the_cap_and_resets_after_a_stable_run() -> None:
    timing = Timing(backoff_first=1, backoff_max=60, stable_after=60)
    delays = []
    backoff = None
    for _ in range(8):
        backoff = next_backoff(backoff, uptime=3, timing=timing)
        delays.append(backoff)
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60]
    assert next_backoff(60, uptime=61, timing=timing) == 1


# --- Discord's answer ------------------------------------------------------------------------


async def test_gateway_bot_gives_the_recommended_shards_and_concurrency() -> None:
    async with FakeDiscord(token=TOKEN, shard_count=3) as fake:
        info = await fetch_gateway(fake.api_base, TOKEN)
        (request,) = [r for r in fake.requests if r.path == "/gateway/bot"]
    assert (info.shards, info.max_concurrency, info.remaining) == (3, 1, 999)
    assert request.headers["Authorization"] == f"Bot {TOKEN}"


async def test_refused_token_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    children = Children(tmp_path, monkeypatch, {})
    async with FakeDiscord(token=TOKEN) as fake:
        status = await run_cluster(
            fake_config(fake), processes=1, shard_count=None, token="wrong",
            argv_for=children.argv_for(), timing=FAST,
        )  # fmt: skip
    assert status == 2
    assert capsys.readouterr().err == "newsbot: error: Discord refused the token\n"
    assert children.starts() == []


async def test_unreachable_discord_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    children = Children(tmp_path, monkeypatch, {})
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = Config(discord=DiscordConfig(api_base=f"http://127.0.0.1:{port}/api/v10"))
    status = await run_cluster(
        config, processes=1, shard_count=None, token=TOKEN,
        argv_for=children.argv_for(), timing=FAST,
    )  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith(f"newsbot: error: cannot reach Discord at http://127.0.0.1:{port}")
    assert err.count("\n") == 1
    assert children.starts() == []


@pytest.mark.parametrize(
    ("processes", "shard_count", "recommended", "message"),
    [
        (0, None, 1, "--processes must be at least 1"),
        (3, 2, 1, "--shard-count 2 is fewer than --processes 3"),
        (2, None, 1, "Discord recommends 1 shard(s), fewer than --processes 2"),
    ],
)
async def test_a_child_without_shards_is_refused_before_anything_starts(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    processes: int,
    shard_count: int | None,
    recommended: int,
    message: str,
) -> None:
    children = Children(tmp_path, monkeypatch, {})
    async with FakeDiscord(token=TOKEN, shard_count=recommended) as fake:
        status = await run_cluster(
            fake_config(fake), processes=processes, shard_count=shard_count, token=TOKEN,
            argv_for=children.argv_for(), timing=FAST,
        )  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith(f"newsbot: error: {message}")
    assert err.count("\n") == 1
    assert children.starts() == []


async def test_too_few_logins_left_waits_for_the_reset_before_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    children = Children(tmp_path, monkeypatch, {})
    async with FakeDiscord(token=TOKEN, shard_count=2) as fake:
        low = gateway_body(fake, shards=2, remaining=1, reset_after=50)
        fake.fail_next("GET", r"/gateway/bot", 200, low)
        with caplog.at_level(logging.WARNING, logger="bot.cluster"):
            status = await run_cluster(
                fake_config(fake), processes=2, shard_count=None, token=TOKEN,
                argv_for=children.argv_for(), timing=FAST, output=io.StringIO(),
            )  # fmt: skip
        asks = [r for r in fake.requests if r.path == "/gateway/bot"]
    assert status == 0
    assert len(asks) == 2  # asked again after the reset, and only then started
    assert any("1 more logins" in r.getMessage() for r in caplog.records)
    assert sorted(s[0] for s in children.starts()) == ["0-0", "1-1"]


# --- running children ------------------------------------------------------------------------


async def test_crashed_child_is_restarted_with_its_range_and_output_is_prefixed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    children = Children(tmp_path, monkeypatch, {"0-1": "crash-once", "2-3": "exit0"})
    output = io.StringIO()
    async with FakeDiscord(token=TOKEN, shard_count=4) as fake:
        with caplog.at_level(logging.INFO, logger="bot.cluster"):
            status = await run_cluster(
                fake_config(fake), processes=2, shard_count=None, token=TOKEN,
                argv_for=children.argv_for(["--config", "x.yaml"]), timing=FAST, output=output,
            )  # fmt: skip
    starts = children.starts()
    assert status == 0  # both ended by exiting 0 once the crash was behind them
    assert [s[0] for s in starts].count("0-1") == 2
    assert [s[0] for s in starts].count("2-3") == 1
    argvs = {ids: argv for ids, _, _, argv in starts}
    assert argvs["0-1"] == ["--config", "x.yaml", "run", "--shard-ids", "0-1", "--shard-count", "4"]
    assert argvs["2-3"][-4:] == ["--shard-ids", "2-3", "--shard-count", "4"]
    relayed = output.getvalue().splitlines()
    assert relayed.count("[shards 0-1] out from 0-1") == 2
    assert relayed.count("[shards 0-1] err from 0-1") == 2
    assert "[shards 2-3] out from 2-3" in relayed
    assert "[shards 2-3] err from 2-3" in relayed
    messages = [r.getMessage() for r in caplog.records]
    for ids, pid, _, _ in starts:
        number = 1 if ids == "0-1" else 2
        assert f"child {number} (pid {pid}): shards {ids} of 4" in messages
    assert any("child 1 (shards 0-1) exited with status 1" in m for m in messages)


async def test_a_child_that_could_not_reach_its_database_or_discord_is_restarted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Status 2 from `newsbot run`: PostgreSQL or Discord out of reach for a moment.
    children = Children(tmp_path, monkeypatch, {"0-0": "unreachable-once", "1-1": "exit0"})
    async with FakeDiscord(token=TOKEN) as fake:
        status = await asyncio.wait_for(
            run_cluster(
                fake_config(fake), processes=2, shard_count=2, token=TOKEN,
                argv_for=children.argv_for(), timing=FAST, output=io.StringIO(),
            ),
            timeout=20,
        )  # fmt: skip
    assert status == 0
    assert [s[0] for s in children.starts()].count("0-0") == 2  # restarted once


async def test_a_child_with_a_setup_error_stops_the_cluster_with_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = {"0-1": "serve", "2-3": "serve", "4-4": "setup-error-when-others-ready"}
    children = Children(tmp_path, monkeypatch, plan)
    async with FakeDiscord(token=TOKEN) as fake:
        status = await asyncio.wait_for(
            run_cluster(
                fake_config(fake), processes=3, shard_count=5, token=TOKEN,
                argv_for=children.argv_for(), timing=FAST, output=io.StringIO(),
            ),
            timeout=20,
        )  # fmt: skip
    starts = children.starts()
    assert status == 2
    assert [s[0] for s in starts].count("4-4") == 1  # not restarted
    assert sorted(s[1] for s in children.lines("stopped")) == ["0-1", "2-3"]
    assert all(s[2] == "SIGTERM" for s in children.lines("stopped"))
    assert all(gone(pid) for _, pid, _, _ in starts)


async def test_logins_are_paced_by_max_concurrency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    children = Children(tmp_path, monkeypatch, {})
    window = 0.3
    async with FakeDiscord(token=TOKEN, shard_count=2) as fake:  # max_concurrency 1
        status = await run_cluster(
            fake_config(fake), processes=2, shard_count=None, token=TOKEN,
            argv_for=children.argv_for(), timing=Timing(identify_window=window),
            output=io.StringIO(),
        )  # fmt: skip
    (first, second) = sorted(children.starts(), key=lambda s: s[2])
    assert status == 0
    assert (first[0], second[0]) == ("0-0", "1-1")
    assert second[2] - first[2] >= window * 0.8


async def test_a_cluster_that_fits_one_login_window_starts_everyone_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    children = Children(tmp_path, monkeypatch, {})
    async with FakeDiscord(token=TOKEN, shard_count=3) as fake:
        fake.fail_next(
            "GET", r"/gateway/bot", 200, gateway_body(fake, shards=3, max_concurrency=16)
        )
        # With pacing, the second child would wait a minute and the timeout would fire.
        status = await asyncio.wait_for(
            run_cluster(
                fake_config(fake), processes=3, shard_count=None, token=TOKEN,
                argv_for=children.argv_for(), timing=Timing(identify_window=60),
                output=io.StringIO(),
            ),
            timeout=20,
        )  # fmt: skip
    assert status == 0
    assert sorted(s[0] for s in children.starts()) == ["0-0", "1-1", "2-2"]


LAUNCHER = """
import functools, logging, sys
from bot.cluster import Timing, child_argv, cluster_command
from bot.config import Config, DiscordConfig

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
api_base, token, script = sys.argv[1:]
sys.exit(cluster_command(
    Config(discord=DiscordConfig(api_base=api_base)),
    processes=2, shard_count=None, base_argv=[], token=token,
    argv_for=functools.partial(child_argv, [], program=(sys.executable, script)),
    timing=Timing(identify_window=0.01, stop_timeout=5),
))
"""


@pytest.mark.parametrize(("sig", "expected"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
async def test_a_signal_to_the_launcher_is_forwarded_and_everyone_exits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sig: signal.Signals, expected: int
) -> None:
    children = Children(tmp_path, monkeypatch, {"0-0": "serve", "1-1": "serve"})
    env = os.environ | {"PYTHONPATH": str(REPO)}
    async with FakeDiscord(token=TOKEN, shard_count=2) as fake:
        launcher = await asyncio.create_subprocess_exec(
            sys.executable, "-c", LAUNCHER, fake.api_base, TOKEN, str(children.script),
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 15
            while len(children.lines("ready")) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert len(children.lines("ready")) == 2
            launcher.send_signal(sig)
            _, err = await asyncio.wait_for(launcher.communicate(), timeout=15)
        finally:
            with contextlib.suppress(ProcessLookupError):
                launcher.kill()
    stderr = err.decode()
    starts = children.starts()
    assert launcher.returncode == expected, stderr
    assert sorted((s[1], s[2]) for s in children.lines("stopped")) == [
        ("0-0", sig.name),
        ("1-1", sig.name),
    ]
    assert all(gone(pid) for _, pid, _, _ in starts)
    for number, (ids, pid, _, _) in enumerate(sorted(starts), start=1):
        assert f"child {number} (pid {pid}): shards {ids} of 2" in stderr
        assert f"[shards {ids}] out from {ids}" in stderr
    assert children.lines("timeout") == []

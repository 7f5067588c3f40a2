"""bot.foreground: background work in a thread steps aside while replies are in flight."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bot import meaning
from bot.foreground import FOREGROUND, Foreground
from bot.loader import load_seeds
from bot.store import Store
from tests.test_loader import NOW, seed, write


def test_with_no_reply_in_flight_a_step_goes_on_at_once() -> None:
    gate = Foreground()
    assert gate.step_aside(at_most=5.0) == 0.0


def test_a_step_waits_for_the_reply_in_flight_to_end() -> None:
    gate = Foreground()
    waited: list[float] = []

    def background() -> None:
        waited.append(gate.step_aside(at_most=5.0))

    with gate.reply():
        assert gate.in_flight == 1
        worker = threading.Thread(target=background)
        worker.start()
        time.sleep(0.05)
        assert worker.is_alive()  # still stepping aside
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert gate.in_flight == 0
    assert 0.04 < waited[0] < 4.0


def test_a_step_waits_at_most_its_bound_under_constant_replies() -> None:
    gate = Foreground()
    waited: list[float] = []
    with gate.reply(), gate.reply():
        started = time.perf_counter()
        worker = threading.Thread(target=lambda: waited.append(gate.step_aside(at_most=0.03)))
        worker.start()
        worker.join(timeout=5)
        assert 0.03 <= waited[0] < 1.0
        assert time.perf_counter() - started < 1.0
        assert gate.in_flight == 2


def test_a_reply_that_fails_is_no_longer_in_flight() -> None:
    gate = Foreground()
    with pytest.raises(RuntimeError), gate.reply():
        raise RuntimeError("the reply failed")
    assert gate.in_flight == 0


def test_the_embedder_steps_aside_between_its_batches() -> None:
    try:
        embedder = meaning.embedder()
    except meaning.MeaningUnavailable as exc:  # pragma: no cover - the model ships with us
        pytest.fail(f"the model should be installed: {exc}")
    texts = [f"story number {n} about robots" for n in range(meaning.BATCH * 3 + 1)]
    calls: list[int] = []
    vectors = embedder.embed(texts, between=lambda: calls.append(1))
    assert len(calls) == 3  # between the four batches, not before the first
    assert (vectors == embedder.embed(texts)).all()  # the same vectors either way


async def test_a_change_is_applied_even_under_a_constant_stream_of_replies() -> None:
    gate = Foreground()
    stop = asyncio.Event()

    async def replies() -> None:
        while not stop.is_set():
            with gate.reply():
                await asyncio.sleep(0.005)

    stream = asyncio.create_task(replies())
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    waited = await asyncio.to_thread(lambda: [gate.step_aside(at_most=0.01) for _ in range(5)])
    stop.set()
    await stream
    assert all(w <= 0.5 for w in waited)
    assert time.perf_counter() - started < 2.0


async def test_work_on_the_loop_waits_for_the_reply_in_flight_then_goes_on() -> None:
    gate = Foreground()
    assert await gate.replies_first(at_most=5.0) == 0.0
    order: list[str] = []

    async def reply() -> None:
        with gate.reply():
            await asyncio.sleep(0.05)
            order.append("reply")

    answering = asyncio.create_task(reply())
    await asyncio.sleep(0)  # the reply is in flight now
    waited = await gate.replies_first(at_most=5.0)
    order.append("slice")
    await answering
    assert order == ["reply", "slice"]
    assert 0.04 < waited < 4.0
    # Under replies that never end, it goes on after its bound.
    with gate.reply():
        assert 0.03 <= await gate.replies_first(at_most=0.03) < 1.0


def test_on_the_thread_that_replies_a_step_never_waits() -> None:
    # Waiting there would wait for nothing: the replies in flight cannot move on meanwhile.
    gate = Foreground()
    with gate.reply():
        started = time.perf_counter()
        assert gate.step_aside(at_most=5.0) == 0.0
        assert time.perf_counter() - started < 1.0


async def test_a_change_read_back_while_a_reply_is_in_flight_is_whole(tmp_path: Path) -> None:
    # The read-back steps aside in its worker thread while this (the replying thread) has a
    # reply in flight; what it reads is the same.
    async with await Store.open(tmp_path / "news.sqlite3") as store:
        since = await store.corpus_generation()
        folder = tmp_path / "seeds"
        for n in range(3):
            write(folder / f"{n}.md", seed(f"https://example.com/{n}", f"Story {n}"))
        await load_seeds(store, [folder], now=NOW)
        with FOREGROUND.reply():
            changes = await store.corpus_changes(since)
        assert changes is not None
        assert sorted(d.url for d in changes.upserts) == [
            f"https://example.com/{n}" for n in range(3)
        ]


@pytest.mark.skipif(
    not Path("/proc/self/task").is_dir(), reason="counts threads through Linux's /proc"
)
def test_numpy_runs_its_products_in_the_calling_thread_only() -> None:
    # A BLAS thread per core spinning between calls would take CPU from the event loop.
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    script = (
        "import bot, numpy as np, os; a = np.ones((2000, 256), dtype=np.float32); a @ a.T; "
        "print(len(os.listdir('/proc/self/task')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "1"

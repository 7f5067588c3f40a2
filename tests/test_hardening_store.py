"""The store survives the process dying at the worst moment.

A child Python process does the work (a big seed load, a digest claim) and is killed with
SIGKILL at a point it reports itself, so the kill lands exactly where the test wants it: inside
the reload's open write transaction, in the middle of planning, right after a claim. The parent
then checks the database file the way the next ``newsbot run`` would find it.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import Config
from bot.library import Library
from bot.loader import load_seeds
from bot.store import Store
from tests.botharness import SHIPPED_SEEDS

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted(SHIPPED_SEEDS.glob("*.md"))
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
DAY = date(2026, 3, 2)
GENERATED = 3000

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

# The child: open the store and load a folder, or claim a digest, reporting on stdout where it
# is; it then parks (asyncio wait or a blocked loop) until the parent kills it there.
CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from datetime import datetime, timedelta
    import aiosqlite
    from bot.loader import load_seeds
    from bot.store import Store

    db, what, arg = sys.argv[1], sys.argv[2], sys.argv[3]
    now = datetime.fromisoformat(sys.argv[4])

    def say(word):
        print(word, flush=True)

    async def main():
        store = await Store.open(db)
        if what == "load-apply":
            original = aiosqlite.Connection.executemany

            async def executemany(self, sql, params):
                cursor = await original(self, sql, params)
                if sql.startswith("INSERT INTO articles"):
                    # Thousands of rows are written, the transaction is still open.
                    say("in-transaction")
                    await asyncio.Event().wait()
                return cursor

            aiosqlite.Connection.executemany = executemany
        if what.startswith("load"):
            def progress(done, total):
                if what == "load-plan" and done >= total // 3:
                    # On the loop's thread: the plan goes on in its worker thread, but the
                    # apply can never start; the kill lands mid-plan, every time.
                    say("planning")
                    time.sleep(3600)
            await load_seeds(store, [arg], now=now, progress=progress)
            say("loaded")
        elif what == "claim":
            assert await store.claim_digest(1, arg, now)
            say("claimed")
        elif what == "claim-post":
            assert await store.claim_digest(1, arg, now)
            await store.mark_digest_posted(1, arg, 42, now)
            say("posted")
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


@contextmanager
def child(*args: str) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


def wait_for_line(proc: subprocess.Popen[str], expected: str, timeout: float = 30.0) -> None:
    """Bounded wait for the child to print ``expected`` (it reports where it is)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or proc.poll() is not None:
            stderr = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
            raise AssertionError(f"the child never said {expected!r}; stderr: {stderr[-2000:]}")
        ready, _, _ = select.select([proc.stdout], [], [], remaining)
        if ready:
            line = proc.stdout.readline().strip()
            if line == expected:
                return
            if not line and proc.poll() is not None:
                continue


def sigkill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL


def integrity(db: Path) -> str:
    # Plain sqlite3, before any Store touches the file: what the crash left, as it is.
    connection = sqlite3.connect(db)
    try:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        connection.close()


TEMPLATE = """---
title: "Generated lighthouse story number {i}"
excerpt: "A keeper's log, entry {i}: the lamp was lit at dusk and the fog came in."
publishedDateTime: 2026-02-{day:02d}T10:00:00Z
webUrl: "https://generated.example/story-{i}/"
type: article
provider:
  name: Generated
  domain: generated.example
topics:
  - Lighthouses
related:
  - title: "Another lighthouse, {i}"
    webUrl: "https://generated.example/related-{i}/"
    publishedDateTime: 2026-02-01T10:00:00Z
    provider:
      name: Generated
      domain: generated.example
---
"""


def generate_seeds(folder: Path, count: int) -> None:
    """``count`` small valid seed files (a template with its title and URL changed)."""
    for i in range(count):
        text = TEMPLATE.format(i=i, day=1 + i % 28)
        (folder / f"gen-{i:05d}.md").write_text(text, encoding="utf-8")


async def previous_corpus(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A database holding the 5 shipped seeds, and their folder, now grown to 3,000+ files."""
    folder = tmp_path / "seeds"
    folder.mkdir()
    for path in SHIPPED:
        shutil.copy(path, folder / path.name)
    db = tmp_path / "news.sqlite3"
    async with await Store.open(db) as store:
        report = await load_seeds(store, [folder], now=NOW)
        assert len(report.added) == 5
        before = {a.url: a.title for a in await store.all_articles()}
    # The load that will be killed would add 3,000 articles, remove one and retitle another.
    generate_seeds(folder, GENERATED)
    (folder / SHIPPED[1].name).unlink()
    retitled = folder / SHIPPED[2].name
    text = retitled.read_text(encoding="utf-8")
    retitled.write_text(text.replace("title: ", "title: RETITLED ", 1), encoding="utf-8")
    return db, folder, before


async def assert_serves_exactly(db: Path, folder: Path, before: dict[str, str]) -> None:
    async with await Store.open(db) as store:
        after = {a.url: a.title for a in await store.all_articles()}
        assert after == before
        assert await store.count_articles() == 5
    config = Config(seeds_dir=folder, database=db)
    async with Library.open(config) as library:
        assert len(library.index) == 5
        hits = library.index.search("facial recognition", limit=10)
        assert hits, "the previous corpus must still be searchable"
        assert {h.url for h in hits} <= set(before)


@pytest.mark.parametrize(
    ("phase", "report"),
    [("load-apply", "in-transaction"), ("load-plan", "planning")],
    ids=["inside-the-apply-transaction", "while-planning"],
)
async def test_a_load_killed_midway_leaves_the_previous_corpus_intact_and_loadable(
    tmp_path: Path, phase: str, report: str
) -> None:
    db, folder, before = await previous_corpus(tmp_path)
    with child(str(db), phase, str(folder), NOW.isoformat()) as proc:
        wait_for_line(proc, report)
        sigkill(proc)

    assert integrity(db) == "ok"
    await assert_serves_exactly(db, folder, before)

    # Nothing is wedged (no stale lock, no half-applied bookkeeping): the same load now
    # completes, and it is the full plan, not a remainder of the killed one.
    async with await Store.open(db) as store:
        loaded = await load_seeds(store, [folder], now=NOW + timedelta(hours=1))
        assert len(loaded.added) == GENERATED
        assert len(loaded.removed) == 1 and len(loaded.updated) == 1
        assert await store.count_articles() == GENERATED + 4
    assert integrity(db) == "ok"


async def test_a_digest_claim_outlives_the_process_that_made_it(tmp_path: Path) -> None:
    db = tmp_path / "news.sqlite3"
    async with await Store.open(db):  # created and migrated before the child uses it
        pass
    with child(str(db), "claim", DAY.isoformat(), NOW.isoformat()) as proc:
        wait_for_line(proc, "claimed")
        sigkill(proc)
    assert integrity(db) == "ok"

    async with await Store.open(db) as store:
        record = await store.last_digest(1)
        assert record is not None
        assert (record.status, record.attempts, record.local_date) == ("claimed", 1, "2026-03-02")
        # While the claim is fresh, nobody else posts: the claimer may be posting right now.
        assert not await store.claim_digest(1, DAY, NOW + timedelta(minutes=5))
        # Once it is stale, its poster is presumed dead and the day is taken over, once.
        assert await store.claim_digest(1, DAY, NOW + timedelta(minutes=16))
        assert not await store.claim_digest(1, DAY, NOW + timedelta(minutes=16, seconds=1))
        record = await store.last_digest(1)
        assert record is not None and (record.status, record.attempts) == ("claimed", 2)


async def test_a_posted_digest_is_never_claimed_again_after_a_crash(tmp_path: Path) -> None:
    db = tmp_path / "news.sqlite3"
    async with await Store.open(db):
        pass
    with child(str(db), "claim-post", DAY.isoformat(), NOW.isoformat()) as proc:
        wait_for_line(proc, "posted")
        sigkill(proc)
    assert integrity(db) == "ok"

    async with await Store.open(db) as store:
        record = await store.last_digest(1, posted_only=True)
        assert record is not None and record.message_id == 42
        for later in (timedelta(minutes=1), timedelta(hours=1), timedelta(days=2)):
            assert not await store.claim_digest(1, DAY, NOW + later)
        assert (await store.last_digest(1)) == record

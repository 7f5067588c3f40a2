"""The saved index: a restart loads it and catches up with the change log instead of indexing
every article again; anything it cannot trust is ignored and the index is built instead."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bot import snapshot
from bot.articles import IndexDoc
from bot.library import Library
from bot.search import SearchIndex
from bot.store.postgres import PostgresStore
from bot.store.sqlite import SQLiteStore
from tests.botharness import make_config
from tests.test_index_changes import answers, make_doc, queries


def forbid_full_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, reading every article back (to build an index) fails the test."""

    async def read_everything(*_: object) -> None:
        raise AssertionError("the index was built again from every article")

    for backend in (SQLiteStore, PostgresStore):
        monkeypatch.setattr(backend, "index_snapshot", read_everything)


def test_a_loaded_index_answers_as_the_one_saved_and_takes_changes() -> None:
    rng = random.Random(4)
    docs = [make_doc(rng, n) for n in range(5000)]  # large enough for dense postings
    built = SearchIndex.build(docs).apply([make_doc(rng, 9000)], [docs[3].url])
    loaded = snapshot.load(snapshot.dump(built))
    asked = queries(random.Random(2))
    assert answers(loaded, asked) == answers(built, asked)
    extra = IndexDoc("https://e.com/z", "Zeppelin sighted", "", 5.0, None, "", "e.com", ("AI",))
    assert answers(loaded.apply([extra]), asked) == answers(built.apply([extra]), asked)
    assert loaded.apply([extra]).search("zeppelin")[0].url == "https://e.com/z"


def test_a_small_index_round_trips_too() -> None:
    rng = random.Random(5)
    docs = [make_doc(rng, n) for n in range(30)]
    built = SearchIndex.build(docs)
    asked = queries(random.Random(3))
    assert answers(snapshot.load(snapshot.dump(built)), asked) == answers(built, asked)
    empty = snapshot.load(snapshot.dump(SearchIndex.build([])))
    assert len(empty) == 0 and empty.search("anything") == []


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:40],
        lambda data: b"XXXX" + data[4:],
        lambda data: data[:4] + b"\x09" + data[5:],  # another format number
        lambda data: data[:12] + b"{" * 20 + data[32:],
        lambda data: b"",
    ],
)
def test_bytes_that_are_not_a_snapshot_are_refused(damage: object) -> None:
    data = snapshot.dump(SearchIndex.build([make_doc(random.Random(1), 1)]))
    with pytest.raises(snapshot.SnapshotError):
        snapshot.load(damage(data))  # type: ignore[operator]


async def test_a_restart_loads_the_saved_index_instead_of_building_one(
    tmp_path: Path, database: Path | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(tmp_path, database=database)
    async with Library.open(config) as first:
        await first.reload()
        assert await first.store.index_snapshot_generation() is not None

    forbid_full_reads(monkeypatch)
    async with Library.open(config) as again:
        assert len(again.index) == 5
        assert again.index.search("facial recognition")
        assert again.index_generation == await again.store.corpus_generation()


async def test_a_restart_catches_up_from_the_saved_index_with_the_change_log(
    tmp_path: Path, database: Path | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(tmp_path, database=database)
    async with Library.open(config) as first:
        await first.reload()
    async with Library.open(config, searchable=False) as cli:
        for seed in sorted(Path(config.seeds_dir).glob("*.md"))[:2]:
            seed.unlink()
        await cli.reload()  # one logged change after the saved index
    forbid_full_reads(monkeypatch)
    async with Library.open(config) as again:
        assert len(again.index) == 3 == await again.store.count_articles()


async def test_a_saved_index_the_log_no_longer_reaches_is_not_used(
    tmp_path: Path, database: Path | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.store import base

    monkeypatch.setattr(base, "LOG_GENERATIONS", 1)
    config = make_config(tmp_path, database=database)
    async with Library.open(config) as first:
        await first.reload()
        saved = await first.store.index_snapshot_generation()
    async with Library.open(config, searchable=False) as cli:
        seeds = sorted(Path(config.seeds_dir).glob("*.md"))
        seeds[0].unlink()
        await cli.reload()
        seeds[1].unlink()
        await cli.reload()
    async with Library.open(config) as again:
        assert len(again.index) == 3
        # It built the index and saved it in place of the stale one.
        assert await again.store.index_snapshot_generation() == again.index_generation > saved


async def test_a_damaged_saved_index_is_ignored(
    tmp_path: Path, database: Path | str, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(tmp_path, database=database)
    async with Library.open(config) as first:
        await first.reload()
        generation = await first.store.corpus_generation()
        async with first.store.session("damaging", write=True) as db:
            await db.execute("DELETE FROM index_snapshots")
        from datetime import UTC, datetime

        await first.store.save_index_snapshot(
            generation, snapshot.FORMAT, b"NBIX garbage", now=datetime.now(UTC)
        )
    async with Library.open(config) as again:
        assert len(again.index) == 5
    assert "could not use the saved index" in caplog.text


async def test_a_large_load_saves_the_index_for_the_bots(
    tmp_path: Path, database: Path | str
) -> None:
    config = make_config(tmp_path, database=database)
    async with Library.open(config, searchable=False) as cli:
        report = await cli.reload()
        assert report.articles_changed
        assert await cli.save_index_for_next_start()
        assert await cli.store.index_snapshot_generation() == await cli.store.corpus_generation()
        assert not await cli.save_index_for_next_start()  # current: nothing to do

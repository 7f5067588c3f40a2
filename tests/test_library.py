"""The library: the index served always matches what the database holds, whoever changed it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.library import Library, ReloadBusy
from bot.store import CorpusChanges, StoreError
from tests.botharness import make_config


async def test_a_reload_that_only_deletes_an_article_rebuilds_the_index(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    async with Library.open(config) as library:
        await library.reload()
        assert len(library.index) == 5
        broken = sorted(Path(config.seeds_dir).glob("*.md"))[0]
        url = next(
            h.url
            for h in library.index.search("amazon", limit=5)
            if h.title.startswith("Amazon and")
        )
        broken.write_text("no front matter any more\n", encoding="utf-8")

        report = await library.reload()

        # No file was added, updated or removed; one article was deleted all the same.
        assert (report.added, report.updated, report.removed) == ([], [], [])
        assert len(report.rejected) == 1
        assert len(library.index) == await library.store.count_articles() == 4
        assert library.index.find(url) is None


async def test_a_reload_without_changes_keeps_the_same_index(tmp_path: Path) -> None:
    async with Library.open(make_config(tmp_path)) as library:
        await library.reload()
        served = library.index
        await library.reload()
        assert library.index is served  # nothing changed: no rebuild, no swap


async def test_a_database_path_with_uri_characters_is_read_back(tmp_path: Path) -> None:
    # The index is rebuilt through a second, read-only connection opened by URI.
    database = tmp_path / "a#b?c%20d" / "news.sqlite3"
    async with Library.open(make_config(tmp_path, database=database)) as library:
        await library.reload()
        assert len(library.index) == 5
    assert database.exists()


async def test_a_failed_rebuild_is_retried_by_the_next_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(tmp_path)
    async with Library.open(config) as library:
        await library.reload()
        sorted(Path(config.seeds_dir).glob("*.md"))[0].unlink()
        real = library.store.corpus_changes
        calls = 0

        async def fails_once(since: int) -> CorpusChanges | None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise StoreError("reading articles failed: disk I/O error")
            return await real(since)

        monkeypatch.setattr(library.store, "corpus_changes", fails_once)
        with pytest.raises(StoreError):
            await library.reload()  # the store changed; the index could not follow
        assert len(library.index) == 5  # the old corpus is still served meanwhile

        report = await library.reload()  # nothing changes on disk this time...
        assert not report.articles_changed
        assert len(library.index) == await library.store.count_articles() == 4  # ...yet rebuilt


# --- several processes, one database ------------------------------------------------------------


def _new_seed(folder: Path, title: str) -> Path:
    seed = folder / "2026-01-01-new.md"
    seed.write_text(
        "---\n"
        f"title: {title}\n"
        "publishedDateTime: 2026-01-01T10:00:00Z\n"
        "webUrl: https://example.org/new-story\n"
        "---\n",
        encoding="utf-8",
    )
    return seed


async def test_another_processs_load_is_served_without_a_restart(
    tmp_path: Path, database: Path | str
) -> None:
    config = make_config(tmp_path, database=database, refresh_seconds=0.1)
    async with (
        Library.open(config, role="bot") as bot,
        Library.open(config, searchable=False, role="load") as cli,
    ):
        await bot.reload()
        watcher = asyncio.create_task(bot.watch())
        try:
            assert not bot.index.search("zeppelin harbour")
            _new_seed(Path(config.seeds_dir), "Zeppelin lands in the harbour")
            report = await cli.reload()  # as `newsbot load` does, in another process
            assert len(report.added) == 1
            async with asyncio.timeout(5):
                while not bot.index.search("zeppelin harbour"):
                    await asyncio.sleep(0.02)
            assert bot.index_generation == await bot.store.corpus_generation()
            assert len(bot.index) == 6
        finally:
            watcher.cancel()


async def test_a_change_elsewhere_is_noticed_long_before_the_periodic_check(
    tmp_path: Path, database: Path | str
) -> None:
    # refresh_seconds is only the fallback: PostgreSQL notifies, SQLite's data version is
    # polled, so a load in another process is served within a fraction of a second.
    config = make_config(tmp_path, database=database, refresh_seconds=600)
    async with (
        Library.open(config, role="bot") as bot,
        Library.open(config, searchable=False, role="load") as cli,
    ):
        await bot.reload()
        watcher = asyncio.create_task(bot.watch())
        try:
            await asyncio.sleep(0.2)  # the watcher is waiting
            _new_seed(Path(config.seeds_dir), "Zeppelin lands in the harbour")
            await cli.reload()
            async with asyncio.timeout(3):
                while not bot.index.search("zeppelin harbour"):
                    await asyncio.sleep(0.01)
        finally:
            watcher.cancel()


async def test_a_change_elsewhere_is_applied_without_reading_every_article_back(
    tmp_path: Path, database: Path | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(tmp_path, database=database)
    async with Library.open(config) as writer:
        await writer.reload()
        async with Library.open(config) as reader:
            assert len(reader.index) == 5

            async def read_everything(*_: object) -> None:
                raise AssertionError("the whole corpus was read back for a one-file change")

            monkeypatch.setattr(reader.store, "index_snapshot", read_everything)
            seed = _new_seed(Path(config.seeds_dir), "Zeppelin lands in the harbour")
            await writer.reload()
            assert await reader.sync_index()
            assert [h.title for h in reader.index.search("zeppelin harbour")] == [
                "Zeppelin lands in the harbour"
            ]
            seed.write_text(seed.read_text().replace("lands in", "leaves"), encoding="utf-8")
            await writer.reload()
            await reader.sync_index()
            assert [h.title for h in reader.index.search("zeppelin harbour")] == [
                "Zeppelin leaves the harbour"
            ]
            seed.unlink()
            await writer.reload()
            await reader.sync_index()
            assert reader.index.search("zeppelin harbour") == []
            assert len(reader.index) == 5
            assert reader.index_generation == await reader.store.corpus_generation()


async def test_an_index_older_than_the_change_log_is_rebuilt(
    tmp_path: Path, database: Path | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.store import base

    monkeypatch.setattr(base, "LOG_GENERATIONS", 1)
    config = make_config(tmp_path, database=database)
    async with Library.open(config) as writer:
        await writer.reload()
        async with Library.open(config) as reader:
            _new_seed(Path(config.seeds_dir), "Zeppelin lands in the harbour")
            await writer.reload()
            for seed in sorted(Path(config.seeds_dir).glob("*.md"))[:2]:
                seed.unlink()
            await writer.reload()  # two generations on: the first one's log is gone
            assert await reader.store.corpus_changes(reader.index_generation) is None
            assert await reader.sync_index()
            assert len(reader.index) == await reader.store.count_articles() == 4
            assert reader.index.search("zeppelin harbour")


async def test_a_reload_that_changes_nothing_still_serves_what_the_database_holds(
    tmp_path: Path, database: Path | str
) -> None:
    # The bot's own reload finds nothing to do, but another process loaded a file meanwhile:
    # the reply must not say "Now serving 5" while the database holds 6.
    config = make_config(tmp_path, database=database)
    extra = tmp_path / "extra"
    extra.mkdir()
    _new_seed(extra, "A story only the other process loaded")
    async with Library.open(config) as bot, Library.open(config, searchable=False) as cli:
        await bot.reload()
        await cli.reload([extra])
        report = await bot.reload()
        assert report.added == report.updated == []
        assert len(bot.index) == await bot.store.count_articles() == 6


async def test_two_reloads_at_once_in_two_processes_run_one_at_a_time(
    tmp_path: Path, database: Path | str
) -> None:
    config = make_config(tmp_path, database=database)
    async with (
        Library.open(config, role="bot") as first,
        Library.open(config, role="bot") as second,
    ):
        assert await first.store.take_lease("reload", now=first.clock()) is None
        with pytest.raises(ReloadBusy):
            await second.reload(wait=False)  # /seeds reload is told one is running
        waiting = asyncio.create_task(second.reload())  # `newsbot load` waits for it
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await first.store.release_lease("reload")
        report = await asyncio.wait_for(waiting, 10)
        assert len(report.added) == 5

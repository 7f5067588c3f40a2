"""The library: the index served always matches what the store holds after a reload."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.articles import Article
from bot.library import Library
from bot.store import StoreError
from tests.botharness import make_config


async def test_a_reload_that_only_deletes_an_article_rebuilds_the_index(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    async with Library.open(config) as library:
        await library.reload()
        assert len(library.index) == 5
        broken = sorted(Path(config.seeds_dir).glob("*.md"))[0]
        url = next(a.url for a in library.index.articles if a.title.startswith("Amazon and"))
        broken.write_text("no front matter any more\n", encoding="utf-8")

        report = await library.reload()

        # No file was added, updated or removed; one article was deleted all the same.
        assert (report.added, report.updated, report.removed) == ([], [], [])
        assert len(report.rejected) == 1
        assert len(library.index) == await library.store.count_articles() == 4
        assert library.index.get(url) is None


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
        real = library.store.read_all_articles_blocking
        calls = 0

        def fails_once() -> list[Article]:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise StoreError("reading articles failed: disk I/O error")
            return real()

        monkeypatch.setattr(library.store, "read_all_articles_blocking", fails_once)
        with pytest.raises(StoreError):
            await library.reload()  # the store changed; the index could not follow
        assert len(library.index) == 5  # the old corpus is still served meanwhile

        report = await library.reload()  # nothing changes on disk this time...
        assert not report.articles_changed
        assert len(library.index) == await library.store.count_articles() == 4  # ...yet rebuilt

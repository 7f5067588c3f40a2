"""bot.loader's listing shortcut: a reload that finds a folder's listing as a settled load left
it does nothing, and every change to the folder or the bookkeeping still gets the long way."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.loader import LoadReport, ReloadChanges, StaleReloadError, load_seeds
from bot.store import Store
from tests.test_load_changed import apply_op
from tests.test_loader import NOW, names, seed, seeds, store, titles, write

__all__ = ["seeds", "store"]  # the loader tests' fixtures, used here too

SHORTCUT = "nothing changed"  # what the loader logs when it takes the shortcut


async def load(
    store: Store, caplog: pytest.LogCaptureFixture, *paths: Path, **kwargs: object
) -> tuple[LoadReport, bool]:
    """A load, and whether it took the shortcut."""
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="bot.loader"):
        report = await load_seeds(store, list(paths), now=NOW, **kwargs)  # type: ignore[arg-type]
    return report, any(SHORTCUT in r.getMessage() for r in caplog.records)


def same_size_edit(path: Path, old: bytes, new: bytes) -> None:
    """Replace ``old`` by ``new`` (same length) in ``path`` and move its mtime on by 1 s."""
    assert len(old) == len(new)
    before = path.stat()
    path.write_bytes(path.read_bytes().replace(old, new))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))


async def test_an_unchanged_folder_is_loaded_the_short_way_and_says_the_same(
    store: Store, seeds: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, short = await load(store, caplog, seeds)
    assert not short and names(first.added) == ["a.md", "b.md", "c.txt"]
    # The first load left the folder settled: the next one needs neither rows nor reads.
    report, short = await load(store, caplog, seeds)
    assert short
    assert names(report.unchanged) == ["a.md", "b.md", "c.txt"]
    assert report.ok and not report.added and not report.updated and not report.removed
    assert not report.articles_changed
    assert report.unchanged == sorted(report.unchanged)
    again, short = await load(store, caplog, seeds)
    assert short and again.unchanged == report.unchanged


CHANGES: dict[str, Callable[[Path], object]] = {
    "same-size edit": lambda f: same_size_edit(f / "a.md", b"Alpha", b"Omega"),
    "touch": lambda f: os.utime(f / "b.md", ns=(1_000_000_000, 1_000_000_000)),
    "new file": lambda f: write(f / "d.md", seed("https://example.com/d", "Delta")),
    "new file in a new folder": lambda f: write(f / "new" / "e.md", seed("https://e.io/", "Echo")),
    "removed file": lambda f: (f / "b.md").unlink(),
    "renamed file": lambda f: (f / "a.md").rename(f / "sub" / "a2.md"),
    "broken file": lambda f: write(f / "sub" / "c.txt", "---\nbroken: [\n---\n"),
}


@pytest.mark.parametrize("change", list(CHANGES))
async def test_every_change_to_the_folder_takes_the_long_way(
    store: Store, seeds: Path, caplog: pytest.LogCaptureFixture, tmp_path: Path, change: str
) -> None:
    await load(store, caplog, seeds)
    CHANGES[change](seeds)
    report, short = await load(store, caplog, seeds)
    assert not short
    # It ends where a cold load of the folder as it is now would.
    async with await Store.open(tmp_path / "cold.sqlite3") as cold:
        expected = await load_seeds(cold, [seeds], now=NOW)
        assert await cold.all_articles() == await store.all_articles()
    assert names([p for p, _ in report.rejected]) == names([p for p, _ in expected.rejected])
    assert sorted(report.added + report.updated + report.unchanged) == sorted(
        expected.added + expected.updated + expected.unchanged
    )


async def test_a_hidden_file_changes_nothing(
    store: Store, seeds: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await load(store, caplog, seeds)
    write(seeds / ".draft.md", seed("https://example.com/x", "Hidden"))
    _report, short = await load(store, caplog, seeds)
    assert short


async def test_a_new_limit_or_new_topics_take_the_long_way(
    store: Store, seeds: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await load(store, caplog, seeds)
    report, short = await load(store, caplog, seeds, max_bytes=100)
    assert not short and len(report.rejected) == 3
    await load(store, caplog, seeds)  # settled again, at the default limit
    _report, short = await load(store, caplog, seeds, topics=("Robots",))
    assert not short


async def test_a_folder_with_a_rejected_file_reports_it_every_time(
    store: Store, seeds: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(seeds / "bad.md", "---\ntitle: [\n---\n")
    for _ in range(3):
        report, short = await load(store, caplog, seeds)
        assert not short
        assert names([p for p, _ in report.rejected]) == ["bad.md"]


async def test_a_duplicate_url_is_reported_every_time(
    store: Store, seeds: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(seeds / "z.md", seed("https://example.com/a", "Alpha again"))
    for _ in range(3):
        report, short = await load(store, caplog, seeds)
        assert not short and len(report.duplicates) == 1


async def test_a_url_taken_by_another_folder_is_noticed_by_the_next_load(
    store: Store, seeds: Path, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    await load(store, caplog, seeds)
    other = tmp_path / "other"
    write(other / "b.md", seed("https://example.com/b", "Bravo, newer", published="2025-01-01"))
    await load(store, caplog, other)
    # The other folder's load moved the bookkeeping on: this folder's fingerprint says nothing.
    report, short = await load(store, caplog, seeds)
    assert not short
    assert len(report.duplicates) == 1 and "other" in report.duplicates[0]
    assert (await titles(store))["b"] == "Bravo, newer"


async def test_a_folder_loaded_with_another_is_fingerprinted_apart(
    store: Store, seeds: Path, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    write(other / "x.md", seed("https://example.com/x", "X-ray"))
    await load(store, caplog, seeds, other)
    _report, short = await load(store, caplog, seeds, other)
    assert short
    # Loading one of the two alone is another listing: the long way, then settled.
    report, short = await load(store, caplog, seeds)
    assert not short and names(report.unchanged) == ["a.md", "b.md", "c.txt"]
    _report, short = await load(store, caplog, seeds)
    assert short


async def test_a_file_reached_through_a_symlink_is_looked_at_every_time(
    store: Store, seeds: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The link is met before the sub-folder holding its target: the scan does not stat it.
    (seeds / "link.md").symlink_to(seeds / "sub" / "c.txt")
    await load(store, caplog, seeds)
    same_size_edit(seeds / "sub" / "c.txt", b"Charlie", b"Charly ")
    report, short = await load(store, caplog, seeds)
    assert not short and names(report.updated) == ["c.txt"]
    assert (await titles(store))["c"] == "Charly"


async def test_a_file_named_directly_never_takes_the_shortcut(
    store: Store, seeds: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(2):
        report, short = await load(store, caplog, seeds, seeds / "a.md")
        assert not short and report.ok


async def test_forgetting_hashes_makes_the_folder_read_again(
    store: Store, seeds: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await load(store, caplog, seeds)
    await store.forget_file_hashes(str(seeds.resolve()))
    report, short = await load(store, caplog, seeds)
    # Every file is parsed again (and rewritten, as for a change of its source's topics).
    assert not short and names(report.updated) == ["a.md", "b.md", "c.txt"]


async def test_a_write_to_the_bookkeeping_alone_makes_a_plan_stale(
    store: Store, seeds: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await load(store, caplog, seeds)
    state = await store.reload_state()
    assert await store.folder_listings()
    # Another process records a touched file: no article changes, the corpus generation stays.
    row = state.files[str((seeds / "a.md").resolve())]
    other = await store.reload_state()
    touched = dataclasses.replace(row, mtime_ns=row.mtime_ns + 1)
    await store.apply_reload(ReloadChanges(upsert_files=[touched]), state=other, now=NOW)
    assert (await store.reload_state()).generation == state.generation
    assert await store.folder_listings() == {}  # recorded under the old serial
    with pytest.raises(StaleReloadError):
        await store.apply_reload(
            ReloadChanges(delete_files=[row.path]), state=state, now=NOW + timedelta(1)
        )


async def test_listings_found_with_an_outdated_plan_are_not_recorded(
    store: Store, seeds: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await load(store, caplog, seeds)
    stale = await store.reload_state()
    await store.forget_file_hashes(str(seeds.resolve()))  # moves the serial on
    await store.apply_reload(ReloadChanges(), state=stale, now=NOW, listings={"x": "y"})
    assert await store.folder_listings() == {}


# --- any sequence of changes: the short way says and stores what the long way does ------------

URLS = [f"https://example.com/{n}" for n in "pqrs"]
NAMES = ["a.md", "b.md", "sub/c.md", "sub/d.txt", ".e.md"]
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.sampled_from(NAMES), st.sampled_from(URLS),
                  st.integers(0, 3)),
        st.tuples(st.just("touch"), st.sampled_from(NAMES)),
        st.tuples(st.just("delete"), st.sampled_from(NAMES)),
        st.tuples(st.just("break"), st.sampled_from(NAMES)),
        st.just(("load",)),
    ),
    min_size=1,
    max_size=14,
)  # fmt: skip


def _summary(report: LoadReport) -> tuple[object, ...]:
    return (
        report.added, report.updated, report.unchanged, report.removed, report.rejected,
        report.duplicates, report.articles_changed,
    )  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(ops=OPS)
def test_any_sequence_of_changes_loads_as_the_long_way_would(ops: list[tuple[object, ...]]) -> None:
    async def run(root: Path) -> None:
        folder = root / "seeds"
        folder.mkdir()
        clock = [1_700_000_000_000_000_000]
        async with (
            await Store.open(root / "short.sqlite3") as short,
            await Store.open(root / "long.sqlite3") as long,
        ):

            async def no_listings() -> dict[str, str]:
                return {}

            long.folder_listings = no_listings  # type: ignore[method-assign]
            for op in [*ops, ("load",), ("load",)]:
                if op[0] != "load":
                    apply_op(folder, op, clock)
                else:
                    got = await load_seeds(short, [folder], now=NOW)
                    want = await load_seeds(long, [folder], now=NOW)
                    assert _summary(got) == _summary(want)
                    assert await short.all_articles() == await long.all_articles()

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(Path(tmp)))

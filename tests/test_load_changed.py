"""bot.loader.load_changed: a watcher's changed files loaded alone end where a load of the
whole folder would, without the folder's scan or every row."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.loader import CHANGED_AT_MOST, load_changed, load_seeds
from bot.store import Store
from tests.test_loader import NOW, names, seed, seeds, store, titles, write

__all__ = ["seeds", "store"]  # the loader tests' fixtures, used here too


@contextlib.contextmanager
def no_full_reads(store: Store) -> Iterator[None]:
    """Reading the whole bookkeeping fails inside: a load of changed files must not need it."""

    async def refused() -> None:
        raise AssertionError("read every seed_files row")

    store.reload_state = refused  # type: ignore[assignment,method-assign]
    try:
        yield
    finally:
        del store.reload_state  # the class's own again


async def test_an_edited_file_is_loaded_alone(store: Store, seeds: Path) -> None:
    await load_seeds(store, [seeds], now=NOW)
    write(seeds / "a.md", seed("https://example.com/a", "Alpha, edited"))
    with no_full_reads(store):
        report = await load_changed(store, seeds, [str(seeds / "a.md")], now=NOW)
    assert report is not None
    assert names(report.updated) == ["a.md"] and not report.unchanged
    assert report.articles_changed
    assert (await titles(store))["a"] == "Alpha, edited"


async def test_a_new_file_and_a_deleted_one(store: Store, seeds: Path) -> None:
    await load_seeds(store, [seeds], now=NOW)
    write(seeds / "sub" / "d.md", seed("https://example.com/d", "Delta"))
    (seeds / "b.md").unlink()
    with no_full_reads(store):
        changed = [str(seeds / "sub" / "d.md"), str(seeds / "b.md")]
        report = await load_changed(store, seeds, changed, now=NOW)
    assert report is not None
    assert names(report.added) == ["d.md"] and names(report.removed) == ["b.md"]
    assert sorted(await titles(store)) == ["a", "c", "d"]
    assert str((seeds / "b.md").resolve()) not in {r.path for r in await store.seed_files()}


async def test_a_file_that_takes_a_url_and_one_that_gives_it_back(
    store: Store, seeds: Path
) -> None:
    await load_seeds(store, [seeds], now=NOW)
    newer = seed("https://example.com/a", "Alpha, newer", published="2024-06-01T00:00:00Z")
    write(seeds / "z.md", newer)
    report = await load_changed(store, seeds, [str(seeds / "z.md")], now=NOW)
    assert report is not None and len(report.duplicates) == 1
    assert (await titles(store))["a"] == "Alpha, newer"
    # The winner goes: the older copy, untouched and not reported, provides the URL again.
    (seeds / "z.md").unlink()
    report = await load_changed(store, seeds, [str(seeds / "z.md")], now=NOW)
    assert report is not None and names(report.removed) == ["z.md"]
    assert (await titles(store))["a"] == "Alpha"


async def test_a_broken_file_is_rejected_and_its_article_goes(store: Store, seeds: Path) -> None:
    await load_seeds(store, [seeds], now=NOW)
    write(seeds / "b.md", "---\ntitle: [\n---\n")
    report = await load_changed(store, seeds, [str(seeds / "b.md")], now=NOW)
    assert report is not None and names([p for p, _ in report.rejected]) == ["b.md"]
    assert "b" not in await titles(store)


async def test_hidden_files_and_paths_elsewhere_are_ignored(
    store: Store, seeds: Path, tmp_path: Path
) -> None:
    await load_seeds(store, [seeds], now=NOW)
    write(seeds / ".draft.md", seed("https://example.com/x", "Hidden"))
    outside = write(tmp_path / "elsewhere.md", seed("https://example.com/y", "Elsewhere"))
    report = await load_changed(store, seeds, [str(seeds / ".draft.md"), str(outside)], now=NOW)
    assert report is not None and not (report.added or report.updated or report.unchanged)
    assert sorted(await titles(store)) == ["a", "b", "c"]


@pytest.mark.parametrize("what", ["a sub-folder", "a symlink", "a file of another kind"])
async def test_what_needs_the_whole_folder_is_left_to_it(
    store: Store, seeds: Path, what: str
) -> None:
    await load_seeds(store, [seeds], now=NOW)
    if what == "a sub-folder":
        write(seeds / "new" / "e.md", seed("https://example.com/e", "Echo"))
        changed = [seeds / "new"]
    elif what == "a symlink":
        (seeds / "link.md").symlink_to(seeds / "a.md")
        changed = [seeds / "link.md"]
    else:
        write(seeds / "notes.json", "{}")
        changed = [seeds / "notes.json"]
    before = await store.seed_files()
    assert await load_changed(store, seeds, [str(p) for p in changed], now=NOW) is None
    assert await store.seed_files() == before  # nothing written


async def test_a_burst_bigger_than_the_limit_is_left_to_a_whole_load(
    store: Store, seeds: Path
) -> None:
    changed = [str(seeds / f"{n}.md") for n in range(CHANGED_AT_MOST + 1)]
    assert await load_changed(store, seeds, changed, now=NOW) is None


async def test_a_folder_named_through_a_symlink_takes_the_watchers_paths(
    store: Store, seeds: Path, tmp_path: Path
) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(seeds)
    await load_seeds(store, [alias], now=NOW)
    write(seeds / "b.md", seed("https://example.com/b", "Bravo, edited"))
    report = await load_changed(store, alias, [str(alias / "b.md")], now=NOW)
    assert report is not None and names(report.updated) == ["b.md"]
    assert (await titles(store))["b"] == "Bravo, edited"


# --- any sequence of changes ends where whole-folder loads do -----------------------------------

URLS = [f"https://example.com/{n}" for n in "pqr"]
NAMES = ["a.md", "b.md", "sub/c.md", "sub/d.txt", ".e.md"]
OPS = st.lists(
    st.lists(
        st.one_of(
            st.tuples(st.just("write"), st.sampled_from(NAMES), st.sampled_from(URLS),
                      st.integers(0, 3)),
            st.tuples(st.just("delete"), st.sampled_from(NAMES)),
            st.tuples(st.just("break"), st.sampled_from(NAMES)),
            st.tuples(st.just("rename"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
            st.tuples(st.just("touch"), st.sampled_from(NAMES)),
        ),
        min_size=1,
        max_size=4,
    ),
    min_size=1,
    max_size=6,
)  # fmt: skip


def apply_op(folder: Path, op: tuple[object, ...], clock: list[int]) -> list[Path]:
    """Do ``op`` in ``folder`` (write, break, delete, rename, touch); the paths a watcher
    would report. ``clock`` gives each change an mtime of its own, whatever the clock's grain."""
    kind, *args = op
    path = folder / str(args[0])
    clock[0] += 1_000_000_000  # every change gets its own mtime, whatever the clock's grain
    if kind == "write":
        url, day = str(args[1]), int(args[2])  # type: ignore[call-overload]
        write(path, seed(url, f"Title {day}", published=f"2024-01-0{day + 1}T00:00:00Z"))
    elif kind == "break":
        write(path, "---\nbroken: [\n---\n")
    elif not path.exists():
        return []
    elif kind == "delete":
        path.unlink()
        return [path]
    elif kind == "rename":
        target = folder / str(args[1])
        target.parent.mkdir(parents=True, exist_ok=True)
        path.rename(target)
        return [path, target]
    os.utime(path, ns=(clock[0], clock[0]))
    return [path]


async def _state(store: Store) -> tuple[object, ...]:
    return (await store.all_articles(), await store.seed_files())


@settings(max_examples=40, deadline=None)
@given(bursts=OPS)
def test_any_bursts_of_changes_end_where_whole_folder_loads_do(
    bursts: list[list[tuple[object, ...]]],
) -> None:
    async def run(root: Path) -> None:
        folder = root / "seeds"
        write(folder / "a.md", seed(URLS[0], "Start"))
        clock = [1_700_000_000_000_000_000]
        async with (
            await Store.open(root / "changed.sqlite3") as changed,
            await Store.open(root / "whole.sqlite3") as whole,
        ):
            for store in (changed, whole):
                await load_seeds(store, [folder], now=NOW)
            for burst in bursts:
                seen: list[Path] = []
                for op in burst:
                    seen += apply_op(folder, op, clock)
                report = await load_changed(changed, folder, [str(p) for p in seen], now=NOW)
                if report is None:  # left to a whole load, as the bot then does
                    await load_seeds(changed, [folder], now=NOW)
                await load_seeds(whole, [folder], now=NOW)
                assert await _state(changed) == await _state(whole)

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(Path(tmp)))

"""One bad entry costs one rejection line, never the load, and never a forged report line.

Symlinks that cannot be resolved (a link to a zombie process's /proc/PID/exe raises from
os.path.realpath), loops, dangling links and links through a file are rejected by name with a
reason; file names holding control characters are escaped wherever a report line shows them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.cli import format_report
from bot.loader import ReloadChanges, check_seeds, load_seeds
from bot.store import Store
from tests.test_loader import NOW, names, seed, titles, write


@pytest.fixture
def zombie() -> Iterator[int]:
    """The pid of a child that has exited but is not reaped: its /proc/PID/exe is a symlink
    that lstat sees and readlink refuses (ENOENT), which is what made os.path.realpath raise."""
    if not Path("/proc/self/exe").is_symlink():
        pytest.skip("needs Linux's /proc")
    child = subprocess.Popen([sys.executable, "-c", ""])
    try:
        # Wait for the exit without reaping it (WNOWAIT): a zombie, deterministically.
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        exe = f"/proc/{child.pid}/exe"
        with pytest.raises(OSError):
            os.readlink(exe)
        yield child.pid
    finally:
        child.wait()


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    folder = tmp_path / "seeds"
    write(folder / "a.md", seed("https://example.com/a", "Alpha"))
    write(folder / "sub" / "b.md", seed("https://example.com/b", "Bravo"))
    return folder


def bad_links(seeds: Path, zombie: int) -> dict[str, str]:
    """Unusable symlinks of every kind in ``seeds``: link name -> the reason it is rejected."""
    exe = f"/proc/{zombie}/exe"
    (seeds / "zombie.md").symlink_to(exe)
    (seeds / "zombie-no-suffix").symlink_to(exe)  # could have been a folder: rejected too
    (seeds / "sub" / "via-zombie.md").symlink_to(seeds / "zombie.md")  # a chain ending there
    (seeds / "dangling.md").symlink_to(seeds / "missing.md")
    (seeds / "loop.md").symlink_to(seeds / "loop.md")
    (seeds / "ping.md").symlink_to(seeds / "pong.md")
    (seeds / "pong.md").symlink_to(seeds / "ping.md")
    (seeds / "through-a-file.md").symlink_to(seeds / "a.md" / "x.md")  # a file as a folder
    unresolvable = "cannot resolve symlink: No such file or directory"
    return {
        "dangling.md": "broken symlink",
        "loop.md": "symlink loop",
        "ping.md": "symlink loop",
        "pong.md": "symlink loop",
        "through-a-file.md": "broken symlink",
        "via-zombie.md": unresolvable,
        "zombie-no-suffix": unresolvable,
        "zombie.md": unresolvable,
    }


async def test_unusable_symlinks_are_rejected_by_name_and_the_rest_loads(
    tmp_path: Path, seeds: Path, zombie: int
) -> None:
    expected = bad_links(seeds, zombie)
    async with await Store.open(tmp_path / "news.sqlite3") as store:
        report = await load_seeds(store, [seeds], now=NOW)
        assert names(report.added) == ["a.md", "b.md"]
        assert await titles(store) == {"a": "Alpha", "b": "Bravo"}
    rejected = {Path(path).name: reason for path, reason in report.rejected}
    assert rejected.keys() == expected.keys()
    for path, reason in report.rejected:
        name = Path(path).name
        assert reason == f"{path}: {expected[name]}", name


def test_check_rejects_the_same_symlinks_without_a_traceback(seeds: Path, zombie: int) -> None:
    expected = bad_links(seeds, zombie)
    report = check_seeds([seeds])
    assert names(report.added) == ["a.md", "b.md"]
    assert sorted(names([p for p, _ in report.rejected])) == sorted(expected)


async def test_a_seeds_path_that_cannot_be_resolved_is_rejected_and_the_others_load(
    tmp_path: Path, seeds: Path, zombie: int
) -> None:
    link = tmp_path / "seeds-link"
    link.symlink_to(f"/proc/{zombie}/exe")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    async with await Store.open(tmp_path / "news.sqlite3") as store:
        report = await load_seeds(store, [link, loop, seeds], now=NOW)
        assert names(report.added) == ["a.md", "b.md"]
    assert report.rejected == [
        (str(loop), f"{loop}: symlink loop"),
        (str(link), f"{link}: no such file or folder"),
    ]


async def test_a_folder_of_proc_links_is_scanned_without_a_traceback(
    tmp_path: Path, zombie: int
) -> None:
    # The zombie's own /proc folder: its links (exe, cwd, root...) cannot be read.
    report = check_seeds([Path(f"/proc/{zombie}")])
    assert not report.added
    assert all("\n" not in reason for _, reason in report.rejected)


# --- names with control characters ----------------------------------------------------------


FORGED = "evil\n  rejected: /etc/passwd: forged.md"


async def test_a_file_name_with_a_newline_cannot_split_or_forge_report_lines(
    tmp_path: Path, seeds: Path
) -> None:
    broken = write(seeds / FORGED, "---\nbroken: [\n---\n")
    dup = write(
        seeds / f"dup\r\x1b[2K{FORGED}",
        seed("https://example.com/a", "Old", published="2020-01-01"),
    )
    async with await Store.open(tmp_path / "news.sqlite3") as store:
        report = await load_seeds(store, [seeds], now=NOW)
    # The raw path stays data; every line written for a person is one line.
    assert [p for p, _ in report.rejected] == [str(broken)]
    lines = [reason for _, reason in report.rejected] + report.duplicates
    assert all(line.isprintable() for line in lines)
    shown = str(broken).replace("\n", "\\n")
    assert report.rejected[0][1].startswith(f"{shown}:3: YAML error")
    winner = seeds / "a.md"
    assert report.duplicates == [
        f"same URL https://example.com/a in {repr(str(dup))[1:-1]} and {winner};"
        f" kept the newest, {winner}"
    ]
    printed = format_report(report).splitlines()
    assert len(printed) == 3  # the summary, one rejection, one duplicate
    assert [line.split(":", 1)[0] for line in printed[1:]] == ["  rejected", "  duplicate"]


# --- a rejection recorded by an older parser ------------------------------------------------


async def test_a_file_an_older_version_rejected_loads_without_being_touched(
    tmp_path: Path, seeds: Path
) -> None:
    # Before, a URL with a space was refused; the rejection is in seed_files, and the file has
    # not changed since (same size, mtime and sha256). The next load must still accept it.
    spaced = write(seeds / "spaced.md", seed("https://apnews.com/Business Wire/5054"))
    async with await Store.open(tmp_path / "news.sqlite3") as store:
        await load_seeds(store, [seeds], now=NOW)
        state = await store.reload_state()
        row = state.files[str(spaced)]
        assert row.url == "https://apnews.com/Business%20Wire/5054"
        old_reason = (
            f"{spaced}: 'webUrl' is not an http(s) URL: 'https://apnews.com/Business Wire/5054'"
        )
        changes = ReloadChanges(
            upsert_files=[replace(row, url=None, error=old_reason)],
            delete_articles=[row.url],
        )
        await store.apply_reload(changes, state=state, now=NOW)
        assert "5054" not in await titles(store)  # what the older version left

        report = await load_seeds(store, [seeds], now=NOW)
        assert report.ok
        assert names(report.added) == ["spaced.md"]
        assert (await titles(store))["5054"] == "A title"

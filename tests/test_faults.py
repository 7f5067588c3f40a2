"""Faults an unlucky operator or a hostile user runs into: each one reproduced, then fixed.

Full disks, read-only files and folders, databases with impossible schema versions, old
buttons after a database was rebuilt, a refused digest channel that gets fixed, a search
while another process is still loading. Through the real bot and the real `newsbot` process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.config import DigestConfig, DiscordConfig
from bot.store import Store
from tests.botharness import (
    ALICE,
    BOB,
    GENERAL,
    GUILD_ID,
    MODERATOR,
    NEWS_CHANNEL,
    REPO,
    SHIPPED_SEEDS,
    Clock,
    buttons_of,
    running_bot,
)
from tests.fakediscord import EPHEMERAL, MANAGE_GUILD, PLAIN_MEMBER, FakeChannel, FakeGuild

MODERATE = {"user": MODERATOR, "permissions": PLAIN_MEMBER | MANAGE_GUILD}
DIGEST_DUE = datetime(2026, 3, 2, 9, 1, tzinfo=UTC)


def newsbot(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "NEWSBOT_CONFIG"}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def seeds_copy(tmp_path: Path) -> Path:
    seeds = tmp_path / "seeds"
    if not seeds.exists():
        shutil.copytree(SHIPPED_SEEDS, seeds)
    return seeds


@contextlib.contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """Make ``path`` (a file or folder) unwritable for this process, even as root.

    Root ignores permission bits, so there the file is made immutable (chattr +i), which the
    kernel refuses to let anyone write; everyone else gets the permission bits taken away.
    """
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        mode = path.stat().st_mode
        path.chmod(mode & ~0o222)
        try:
            yield
        finally:
            path.chmod(mode)


# --- the database file -----------------------------------------------------------------------


@pytest.mark.parametrize("version", [-5, -1, -3])
def test_a_schema_version_newsbot_never_writes_is_refused_in_one_line(
    tmp_path: Path, version: int
) -> None:
    database = tmp_path / "odd.sqlite3"
    db = sqlite3.connect(database)
    if version != -3:  # -3: an empty file with only the odd version
        db.execute("CREATE TABLE searches (x)")
    db.execute(f"PRAGMA user_version = {version}")
    db.commit()
    db.close()
    for _ in range(2):  # the same answer every time: nothing was changed by the first
        result = newsbot("--db", str(database), "load", str(seeds_copy(tmp_path)))
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert f"schema version {version} is not one newsbot knows" in lines[0]
        assert str(database) in lines[0]
    db = sqlite3.connect(database)
    assert db.execute("PRAGMA user_version").fetchone() == (version,)
    db.close()


def test_a_read_only_database_file_is_named_and_still_searchable(tmp_path: Path) -> None:
    database = tmp_path / "news.sqlite3"
    seeds = seeds_copy(tmp_path)
    assert newsbot("--db", str(database), "load", str(seeds)).returncode == 0
    with unwritable(database):
        for _ in range(2):  # the second run must not blame a concurrent change
            result = newsbot("--db", str(database), "load", str(seeds))
            assert result.returncode == 2
            assert result.stderr.strip() == (
                f"newsbot: error: {database}: this user may not write the database file (it "
                "needs read and write permission); fix its permissions, or run newsbot as "
                "the file's owner"
            )
        # Reading needs no write permission.
        found = newsbot("--db", str(database), "search", "--json", "facial recognition")
        assert found.returncode == 0, found.stderr
        assert "facial recognition" in found.stdout.lower()


def test_a_writable_file_in_a_folder_newsbot_may_not_write_names_the_folder(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    database = folder / "news.sqlite3"
    assert newsbot("--db", str(database), "load", str(seeds_copy(tmp_path))).returncode == 0
    assert not (folder / "news.sqlite3-wal").exists()  # a clean close removes them
    with unwritable(folder):
        result = newsbot("--db", str(database), "load", str(seeds_copy(tmp_path)))
    assert result.returncode == 2
    assert f"{folder}: this user may not write in the database's folder" in result.stderr
    assert "news.sqlite3-wal" in result.stderr


def test_an_empty_database_path_is_a_usage_error(tmp_path: Path) -> None:
    result = newsbot("--db", "", "load", cwd=tmp_path)
    assert result.returncode == 2
    assert "--db needs a database file or a postgresql:// URL" in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing created, nothing loaded


async def test_a_search_during_another_processs_first_load_waits_and_says_so(
    tmp_path: Path,
) -> None:
    database = tmp_path / "news.sqlite3"
    seeds_copy(tmp_path)
    async with await Store.open(database) as loader:
        # Another process is loading (it holds the reload lease); nothing is committed yet.
        assert await loader.take_lease("reload", now=datetime.now(UTC)) is None
        search = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "--db", str(database), "search", "facial recognition",
            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        # It says why it waits (however long its start takes on a busy machine) and waits.
        assert search.stderr is not None
        said = b""
        async with asyncio.timeout(60):
            while b"another process is loading the seeds" not in said:
                line = await search.stderr.readline()
                assert line, f"the search ended without saying it waits: {said.decode()}"
                said += line
        await asyncio.sleep(1)
        assert search.returncode is None  # waiting, not answering "no hits"
        await loader.release_lease("reload")
    out, err = await asyncio.wait_for(search.communicate(), 60)
    assert search.returncode == 0, (said + err).decode()
    assert "facial recognition" in out.decode().lower()


# --- full disk -------------------------------------------------------------------------------


async def test_news_answers_without_buttons_when_the_search_cannot_be_saved(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_bot(tmp_path) as harness:
        assert harness.library is not None
        store = harness.library.store
        # SQLite's "database or disk is full" (SQLITE_FULL), as on a full disk: the file may
        # not grow by one more page (a limit of the connection that writes).
        async with store.session("capping the file", write=True) as db:
            pages = await db.fetchval("PRAGMA page_count")
            await db.fetchval(f"PRAGMA max_page_count = {pages}")
        replies = [await harness.news("facial recognition", user=ALICE) for _ in range(30)]
        assert all(r["type"] == 4 and r["data"]["embeds"] for r in replies)
        assert not any("went wrong" in (r["data"].get("content") or "") for r in replies)
        # Each answer goes out with its buttons; one whose search could not be saved then
        # loses them (its buttons would only say the results expired).
        fake = harness.fake
        edit = await fake.wait_for_request(
            lambda r: r.method == "PATCH" and r.path.endswith("/messages/@original"), timeout=10
        )
        assert edit.json["components"] == [], "the file never filled up"
        notes = [r for r in caplog.records if "cannot save searches" in r.getMessage()]
        assert len(notes) == 1  # logged once, not once per /news


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small file system to fill needs root")
def test_search_and_digest_work_on_a_full_disk(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], check=True)
    try:
        database = disk / "news.sqlite3"
        assert newsbot("--db", str(database), "load", str(seeds_copy(tmp_path))).returncode == 0
        with contextlib.suppress(OSError), open(disk / "filler", "wb") as filler:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        found = newsbot("--db", str(database), "search", "facial recognition")
        assert found.returncode == 0, found.stderr
        assert "facial recognition" in found.stdout.lower()
        preview = newsbot("--db", str(database), "digest", "--since", "2000-01-01")
        assert preview.returncode == 0, preview.stderr
        assert "Traceback" not in preview.stderr
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


# --- buttons and digests ---------------------------------------------------------------------


async def test_old_buttons_never_open_a_strangers_search_after_the_database_is_rebuilt(
    tmp_path: Path,
) -> None:
    async with running_bot(tmp_path) as harness:
        alices = await harness.news("facial recognition", user=ALICE)
        old_related = buttons_of(alices)[-1]["custom_id"]
        await harness.stop()
        for leftover in tmp_path.glob("newsbot.sqlite3*"):
            leftover.unlink()  # the operator starts again from an empty database
        await harness.start()
        await harness.news("congress police", user=BOB)
        click = await harness.fake.click(old_related, user=ALICE)
        body = (await harness.fake.wait_for_callback(click)).json
        assert body["data"]["flags"] & EPHEMERAL
        assert "These results have expired" in body["data"]["content"]


def _digest(**changes: Any) -> DigestConfig:
    return DigestConfig(channels={GUILD_ID: GENERAL}, check_seconds=0.05, **changes)


async def test_a_refused_digest_is_posted_once_in_the_new_channel_a_moderator_picks(
    tmp_path: Path,
) -> None:
    clock = Clock(DIGEST_DUE - timedelta(minutes=5))
    async with running_bot(tmp_path, clock=clock, digest=_digest()) as harness:
        fake = harness.fake
        forbidden = {"code": 50013, "message": "Missing Permissions"}
        fake.fail_next("POST", rf"/channels/{GENERAL}/messages", 403, forbidden, times=1000)
        clock.now = DIGEST_DUE
        await harness.ticks(3)
        tries = [r for r in fake.requests if r.path == f"/channels/{GENERAL}/messages"]
        assert len(tries) == 1 and tries[0].status == 403

        await harness.restart()  # the refusal is remembered: no retry storm after a restart
        await harness.ticks(3)
        tries = [r for r in fake.requests if r.path == f"/channels/{GENERAL}/messages"]
        assert len(tries) == 1

        body = await harness.command("digest", "channel", {"channel": NEWS_CHANNEL}, **MODERATE)
        assert "will be posted in" in body["data"]["content"]
        await harness.ticks(3)
        assert len(fake.messages_in(NEWS_CHANNEL)) == 1
        await harness.restart()
        await harness.ticks(3)
        assert len(fake.messages_in(NEWS_CHANNEL)) == 1  # once, across restarts too


async def test_a_channel_whose_post_hangs_does_not_hold_back_the_other_servers(
    tmp_path: Path,
) -> None:
    servers = [
        FakeGuild(n << 22, f"server {n}", [FakeChannel((n << 22) + 1, "news")]) for n in range(3, 8)
    ]
    channels = {g.id: g.channels[0].id for g in servers}
    clock = Clock(DIGEST_DUE - timedelta(minutes=5))
    digest = DigestConfig(channels=channels, check_seconds=0.05)
    discord_config = DiscordConfig(guild_ids=())
    async with running_bot(
        tmp_path, clock=clock, guilds=servers, digest=digest, discord=discord_config
    ) as harness:
        hold = harness.fake.hold_next("POST", r"/channels/\d+/messages")  # the first post
        clock.now = DIGEST_DUE
        await asyncio.wait_for(hold.reached.wait(), 10)
        slow = next(c for c in channels.values() if hold.path == f"/channels/{c}/messages")
        # While that post waits for Discord's answer, every other server gets its digest.
        async with asyncio.timeout(10):
            while not all(harness.fake.messages_in(c) for c in channels.values() if c != slow):
                await asyncio.sleep(0.02)
        hold.release.set()
        await harness.ticks(3)
        assert all(len(harness.fake.messages_in(c)) == 1 for c in channels.values())

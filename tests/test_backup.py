"""``newsbot backup``: a consistent copy of a live database; refusals in one line, exit 2."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.botharness import REPO, running_bot
from tests.test_cli import SHIPPED_SEEDS, newsbot, one_error_line


def rows(database: Path, table: str) -> int:
    with sqlite3.connect(database) as db:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


async def test_a_backup_of_the_running_bots_database_holds_what_is_still_in_the_wal(
    tmp_path: Path,
) -> None:
    async with running_bot(tmp_path) as harness:
        await harness.news("facial recognition")  # the saved search is a fresh write
        database = harness.config.database
        async with asyncio.timeout(10):  # saved just after the answer went out
            while not rows(database, "searches"):
                await asyncio.sleep(0.02)
        searches = rows(database, "searches")
        # The bot's writes are still in the -wal (no checkpoint yet): copying the main file
        # alone would lose them.
        assert Path(f"{database}-wal").stat().st_size > 0
        target = tmp_path / "backup.sqlite3"
        env = {k: v for k, v in os.environ.items() if k != "NEWSBOT_CONFIG"}
        env["PYTHONPATH"] = str(REPO)
        # A subprocess, as an operator runs it, while this loop keeps serving the bot.
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "--db", str(database), "backup", str(target),
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        assert out.decode().startswith(f"backed up {database} to {target} (")
        # The bot still answers after (and was never blocked by) the backup.
        assert (await harness.news("microsoft"))["type"] == 4

    assert rows(target, "articles") == 5
    assert rows(target, "searches") == searches
    with sqlite3.connect(target) as db:
        # One self-contained file: no -wal needed beside it.
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert sorted(p.name for p in tmp_path.glob("backup.sqlite3*")) == ["backup.sqlite3"]


def test_an_existing_file_is_kept_unless_force(tmp_path: Path) -> None:
    home = tmp_path.resolve()
    (home / "seeds").mkdir()
    (home / "seeds" / "one.md").write_bytes(next(SHIPPED_SEEDS.glob("*.md")).read_bytes())
    assert newsbot("load", cwd=home).status == 0
    target = home / "old.sqlite3"
    target.write_text("yesterday's backup")

    refused = newsbot("backup", "old.sqlite3", cwd=home)
    assert one_error_line(refused) == (
        "newsbot: error: old.sqlite3 exists: pass --force to overwrite it"
    )
    assert target.read_text() == "yesterday's backup"

    forced = newsbot("backup", "--force", "old.sqlite3", cwd=home)
    assert forced.status == 0, forced
    assert rows(target, "articles") == 1
    assert [p.name for p in home.glob(".old.sqlite3*")] == []  # no partial copy left


def test_missing_database_and_missing_folder_are_one_line_errors(tmp_path: Path) -> None:
    missing = newsbot("--db", "absent.sqlite3", "backup", "copy.sqlite3", cwd=tmp_path)
    assert "no database at absent.sqlite3" in one_error_line(missing)
    assert not (tmp_path / "absent.sqlite3").exists()  # not created by looking
    sqlite3.connect(tmp_path / "real.sqlite3").close()
    nowhere = newsbot("--db", "real.sqlite3", "backup", "no/such/copy.sqlite3", cwd=tmp_path)
    assert "its folder no/such does not exist" in one_error_line(nowhere)


def test_a_postgresql_database_is_sent_to_pg_dump_without_its_password(tmp_path: Path) -> None:
    url = "postgresql://news:s3cret@db.example:5433/newsbot"
    by_option = newsbot("--db", url, "backup", "news.dump", cwd=tmp_path)
    config = tmp_path / "newsbot.yaml"
    config.write_text("database: postgres://news@db.example/newsbot\n")
    by_config = newsbot("--config", str(config), "backup", "news.dump", cwd=tmp_path)

    line = one_error_line(by_option)
    assert "PostgreSQL" in line
    assert (
        "pg_dump --format=custom --file=news.dump 'postgresql://news@db.example:5433/newsbot'"
        in line
    )
    assert "s3cret" not in line
    assert "pg_dump --format=custom --file=news.dump 'postgres://news@db.example/newsbot'" in (
        one_error_line(by_config)
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["newsbot.yaml"]

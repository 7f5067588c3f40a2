"""``newsbot backup FILE``: a consistent copy of the live SQLite database.

SQLite's online backup API (the stdlib's ``Connection.backup``) copies the database as one
read transaction sees it, WAL content included, while the bot goes on writing: copying the
file with ``cp`` would miss what is still in ``-wal`` or catch a write half done.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .store import is_database_url
from .store.base import redact


class BackupError(Exception):
    """Why no backup was written; ``str()`` is one line naming the file."""


def postgres_url(database: Path | str) -> str | None:
    """The PostgreSQL URL the configured database names, without its password; else None."""
    return redact(str(database), mark=False) if is_database_url(database) else None


def backup_database(database: Path | str, target: Path, *, force: bool = False) -> int:
    """Copy the SQLite database at ``database`` to ``target``; the size written, in bytes.

    The copy is written beside ``target`` and renamed into place, so ``target`` is either the
    old file or a whole backup, never half of one. Raises :class:`BackupError`.
    """
    url = postgres_url(database)
    if url is not None:
        raise BackupError(
            f"the database is PostgreSQL ({url}): newsbot backup copies SQLite only; use "
            f"pg_dump --format=custom --file={target} '{url}' (the password from PGPASSWORD "
            "or ~/.pgpass; restore with pg_restore)"
        )
    source = Path(database)
    if not source.is_file():
        raise BackupError(f"no database at {source} (see --db and the config's `database`)")
    if target.exists() and not force:
        raise BackupError(f"{target} exists: pass --force to overwrite it")
    if target.exists() and target.resolve() == source.resolve():
        raise BackupError(f"{target} is the database itself: back it up to another file")
    if not target.parent.is_dir():
        raise BackupError(f"{target}: its folder {target.parent} does not exist")
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        _copy(source, partial)
        os.replace(partial, target)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot back up {source}: {exc}") from None
    except OSError as exc:
        raise BackupError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return target.stat().st_size


def _copy(source: Path, partial: Path) -> None:
    # mode=ro: a typo in the path must not create an empty database. as_uri() escapes the
    # '#' and '?' a file name may hold, which a URI would otherwise take as its own.
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    try:
        partial.unlink(missing_ok=True)
        dst = sqlite3.connect(partial)
        try:
            # All pages in one step: one read transaction, so the copy is one consistent state.
            # (Copying in steps restarts whenever the bot commits in between.) Readers do not
            # block the bot's writes in WAL mode, so the bot is not held up meanwhile.
            src.backup(dst)
            # A single self-contained file, not a WAL database that needs its -wal beside it.
            dst.execute("PRAGMA journal_mode = DELETE")
            (verdict,) = dst.execute("PRAGMA quick_check").fetchone()
            if verdict != "ok":
                raise sqlite3.DatabaseError(f"the copy failed its check: {verdict}")
        finally:
            dst.close()
    finally:
        src.close()

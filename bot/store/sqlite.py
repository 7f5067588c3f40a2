"""SQLite: the embedded default. One file, WAL, two connections per process.

* Every write from one process goes through one aiosqlite connection and one
  :class:`asyncio.Lock`, so a write from another task can never slip into the middle of a
  reload's transaction. Reads go through a second, read-only connection with a lock of its
  own: WAL gives each read transaction a consistent snapshot, so a read never sees half of a
  write, and it never queues behind a write that waits for another process's write lock (a
  ``newsbot load`` committing 1,000 articles holds it for a few hundred ms, and every /news
  would have waited that long to read its articles).
* WAL lets other processes (a CLI ``newsbot load``, a second bot) read and write beside it;
  ``BEGIN IMMEDIATE`` serialises writers, and a busy timeout makes them wait for each other.
* Schema changes are the numbered scripts in :data:`MIGRATIONS`; ``PRAGMA user_version``
  records how many have been applied. Each runs in its own ``BEGIN IMMEDIATE`` transaction
  together with the version bump, so a crash mid-migration leaves the previous version intact.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from ..articles import IndexDoc
from ..foreground import FOREGROUND
from .base import (
    CORPUS_STATE_SQL,
    FOLLOWS_SCHEMA,
    LISTINGS_SCHEMA,
    SOURCES_SCHEMA,
    CorpusChanges,
    Session,
    Store,
    StoreError,
    change_queries,
    changes_from,
    index_docs,
    index_queries,
    iso,
    log_reaches,
)
from .base import split_statements as _split

T = TypeVar("T")

#: How often a process waiting for another's change asks SQLite whether one committed.
CHANGE_POLL_SECONDS = 0.05

log = logging.getLogger(__name__)

# How long a connection waits for another process's write lock before giving up.
BUSY_TIMEOUT_MS = 5000

# --- schema -----------------------------------------------------------------------------------

_MIGRATION_1 = """
-- One row per URL: the article as parsed from the seed file that won it (see bot.loader).
CREATE TABLE articles (
    url             TEXT PRIMARY KEY,
    title           TEXT NOT NULL,
    excerpt         TEXT NOT NULL,
    published       TEXT NOT NULL,   -- ISO 8601, UTC
    provider        TEXT NOT NULL,
    provider_domain TEXT NOT NULL,
    provider_icon   TEXT,
    image_url       TEXT,
    quality         REAL,
    kind            TEXT NOT NULL,
    first_seen      TEXT NOT NULL,   -- when this URL first entered the store; kept on updates
    source_file     TEXT NOT NULL    -- seed_files.path of the file that provides it
);
-- The daily digest asks for "articles first seen since ...".
CREATE INDEX articles_by_first_seen ON articles (first_seen);

CREATE TABLE article_topics (
    url      TEXT NOT NULL REFERENCES articles (url) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    topic    TEXT NOT NULL,
    PRIMARY KEY (url, position)
) WITHOUT ROWID;

CREATE TABLE related_links (
    url             TEXT NOT NULL REFERENCES articles (url) ON DELETE CASCADE,
    position        INTEGER NOT NULL,
    title           TEXT NOT NULL,
    link_url        TEXT NOT NULL,
    provider        TEXT NOT NULL,
    provider_domain TEXT NOT NULL,
    published       TEXT,            -- ISO 8601, UTC, or NULL when the item had no usable date
    excerpt         TEXT NOT NULL,
    image_url       TEXT,
    PRIMARY KEY (url, position)
) WITHOUT ROWID;  -- clustered by article: reading the corpus reads it in key order

-- Bookkeeping for incremental reloads: one row per seed file seen.
CREATE TABLE seed_files (
    path     TEXT PRIMARY KEY,       -- absolute, resolved
    folder   TEXT,                   -- the folder it was loaded from; NULL if given directly
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256   TEXT,                   -- NULL when the file was never read (too big, unreadable)
    url      TEXT,                   -- the URL the file holds (it may have lost it to a duplicate)
    error    TEXT,                   -- why the file was rejected (str(SeedError)), else NULL
    CHECK (url IS NULL OR error IS NULL)
);
"""

_MIGRATION_2 = """
CREATE TABLE guild_settings (
    guild_id          INTEGER PRIMARY KEY,
    digest_channel_id INTEGER,
    digest_time       TEXT CHECK (digest_time GLOB '[0-2][0-9]:[0-5][0-9]'),  -- 'HH:MM'
    digest_timezone   TEXT,          -- IANA name, e.g. 'Europe/Paris'
    digest_enabled    INTEGER NOT NULL DEFAULT 0 CHECK (digest_enabled IN (0, 1)),
    updated_at        TEXT NOT NULL
);

-- One row per guild and local day: the claim that makes a day's digest post at most once.
CREATE TABLE digest_log (
    guild_id   INTEGER NOT NULL,
    local_date TEXT NOT NULL CHECK (local_date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'),
    status     TEXT NOT NULL CHECK (status IN ('claimed', 'posted', 'failed')),
    claimed_at TEXT NOT NULL,
    posted_at  TEXT,
    failed_at  TEXT,
    message_id INTEGER,
    attempts   INTEGER NOT NULL DEFAULT 1,
    error      TEXT,
    PRIMARY KEY (guild_id, local_date)
);
"""

_MIGRATION_3 = """
-- A /news answer's hits, so its buttons still page after a restart: the button's custom_id
-- holds only the id (Discord allows 100 characters; a query may be longer).
CREATE TABLE searches (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL,   -- who asked: only they may page
    query      TEXT NOT NULL,
    urls       TEXT NOT NULL,      -- JSON array of the hits' URLs, best first
    created_at TEXT NOT NULL
);
CREATE INDEX searches_by_created_at ON searches (created_at);
"""

_MIGRATION_4 = """
-- The corpus generation: bumped by every reload that changes an article, so every process
-- (bots, the CLI) can tell whether its index is current, and a reload plan whether it is stale.
CREATE TABLE corpus_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL,
    changed_at TEXT
);
INSERT INTO corpus_state (id, generation) VALUES (1, 1);

-- Each running process beats here; a claim whose holder stopped beating is taken over.
CREATE TABLE workers (
    holder     TEXT PRIMARY KEY,    -- host:pid:random, as Store.holder
    role       TEXT NOT NULL,       -- 'bot', 'load'
    started_at TEXT NOT NULL,
    beat_at    REAL NOT NULL        -- the database's clock, seconds since the epoch
);

-- Jobs one process at a time may run (the reload): the row names who runs it.
CREATE TABLE leases (
    name     TEXT PRIMARY KEY,
    holder   TEXT NOT NULL,
    taken_at TEXT NOT NULL
);

-- Who claimed a digest day: a claim of a holder that died is taken over within a minute.
ALTER TABLE digest_log ADD COLUMN holder TEXT;
-- 1 when the channel refused the day's digest: not retried until a moderator changes the
-- channel or asks with /digest now.
ALTER TABLE digest_log ADD COLUMN final INTEGER NOT NULL DEFAULT 0;
"""

_MIGRATION_5 = """
-- Which URLs each corpus generation changed, so that a process whose index is behind applies
-- those changes instead of reading every article back.
CREATE TABLE corpus_changes (
    generation INTEGER NOT NULL,
    url        TEXT NOT NULL
);
CREATE INDEX corpus_changes_by_generation ON corpus_changes (generation);
-- Every change after this generation is in corpus_changes (older ones were pruned, or came
-- before the log existed): an index older than this is rebuilt.
ALTER TABLE corpus_state ADD COLUMN logged_from INTEGER NOT NULL DEFAULT 0;
UPDATE corpus_state SET logged_from = generation;

-- The search index of one generation, as bytes (bot.snapshot): a process starting up loads it
-- and applies the logged changes since, instead of indexing every article again.
CREATE TABLE index_snapshots (
    generation INTEGER PRIMARY KEY,
    format     INTEGER NOT NULL,
    saved_at   TEXT NOT NULL,
    data       BLOB NOT NULL
);
"""

_MIGRATION_6 = SOURCES_SCHEMA
_MIGRATION_7 = FOLLOWS_SCHEMA
_MIGRATION_8 = LISTINGS_SCHEMA

#: Schema scripts; ``MIGRATIONS[n]`` takes a database from version ``n`` to ``n + 1``.
#: Append only: never edit a script that has shipped.
MIGRATIONS: tuple[str, ...] = (
    _MIGRATION_1,
    _MIGRATION_2,
    _MIGRATION_3,
    _MIGRATION_4,
    _MIGRATION_5,
    _MIGRATION_6,
    _MIGRATION_7,
    _MIGRATION_8,
)
SCHEMA_VERSION = len(MIGRATIONS)


class _SQLiteSession:
    """One of the store's connections and the lock its users take turns with; what a session
    yields, used while holding that lock."""

    __slots__ = ("_db", "lock")

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self.lock = asyncio.Lock()

    @property
    def db(self) -> aiosqlite.Connection:
        return self._db

    @asynccontextmanager
    async def use(self, what: str, *, write: bool, atomic: bool) -> AsyncIterator[Session]:
        """The connection for a session (see :meth:`SQLiteStore.session`)."""
        async with self.lock:
            if not (write or atomic):
                try:
                    yield self
                except sqlite3.DatabaseError as exc:
                    raise StoreError(f"{what} failed: {exc}") from exc
                return
            try:
                # BEGIN inside the try: if we are cancelled while it is queued, it still runs in
                # the connection's thread, and the rollback below (queued after it) closes it.
                await self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield self
                await self._db.execute("COMMIT")
            except BaseException as exc:
                # Connection.rollback() is a no-op when no transaction is open (SQLITE_FULL and
                # a few others roll back by themselves).
                with contextlib.suppress(sqlite3.Error):
                    await self._db.rollback()
                if isinstance(exc, sqlite3.DatabaseError):
                    unchanged = ", nothing was changed" if write else ""
                    raise StoreError(f"{what} failed{unchanged}: {exc}") from exc
                raise

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = await self._db.execute(sql, params)
        return cursor.rowcount

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self._db.executemany(sql, rows)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        return list(await self._db.execute_fetchall(sql, params))

    async def fetchval(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await self.fetch(sql, params)
        return rows[0][0] if rows else None


class SQLiteStore(Store):
    """A newsbot database in one SQLite file."""

    backend = "sqlite"

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        # Private: SQLiteStore.connect configures and migrates the connection first.
        super().__init__()
        self.path = path
        self.label = str(path)
        self._writes = _SQLiteSession(db)
        # The connection reads go through: a read-only second one once connect() opened it
        # (see the module docstring); until then, and for a read-only store, the same one.
        self._reads = self._writes
        # How index_snapshot's own connection opens the file (SQLite URI parameters).
        self._reader_query = "mode=ro"

    @classmethod
    async def connect(cls, path: Path, *, readonly: bool = False) -> SQLiteStore:
        """Open (creating folder and file if needed) and migrate the database at ``path``.

        ``readonly``: open an existing, current database for reading only (no file is created,
        nothing is written, not even by migrations), as the commands that only read do, so
        they work on a full disk or a file they may not write.
        """
        path = path.expanduser()
        if readonly:
            return await cls._connect_readonly(path)
        _check_writable(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{path}: cannot create its folder ({exc.strerror or exc})") from exc
        try:
            # Opened once synchronously first: a path SQLite cannot open fails here, before
            # aiosqlite starts its worker thread (which it would leave behind on that failure).
            sqlite3.connect(path).close()
            # isolation_level=None: no implicit transactions; every BEGIN/COMMIT here is explicit.
            db = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open ({exc})") from exc
        store = cls(db, path)
        try:
            await store._configure()
            await store._migrate()
            await store._open_reader()
        except BaseException:
            await store.close()
            raise
        return store

    async def _open_reader(self) -> None:
        """The second connection, for reads only (``query_only``: a write sent through it by
        mistake fails instead of bypassing the write lock)."""
        try:
            reader = await aiosqlite.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open ({exc})") from exc
        self._reads = _SQLiteSession(reader)  # from now on close() closes it too
        try:
            await reader.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await reader.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open ({exc})") from exc

    @property
    def _db(self) -> aiosqlite.Connection:
        """The connection that writes (and configures and migrates the file)."""
        return self._writes.db

    @classmethod
    async def _connect_readonly(cls, path: Path) -> SQLiteStore:
        if not path.is_file():
            raise StoreError(f"{path}: no database there")
        wal = path.with_name(path.name + "-wal")
        # No -wal file: no connection has the database open (SQLite removes it with the last
        # one), so the file alone is the whole database. Reading it as immutable then creates
        # nothing beside it, where mode=ro would leave an empty -wal and -shm behind (and fail
        # where they cannot be made: a full disk, a folder this user may not write). A writer
        # that starts meanwhile writes to its -wal, not to this file, until a checkpoint.
        query = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
        try:
            store, version = await cls._open_uri(path, query)
        except sqlite3.OperationalError as exc:
            if query != "mode=ro":
                raise StoreError(f"{path}: cannot open for reading ({exc})") from exc
            # The -wal is there but its -shm cannot be made or used: read the file as it is,
            # without the changes a running writer still holds in its -wal.
            log.warning(
                "%s: read without SQLite's shared-memory file (%s); the latest changes of a"
                " running writer may be missing",
                path,
                exc,
            )
            try:
                store, version = await cls._open_uri(path, "mode=ro&immutable=1")
            except sqlite3.Error as again:
                raise StoreError(f"{path}: cannot open for reading ({again})") from again
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open for reading ({exc})") from exc
        db = store._db
        if version != SCHEMA_VERSION:
            await db.close()
            raise StoreError(
                f"{path}: schema version {version}, not {SCHEMA_VERSION}: it must be opened for "
                "writing once to be migrated"
            )
        return store

    @classmethod
    async def _open_uri(cls, path: Path, query: str) -> tuple[SQLiteStore, int]:
        """A read-only connection (``query``: SQLite URI parameters) and the schema version."""
        # as_uri() percent-encodes the path: a '#' or '?' in it must not change which file.
        uri = f"{path.resolve().as_uri()}?{query}"
        db = await aiosqlite.connect(uri, uri=True, isolation_level=None)
        store = cls(db, path)
        store._reader_query = query  # the corpus reader opens the file the same way
        try:
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            return store, await store._version()
        except BaseException:
            await db.close()
            raise

    async def close(self) -> None:
        try:
            if self._reads is not self._writes:
                await self._reads.db.close()
        finally:
            await self._db.close()

    async def _configure(self) -> None:
        try:
            # Reading the schema is the first thing that touches the file, so a file that is not
            # SQLite at all ("file is not a database") fails here with a clear message.
            await self._db.execute_fetchall("SELECT count(*) FROM sqlite_master")
            await self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # WAL: readers (the bot) never block on the writer (a reload) and vice versa.
            await self._enable_wal()
            # NORMAL is durable across application crashes in WAL mode; only an OS crash can lose
            # the last commits, which a reload can redo.
            await self._db.execute("PRAGMA synchronous = NORMAL")
            await self._db.execute("PRAGMA foreign_keys = ON")
        except sqlite3.OperationalError as exc:  # locked, read-only, I/O...: a real database
            raise StoreError(f"{self.path}: cannot open ({exc})") from exc
        except sqlite3.DatabaseError as exc:  # "file is not a database"
            raise StoreError(f"{self.path}: not a newsbot database ({exc})") from exc

    async def _enable_wal(self) -> None:
        """``PRAGMA journal_mode = WAL``, retried while another connection holds the file.

        Switching a file to WAL takes an exclusive lock for a moment, and SQLite answers that
        request with "database is locked" at once instead of calling the busy handler: two
        processes opening a brand-new database together failed here. WAL is recorded in the
        file, so once any connection has switched it the others' pragma is a no-op.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                await self._db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(0.01)

    async def _migrate(self) -> None:
        # Checked outside a transaction first, so opening an up-to-date (or read-only) database
        # never asks for the write lock.
        version = await self._version()
        if version < 0:
            # Not a number newsbot ever writes: migrating from it would fail half-way or worse.
            raise StoreError(
                f"{self.path}: database schema version {version} is not one newsbot knows "
                f"(0 to {SCHEMA_VERSION}); is this a newsbot database?"
            )
        while version < SCHEMA_VERSION:
            async with self.session(f"{self.path}: migrating the schema", write=True) as db:
                # Read again under the write lock: another process may have just migrated it.
                version = int(await db.fetchval("PRAGMA user_version"))
                if version < SCHEMA_VERSION:
                    if version == 0:
                        await self._refuse_foreign_database(db)
                    log.info("%s: migrating schema %d -> %d", self.path, version, version + 1)
                    for statement in _split(MIGRATIONS[version], sqlite3.complete_statement):
                        await db.execute(statement)
                    version += 1
                    await db.execute(f"PRAGMA user_version = {version}")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: database schema version {version} is newer than this "
                f"newsbot knows ({SCHEMA_VERSION}); upgrade newsbot"
            )

    async def _version(self) -> int:
        rows = await self._db.execute_fetchall("PRAGMA user_version")
        return int(next(iter(rows))[0])

    async def _refuse_foreign_database(self, db: Session) -> None:
        rows = await db.fetch(
            "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
        )
        if rows:
            names = ", ".join(row[0] for row in rows[:5])
            raise StoreError(
                f"{self.path}: not a newsbot database (no schema version, but it has: {names})"
            )

    def session(
        self, what: str, *, write: bool = False, atomic: bool = True
    ) -> AbstractAsyncContextManager[Session]:
        return (self._writes if write else self._reads).use(what, write=write, atomic=atomic)

    async def schema_version(self) -> int:
        async with self._writes.lock:
            return await self._version()

    async def corpus_changes(self, since: int) -> CorpusChanges | None:
        # On a reader connection of its own, in a worker thread: through the bot's connection
        # these reads (hundreds of rows for a large change) would hold its lock, and every
        # /news waiting to read its articles or save its search would wait behind them.
        return await asyncio.to_thread(self._corpus_changes_blocking, since)

    def _corpus_changes_blocking(self, since: int) -> CorpusChanges | None:
        db = sqlite3.connect(f"{self.path.resolve().as_uri()}?{self._reader_query}", uri=True)
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.execute("BEGIN")  # one snapshot for the state and the three queries
            generation, logged_from = db.execute(CORPUS_STATE_SQL).fetchone()
            if since == generation:
                return CorpusChanges(generation, [], [])
            if not log_reaches(since, generation, logged_from):
                return None
            results = []
            for sql in change_queries():
                FOREGROUND.step_aside()  # a background read: a bot's replies in flight go first
                results.append(db.execute(sql, (since,)).fetchall())
            rows, topic_rows, urls = results
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: reading the corpus changes failed: {exc}") from exc
        finally:
            db.close()
        FOREGROUND.step_aside()
        return changes_from(generation, rows, topic_rows, urls)

    async def save_index_snapshot(
        self, generation: int, form: int, data: bytes | bytearray, *, now: datetime
    ) -> None:
        # On a connection of its own, closed at once: SQLite keeps what a statement read or
        # wrote (tens of MB at 100,000 articles) until its connection closes, so through the
        # bot's connection the process would hold it for good.
        await asyncio.to_thread(self._save_snapshot_blocking, generation, form, data, iso(now))

    def _save_snapshot_blocking(
        self, generation: int, form: int, data: bytes | bytearray, now: str
    ) -> None:
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.execute("BEGIN IMMEDIATE")
            newest = db.execute("SELECT max(generation) FROM index_snapshots").fetchone()[0]
            if newest is not None and newest >= generation:
                db.execute("ROLLBACK")
                return  # another process saved one as new already
            db.execute("DELETE FROM index_snapshots")
            # Written in place (incremental blob I/O): binding the bytes would make SQLite
            # copy all of them first.
            db.execute(
                "INSERT INTO index_snapshots (generation, format, saved_at, data)"
                " VALUES (?, ?, ?, zeroblob(?))",
                (generation, form, now, len(data)),
            )
            with db.blobopen("index_snapshots", "data", generation) as blob:
                blob.write(data)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: saving the index snapshot failed: {exc}") from exc
        finally:
            db.close()

    async def wait_for_corpus_change(self, timeout: float) -> None:
        # SQLite cannot notify, but PRAGMA data_version changes whenever another connection
        # (another process: `newsbot load`, a second bot) commits, and reads no table: asked
        # every CHANGE_POLL_SECONDS it costs next to nothing, and a change elsewhere is
        # noticed within that time rather than within refresh_seconds.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        first = await self._data_version()
        while (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(CHANGE_POLL_SECONDS, left))
            if await self._data_version() != first:
                return

    async def _data_version(self) -> int:
        # On the connection that writes: the reader's data version would also move with this
        # process's own writes (every saved search), the writer's only with other processes'.
        async with self._writes.use("watching for changes", write=False, atomic=False) as db:
            return int(await db.fetchval("PRAGMA data_version"))

    async def index_snapshot(self, build: Callable[[Iterable[IndexDoc]], T]) -> tuple[int, T]:
        # Reading every article back takes a while at scale: it runs in a worker thread on a
        # connection of its own, without the store's lock, so /news keeps answering meanwhile
        # (WAL lets this reader and the bot's connection work side by side). The rows are
        # streamed into ``build``: the corpus is never held as Python objects all at once.
        return await asyncio.to_thread(self._index_snapshot_blocking, build)

    def _index_snapshot_blocking(self, build: Callable[[Iterable[IndexDoc]], T]) -> tuple[int, T]:
        # as_uri() percent-encodes the path: a '#' or '?' in it must not change which file opens.
        db = sqlite3.connect(f"{self.path.resolve().as_uri()}?{self._reader_query}", uri=True)
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.execute("BEGIN")  # one snapshot for the generation and both queries
            generation = db.execute("SELECT generation FROM corpus_state WHERE id = 1").fetchone()
            articles_sql, topics_sql = index_queries("")
            rows = db.execute(articles_sql)
            topics = db.cursor().execute(topics_sql)
            result = build(index_docs(_batched(rows), _batched(topics)))
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: reading articles failed: {exc}") from exc
        finally:
            db.close()
        return int(generation[0]), result


def _batched(cursor: sqlite3.Cursor, size: int = 2048) -> Iterator[Any]:
    while batch := cursor.fetchmany(size):
        yield from batch


def _check_writable(path: Path) -> None:
    """Name the file or folder newsbot may not write, before SQLite fails obscurely.

    SQLite reports "attempt to write a readonly database" for a file it may not write, and,
    worse, a WAL database in a folder it may not write fails later in other ways (its -wal and
    -shm files cannot be created). ``os.access`` also says no on a read-only file system.
    """
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            raise StoreError(
                f"{path}: this user may not write the database file (it needs read and write "
                "permission); fix its permissions, or run newsbot as the file's owner"
            )
        folder = path.parent
        companions = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
        for companion in companions:
            if companion.exists() and not os.access(companion, os.R_OK | os.W_OK):
                raise StoreError(
                    f"{companion}: this user may not write SQLite's companion file (it needs "
                    "read and write permission, like the database beside it)"
                )
        if not os.access(folder, os.W_OK | os.X_OK) and not all(c.exists() for c in companions):
            raise StoreError(
                f"{folder}: this user may not write in the database's folder (SQLite creates "
                f"{path.name}-wal and {path.name}-shm there); give it write permission"
            )
        return
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if folder.exists() and not os.access(folder, os.W_OK | os.X_OK):
        raise StoreError(
            f"{folder}: this user may not write in this folder, so the database {path} "
            "cannot be created there; give it write permission or choose another path"
        )

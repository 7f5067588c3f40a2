"""SQLite persistence: the only module in newsbot that writes SQL.

One :class:`Store` wraps one aiosqlite connection to one database file. Open it with::

    async with await Store.open(path) as store:
        articles = await store.all_articles()

``Store.open`` is a coroutine that returns a ready store (migrated to :data:`SCHEMA_VERSION`);
the store is its own async context manager and closes on exit. Long-lived owners (the bot's
``main()``) may instead keep the result of ``await Store.open(path)`` and ``await store.close()``.

Design notes:

* Dates are stored as fixed-width ISO 8601 text in UTC (``2020-06-11T12:00:00.000000+00:00``), so
  text order is time order and SQLite's date functions understand them; they come back as aware
  UTC datetimes.
* Schema changes are the numbered scripts in :data:`MIGRATIONS`; ``PRAGMA user_version`` records
  how many have been applied. Each runs in its own ``BEGIN IMMEDIATE`` transaction together with
  the version bump, so a crash mid-migration leaves the previous version intact.
* All access from one process goes through one connection and one :class:`asyncio.Lock`, so a
  reader never sees half of another task's transaction and a write from another task can never
  slip into the middle of a reload's transaction.
* A seed reload is planned outside the database (parsing is slow and pure) and applied in one
  transaction by :meth:`Store.apply_reload`. The plan was made from a :class:`ReloadState`
  snapshot; if anything changed that snapshot in the meantime (another process, or another reload
  in this one), the apply is refused with :class:`StaleReloadError` and the caller plans again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiosqlite

from .articles import Article, RelatedLink

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
) WITHOUT ROWID;  -- clustered by article: all_articles reads it in key order, no lookups

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

#: Schema scripts; ``MIGRATIONS[n]`` takes a database from version ``n`` to ``n + 1``.
#: Append only: never edit a script that has shipped.
MIGRATIONS: tuple[str, ...] = (_MIGRATION_1, _MIGRATION_2, _MIGRATION_3)
SCHEMA_VERSION = len(MIGRATIONS)


# --- errors and records -------------------------------------------------------------------------


class StoreError(Exception):
    """The database cannot be opened, migrated or written; ``str()`` names the file."""


class StaleReloadError(StoreError):
    """The database changed between :meth:`Store.reload_state` and :meth:`Store.apply_reload`."""


@dataclass(frozen=True, slots=True)
class SeedFileRecord:
    """One ``seed_files`` row: what the store knows about a seed file."""

    path: str
    folder: str | None
    size: int
    mtime_ns: int
    sha256: str | None
    url: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class ReloadState:
    """A snapshot of the reload bookkeeping, to plan a reload against."""

    files: dict[str, SeedFileRecord]  # seed_files by path
    sources: dict[str, str]  # article URL -> the seed file path that provides it
    # Both identify the snapshot: apply_reload refuses a plan made from an outdated one.
    data_version: int
    generation: int


@dataclass(frozen=True, slots=True)
class ReloadChanges:
    """Everything one reload writes; applied in one transaction by :meth:`Store.apply_reload`."""

    upsert_files: Sequence[SeedFileRecord] = ()
    delete_files: Sequence[str] = ()
    upsert_articles: Sequence[tuple[Article, str]] = ()  # (article, source file path)
    delete_articles: Sequence[str] = ()  # URLs

    def __bool__(self) -> bool:
        return bool(
            self.upsert_files or self.delete_files or self.upsert_articles or self.delete_articles
        )


@dataclass(frozen=True, slots=True)
class GuildSettings:
    guild_id: int
    digest_channel_id: int | None = None
    digest_time: str | None = None  # 'HH:MM' in digest_timezone
    digest_timezone: str | None = None  # IANA name
    digest_enabled: bool = False
    updated_at: datetime | None = None


DigestStatus = Literal["claimed", "posted", "failed"]


@dataclass(frozen=True, slots=True)
class DigestRecord:
    guild_id: int
    local_date: str  # 'YYYY-MM-DD' in the guild's time zone
    status: DigestStatus
    claimed_at: datetime
    posted_at: datetime | None
    failed_at: datetime | None
    message_id: int | None
    attempts: int
    error: str | None


@dataclass(frozen=True, slots=True)
class SavedSearch:
    id: int
    user_id: int
    query: str
    urls: tuple[str, ...]
    created_at: datetime


#: Saved searches older than this are deleted; their buttons then say "expired".
SEARCH_RETENTION = timedelta(days=30)

_GUILD_SETTING_KEYS = ("digest_channel_id", "digest_time", "digest_timezone", "digest_enabled")
_HH_MM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")


# --- the store ----------------------------------------------------------------------------------


class Store:
    """An open newsbot database. Create with ``await Store.open(path)``; see the module doc."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        # Private: Store.open configures and migrates the connection first.
        self._db = db
        self.path = path
        self._lock = asyncio.Lock()
        # Bumped by every applied reload, so a plan made before another reload in this process
        # is detected as stale (PRAGMA data_version only sees other connections' commits).
        self._generation = 0

    @classmethod
    async def open(cls, path: Path | str) -> Store:
        """Open (creating folder and file if needed) and migrate the database at ``path``."""
        path = Path(path).expanduser()
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
        except BaseException:
            await db.close()
            raise
        return store

    async def close(self) -> None:
        await self._db.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _configure(self) -> None:
        try:
            # Reading the schema is the first thing that touches the file, so a file that is not
            # SQLite at all ("file is not a database") fails here with a clear message.
            await self._rows("SELECT count(*) FROM sqlite_master")
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
        version = await self._scalar("PRAGMA user_version")
        while version < SCHEMA_VERSION:
            async with self._transaction(f"{self.path}: migrating the schema"):
                # Read again under the write lock: another process may have just migrated it.
                version = await self._scalar("PRAGMA user_version")
                if version < SCHEMA_VERSION:
                    if version == 0:
                        await self._refuse_foreign_database()
                    log.info("%s: migrating schema %d -> %d", self.path, version, version + 1)
                    for statement in _statements(MIGRATIONS[version]):
                        await self._db.execute(statement)
                    version += 1
                    await self._db.execute(f"PRAGMA user_version = {version}")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: database schema version {version} is newer than this "
                f"newsbot knows ({SCHEMA_VERSION}); upgrade newsbot"
            )

    async def _refuse_foreign_database(self) -> None:
        rows = await self._rows(
            "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
        )
        if rows:
            names = ", ".join(row[0] for row in rows[:5])
            raise StoreError(
                f"{self.path}: not a newsbot database (no schema version, but it has: {names})"
            )

    @asynccontextmanager
    async def _transaction(self, what: str, *, write: bool = True) -> AsyncIterator[None]:
        """BEGIN ... COMMIT; ROLLBACK on any exception, sqlite errors re-raised as StoreError."""
        try:
            # BEGIN inside the try: if we are cancelled while it is queued, it still runs in the
            # connection's thread, and the rollback below (queued after it) closes it again.
            await self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            yield
            await self._db.execute("COMMIT")
        except BaseException as exc:
            # Connection.rollback() is a no-op when no transaction is open (SQLITE_FULL and a
            # few others roll back by themselves).
            with contextlib.suppress(sqlite3.Error):
                await self._db.rollback()
            if isinstance(exc, sqlite3.DatabaseError):
                unchanged = ", nothing was changed" if write else ""
                raise StoreError(f"{what} failed{unchanged}: {exc}") from exc
            raise

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await self._db.execute_fetchall(sql, params))

    async def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await self._rows(sql, params)
        return rows[0][0] if rows else None

    async def schema_version(self) -> int:
        async with self._lock:
            return int(await self._scalar("PRAGMA user_version"))

    # --- articles -------------------------------------------------------------------------------

    async def all_articles(self) -> list[Article]:
        """Every article, hydrated, newest published first (ties by URL)."""
        return await self._articles("", ())

    async def get_article(self, url: str) -> Article | None:
        found = await self._articles("WHERE a.url = ?", (url,))
        return found[0] if found else None

    async def articles_first_seen_after(self, moment: datetime | None) -> list[Article]:
        """Articles whose URL entered the store after ``moment`` (None: all); newest first.

        Strictly after: a digest claimed at ``moment`` already covered what was there then.
        """
        if moment is None:
            return await self.all_articles()
        return await self._articles("WHERE a.first_seen > ?", (_iso(moment),))

    async def count_articles(self) -> int:
        async with self._lock:
            return int(await self._scalar("SELECT count(*) FROM articles"))

    async def first_seen(self, url: str) -> datetime | None:
        async with self._lock:
            value = await self._scalar("SELECT first_seen FROM articles WHERE url = ?", (url,))
        return _dt(value) if value is not None else None

    async def topics(self) -> list[tuple[str, int]]:
        """Every topic with the number of articles carrying it, most used first, then by name."""
        async with self._lock:
            rows = await self._rows(
                "SELECT topic, count(*) AS n FROM article_topics GROUP BY topic"
                " ORDER BY n DESC, topic"
            )
        return [(topic, n) for topic, n in rows]

    async def _articles(self, where: str, params: Sequence[Any]) -> list[Article]:
        # Three bulk queries (articles, topics, related), not one per article: ~10k articles with
        # their links come back in a fraction of a second. One read transaction keeps them
        # consistent with each other even while another process commits a reload.
        queries = _article_queries(where)
        async with self._lock, self._transaction(f"{self.path}: reading articles", write=False):
            results = [await self._rows(sql, params) for sql in queries]
        return _hydrate(*results)

    def read_all_articles_blocking(self) -> list[Article]:
        """:meth:`all_articles` on a connection of its own, for a worker thread.

        Rebuilding the search index after a reload reads every article back; doing that here,
        off the event loop and without the store's lock, keeps /news answering meanwhile (WAL
        lets this reader and the bot's connection work side by side).
        """
        # as_uri() percent-encodes the path: a '#' or '?' in it must not change which file opens.
        db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.execute("BEGIN")  # one snapshot for the three queries
            results = [db.execute(sql).fetchall() for sql in _article_queries("")]
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: reading articles failed: {exc}") from exc
        finally:
            db.close()
        return _hydrate(*results)

    # --- seed reloads ---------------------------------------------------------------------------

    async def seed_files(self) -> list[SeedFileRecord]:
        """The reload bookkeeping, by path (for a "seeds status" view)."""
        return sorted((await self.reload_state()).files.values(), key=lambda r: r.path)

    async def reload_state(self) -> ReloadState:
        """Snapshot what a reload is planned against: seed_files rows and each URL's source."""
        async with self._lock, self._transaction(f"{self.path}: reading seed files", write=False):
            data_version = await self._scalar("PRAGMA data_version")
            file_rows = await self._rows(
                "SELECT path, folder, size, mtime_ns, sha256, url, error FROM seed_files"
            )
            source_rows = await self._rows("SELECT url, source_file FROM articles")
            generation = self._generation
        return ReloadState(
            files={row[0]: SeedFileRecord(*row) for row in file_rows},
            sources=dict(source_rows),
            data_version=data_version,
            generation=generation,
        )

    async def apply_reload(
        self, changes: ReloadChanges, *, state: ReloadState, now: datetime
    ) -> None:
        """Apply a planned reload in one transaction: all of it, or (on any error) none of it.

        Raises :class:`StaleReloadError` when the database changed since ``state`` was read
        (plan again), and :class:`StoreError` when SQLite refuses a write; either way the
        previous corpus is intact. New URLs get ``first_seen = now``; existing ones keep theirs.
        """
        if not changes:
            return
        now_iso = _iso(now)
        async with self._lock, self._transaction(f"{self.path}: applying the reload"):
            # Checked under the write lock, so nothing can change between check and write.
            if (
                state.generation != self._generation
                or await self._scalar("PRAGMA data_version") != state.data_version
            ):
                raise StaleReloadError(
                    f"{self.path}: the database changed while the reload was being planned"
                )
            db = self._db
            await db.executemany(
                "DELETE FROM seed_files WHERE path = ?", [(p,) for p in changes.delete_files]
            )
            await db.executemany(
                "INSERT INTO seed_files (path, folder, size, mtime_ns, sha256, url, error)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (path) DO UPDATE SET folder = excluded.folder,"
                " size = excluded.size, mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256,"
                " url = excluded.url, error = excluded.error",
                [
                    (r.path, r.folder, r.size, r.mtime_ns, r.sha256, r.url, r.error)
                    for r in changes.upsert_files
                ],
            )
            # Topics and related links go with their article (ON DELETE CASCADE).
            await db.executemany(
                "DELETE FROM articles WHERE url = ?", [(u,) for u in changes.delete_articles]
            )
            # An upsert, not INSERT OR REPLACE: REPLACE deletes the row first, which would lose
            # first_seen and cascade-delete children we are about to rewrite anyway.
            await db.executemany(
                "INSERT INTO articles (url, title, excerpt, published, provider, provider_domain,"
                " provider_icon, image_url, quality, kind, first_seen, source_file)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (url) DO UPDATE SET title = excluded.title,"
                " excerpt = excluded.excerpt, published = excluded.published,"
                " provider = excluded.provider, provider_domain = excluded.provider_domain,"
                " provider_icon = excluded.provider_icon, image_url = excluded.image_url,"
                " quality = excluded.quality, kind = excluded.kind,"
                " source_file = excluded.source_file",
                [
                    (
                        a.url,
                        a.title,
                        a.excerpt,
                        _iso(a.published),
                        a.provider,
                        a.provider_domain,
                        a.provider_icon,
                        a.image_url,
                        a.quality,
                        a.kind,
                        now_iso,
                        source,
                    )
                    for a, source in changes.upsert_articles
                ],
            )
            # Only URLs that were in the store can have old topics and links; the snapshot was
            # just checked to be current, so it says which (a cold load skips this entirely).
            urls = [(a.url,) for a, _ in changes.upsert_articles if a.url in state.sources]
            await db.executemany("DELETE FROM article_topics WHERE url = ?", urls)
            await db.executemany("DELETE FROM related_links WHERE url = ?", urls)
            await db.executemany(
                "INSERT INTO article_topics (url, position, topic) VALUES (?, ?, ?)",
                [
                    (a.url, position, topic)
                    for a, _ in changes.upsert_articles
                    for position, topic in enumerate(a.topics)
                ],
            )
            await db.executemany(
                "INSERT INTO related_links (url, position, title, link_url, provider,"
                " provider_domain, published, excerpt, image_url)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        a.url,
                        position,
                        r.title,
                        r.url,
                        r.provider,
                        r.provider_domain,
                        _iso(r.published) if r.published is not None else None,
                        r.excerpt,
                        r.image_url,
                    )
                    for a, _ in changes.upsert_articles
                    for position, r in enumerate(a.related)
                ],
            )
            self._generation += 1
        log.info(
            "%s: reload applied: %d articles written, %d deleted, %d seed files recorded",
            self.path,
            len(changes.upsert_articles),
            len(changes.delete_articles),
            len(changes.upsert_files),
        )

    # --- guild settings -------------------------------------------------------------------------

    async def get_guild_settings(self, guild_id: int) -> GuildSettings | None:
        """The guild's settings, or None if it never set any (the caller applies defaults)."""
        async with self._lock:
            rows = await self._rows(
                "SELECT guild_id, digest_channel_id, digest_time, digest_timezone, digest_enabled,"
                " updated_at FROM guild_settings WHERE guild_id = ?",
                (guild_id,),
            )
        if not rows:
            return None
        guild, channel, time_, tz, enabled, updated = rows[0]
        return GuildSettings(guild, channel, time_, tz, bool(enabled), _dt(updated))

    async def set_guild_settings(
        self, guild_id: int, *, now: datetime, **changes: Any
    ) -> GuildSettings:
        """Change some of a guild's settings (creating its row); returns the settings after.

        Keys: ``digest_channel_id`` (int or None), ``digest_time`` ('HH:MM' or None),
        ``digest_timezone`` (IANA name or None), ``digest_enabled`` (bool). Anything else is a
        TypeError; a malformed value is a ValueError, so nothing bad is ever stored.
        """
        for key, value in changes.items():
            _check_setting(key, value)
        values = {k: int(v) if isinstance(v, bool) else v for k, v in changes.items()}
        columns = ["guild_id", *values, "updated_at"]
        updates = [f"{k} = excluded.{k}" for k in [*values, "updated_at"]]
        async with self._lock:
            await self._db.execute(
                f"INSERT INTO guild_settings ({', '.join(columns)})"
                f" VALUES ({', '.join('?' * len(columns))})"
                f" ON CONFLICT (guild_id) DO UPDATE SET {', '.join(updates)}",
                (guild_id, *values.values(), _iso(now)),
            )
        settings = await self.get_guild_settings(guild_id)
        assert settings is not None
        return settings

    # --- digest log -----------------------------------------------------------------------------

    async def claim_digest(
        self,
        guild_id: int,
        local_date: date | str,
        now: datetime,
        *,
        stale_after: timedelta = timedelta(minutes=15),
        max_attempts: int = 3,
    ) -> bool:
        """Claim the right to post ``guild_id``'s digest for ``local_date``; True means post it.

        One atomic statement, so concurrent callers (tasks or processes) cannot both win:

        * no row yet -> a 'claimed' row (attempts 1): True;
        * 'posted' -> False, always: a day is never posted twice;
        * 'claimed' less than ``stale_after`` ago -> False: someone is posting right now;
        * 'claimed' longer ago (its poster crashed) or 'failed' -> re-claimed with attempts + 1:
          True, unless ``max_attempts`` were used already (so a broken channel is not retried
          forever).

        The one window left: a poster that crashes after Discord accepted the message but before
        :meth:`mark_digest_posted` leaves a 'claimed' row that is re-claimed after
        ``stale_after``. Keep ``stale_after`` well above the time one post takes.
        """
        day = _local_date(local_date)
        now_iso = _iso(now)
        async with self._lock:
            cursor = await self._db.execute(
                "INSERT INTO digest_log (guild_id, local_date, status, claimed_at, attempts)"
                " VALUES (?, ?, 'claimed', ?, 1)"
                " ON CONFLICT (guild_id, local_date) DO UPDATE SET status = 'claimed',"
                " claimed_at = excluded.claimed_at, attempts = attempts + 1, error = NULL"
                " WHERE attempts < ? AND (status = 'failed'"
                "   OR (status = 'claimed' AND claimed_at <= ?))",
                (guild_id, day, now_iso, max_attempts, _iso(now - stale_after)),
            )
            claimed = cursor.rowcount == 1
        log.debug("digest claim %s/%s: %s", guild_id, day, "won" if claimed else "refused")
        return claimed

    async def mark_digest_posted(
        self, guild_id: int, local_date: date | str, message_id: int | None, now: datetime
    ) -> None:
        """Record that the claimed digest is done; StoreError if it was not claimed.

        ``message_id`` None: the day is done without a post (nothing new to tell).
        """
        await self._finish_digest(
            guild_id,
            local_date,
            "status = 'posted', posted_at = ?, message_id = ?, error = NULL",
            (_iso(now), message_id),
        )

    async def mark_digest_failed(
        self, guild_id: int, local_date: date | str, error: str, now: datetime
    ) -> None:
        """Record that posting the claimed digest failed; it may be claimed again."""
        await self._finish_digest(
            guild_id, local_date, "status = 'failed', failed_at = ?, error = ?", (_iso(now), error)
        )

    async def _finish_digest(
        self, guild_id: int, local_date: date | str, assignments: str, params: tuple[Any, ...]
    ) -> None:
        day = _local_date(local_date)
        async with self._lock:
            cursor = await self._db.execute(
                f"UPDATE digest_log SET {assignments}"
                " WHERE guild_id = ? AND local_date = ? AND status = 'claimed'",
                (*params, guild_id, day),
            )
            if cursor.rowcount != 1:
                raise StoreError(f"no claimed digest for guild {guild_id} on {day}")

    async def last_digest(self, guild_id: int, *, posted_only: bool = False) -> DigestRecord | None:
        """The guild's latest digest-log row by local date (only 'posted' ones if asked)."""
        status = " AND status = 'posted'" if posted_only else ""
        async with self._lock:
            rows = await self._rows(
                "SELECT guild_id, local_date, status, claimed_at, posted_at, failed_at,"
                " message_id, attempts, error FROM digest_log"
                f" WHERE guild_id = ?{status} ORDER BY local_date DESC LIMIT 1",
                (guild_id,),
            )
        if not rows:
            return None
        guild, day, state, claimed, posted, failed, message, attempts, error = rows[0]
        return DigestRecord(
            guild_id=guild,
            local_date=day,
            status=state,
            claimed_at=_dt(claimed),
            posted_at=_dt(posted) if posted is not None else None,
            failed_at=_dt(failed) if failed is not None else None,
            message_id=message,
            attempts=attempts,
            error=error,
        )

    # --- saved searches -------------------------------------------------------------------------

    async def save_search(
        self, user_id: int, query: str, urls: Sequence[str], now: datetime
    ) -> int:
        """Keep a /news answer's hits for its buttons; returns the id the buttons carry."""
        async with self._lock, self._transaction("saving a search"):
            # Pruning here keeps the table small without a job of its own; the index makes a
            # prune with nothing to delete a single seek.
            await self._db.execute(
                "DELETE FROM searches WHERE created_at < ?", (_iso(now - SEARCH_RETENTION),)
            )
            cursor = await self._db.execute(
                "INSERT INTO searches (user_id, query, urls, created_at) VALUES (?, ?, ?, ?)",
                (user_id, query, json.dumps(list(urls)), _iso(now)),
            )
            search_id = cursor.lastrowid
        assert search_id is not None
        return search_id

    async def load_search(self, search_id: int) -> SavedSearch | None:
        """The saved search, or None when it expired (or never existed)."""
        if not 0 < search_id < 2**63:
            # Ids come from button custom_ids, which a client can forge: one SQLite cannot even
            # hold (OverflowError) is simply not a saved search.
            return None
        async with self._lock:
            rows = await self._rows(
                "SELECT id, user_id, query, urls, created_at FROM searches WHERE id = ?",
                (search_id,),
            )
        if not rows:
            return None
        row_id, user_id, query, urls, created = rows[0]
        return SavedSearch(row_id, user_id, query, tuple(json.loads(urls)), _dt(created))


# --- helpers ------------------------------------------------------------------------------------


def _article_queries(where: str) -> tuple[str, str, str]:
    join = f"JOIN articles a ON a.url = x.url {where}" if where else ""
    return (
        "SELECT url, title, excerpt, published, provider, provider_domain, provider_icon,"
        f" image_url, quality, kind FROM articles a {where}",
        f"SELECT x.url, x.topic FROM article_topics x {join} ORDER BY x.url, x.position",
        "SELECT x.url, x.title, x.link_url, x.provider, x.provider_domain, x.published,"
        f" x.excerpt, x.image_url FROM related_links x {join} ORDER BY x.url, x.position",
    )


def _hydrate(rows: list[Any], topic_rows: list[Any], related_rows: list[Any]) -> list[Article]:
    """Rows of the three article queries -> Articles, newest published first, ties by URL."""
    topics: dict[str, list[str]] = {}
    for url, topic in topic_rows:
        topics.setdefault(url, []).append(topic)
    related: dict[str, list[RelatedLink]] = {}
    for url, title, link_url, provider, domain, published, excerpt, image in related_rows:
        related.setdefault(url, []).append(
            RelatedLink(
                title=title,
                url=link_url,
                provider=provider,
                provider_domain=domain,
                published=_dt(published) if published is not None else None,
                excerpt=excerpt,
                image_url=image,
            )
        )
    # Sorted here: SQLite would copy every row, excerpts and all, into a temporary B-tree.
    rows = sorted(rows, key=itemgetter(0))
    rows.sort(key=itemgetter(3), reverse=True)  # stable: newest first, ties by URL
    return [
        Article(
            url=url,
            title=title,
            excerpt=excerpt,
            published=_dt(published),
            provider=provider,
            provider_domain=domain,
            provider_icon=icon,
            image_url=image,
            quality=quality,
            kind=kind,
            topics=tuple(topics.get(url, ())),
            related=tuple(related.get(url, ())),
        )
        for url, title, excerpt, published, provider, domain, icon, image, quality, kind in rows
    ]


def _iso(value: datetime) -> str:
    """An aware datetime -> fixed-width ISO text in UTC (text order == time order)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: pass an aware one")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


# Everything is stored by _iso, in UTC with an explicit offset, so no conversion is needed back;
# this is on the hot path of all_articles (one call per article and related link).
_dt = datetime.fromisoformat


def _local_date(value: date | str) -> str:
    if isinstance(value, datetime):
        raise TypeError("local_date must be a date or 'YYYY-MM-DD', not a datetime")
    if isinstance(value, date):
        return value.isoformat()
    return date.fromisoformat(value).isoformat()  # validates, normalises


def _check_setting(key: str, value: Any) -> None:
    if key not in _GUILD_SETTING_KEYS:
        raise TypeError(f"unknown guild setting {key!r}; known: {', '.join(_GUILD_SETTING_KEYS)}")
    if key == "digest_enabled":
        if not isinstance(value, bool):
            raise ValueError(f"digest_enabled must be True or False, not {value!r}")
    elif value is None:
        return
    elif key == "digest_channel_id":
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"digest_channel_id must be a channel id, not {value!r}")
    elif key == "digest_time":
        if not isinstance(value, str) or not _HH_MM.fullmatch(value):
            raise ValueError(f"digest_time must be 'HH:MM' (00:00 to 23:59), not {value!r}")
    elif key == "digest_timezone":
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValueError(f"digest_timezone: unknown time zone {value!r}") from None


def _statements(script: str) -> Iterable[str]:
    """Split a migration script into statements (executescript would COMMIT our transaction).

    ``sqlite3.complete_statement`` knows about comments, quotes and trigger bodies, so a ';'
    inside them does not end a statement.
    """
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            statement = pending.strip()
            if statement.strip(";").strip() and not _only_comments(statement):
                yield statement
            pending = ""


def _only_comments(statement: str) -> bool:
    lines = (line.strip() for line in statement.rstrip(";").splitlines())
    return all(not line or line.startswith("--") for line in lines)

"""The store: everything newsbot keeps, behind one interface over SQLite or PostgreSQL.

Open one with ``await Store.open(target)``: a file path opens SQLite (:mod:`bot.store.sqlite`),
a ``postgresql://`` URL opens PostgreSQL (:mod:`bot.store.postgres`). Both are migrated to
their latest schema on open; the store is its own async context manager and closes on exit.

Every query is written once, here, in the SQL both engines speak (``?`` placeholders, which
the PostgreSQL backend numbers; ``INSERT ... ON CONFLICT DO UPDATE``; table-qualified columns
inside an upsert). The backends supply what really differs: connections and transactions,
migrations and where the schema version lives, how the corpus is read in bulk off the event
loop, and how another process's change is noticed.

Design notes:

* Dates are stored as fixed-width ISO 8601 text in UTC (``2020-06-11T12:00:00.000000+00:00``),
  on both engines, so text order is time order and the queries stay the same; they come back
  as aware UTC datetimes.
* The corpus has a *generation* (``corpus_state``): every reload that changes it bumps the
  generation in the same transaction. A reload plan records the generation it was made at and
  is refused (:class:`StaleReloadError`) if the corpus moved meanwhile; the bot's own writes
  (saved searches, digest claims, settings) never touch it, so they never make a load stale.
  Every process compares the generation with the one its index was built from to know when
  to refresh (see :class:`bot.library.Library`). The same transaction logs which URLs it
  changed (``corpus_changes``), so a process that is behind reads back only those articles and
  applies them to its index; a process further behind than the log reaches (or a change too
  large to be worth logging) reads everything back instead.
* Claims (a digest day, the reload lease) name their *holder*, a process id that beats a
  heartbeat in ``workers``; a claim whose holder stopped beating is taken over, so a process
  that dies mid-post blocks nobody for long.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import re
import secrets
import socket
from abc import ABC, abstractmethod
from collections.abc import (
    AsyncIterator,
    Callable,
    Container,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..articles import Article, IndexDoc, RelatedLink
from ..loader import (
    ReloadChanges,
    ReloadState,
    SeedFileRecord,
    SeedFileTable,
    StaleReloadError,
    feed_source,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

URL_SCHEMES = ("postgresql://", "postgres://")


def redact(url: str, *, mark: bool = True) -> str:
    """A database URL fit for messages and logs: no password, in the netloc or the query.

    ``mark``: show where the password was (``user:***@``); without, leave it out, as a URL
    given to another program (``pg_dump``) must, so that it asks or reads ``~/.pgpass``.
    """
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            user, _, host = netloc.rpartition("@")
            name = user.split(":", 1)[0]
            netloc = f"{name}:***@{host}" if mark else f"{name}@{host}"
        query = "&".join(
            (f"{key}=***" if mark else "")
            if key.lower() in _SECRET_KEYS
            else f"{key}={value}"
            if value
            else key
            for key, value in parse_qsl(parts.query, keep_blank_values=True)
        )
        query = "&".join(part for part in query.split("&") if part)
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:  # not even a URL: show none of it
        return url.split("://", 1)[0] + "://(unreadable URL)"


_SECRET_KEYS = {"password", "passfile", "sslpassword"}


def is_database_url(target: str | Path) -> bool:
    """True for a PostgreSQL URL, False for a file path (SQLite)."""
    return isinstance(target, str) and target.startswith(URL_SCHEMES)


# --- errors and records -------------------------------------------------------------------------


class StoreError(Exception):
    """The database cannot be opened, migrated or written; ``str()`` names the database."""


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
    final: bool = False  # refused: not retried until the channel changes or a moderator asks


@dataclass(frozen=True, slots=True)
class SavedSearch:
    id: int
    user_id: int
    query: str
    urls: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SourceState:
    """A live source's state between polls (see bot.sources); times are aware UTC."""

    name: str
    kind: str  # feed, folder, git
    location: str  # as configured
    fetch_url: str | None = None  # a feed's address after permanent redirects
    etag: str | None = None
    last_modified: str | None = None
    last_poll: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    failures: int = 0  # consecutive
    next_poll: datetime | None = None
    disabled: str | None = None  # why polling stopped
    outcome: str | None = None  # the last successful poll's counts
    notes: str | None = None  # its problems with single entries, one per line
    topics: str | None = None  # the topics a folder's files were last loaded with


@dataclass(frozen=True, slots=True)
class Follow:
    """A channel following a query (see bot.follows); times are aware UTC."""

    id: int
    guild_id: int
    channel_id: int
    query: str
    topic: str | None
    source: str | None
    role_id: int | None
    created_by: int
    created_at: datetime
    checked_until: datetime  # articles first seen up to this were looked at
    last_post_at: datetime | None = None
    paused: str | None = None  # why posting stopped
    paused_at: datetime | None = None


class FollowLimitReached(Exception):
    """The guild has ``follows.max_per_guild`` follows already."""


@dataclass(frozen=True, slots=True)
class FeedApplied:
    """What storing one poll of a feed did."""

    added: tuple[str, ...]  # URLs new to the store
    updated: tuple[str, ...]  # URLs whose article changed
    unchanged: int
    elsewhere: int  # entries whose URL another source provides (that one keeps it)
    expired: int  # feed articles past feeds_keep_days, removed
    generation: int | None  # the new corpus generation, if an article changed


#: The live sources' tables: the same SQL on both engines (each one's migrations run it).
SOURCES_SCHEMA = """
-- Live sources (bot.sources): what the next poll sends and when it runs, so that a restart
-- neither fetches every feed again nor forgets a source that is failing.
CREATE TABLE sources (
    name          TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,      -- feed, folder, git
    location      TEXT NOT NULL,      -- as configured: a change of it starts the state afresh
    fetch_url     TEXT,               -- a feed's address after permanent redirects
    etag          TEXT,               -- the validators of the last 200, for a conditional GET
    last_modified TEXT,
    last_poll     TEXT,
    last_success  TEXT,
    last_error    TEXT,
    failures      INTEGER NOT NULL DEFAULT 0,   -- consecutive
    next_poll     TEXT,
    disabled      TEXT,               -- why polling stopped (a feed answered 410 Gone)
    outcome       TEXT,               -- the last successful poll's counts, for status views
    notes         TEXT,               -- its problems with single entries, one per line
    topics        TEXT                -- the source's topics its files were last loaded with
);

-- Each feed entry's id and the URL it was stored under: an entry whose link changes updates
-- its article instead of adding a second one.
CREATE TABLE feed_entries (
    source    TEXT NOT NULL,
    entry_key TEXT NOT NULL,
    url       TEXT NOT NULL,
    PRIMARY KEY (source, entry_key)
);
CREATE INDEX feed_entries_by_url ON feed_entries (url);
-- A feed's articles, for its expiry (articles.source_file is 'feed:' and the source's name).
CREATE INDEX articles_by_source ON articles (source_file);
"""

#: Folder listings (bot.loader's shortcut for a reload that finds nothing changed): the same
#: SQL on both engines.
LISTINGS_SCHEMA = """
-- Bumped by every write to seed_files: a plan read before it is stale, and a folder listing
-- recorded under an older serial no longer says anything.
ALTER TABLE corpus_state ADD COLUMN seed_serial BIGINT NOT NULL DEFAULT 0;

-- The fingerprint (paths, sizes, mtimes) of the listing of a load's folders when it left every
-- file in them settled: a reload that finds the same one, under the same serial, has nothing
-- to do.
-- A load of a few changed files looks up the other files holding their URLs.
CREATE INDEX seed_files_by_url ON seed_files (url);

CREATE TABLE folder_listings (
    folders     TEXT PRIMARY KEY,   -- the load's folders, resolved, one per line
    digest      TEXT NOT NULL,
    seed_serial BIGINT NOT NULL
);
"""

#: Follows (bot.follows): the same SQL on both engines. Ids are chosen by the store (the
#: next after the largest, under a lock), small numbers a moderator can type.
FOLLOWS_SCHEMA = """
-- A channel following a query: new articles that match are posted there.
CREATE TABLE follows (
    id            BIGINT PRIMARY KEY,
    guild_id      BIGINT NOT NULL,
    channel_id    BIGINT NOT NULL,   -- a text or announcement channel, a thread or a forum
    query         TEXT NOT NULL,
    topic         TEXT,
    source        TEXT,
    role_id       BIGINT,            -- mentioned in each post (the only mention allowed)
    created_by    BIGINT NOT NULL,
    created_at    TEXT NOT NULL,
    checked_until TEXT NOT NULL,     -- articles first seen up to this were looked at
    last_post_at  TEXT,
    paused        TEXT,              -- why posting stopped (the channel refused), else NULL
    paused_at     TEXT
);
CREATE INDEX follows_by_guild ON follows (guild_id);

-- One row per follow and article: the claim that posts an article to a follow at most once.
CREATE TABLE follow_posts (
    follow_id  BIGINT NOT NULL REFERENCES follows (id) ON DELETE CASCADE,
    url        TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('claimed', 'posted')),
    holder     TEXT,
    claimed_at TEXT NOT NULL,
    posted_at  TEXT,
    message_id BIGINT,
    PRIMARY KEY (follow_id, url)
);
"""


#: How many URLs one ``IN (...)`` list holds (both engines allow far more parameters).
_IN_CHUNK = 500


@dataclass(frozen=True, slots=True)
class CorpusChanges:
    """What changed in the corpus after a generation: articles as they are now, URLs gone."""

    generation: int
    upserts: list[IndexDoc]
    removed: list[str]


#: A reload's changed URLs are logged unless they are more than this share of the corpus (and
#: more than LOG_FLOOR): past that, reading everything back costs no more than applying them.
LOG_SHARE = 0.25
LOG_FLOOR = 1_000
#: Generations of changes kept in the log; a process further behind rebuilds its index.
LOG_GENERATIONS = 256

#: Saved searches older than this are deleted; their buttons then say "expired".
SEARCH_RETENTION = timedelta(days=30)
#: A claim whose holder has not beaten its heartbeat for this long is taken over.
DEFAULT_HOLDER_TIMEOUT = timedelta(seconds=30)

_GUILD_SETTING_KEYS = ("digest_channel_id", "digest_time", "digest_timezone", "digest_enabled")
_HH_MM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")

#: Tables in the order a copy writes them (parents before children), with their columns.
TABLES: dict[str, tuple[str, ...]] = {
    "articles": (
        "url", "title", "excerpt", "published", "provider", "provider_domain", "provider_icon",
        "image_url", "quality", "kind", "first_seen", "source_file",
    ),
    "article_topics": ("url", "position", "topic"),
    "related_links": (
        "url", "position", "title", "link_url", "provider", "provider_domain", "published",
        "excerpt", "image_url",
    ),
    "seed_files": ("path", "folder", "size", "mtime_ns", "sha256", "url", "error"),
    "guild_settings": (
        "guild_id", "digest_channel_id", "digest_time", "digest_timezone", "digest_enabled",
        "updated_at",
    ),
    "digest_log": (
        "guild_id", "local_date", "status", "claimed_at", "posted_at", "failed_at", "message_id",
        "attempts", "error", "holder", "final",
    ),
    "searches": ("id", "user_id", "query", "urls", "created_at"),
    "sources": (
        "name", "kind", "location", "fetch_url", "etag", "last_modified", "last_poll",
        "last_success", "last_error", "failures", "next_poll", "disabled", "outcome", "notes",
        "topics",
    ),
    "feed_entries": ("source", "entry_key", "url"),
    "follows": (
        "id", "guild_id", "channel_id", "query", "topic", "source", "role_id", "created_by",
        "created_at", "checked_until", "last_post_at", "paused", "paused_at",
    ),
    "follow_posts": (
        "follow_id", "url", "status", "holder", "claimed_at", "posted_at", "message_id",
    ),
}  # fmt: skip


class Session(Protocol):
    """One connection, inside a transaction when the caller asked for one."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]: ...

    async def fetchval(self, sql: str, params: Sequence[Any] = ()) -> Any: ...


def new_holder_id() -> str:
    """A name for this process in claims: readable in the database, unique across restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


# --- the store ----------------------------------------------------------------------------------


class Store(ABC):
    """An open newsbot database; see the module doc. Create with ``await Store.open(target)``."""

    #: "sqlite" or "postgresql".
    backend: str
    #: The database as messages name it: a file path, or a URL without its password.
    label: str

    def __init__(self) -> None:
        #: This process, as claims and the heartbeat name it.
        self.holder = new_holder_id()
        #: How long a silent holder keeps its claims.
        self.holder_timeout = DEFAULT_HOLDER_TIMEOUT

    @classmethod
    async def open(cls, target: Path | str, *, readonly: bool = False) -> Store:
        """Open and migrate the database at ``target`` (a path, or a ``postgresql://`` URL).

        ``readonly`` (SQLite): read an existing, current database without writing anything.
        """
        if is_database_url(target):
            from .postgres import PostgresStore

            return await PostgresStore.connect(str(target))
        from .sqlite import SQLiteStore

        return await SQLiteStore.connect(Path(target), readonly=readonly)

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- what each backend supplies -------------------------------------------------------------

    @abstractmethod
    def session(
        self, what: str, *, write: bool = False, atomic: bool = True
    ) -> AbstractAsyncContextManager[Session]:
        """A connection for some statements: in one transaction if ``atomic`` (a write always
        is). Database errors come out as :class:`StoreError` naming ``what``; a failed write
        changed nothing."""

    @abstractmethod
    async def schema_version(self) -> int: ...

    @abstractmethod
    async def index_snapshot(self, build: Callable[[Iterable[IndexDoc]], T]) -> tuple[int, T]:
        """``build(docs)`` over every article as the index needs it, in a worker thread, from
        one consistent snapshot; returns (that snapshot's generation, what build returned).

        The documents are streamed where the backend can: the whole corpus is never held as
        objects at once."""

    async def corpus_changes(self, since: int) -> CorpusChanges | None:
        """The changes after generation ``since``, or None when the log does not reach back
        that far (or ``since`` is not a generation this database had): rebuild instead."""
        async with self.session("reading the corpus changes") as db:
            state = await db.fetch(CORPUS_STATE_SQL)
            generation, logged_from = int(state[0][0]), int(state[0][1])
            if since == generation:
                return CorpusChanges(generation, [], [])
            if not log_reaches(since, generation, logged_from):
                return None
            rows, topic_rows, urls = [await db.fetch(sql, (since,)) for sql in change_queries()]
        if len(rows) > 500:  # a large change: converting its rows is work for a thread
            return await asyncio.to_thread(changes_from, generation, rows, topic_rows, urls)
        return changes_from(generation, rows, topic_rows, urls)

    async def change_log_reaches(self, since: int) -> bool:
        """True if the changes after generation ``since`` are all logged (or there are none)."""
        async with self.session("reading the corpus generation", atomic=False) as db:
            state = await db.fetch("SELECT generation, logged_from FROM corpus_state WHERE id = 1")
        return log_reaches(since, int(state[0][0]), int(state[0][1]))

    async def index_snapshot_generation(self) -> int | None:
        """The generation of the saved index, if there is one (without reading it)."""
        async with self.session("reading the index snapshot", atomic=False) as db:
            found = await db.fetchval("SELECT max(generation) FROM index_snapshots")
        return None if found is None else int(found)

    async def load_index_snapshot(self) -> tuple[int, int, bytes] | None:
        """The newest saved index: (generation, format, bytes), or None."""
        async with self.session("reading the index snapshot", atomic=False) as db:
            rows = await db.fetch(
                "SELECT generation, format, data FROM index_snapshots"
                " ORDER BY generation DESC LIMIT 1"
            )
        if not rows:
            return None
        generation, form, data = rows[0]
        return int(generation), int(form), bytes(data)

    async def save_index_snapshot(
        self, generation: int, form: int, data: bytes | bytearray, *, now: datetime
    ) -> None:
        """Keep ``data`` as the index of ``generation``, in place of any older snapshot."""
        async with self.session(f"{self.label}: saving the index snapshot", write=True) as db:
            newest = await db.fetchval("SELECT max(generation) FROM index_snapshots")
            if newest is not None and int(newest) >= generation:
                return  # another process saved one as new already
            await db.execute("DELETE FROM index_snapshots")
            await db.execute(
                "INSERT INTO index_snapshots (generation, format, saved_at, data)"
                " VALUES (?, ?, ?, ?)",
                (generation, form, iso(now), data),
            )

    async def wait_for_corpus_change(self, timeout: float) -> None:
        """Return when another process may have changed the corpus, or after ``timeout``.

        The caller then compares :meth:`corpus_generation`; a spurious wake-up costs one query.
        PostgreSQL is told at once (LISTEN/NOTIFY); SQLite polls its cheap data version.
        """
        await asyncio.sleep(timeout)

    async def _serialize(self, db: Session, key: str) -> None:  # noqa: B027
        """Make transactions that pass the same ``key`` run one after the other.

        A claim decides from other rows (is the holder's heartbeat fresh?): those must be read
        after the previous claimant committed. SQLite's writers are serial already;
        PostgreSQL takes a transaction-scoped advisory lock.
        """

    async def _announce_generation(self, db: Session, generation: int) -> None:  # noqa: B027
        """Inside the transaction that bumped the corpus generation (PostgreSQL notifies)."""

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
        return await self._articles("WHERE a.first_seen > ?", (iso(moment),))

    async def articles_by_url(self, urls: Sequence[str]) -> dict[str, Article]:
        """The articles of ``urls`` that are still stored (what a reply shows), by URL."""
        if not urls:
            return {}
        marks = ", ".join("?" * len(urls))
        found = await self._articles(f"WHERE a.url IN ({marks})", tuple(urls))
        return {a.url: a for a in found}

    async def count_articles(self) -> int:
        async with self.session("counting articles", atomic=False) as db:
            return int(await db.fetchval("SELECT count(*) FROM articles"))

    async def first_seen(self, url: str) -> datetime | None:
        async with self.session("reading an article", atomic=False) as db:
            value = await db.fetchval("SELECT first_seen FROM articles WHERE url = ?", (url,))
        return _dt(value) if value is not None else None

    async def topics(self) -> list[tuple[str, int]]:
        """Every topic with the number of articles carrying it, most used first, then by name."""
        async with self.session("reading topics", atomic=False) as db:
            rows = await db.fetch(
                "SELECT topic, count(*) AS n FROM article_topics GROUP BY topic"
                " ORDER BY n DESC, topic"
            )
        return [(topic, int(n)) for topic, n in rows]

    async def corpus_generation(self) -> int:
        """The corpus generation: bumped by every reload that changed an article."""
        async with self.session("reading the corpus generation", atomic=False) as db:
            return int(await db.fetchval("SELECT generation FROM corpus_state WHERE id = 1"))

    async def _articles(self, where: str, params: Sequence[Any]) -> list[Article]:
        # Three bulk queries (articles, topics, related), not one per article, in one read
        # transaction so they agree with each other even while another process commits.
        async with self.session("reading articles") as db:
            results = [await db.fetch(sql, params) for sql in article_queries(where)]
        return hydrate(*results)

    # --- seed reloads ---------------------------------------------------------------------------

    async def seed_files(self) -> list[SeedFileRecord]:
        """The reload bookkeeping, by path (for a "seeds status" view)."""
        return sorted((await self.reload_state()).files.values(), key=lambda r: r.path)

    async def reload_state(self) -> ReloadState:
        """Snapshot what a reload is planned against: seed_files rows and each URL's source."""
        async with self.session("reading seed files") as db:
            generation, seed_serial = await self._reload_stamp(db)
            file_rows = await db.fetch(f"SELECT {_SEED_COLUMNS} FROM seed_files")
            source_rows = await db.fetch("SELECT url, source_file FROM articles")
        # No object per row beyond what the driver returns: a reload of 100,000 unchanged files
        # reads these in well under a second only if Python does not loop over them here.
        return ReloadState(
            files=SeedFileTable(file_rows),  # records made on lookup
            sources=dict(source_rows),  # (url, source_file) pairs, in C
            generation=int(generation),
            seed_serial=int(seed_serial),
        )

    async def seed_rows(self, paths: Sequence[str], urls: Sequence[str]) -> dict[str, _SeedRow]:
        """The seed_files rows of ``paths`` and of the files holding ``urls``, by path."""
        async with self.session("reading seed files") as db:
            return await self._seed_rows(db, paths, urls)

    async def partial_reload_state(self, paths: Sequence[str], urls: Sequence[str]) -> ReloadState:
        """What a load of a few changed files is planned against: the rows of ``paths`` and of
        every file holding one of ``urls``, and the sources of those URLs (see
        :func:`bot.loader.load_changed`); the same snapshot as :meth:`reload_state` otherwise."""
        async with self.session("reading seed files") as db:
            generation, seed_serial = await self._reload_stamp(db)
            rows = await self._seed_rows(db, paths, urls)
            sources: dict[str, str] = {}
            for chunk in _chunks(urls):
                sources.update(await _url_sources(db, chunk))
        return ReloadState(
            files=SeedFileTable(rows.values()),
            sources=sources,
            generation=int(generation),
            seed_serial=int(seed_serial),
        )

    @staticmethod
    async def _reload_stamp(db: Session) -> tuple[Any, Any]:
        """(corpus generation, seed serial): what a reload's plan is checked against."""
        ((generation, seed_serial),) = await db.fetch(
            "SELECT generation, seed_serial FROM corpus_state WHERE id = 1"
        )
        return generation, seed_serial

    @staticmethod
    async def _seed_rows(
        db: Session, paths: Sequence[str], urls: Sequence[str]
    ) -> dict[str, _SeedRow]:
        rows: dict[str, _SeedRow] = {}
        for key, values in (("path", paths), ("url", urls)):
            for chunk in _chunks(values):
                marks = ", ".join("?" * len(chunk))
                found = await db.fetch(
                    f"SELECT {_SEED_COLUMNS} FROM seed_files WHERE {key} IN ({marks})", chunk
                )
                rows.update((str(row[0]), tuple(row)) for row in found)
        return rows

    async def folder_listings(self) -> dict[str, str]:
        """The listing fingerprints that still hold: folders -> digest (see bot.loader)."""
        async with self.session("reading folder listings") as db:
            rows = await db.fetch(
                "SELECT folders, digest FROM folder_listings WHERE seed_serial ="
                " (SELECT seed_serial FROM corpus_state WHERE id = 1)"
            )
        return {str(folder): str(digest) for folder, digest in rows}

    async def apply_reload(
        self,
        changes: ReloadChanges,
        *,
        state: ReloadState,
        now: datetime,
        listings: Mapping[str, str] | None = None,
    ) -> int | None:
        """Apply a planned reload in one transaction: all of it, or (on any error) none of it.

        Raises :class:`StaleReloadError` when the corpus or the seed bookkeeping changed since
        ``state`` was read (plan again), and :class:`StoreError` when the database refuses a
        write; either way the previous corpus is intact. New URLs get ``first_seen = now``;
        existing ones keep theirs. ``listings`` (folders -> fingerprint) are recorded as of the
        bookkeeping this leaves. Returns the new corpus generation when an article changed,
        else None.
        """
        if not changes:
            if listings:
                await self._record_listings(listings, state.seed_serial)
            return None
        now_iso = iso(now)
        articles_change = bool(changes.upsert_articles or changes.delete_articles)
        async with self.session(f"{self.label}: applying the reload", write=True) as db:
            # Checked under the write lock (SQLite's BEGIN IMMEDIATE, PostgreSQL's row lock),
            # so nothing can change between check and write.
            ((current, serial),) = await db.fetch(
                "SELECT generation, seed_serial FROM corpus_state WHERE id = 1"
                + self._lock_row_suffix
            )
            if int(current) != state.generation or int(serial) != state.seed_serial:
                raise StaleReloadError(
                    f"{self.label}: the collection changed while the reload was being planned"
                )
            await self._bump_seed_serial(db)
            await self._write_listings(db, listings or {}, int(serial) + 1)
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
            await self._write_articles(
                db,
                changes.upsert_articles,
                changes.delete_articles,
                stored=state.sources,
                now_iso=now_iso,
            )
            generation: int | None = None
            if articles_change:
                urls_changed = [a.url for a, _ in changes.upsert_articles]
                urls_changed += changes.delete_articles
                generation = await self._advance(
                    db, int(current), urls_changed, len(state.sources), now_iso
                )
        log.info(
            "%s: reload applied: %d articles written, %d deleted, %d seed files recorded",
            self.label,
            len(changes.upsert_articles),
            len(changes.delete_articles),
            len(changes.upsert_files),
        )
        return generation

    async def _record_listings(self, listings: Mapping[str, str], serial: int) -> None:
        """Record fingerprints taken with the bookkeeping at ``serial``, if it still is."""
        async with self.session(f"{self.label}: recording folder listings", write=True) as db:
            current = await db.fetchval(
                "SELECT seed_serial FROM corpus_state WHERE id = 1" + self._lock_row_suffix
            )
            if int(current) == serial:  # else the bookkeeping moved on: they say nothing now
                await self._write_listings(db, listings, serial)

    @staticmethod
    async def _bump_seed_serial(db: Session) -> None:
        await db.execute("UPDATE corpus_state SET seed_serial = seed_serial + 1 WHERE id = 1")

    @staticmethod
    async def _write_listings(db: Session, listings: Mapping[str, str], serial: int) -> None:
        # Rows of an older serial say nothing any more: dropped, so the table stays small.
        await db.execute("DELETE FROM folder_listings WHERE seed_serial < ?", (serial,))
        await db.executemany(
            "INSERT INTO folder_listings (folders, digest, seed_serial) VALUES (?, ?, ?)"
            " ON CONFLICT (folders) DO UPDATE SET digest = excluded.digest,"
            " seed_serial = excluded.seed_serial",
            [(folder, digest, serial) for folder, digest in sorted(listings.items())],
        )

    async def _write_articles(
        self,
        db: Session,
        upserts: Sequence[tuple[Article, str]],
        deletes: Sequence[str],
        *,
        stored: Container[str],
        now_iso: str,
    ) -> None:
        """Write articles (with the source that provides each) and delete URLs, inside the
        caller's transaction; ``stored`` holds every URL the store has now."""
        # Topics and related links go with their article (ON DELETE CASCADE).
        await db.executemany("DELETE FROM articles WHERE url = ?", [(u,) for u in deletes])
        # An upsert, not a delete and insert: that would lose first_seen.
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
                    iso(a.published),
                    a.provider,
                    a.provider_domain,
                    a.provider_icon,
                    a.image_url,
                    None if a.quality is None else float(a.quality),
                    a.kind,
                    now_iso,
                    source,
                )
                for a, source in upserts
            ],
        )
        # Only URLs that were in the store can have old topics and links; ``stored`` was just
        # checked to be current, so it says which (a cold load skips this entirely).
        urls = [(a.url,) for a, _ in upserts if a.url in stored]
        await db.executemany("DELETE FROM article_topics WHERE url = ?", urls)
        await db.executemany("DELETE FROM related_links WHERE url = ?", urls)
        await db.executemany(
            "INSERT INTO article_topics (url, position, topic) VALUES (?, ?, ?)",
            [
                (a.url, position, topic)
                for a, _ in upserts
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
                    iso(r.published) if r.published is not None else None,
                    r.excerpt,
                    r.image_url,
                )
                for a, _ in upserts
                for position, r in enumerate(a.related)
            ],
        )

    async def _advance(
        self, db: Session, current: int, urls_changed: Sequence[str], size: int, now_iso: str
    ) -> int:
        """Move the corpus past ``current`` after ``urls_changed`` changed; the new generation.

        The URLs are logged for other processes' indexes unless they are a large share of a
        corpus of ``size`` articles (those processes then read everything back).
        """
        generation = current + 1
        if len(urls_changed) <= max(LOG_FLOOR, LOG_SHARE * size):
            await db.executemany(
                "INSERT INTO corpus_changes (generation, url) VALUES (?, ?)",
                [(generation, url) for url in urls_changed],
            )
            await self._log_generation(db, generation, now_iso, keep=LOG_GENERATIONS)
        else:
            await self._log_generation(db, generation, now_iso, keep=0)
        return generation

    async def _log_generation(
        self, db: Session, generation: int, now_iso: str, *, keep: int
    ) -> None:
        """Move the corpus to ``generation``, keeping the change log of the last ``keep``
        generations (0: none, every process behind rebuilds its index)."""
        floor = generation - keep
        await db.execute("DELETE FROM corpus_changes WHERE generation <= ?", (floor,))
        await db.execute(
            "UPDATE corpus_state SET generation = ?, changed_at = ?,"
            " logged_from = CASE WHEN logged_from > ? THEN logged_from ELSE ? END WHERE id = 1",
            (generation, now_iso, floor, floor),
        )
        await self._announce_generation(db, generation)

    #: Appended to the generation check in apply_reload: PostgreSQL locks the row with it.
    _lock_row_suffix = ""

    # --- live sources ---------------------------------------------------------------------------

    async def source_states(self) -> dict[str, SourceState]:
        """Every source's saved state, by name (sources never polled have none)."""
        async with self.session("reading the sources' state") as db:
            rows = await db.fetch(f"SELECT {', '.join(TABLES['sources'])} FROM sources")
        return {row[0]: _source_state(row) for row in rows}

    async def source_state(self, name: str) -> SourceState | None:
        async with self.session(f"reading the state of source {name}") as db:
            rows = await db.fetch(
                f"SELECT {', '.join(TABLES['sources'])} FROM sources WHERE name = ?", (name,)
            )
        return _source_state(rows[0]) if rows else None

    async def save_source_state(self, state: SourceState) -> None:
        columns = TABLES["sources"]
        values = (
            state.name, state.kind, state.location, state.fetch_url, state.etag,
            state.last_modified, _iso_or_none(state.last_poll),
            _iso_or_none(state.last_success), state.last_error, state.failures,
            _iso_or_none(state.next_poll), state.disabled, state.outcome, state.notes,
            state.topics,
        )  # fmt: skip
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
        async with self.session(f"saving the state of source {state.name}", write=True) as db:
            await db.execute(
                f"INSERT INTO sources ({', '.join(columns)})"
                f" VALUES ({', '.join('?' * len(columns))})"
                f" ON CONFLICT (name) DO UPDATE SET {updates}",
                values,
            )

    async def forget_file_hashes(self, folder: str) -> None:
        """Make the next load of ``folder`` parse every file again (its source's topics
        changed): a file whose row has no hash is read, whatever its size and mtime."""
        async with self.session(f"marking {folder} to be read again", write=True) as db:
            await db.execute("UPDATE seed_files SET sha256 = NULL WHERE folder = ?", (folder,))
            await self._bump_seed_serial(db)

    async def apply_feed(
        self,
        name: str,
        items: Sequence[tuple[str, Article]],
        *,
        now: datetime,
        expire_before: datetime,
        undated: Container[str] = (),
    ) -> FeedApplied:
        """Store one poll of feed source ``name`` in one transaction: ``items`` are (entry key,
        article), the feed's entries. The articles of ``undated`` URLs were dated ``now`` for
        want of a date: one stored already keeps the date it has.

        A URL another source provides (a seed file, another feed) stays that source's. An
        entry whose key was stored under another URL moves its article to the new one. This
        feed's articles published before ``expire_before`` are removed. New URLs get
        ``first_seen = now``, which is what the digest reports as new.
        """
        label = feed_source(name)
        now_iso = iso(now)
        async with self.session(f"{self.label}: storing feed {name}", write=True) as db:
            current = int(
                await db.fetchval(
                    "SELECT generation FROM corpus_state WHERE id = 1" + self._lock_row_suffix
                )
            )
            urls = list(dict.fromkeys(a.url for _key, a in items))
            owners: dict[str, str] = {}
            mine: dict[str, Article] = {}
            for chunk in _chunks(urls):
                owners.update(await _url_sources(db, chunk))
                marks = ", ".join("?" * len(chunk))
                where = f"WHERE a.url IN ({marks}) AND a.source_file = ?"
                found = [await db.fetch(sql, (*chunk, label)) for sql in article_queries(where)]
                mine.update((a.url, a) for a in hydrate(*found))
            keys = dict(
                await db.fetch("SELECT entry_key, url FROM feed_entries WHERE source = ?", (name,))
            )
            moved: list[str] = []  # old URLs of entries whose link changed
            upserts: list[tuple[Article, str]] = []
            added: list[str] = []
            updated: list[str] = []
            entries: list[tuple[str, str, str]] = []
            unchanged = elsewhere = 0
            for key, article in items:
                owner = owners.get(article.url)
                if owner is not None and owner != label:
                    elsewhere += 1
                    continue
                entries.append((name, key, article.url))
                old_url = keys.get(key)
                if old_url is not None and old_url != article.url and old_url not in urls:
                    moved.append(old_url)
                stored = mine.get(article.url)
                if owner is None:
                    upserts.append((article, label))
                    moved_here = old_url is not None and old_url != article.url
                    (updated if moved_here else added).append(article.url)
                    continue
                if stored is not None and article.url in undated:
                    article = dataclasses.replace(article, published=stored.published)
                if stored != article:
                    upserts.append((article, label))
                    updated.append(article.url)
                else:
                    unchanged += 1
            # Only this feed's own articles move with their entry.
            moved = [
                url
                for url in dict.fromkeys(moved)
                if await db.fetchval(
                    "SELECT 1 FROM articles WHERE url = ? AND source_file = ?", (url, label)
                )
            ]
            expired = [
                url
                for (url,) in await db.fetch(
                    "SELECT url FROM articles WHERE source_file = ? AND published < ?",
                    (label, iso(expire_before)),
                )
            ]
            deletes = list(dict.fromkeys([*moved, *expired]))
            await self._write_articles(db, upserts, deletes, stored=owners, now_iso=now_iso)
            await db.executemany(
                "DELETE FROM feed_entries WHERE url = ?", [(url,) for url in deletes]
            )
            await db.executemany(
                "INSERT INTO feed_entries (source, entry_key, url) VALUES (?, ?, ?)"
                " ON CONFLICT (source, entry_key) DO UPDATE SET url = excluded.url",
                entries,
            )
            generation: int | None = None
            if upserts or deletes:
                size = int(await db.fetchval("SELECT count(*) FROM articles"))
                changed = [a.url for a, _ in upserts] + deletes
                generation = await self._advance(db, current, changed, size, now_iso)
        return FeedApplied(
            added=tuple(added),
            updated=tuple(updated),
            unchanged=unchanged,
            elsewhere=elsewhere,
            expired=len(expired),
            generation=generation,
        )

    # --- follows --------------------------------------------------------------------------------

    async def add_follow(
        self,
        *,
        guild_id: int,
        channel_id: int,
        query: str,
        topic: str | None,
        source: str | None,
        role_id: int | None,
        created_by: int,
        now: datetime,
        max_per_guild: int,
    ) -> Follow:
        """Save a follow; articles first seen from ``now`` on are its to post (none before).

        Raises :class:`FollowLimitReached` when the guild has ``max_per_guild`` already.
        """
        async with self.session("saving a follow", write=True) as db:
            await self._serialize(db, "follows")
            count = int(
                await db.fetchval("SELECT count(*) FROM follows WHERE guild_id = ?", (guild_id,))
            )
            if count >= max_per_guild:
                raise FollowLimitReached(f"this server has {count} follows, the most allowed")
            follow_id = int(await db.fetchval("SELECT COALESCE(MAX(id), 0) + 1 FROM follows"))
            await db.execute(
                "INSERT INTO follows (id, guild_id, channel_id, query, topic, source, role_id,"
                " created_by, created_at, checked_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (follow_id, guild_id, channel_id, query, topic, source, role_id, created_by,
                 iso(now), iso(now)),
            )  # fmt: skip
        return Follow(
            follow_id, guild_id, channel_id, query, topic, source, role_id, created_by, now, now
        )

    async def follows(self, guild_id: int | None = None) -> list[Follow]:
        """The follows of ``guild_id`` (default: every guild), oldest first."""
        where, params = ("WHERE guild_id = ?", (guild_id,)) if guild_id is not None else ("", ())
        async with self.session("reading follows", atomic=False) as db:
            rows = await db.fetch(
                f"SELECT {', '.join(TABLES['follows'])} FROM follows {where} ORDER BY id", params
            )
        return [_follow(row) for row in rows]

    async def remove_follow(self, guild_id: int, follow_id: int) -> bool:
        """Delete a follow of ``guild_id`` (its post records go with it); False if none."""
        async with self.session("removing a follow", write=True) as db:
            removed = await db.execute(
                "DELETE FROM follows WHERE id = ? AND guild_id = ?", (follow_id, guild_id)
            )
        return removed == 1

    async def pause_follow(self, follow_id: int, reason: str, *, now: datetime) -> None:
        async with self.session("pausing a follow", write=True) as db:
            await db.execute(
                "UPDATE follows SET paused = ?, paused_at = ? WHERE id = ?",
                (reason, iso(now), follow_id),
            )

    async def advance_follows(self, follow_ids: Sequence[int], checked_until: datetime) -> None:
        """Articles first seen up to ``checked_until`` were looked at for these follows."""
        if not follow_ids:
            return
        mark = iso(checked_until)
        async with self.session("recording the follows' progress", write=True) as db:
            await db.executemany(
                "UPDATE follows SET checked_until = ? WHERE id = ? AND checked_until < ?",
                [(mark, follow_id, mark) for follow_id in follow_ids],
            )

    async def claim_follow_posts(
        self,
        follow_id: int,
        urls: Sequence[str],
        now: datetime,
        *,
        stale_after: timedelta = timedelta(minutes=15),
    ) -> list[str]:
        """Claim the right to post ``urls`` to a follow; the URLs won, in the order given.

        A URL is won when it has no row yet, or a claim whose holder stopped beating (it died
        mid-post) or older than ``stale_after``; never once posted. One statement per URL
        under a per-follow lock, so concurrent processes never both win one.
        """
        won: list[str] = []
        async with self.session("claiming follow posts", write=True) as db:
            await self._serialize(db, f"follow:{follow_id}")
            await self._beat(db, "follows")
            for url in urls:
                claimed = await db.execute(
                    "INSERT INTO follow_posts (follow_id, url, status, holder, claimed_at)"
                    " VALUES (?, ?, 'claimed', ?, ?)"
                    " ON CONFLICT (follow_id, url) DO UPDATE SET holder = excluded.holder,"
                    " claimed_at = excluded.claimed_at"
                    " WHERE follow_posts.status = 'claimed' AND (follow_posts.claimed_at <= ?"
                    " OR " + self._silent_holder("follow_posts.holder") + ")",
                    (follow_id, url, self.holder, iso(now), iso(now - stale_after),
                     self._alive_window()),
                )  # fmt: skip
                if claimed:
                    won.append(url)
        return won

    async def mark_follow_posted(
        self, follow_id: int, urls: Sequence[str], message_id: int | None, *, now: datetime
    ) -> None:
        async with self.session("recording follow posts", write=True) as db:
            await db.executemany(
                "UPDATE follow_posts SET status = 'posted', posted_at = ?, message_id = ?"
                " WHERE follow_id = ? AND url = ?",
                [(iso(now), message_id, follow_id, url) for url in urls],
            )
            await db.execute(
                "UPDATE follows SET last_post_at = ? WHERE id = ?", (iso(now), follow_id)
            )

    async def release_follow_posts(self, follow_id: int, urls: Sequence[str]) -> None:
        """Give claims back (the post failed for now): the next pass tries them again."""
        async with self.session("releasing follow claims", write=True) as db:
            await db.executemany(
                "DELETE FROM follow_posts WHERE follow_id = ? AND url = ? AND status = 'claimed'"
                " AND holder = ?",
                [(follow_id, url, self.holder) for url in urls],
            )

    async def first_seen_after(
        self,
        moment: datetime,
        *,
        after: tuple[datetime, str] | None = None,
        limit: int = 1000,
    ) -> list[tuple[str, datetime]]:
        """(URL, first seen) of the articles first seen after ``moment``, in (first seen,
        URL) order; ``after`` (first seen, URL) continues from the last row of a page."""
        if after is None:
            where, params = "first_seen > ?", (iso(moment),)
        else:
            seen, url = after
            where = "first_seen > ? AND (first_seen > ? OR (first_seen = ? AND url > ?))"
            params = (iso(moment), iso(seen), iso(seen), url)
        async with self.session("reading new articles", atomic=False) as db:
            rows = await db.fetch(
                f"SELECT url, first_seen FROM articles WHERE {where}"
                " ORDER BY first_seen, url LIMIT ?",
                (*params, limit),
            )
        return [(url, _dt(seen)) for url, seen in rows]

    # --- guild settings -------------------------------------------------------------------------

    async def get_guild_settings(self, guild_id: int) -> GuildSettings | None:
        """The guild's settings, or None if it never set any (the caller applies defaults)."""
        async with self.session("reading guild settings", atomic=False) as db:
            rows = await db.fetch(
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
        async with self.session("saving guild settings", write=True) as db:
            await db.execute(
                f"INSERT INTO guild_settings ({', '.join(columns)})"
                f" VALUES ({', '.join('?' * len(columns))})"
                f" ON CONFLICT (guild_id) DO UPDATE SET {', '.join(updates)}",
                (guild_id, *values.values(), iso(now)),
            )
        settings = await self.get_guild_settings(guild_id)
        assert settings is not None
        return settings

    # --- liveness: the heartbeat behind every claim ---------------------------------------------

    async def heartbeat(self, *, role: str = "bot") -> None:
        """Record that this process is alive (its claims stay its own while it beats)."""
        async with self.session("recording the heartbeat", write=True) as db:
            await self._beat(db, role)
            # Rows of processes gone for a day tell nobody anything any more.
            await db.execute(f"DELETE FROM workers WHERE beat_at < {self._db_now} - 86400")

    async def _beat(self, db: Session, role: str) -> None:
        # The database's clock, not this machine's: processes on several machines share one
        # database, and a skew between their clocks must not make a live process look dead.
        await db.execute(
            "INSERT INTO workers (holder, role, started_at, beat_at)"
            f" VALUES (?, ?, ?, {self._db_now})"
            " ON CONFLICT (holder) DO UPDATE SET beat_at = excluded.beat_at",
            (self.holder, role, iso(wall_clock())),
        )

    async def retire(self) -> None:
        """This process is stopping: its claims may be taken over at once."""
        async with self.session("retiring the heartbeat", write=True) as db:
            await db.execute("DELETE FROM workers WHERE holder = ?", (self.holder,))

    def _silent_holder(self, column: str) -> str:
        """SQL true when ``column`` names a holder that stopped beating (or never beat); its
        parameter is :meth:`_alive_window`."""
        return (
            f"NOT EXISTS (SELECT 1 FROM workers w WHERE w.holder = {column}"
            f" AND w.beat_at > {self._db_now} - CAST(? AS DOUBLE PRECISION))"
        )

    def _alive_window(self) -> float:
        return self.holder_timeout.total_seconds()

    #: The database's clock as seconds since the epoch (heartbeats are compared with it).
    _db_now = "(julianday('now') - 2440587.5) * 86400.0"

    # --- leases: one holder at a time for a named job (a reload) --------------------------------

    async def take_lease(self, name: str, *, now: datetime) -> str | None:
        """Take the lease ``name`` for this process; None when taken, else the live holder.

        A lease whose holder stopped beating is taken over; this process's own is re-taken.
        """
        async with self.session(f"taking the {name} lease", write=True) as db:
            await self._serialize(db, f"lease:{name}")
            # The taker beats too, so that its lease is not taken over at once even when it
            # runs no heartbeat task (a one-off CLI command).
            await self._beat(db, name)
            taken = await db.execute(
                "INSERT INTO leases (name, holder, taken_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
                " taken_at = excluded.taken_at"
                " WHERE leases.holder = ? OR " + self._silent_holder("leases.holder"),
                (name, self.holder, iso(now), self.holder, self._alive_window()),
            )
            if taken:
                return None
            return str(await db.fetchval("SELECT holder FROM leases WHERE name = ?", (name,)))

    async def release_lease(self, name: str) -> None:
        async with self.session(f"releasing the {name} lease", write=True) as db:
            await db.execute(
                "DELETE FROM leases WHERE name = ? AND holder = ?", (name, self.holder)
            )

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
        * 'claimed' by a live holder less than ``stale_after`` ago -> False: it is posting;
        * 'claimed' by a holder that stopped beating (it died mid-post) or longer ago, or
          'failed' -> re-claimed with attempts + 1: True, unless ``max_attempts`` were used
          already (so a broken channel is not retried forever).

        The one window left: a poster that dies after Discord accepted the message but before
        :meth:`mark_digest_posted` leaves a 'claimed' row that is re-claimed; the poster then
        looks for the message in the channel before posting again.
        """
        day = _local_date(local_date)
        async with self.session("claiming a digest", write=True) as db:
            await self._serialize(db, f"digest:{guild_id}:{day}")
            await self._beat(db, "digest")  # a claimant is alive when it claims
            claimed = await db.execute(
                "INSERT INTO digest_log (guild_id, local_date, status, claimed_at, attempts,"
                " holder) VALUES (?, ?, 'claimed', ?, 1, ?)"
                " ON CONFLICT (guild_id, local_date) DO UPDATE SET status = 'claimed',"
                " claimed_at = excluded.claimed_at, holder = excluded.holder,"
                " attempts = digest_log.attempts + 1, error = NULL"
                " WHERE digest_log.attempts < ? AND digest_log.final = 0"
                " AND (digest_log.status = 'failed'"
                "   OR (digest_log.status = 'claimed' AND (digest_log.claimed_at <= ? OR "
                + self._silent_holder("digest_log.holder")
                + ")))",
                (
                    guild_id,
                    day,
                    iso(now),
                    self.holder,
                    max_attempts,
                    iso(now - stale_after),
                    self._alive_window(),
                ),
            )
        log.debug("digest claim %s/%s: %s", guild_id, day, "won" if claimed else "refused")
        return claimed == 1

    async def grant_digest_attempt(self, guild_id: int, local_date: date | str) -> bool:
        """A failed day may be tried again (its channel was changed, or a moderator asked):
        True if it was failed.

        Only a 'failed' row changes: a day that is posted or being posted stays as it is.
        """
        day = _local_date(local_date)
        async with self.session("re-opening a digest", write=True) as db:
            changed = await db.execute(
                "UPDATE digest_log SET attempts = 0, final = 0"
                " WHERE guild_id = ? AND local_date = ? AND status = 'failed'",
                (guild_id, day),
            )
        return changed == 1

    async def mark_digest_posted(
        self, guild_id: int, local_date: date | str, message_id: int | None, now: datetime
    ) -> bool:
        """Record that the claimed digest is done; False if this process does not hold the
        claim (any more): then nothing is written.

        ``message_id`` None: the day is done without a post (nothing new to tell).
        """
        return await self._finish_digest(
            guild_id,
            local_date,
            "status = 'posted', posted_at = ?, message_id = ?, error = NULL",
            (iso(now), message_id),
        )

    async def mark_digest_failed(
        self,
        guild_id: int,
        local_date: date | str,
        error: str,
        now: datetime,
        *,
        give_up: bool = False,
    ) -> bool:
        """Record that posting the claimed digest failed; it may be claimed again, unless
        ``give_up`` (the channel refused it): then only :meth:`grant_digest_attempt` reopens it.
        False if this process does not hold the claim (any more): then nothing is written.
        """
        return await self._finish_digest(
            guild_id,
            local_date,
            "status = 'failed', failed_at = ?, error = ?, final = ?",
            (iso(now), error, int(give_up)),
        )

    async def _finish_digest(
        self, guild_id: int, local_date: date | str, assignments: str, params: tuple[Any, ...]
    ) -> bool:
        day = _local_date(local_date)
        async with self.session("recording a digest", write=True) as db:
            # Only the claim's holder records its outcome: a process whose claim was taken
            # over (it looked dead) must not overwrite what the new holder does.
            changed = await db.execute(
                f"UPDATE digest_log SET {assignments}"
                " WHERE guild_id = ? AND local_date = ? AND status = 'claimed' AND holder = ?",
                (*params, guild_id, day, self.holder),
            )
        if changed != 1:
            log.warning("digest %s/%s: the claim is no longer this process's", guild_id, day)
        return changed == 1

    async def last_digest(self, guild_id: int, *, posted_only: bool = False) -> DigestRecord | None:
        """The guild's latest digest-log row by local date (only 'posted' ones if asked)."""
        status = " AND status = 'posted'" if posted_only else ""
        async with self.session("reading the digest log", atomic=False) as db:
            rows = await db.fetch(
                "SELECT guild_id, local_date, status, claimed_at, posted_at, failed_at,"
                " message_id, attempts, error, final FROM digest_log"
                f" WHERE guild_id = ?{status} ORDER BY local_date DESC LIMIT 1",
                (guild_id,),
            )
        if not rows:
            return None
        guild, day, state, claimed, posted, failed, message, attempts, error, final = rows[0]
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
            final=bool(final),
        )

    # --- saved searches -------------------------------------------------------------------------

    async def save_search(
        self,
        user_id: int,
        query: str,
        urls: Sequence[str],
        now: datetime,
        *,
        search_id: int | None = None,
    ) -> int:
        """Keep a /news answer's hits for its buttons; returns the id the buttons carry.

        ``search_id`` (from :func:`new_search_id`, already on the buttons of a sent answer)
        is the one id tried: if another search holds it (one chance in billions), this raises
        :class:`StoreError` and the answer must lose its buttons.
        """
        async with self.session("saving a search", write=True) as db:
            # Pruning here keeps the table small without a job of its own; the index makes a
            # prune with nothing to delete a single seek.
            await db.execute(
                "DELETE FROM searches WHERE created_at < ?", (iso(now - SEARCH_RETENTION),)
            )
            # A random id, never a counter: a database rebuilt from scratch would count from 1
            # again, and an old message's buttons would open a stranger's search. A clash
            # (one in billions) leaves the row alone and draws again.
            for _ in range(8 if search_id is None else 1):
                chosen = new_search_id() if search_id is None else search_id
                inserted = await db.execute(
                    "INSERT INTO searches (id, user_id, query, urls, created_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                    (chosen, user_id, query, json.dumps(list(urls)), iso(now)),
                )
                if inserted:
                    return chosen
        raise StoreError(
            "saving a search failed: "
            + ("no free id after 8 draws" if search_id is None else f"id {search_id} is taken")
        )

    async def load_search(self, search_id: int) -> SavedSearch | None:
        """The saved search, or None when it expired (or never existed)."""
        if not 0 < search_id < 2**63:
            # Ids come from button custom_ids, which a client can forge: one the database
            # cannot even hold is simply not a saved search.
            return None
        async with self.session("reading a saved search", atomic=False) as db:
            rows = await db.fetch(
                "SELECT id, user_id, query, urls, created_at FROM searches WHERE id = ?",
                (search_id,),
            )
        if not rows:
            return None
        row_id, user_id, query, urls, created = rows[0]
        return SavedSearch(row_id, user_id, query, tuple(json.loads(urls)), _dt(created))

    # --- copying a whole database (newsbot migrate) ---------------------------------------------

    async def holds_data(self) -> list[str]:
        """The tables that hold rows (a copy refuses such a target unless told to replace)."""
        async with self.session("looking for existing data") as db:
            return [
                table
                for table in TABLES
                if await db.fetchval(f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT 1) t")
            ]

    async def export_rows(self) -> AsyncIterator[tuple[str, tuple[str, ...], list[Any]]]:
        """Every table's rows, in one snapshot: (table, columns, rows)."""
        async with self.session("reading the database to copy") as db:
            for table, columns in TABLES.items():
                rows = await db.fetch(f"SELECT {', '.join(columns)} FROM {table}")
                yield table, columns, [tuple(row) for row in rows]
            generation = await db.fetchval("SELECT generation FROM corpus_state WHERE id = 1")
        yield "corpus_state", ("generation",), [(int(generation),)]

    async def import_rows(
        self,
        tables: AsyncIterator[tuple[str, tuple[str, ...], list[Any]]],
        *,
        replace: bool,
        now: datetime,
    ) -> dict[str, int]:
        """Write what :meth:`export_rows` produced, in one transaction; counts per table.

        ``replace`` empties every table first; otherwise a table that holds rows is refused.
        The corpus generation moves past both databases' so every process refreshes.
        """
        counts: dict[str, int] = {}
        async with self.session(f"{self.label}: copying into the database", write=True) as db:
            if replace:
                for table in reversed(list(TABLES)):
                    await db.execute(f"DELETE FROM {table}")
            source_generation = 0
            async for table, columns, rows in tables:
                if table == "corpus_state":
                    source_generation = int(rows[0][0])
                    continue
                marks = ", ".join("?" * len(columns))
                await db.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
                )
                counts[table] = len(rows)
            current = int(await db.fetchval("SELECT generation FROM corpus_state WHERE id = 1"))
            await self._bump_seed_serial(db)  # seed_files is another table now
            generation = max(current, source_generation) + 1
            await self._log_generation(db, generation, iso(now), keep=0)
        return counts


# --- helpers ------------------------------------------------------------------------------------

# A seed_files row as a tuple: (path, folder, size, mtime_ns, sha256, url, error).
_SeedRow = tuple[Any, ...]
_SEED_COLUMNS = "path, folder, size, mtime_ns, sha256, url, error"


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    """``values`` in pieces small enough for one ``IN (...)`` on either engine."""
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


async def _url_sources(db: Session, urls: Sequence[str]) -> dict[str, str]:
    """The source_file of each of ``urls`` (one chunk) that is an article."""
    marks = ", ".join("?" * len(urls))
    rows = await db.fetch(f"SELECT url, source_file FROM articles WHERE url IN ({marks})", urls)
    return {str(url): str(source) for url, source in rows}


def new_search_id() -> int:
    """A saved search's id: random, positive, within a signed 64-bit integer (both engines)."""
    return secrets.randbelow(2**62) + 1


def wall_clock() -> datetime:
    """Real time, for liveness (heartbeats): never the digest's injectable clock."""
    return datetime.now(UTC)


def article_queries(where: str) -> tuple[str, str, str]:
    join = f"JOIN articles a ON a.url = x.url {where}" if where else ""
    return (
        "SELECT url, title, excerpt, published, provider, provider_domain, provider_icon,"
        f" image_url, quality, kind FROM articles a {where}",
        f"SELECT x.url, x.topic FROM article_topics x {join} ORDER BY x.url, x.position",
        "SELECT x.url, x.title, x.link_url, x.provider, x.provider_domain, x.published,"
        f" x.excerpt, x.image_url FROM related_links x {join} ORDER BY x.url, x.position",
    )


#: What the search index needs of an article (see bot.articles.IndexDoc).
INDEX_COLUMNS = "a.url, a.title, a.excerpt, a.published, a.quality, a.provider, a.provider_domain"


def index_queries(where: str) -> tuple[str, str]:
    """The articles and their topics for the index, both in URL order (for a merge join)."""
    return (
        f"SELECT {INDEX_COLUMNS} FROM articles a {where} ORDER BY a.url",
        f"SELECT x.url, x.topic FROM article_topics x WHERE x.url IN (SELECT a.url FROM articles a"
        f" {where}) ORDER BY x.url, x.position"
        if where
        else "SELECT x.url, x.topic FROM article_topics x ORDER BY x.url, x.position",
    )


def index_docs(
    rows: Iterable[Sequence[Any]], topic_rows: Iterable[Sequence[Any]]
) -> Iterator[IndexDoc]:
    """Rows of :func:`index_queries` -> IndexDocs, streaming: both must be in URL order."""
    topics = iter(topic_rows)
    pending = next(topics, None)
    for url, title, excerpt, published, quality, provider, domain in rows:
        mine: list[str] = []
        while pending is not None and pending[0] <= url:
            if pending[0] == url:
                mine.append(pending[1])
            pending = next(topics, None)
        yield IndexDoc(
            url=url,
            title=title,
            excerpt=excerpt,
            published=_dt(published).timestamp(),
            quality=quality,
            provider=provider,
            provider_domain=domain,
            topics=tuple(mine),
        )


CORPUS_STATE_SQL = "SELECT generation, logged_from FROM corpus_state WHERE id = 1"


def log_reaches(since: int, generation: int, logged_from: int) -> bool:
    """True if every change after ``since`` up to ``generation`` is in the change log (none
    is, trivially, when ``since`` is the current generation)."""
    return since == generation or logged_from <= since < generation


def change_queries() -> tuple[str, str, str]:
    """The changed articles, their topics, and every changed URL, after generation ``?``."""
    changed = "WHERE a.url IN (SELECT c.url FROM corpus_changes c WHERE c.generation > ?)"
    articles_sql, topics_sql = index_queries(changed)
    return (
        articles_sql,
        topics_sql,
        "SELECT DISTINCT url FROM corpus_changes WHERE generation > ?",
    )


def changes_from(
    generation: int,
    rows: Sequence[Any],
    topic_rows: Sequence[Any],
    urls: Sequence[Any],
) -> CorpusChanges:
    """Rows of :func:`change_queries` -> the changes: a logged URL no longer stored is gone."""
    upserts = list(index_docs(rows, topic_rows))
    present = {d.url for d in upserts}
    return CorpusChanges(generation, upserts, [url for (url,) in urls if url not in present])


def hydrate(
    rows: Sequence[Any], topic_rows: Sequence[Any], related_rows: Sequence[Any]
) -> list[Article]:
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
    # Sorted here: the database would copy every row, excerpts and all, into a temporary tree.
    ordered = sorted(rows, key=itemgetter(0))
    ordered.sort(key=itemgetter(3), reverse=True)  # stable: newest first, ties by URL
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
        for url, title, excerpt, published, provider, domain, icon, image, quality, kind in ordered
    ]


def iso(value: datetime) -> str:
    """An aware datetime -> fixed-width ISO text in UTC (text order == time order)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: pass an aware one")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


# Everything is stored by iso(), in UTC with an explicit offset, so no conversion is needed
# back; this is on the hot path of reading the corpus (one call per article and related link).
_dt = datetime.fromisoformat


def _iso_or_none(value: datetime | None) -> str | None:
    return None if value is None else iso(value)


def _follow(row: Sequence[Any]) -> Follow:
    (follow_id, guild_id, channel_id, query, topic, source, role_id, created_by, created_at,
     checked_until, last_post_at, paused, paused_at) = row  # fmt: skip
    return Follow(
        id=int(follow_id),
        guild_id=int(guild_id),
        channel_id=int(channel_id),
        query=query,
        topic=topic,
        source=source,
        role_id=int(role_id) if role_id is not None else None,
        created_by=int(created_by),
        created_at=_dt(created_at),
        checked_until=_dt(checked_until),
        last_post_at=_dt(last_post_at) if last_post_at else None,
        paused=paused,
        paused_at=_dt(paused_at) if paused_at else None,
    )


def _source_state(row: Sequence[Any]) -> SourceState:
    (name, kind, location, fetch_url, etag, last_modified, last_poll, last_success,
     last_error, failures, next_poll, disabled, outcome, notes, topics) = row  # fmt: skip
    return SourceState(
        name=name,
        kind=kind,
        location=location,
        fetch_url=fetch_url,
        etag=etag,
        last_modified=last_modified,
        last_poll=_dt(last_poll) if last_poll else None,
        last_success=_dt(last_success) if last_success else None,
        last_error=last_error,
        failures=int(failures),
        next_poll=_dt(next_poll) if next_poll else None,
        disabled=disabled,
        outcome=outcome,
        notes=notes,
        topics=topics,
    )


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


def split_statements(script: str, complete: Any) -> Iterable[str]:
    """Split a migration script into statements, ``complete(text)`` saying when one ends.

    SQLite passes ``sqlite3.complete_statement``, which knows comments, quotes and trigger
    bodies, so a ';' inside them does not end a statement.
    """
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if complete(pending):
            statement = pending.strip()
            if statement.strip(";").strip() and not _only_comments(statement):
                yield statement
            pending = ""


def _only_comments(statement: str) -> bool:
    lines = (line.strip() for line in statement.rstrip(";").splitlines())
    return all(not line or line.startswith("--") for line in lines)

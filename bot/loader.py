"""Seed loading: scan folders, plan an incremental reload, apply it in one transaction, report.

A load has two phases. *Planning* (pure, in a worker thread so the event loop stays responsive)
stats every seed file, reads and parses only those that changed, and decides what the store must
hold. *Applying* writes that plan in one transaction (:meth:`bot.store.Store.apply_reload`), so a
failure leaves the previous corpus intact.

Rules, all deterministic:

* A path may be a folder or a file. Folders are scanned recursively for ``*.md``,
  ``*.markdown`` and ``*.txt`` (any case), skipping hidden files and folders (names starting with
  ``.``). A file given directly is loaded whatever its name.
* A symlink inside a folder is followed only if its target is inside that folder too; otherwise
  it is rejected ("symlink points outside <folder>"). Symlinked folders are not descended into
  (their target is scanned where it really is, if it is inside the folder). A dangling link or a
  loop is rejected by name if it has a seed's name; one that cannot even be resolved (a link to
  a zombie process's ``/proc/PID/exe``) is rejected by name whatever its name.
* Any error reading one entry (it vanished mid-scan, permission denied...) rejects that entry,
  by name and with the reason, and the scan goes on: one entry never fails a load.
* Paths in report lines and logs have their control characters escaped (``\\n``): a file name
  holding a newline cannot split its line or forge another.
* A file bigger than ``max_bytes`` (by stat) is rejected without being read.
* Incremental: a file whose size and mtime match its ``seed_files`` row is not read; one whose
  size or mtime differ but whose sha256 matches is not parsed. Either way it keeps its previous
  outcome. A rejected file is the exception: it is read and parsed again by every load (they are
  few), so a newsbot that now accepts it (a URL with a space, say) loads it without the file
  being touched; if it is still refused, the reason is reported again.
* A file that was loaded from a folder and is no longer in it is *removed* when that folder is
  loaded again. Files of folders not in this load are left alone; a missing path is rejected
  and removes nothing (an unmounted disk must not empty the store).
* Duplicate URLs: among all files holding the same URL, the one whose article has the latest
  ``publishedDateTime`` provides it (a live-updated page is saved again under a later date);
  between equal dates, the one with the lexicographically greatest absolute path (date-prefixed
  names put the later copy last). The scan order never matters. Each other file is reported in
  ``duplicates`` ("kept the newest, <path>") and is neither loaded nor rejected. To compare
  dates, every file of a duplicated URL is parsed, including those whose bookkeeping says they
  did not change (the store keeps no date for a file that lost its URL); duplicates are rare.
* The store always ends up as a cold load of the same files would leave it: a file that is now
  rejected no longer provides its article (it is deleted unless another file holds that URL).
* ``first_seen`` is set when a URL enters the store and kept while any file provides it.
* A load of folders that leaves them *settled* (every file in them loaded, none rejected, none
  losing its URL) records a fingerprint of their listing: paths, sizes and mtimes in scan
  order. A later load of the same folders that finds the same fingerprint, with the bookkeeping
  unchanged since (the store's seed serial), has nothing to do: it does not read the
  bookkeeping, and writes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import itertools
import logging
import os
import pickle
import stat
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .articles import DEFAULT_MAX_BYTES, Article, SeedError, parse_seed, printable, with_topics
from .foreground import FOREGROUND

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger(__name__)

SEED_SUFFIXES = frozenset({".md", ".markdown", ".txt"})
_LOWER_SUFFIXES = tuple(SEED_SUFFIXES)  # for str.endswith; other cases are lowered first
# A plan made while another reload (in this process or another) was applied is refused by the
# store; planning again is cheap (only files that changed are parsed), so a few tries settle it.
_APPLY_ATTEMPTS = 3

Progress = Callable[[int, int], None]

# Files examined between two chances for a bot's replies in flight to go first (see
# bot.foreground): a few ms of parsing.
STEP_FILES = 16
# The same for the entries a scan stats: about a millisecond of them.
STEP_ENTRIES = 512

#: ``articles.source_file`` of a feed's articles is this prefix and the source's name; seed
#: files are absolute paths, so the two never meet.
FEED_SOURCE = "feed:"


def feed_source(name: str) -> str:
    """What ``articles.source_file`` says of the articles of feed source ``name``."""
    return FEED_SOURCE + name


# --- what a reload writes: the records the store keeps for the loader ----------------------------


class StaleReloadError(Exception):
    """The corpus changed between :meth:`Store.reload_state` and :meth:`Store.apply_reload`.

    Only the corpus counts (its generation): the bot's own writes (saved searches, digest
    claims, settings) never make a plan stale.
    """


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


# A seed_files row as the database returns it (a tuple from SQLite, a Record from asyncpg), its
# columns in the order of SeedFileRecord's fields.
_Row = Sequence[Any]


class SeedFileTable(Mapping[str, SeedFileRecord]):
    """``seed_files`` rows by path, kept as the database returned them.

    A :class:`SeedFileRecord` is made only when a row is looked up, and the index by path only
    when something is looked up at all: a reload of 100,000 unchanged files walks the rows once,
    and making a record per row would cost about as much as that whole comparison.
    """

    __slots__ = ("_by_path", "_rows")

    def __init__(self, rows: Iterable[_Row] = ()) -> None:
        # Each row holds SeedFileRecord's fields in order: (path, folder, size, mtime_ns,
        # sha256, url, error).
        self._rows: list[_Row] = list(rows)
        self._by_path: dict[str, _Row] | None = None

    def _index(self) -> dict[str, _Row]:
        if self._by_path is None:  # zip/map run in C: no Python-level loop per row
            rows = self._rows
            self._by_path = dict(zip(map(itemgetter(0), rows), rows, strict=True))
        return self._by_path

    def __getitem__(self, path: str) -> SeedFileRecord:
        return SeedFileRecord(*self._index()[path])

    def __contains__(self, path: object) -> bool:
        return path in self._index()

    def __iter__(self) -> Iterator[str]:
        return iter(self._index())

    def __len__(self) -> int:
        return len(self._rows)  # paths are the table's primary key: no duplicates

    def __repr__(self) -> str:
        return f"SeedFileTable({len(self._rows)} rows)"

    def raw_rows(self) -> Sequence[_Row]:
        """Every row as the database returned it (read-only by convention)."""
        return self._rows

    def raw(self, path: str) -> _Row | None:
        """The row of ``path`` as the database returned it, if there is one."""
        return self._index().get(path)


@dataclass(frozen=True, slots=True)
class ReloadState:
    """A snapshot of the reload bookkeeping, to plan a reload against."""

    files: Mapping[str, SeedFileRecord]  # seed_files by path (a SeedFileTable from the store)
    sources: dict[str, str]  # article URL -> the seed file path that provides it
    # The corpus generation the snapshot was read at: apply_reload refuses a plan made from an
    # outdated one (another process, or another reload in this one, changed the corpus).
    generation: int
    # Bumped by every write to seed_files (a plan is stale after one even if no article
    # changed), and the serial folder listings are recorded under.
    seed_serial: int = 0


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


@dataclass
class LoadReport:
    """What one load did. Lists hold absolute, resolved file paths, sorted (a missing path
    argument is rejected under the name it was given).

    ``added``: files whose article is new to the store (its URL was not there before).
    ``updated``: files whose article was rewritten (the file changed, or it took over a URL).
    ``unchanged``: files whose article was left as it was.
    ``removed``: files gone from a folder that was loaded again (their row is dropped).
    ``rejected``: (path, one-line reason, i.e. ``str(SeedError)``, which names the file).
    ``duplicates``: one line per file that lost a URL to another file.
    ``warnings``: problems in files parsed by this load that did not stop them loading.
    """

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Whether any article was written or deleted: a file that breaks, or loses its URL to a
    # duplicate, deletes an article without adding, updating or removing a file.
    articles_changed: bool = False

    @property
    def ok(self) -> bool:
        """True when no file was rejected (duplicates and warnings do not count)."""
        return not self.rejected

    def summary(self) -> str:
        """One line: 'added 3, updated 1, unchanged 5, removed 0, rejected 1[, duplicates 2]'."""
        text = (
            f"added {len(self.added)}, updated {len(self.updated)}, "
            f"unchanged {len(self.unchanged)}, removed {len(self.removed)}, "
            f"rejected {len(self.rejected)}"
        )
        return f"{text}, duplicates {len(self.duplicates)}" if self.duplicates else text


async def load_seeds(
    store: Store,
    paths: Sequence[Path | str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    now: datetime,
    progress: Progress | None = None,
    topics: Sequence[str] = (),
) -> LoadReport:
    """Load seed files and folders into ``store`` incrementally, in one transaction.

    ``now`` (aware) becomes ``first_seen`` of new URLs. ``progress(done, total)`` is called on
    the event loop's thread, at the start, about every 1% of the files and at the end (before
    this returns). ``topics`` are added to the topics of every file this load parses (a
    source's ``topics:``). Raises :class:`bot.store.StoreError` if the store refuses the write; the
    previous corpus is then intact. Rejected files are reported, not raised.
    """
    _check_aware(now)
    path_list = _path_list(paths)
    on_progress: Progress | None = None
    if progress is not None:
        loop = asyncio.get_running_loop()
        callback = progress

        def on_progress(done: int, total: int) -> None:
            # The plan runs in a worker thread; hop to the loop so callers may touch asyncio.
            loop.call_soon_threadsafe(callback, done, total)

    for attempt in range(1, _APPLY_ATTEMPTS + 1):
        recorded = await store.folder_listings()
        scan, settled = await asyncio.to_thread(
            _scan_unless_settled, path_list, recorded, max_bytes, topics
        )
        if settled is not None:
            log.debug("nothing changed in the listing since the last load: not planning")
            if on_progress is not None:
                on_progress(len(scan.found), len(scan.found))
            _log_loaded(path_list, settled)
            return settled
        state = await store.reload_state()
        changes, report, listings = await asyncio.to_thread(
            _plan,
            path_list,
            _table(state.files),
            state.sources,
            max_bytes,
            on_progress,
            tuple(topics),
            scan,
        )
        # Only what is not recorded already: a no-change load then writes nothing at all.
        listings = {k: v for k, v in listings.items() if recorded.get(k) != v}
        if await _applied(
            store, changes, report, state, now, listings, last=attempt == _APPLY_ATTEMPTS
        ):
            _log_loaded(path_list, report)
            return report
    raise AssertionError("unreachable")


async def _applied(
    store: Store,
    changes: ReloadChanges,
    report: LoadReport,
    state: ReloadState,
    now: datetime,
    listings: Mapping[str, str] | None = None,
    *,
    last: bool,
) -> bool:
    """Apply a plan; False if it was stale (plan again), which is raised on the ``last`` try."""
    try:
        await store.apply_reload(changes, state=state, now=now, listings=listings)
    except StaleReloadError:
        if last:
            raise
        log.info("the store changed while planning the reload; planning again")
        return False
    report.articles_changed = bool(changes.upsert_articles or changes.delete_articles)
    return True


#: A watcher's burst of more changed files than this is loaded as a whole folder: one scan
#: then costs less than this many lookups by path and by URL.
CHANGED_AT_MOST = 2000


async def load_changed(
    store: Store,
    folder: Path | str,
    changed: Iterable[Path | str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    now: datetime,
    topics: Sequence[str] = (),
) -> LoadReport | None:
    """Load only the files of ``folder`` that a watcher saw written, created or deleted, as a
    load of the whole folder would (see :func:`load_seeds`), without scanning the folder or
    reading every row: only the rows of those files and of the files holding their URLs.

    Returns None, having written nothing, when the changes need the whole folder looked at:
    a folder, a symlink or something unreadable among them, or more than
    :data:`CHANGED_AT_MOST` of them. Paths outside ``folder``, hidden ones and other files
    than seeds are ignored.
    """
    _check_aware(now)
    try:
        root = str(Path(folder).expanduser().resolve(strict=True))
    except (OSError, RuntimeError):
        return None  # the folder itself is gone or unreadable: the whole load says so
    inside = root.rstrip(os.sep) + os.sep
    # A watcher reports paths under the folder as it was named, which may not be resolved.
    named = os.path.abspath(os.path.expanduser(folder)).rstrip(os.sep) + os.sep
    wanted: set[str] = set()
    for given in map(os.fspath, changed):
        path = os.path.abspath(given)
        if path.startswith(named) and named != inside:
            path = inside + path[len(named) :]
        if not path.startswith(inside):
            continue
        kind = _seed_path_kind(path[len(inside) :])
        if kind is None:
            return None  # a folder came or went, or a file that is not a seed by its name
        if kind:
            wanted.add(path)
    if len(wanted) > CHANGED_AT_MOST:
        return None
    if not wanted:
        return LoadReport()
    paths = sorted(wanted)
    tags = tuple(topics)
    for attempt in range(1, _APPLY_ATTEMPTS + 1):
        scan = await asyncio.to_thread(_stat_changed, paths, root)
        if scan is None:
            return None
        before = await store.seed_rows(paths, ())
        examined = await asyncio.to_thread(_examine_changed, scan, before, max_bytes, tags)
        urls = {row[5] for row in before.values() if row[5] is not None}
        urls.update(file.url for _row, file in examined.values() if file.url is not None)
        state = await store.partial_reload_state(paths, sorted(urls))
        holders = [p for p in state.files if p.startswith(inside) and p not in scan.found]
        others = await asyncio.to_thread(_stat_changed, holders, root, vanish=False)
        if others is None:
            return None
        scan.found.update(others.found)
        changes, report, _listings = await asyncio.to_thread(
            _plan, [], _table(state.files), state.sources, max_bytes, None, tags, scan, examined
        )
        if await _applied(store, changes, report, state, now, last=attempt == _APPLY_ATTEMPTS):
            _log_loaded([Path(root)], report)
            return report
    raise AssertionError("unreachable")


def _seed_path_kind(relative: str) -> bool | None:
    """Of a changed path inside a folder: True, a seed file's by its name; False, one a scan
    skips (hidden, or in a hidden folder); None, anything else (a folder, most likely)."""
    parts = relative.split(os.sep)
    if any(part.startswith(".") for part in parts):
        return False
    name = parts[-1]
    dot = name.rfind(".")
    if not name or dot <= 0 or name[dot:].lower() not in SEED_SUFFIXES:
        return None
    return True


def _stat_changed(paths: Sequence[str], root: str, *, vanish: bool = True) -> _Scan | None:
    """The scan of a load of changed files only: each one's stat, as a folder scan takes it;
    a file that no longer exists is ``vanished`` (else left out). None if one is anything but
    a regular file or missing (a folder, a symlink, unreadable): the whole folder is loaded."""
    scan = _Scan()
    for path in paths:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            if vanish:
                scan.vanished.add(path)
            continue
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode) or _undecodable(path) is not None:
            return None
        scan.found[path] = (root, st.st_size, st.st_mtime_ns)
    return scan


def _examine_changed(
    scan: _Scan, rows: Mapping[str, _Row], max_bytes: int, topics: tuple[str, ...]
) -> dict[str, tuple[_Row | None, _File]]:
    """Each changed file examined against its row, to learn the URL it holds now."""
    examined: dict[str, tuple[_Row | None, _File]] = {}
    for number, (path, (root, size, mtime_ns)) in enumerate(scan.found.items(), 1):
        if number % STEP_FILES == 0:
            FOREGROUND.step_aside()  # in a bot, its replies in flight go first
        row = rows.get(path)
        record = None if row is None else SeedFileRecord(*row)
        examined[path] = (
            row,
            _examine(path, root, record, max_bytes, size, mtime_ns, topics=topics),
        )
    return examined


def _log_loaded(paths: Sequence[Path], report: LoadReport) -> None:
    shown = ", ".join(printable(str(p)) for p in paths)  # a name may hold a newline
    log.info("seeds loaded from %s: %s", shown, report.summary())
    for _path, reason in report.rejected:
        log.warning("rejected %s", reason)  # the reason names the file


def check_seeds(
    paths: Sequence[Path | str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    progress: Progress | None = None,
) -> LoadReport:
    """Validate seed files and folders without any store: synchronous, writes nothing.

    The report is what loading into an empty store would say: every file that would provide an
    article is in ``added``; rejections and duplicates as :func:`load_seeds` reports them.
    ``progress`` is called in the caller's thread.
    """
    _changes, report, _listings = _plan(_path_list(paths), SeedFileTable(), {}, max_bytes, progress)
    return report


# --- planning (pure apart from reading the files) ----------------------------------------------


@dataclass(slots=True)
class _File:
    """One seed file's outcome in this load.

    Only files that need a decision get one: a file whose row is exactly right and that is the
    sole source of its URL is *kept* (see :func:`_plan`) and never gets a ``_File`` unless the
    settling of URLs needs it (see :func:`_settle_winners`).
    """

    path: str
    folder: str | None
    size: int
    mtime_ns: int
    sha256: str | None = None
    url: str | None = None
    error: str | None = None
    article: Article | None = None  # set only when parsed by this load
    in_scan: bool = True  # False: a known file outside this load's paths...
    examined: bool = True  # ...and False too if this load did not even stat it
    as_recorded: bool = False  # True: its seed_files row is exactly right already

    def record(self) -> SeedFileRecord:
        return SeedFileRecord(
            self.path, self.folder, self.size, self.mtime_ns, self.sha256, self.url, self.error
        )


# What the scan saw of a seed file: (its folder, None if given directly; its size and mtime_ns
# from the scan's one stat, or None and 0 when _examine is to stat it: a symlink's target, or a
# file whose stat failed or that is not a regular file). Plain ints, not the stat_result: the
# plan compares 100,000 of them against the rows, and small objects keep that pass fast.
_Seen = tuple[str | None, int | None, int]


class _Kept:
    """Files whose row and article are right as they are (see :func:`_plan`): their rows.

    Indexed by URL only when something asks by URL (a reload that changed nothing never does).
    """

    __slots__ = ("_by_url", "_rows")

    def __init__(self) -> None:
        self._rows: list[_Row] = []
        self._by_url: dict[str, _Row] | None = None

    def add(self, row: _Row) -> None:
        assert self._by_url is None, "kept files are all added before any is looked up"
        self._rows.append(row)

    def _index(self) -> dict[str, _Row]:
        if self._by_url is None:  # in C; each kept row holds a URL, and no two the same one
            rows = self._rows
            self._by_url = dict(zip(map(itemgetter(5), rows), rows, strict=True))
        return self._by_url

    def pop(self, url: str) -> _Row | None:
        """Take the kept file holding ``url`` out (it needs a decision after all), if any."""
        return self._index().pop(url, None) if self._rows else None

    def urls(self) -> Iterable[str]:
        return self._index().keys()

    def rows(self) -> Iterable[_Row]:
        return self._rows if self._by_url is None else self._by_url.values()

    def __len__(self) -> int:
        return len(self._rows) if self._by_url is None else len(self._by_url)


@dataclass(slots=True)
class _Scan:
    found: dict[str, _Seen] = field(default_factory=dict)  # by path
    rejected: list[tuple[str, str]] = field(default_factory=list)  # not recorded in the store
    folders: list[str] = field(default_factory=list)  # folders scanned completely...
    incomplete: list[str] = field(default_factory=list)  # ...except for these sub-folders
    files_given: int = 0  # paths given that are files, not folders
    # Files a watcher saw deleted (a load of changed files only): removed like files gone from
    # a scanned folder.
    vanished: set[str] = field(default_factory=set)


def _plan(
    paths: Sequence[Path],
    table: SeedFileTable,
    sources: Mapping[str, str],
    max_bytes: int,
    progress: Progress | None,
    topics: tuple[str, ...] = (),
    scan: _Scan | None = None,
    examined: Mapping[str, tuple[_Row | None, _File]] | None = None,
) -> tuple[ReloadChanges, LoadReport, dict[str, str]]:
    """Decide what a load writes, from the store's bookkeeping ``table`` and URL ``sources``;
    ``scan`` is the scan of ``paths`` if taken already, and ``examined`` the outcome of files
    examined already, with the row they were examined against (used only if the table still
    holds that row). Also returns the listing fingerprint of the folders the load leaves
    settled (see :func:`_settled_listings`).

    Built for a reload where little changed: one pass over the rows settles every file that is
    *kept* (found, same size and mtime as its row, a row without error, and the source of its
    URL in the store) with no object made for it; only the others become a :class:`_File`.
    """
    if scan is None:
        scan = _scan(paths)
    found = scan.found
    total = len(found)
    step = max(1, total // 100)
    if progress is not None:
        progress(0, total)

    # A kept file's row says it holds a URL and the store says the file provides it, so two kept
    # files never share a URL; one that shares it with a file that does need a decision is
    # pulled out again by _settle_winners.
    kept = _Kept()
    keep = kept.add
    pending: list[tuple[str, _Row | None]] = []  # found files to examine (read if changed)
    unfound: list[_Row] = []  # rows of files this scan did not find
    source_of = sources.get
    # The rows come in the database's order, which is close to sorted (a load writes them
    # sorted): the list of unchanged files made from them sorts in no time.
    for row in table.raw_rows():
        path, row_folder, size, mtime_ns, sha256, url, error = row
        seen = found.get(path)
        if seen is None:
            unfound.append(row)
            continue
        folder, seen_size, seen_mtime_ns = seen
        if (
            seen_mtime_ns == mtime_ns
            and seen_size == size  # never None == size: a file the scan did not stat is examined
            and sha256 is not None
            and error is None  # a rejection is never trusted: see _examine
            and url is not None
            and (folder is None or folder == row_folder)  # see _examine's as_recorded
            and size <= max_bytes
            and source_of(url) == path
        ):
            keep(row)
        else:
            pending.append((path, row))
    if len(kept) + len(pending) < total:  # files new to the store
        pending.extend((path, None) for path in found if table.raw(path) is None)

    done = len(kept)
    if progress is not None:
        # Kept files are settled in one quick pass: report the steps they cover now.
        for mark in range(step, done + 1, step):
            progress(mark, total)
        if done == total and total % step:
            progress(done, total)

    files: dict[str, _File] = {}
    known: dict[str, _Row] = {}  # the row of each file in files that has one
    pending.sort(key=itemgetter(0))  # read in path order: deterministic logs, disk order
    for path, row in pending:
        folder, seen_size, seen_mtime_ns = found[path]
        record = None
        if row is not None:
            known[path] = row
            record = SeedFileRecord(*row)
            if folder is None:
                folder = record.folder  # naming a file directly does not detach it from its folder
        early = examined.get(path) if examined else None
        if early is not None and early[0] == row:
            files[path] = early[1]
        else:
            files[path] = _examine(
                path, folder, record, max_bytes, seen_size, seen_mtime_ns, topics=topics
            )
            if done % STEP_FILES == 0:
                FOREGROUND.step_aside()  # in a bot, its replies in flight go first
        done += 1
        if progress is not None and (done % step == 0 or done == total):
            progress(done, total)

    removed = sorted(row[0] for row in _removed(scan, unfound))
    gone = set(removed)
    outside: set[str] = set()  # paths of kept files this load does not touch (not in its paths)
    for row in unfound:  # known files this load does not touch still hold URLs
        path, _folder, _size, _mtime_ns, _sha256, url, error = row
        if url is None or error is not None or path in gone:
            continue  # it holds no URL (this load reports nothing about it), or it is removed
        if source_of(url) == path:
            keep(row)
            outside.add(path)
        else:
            known[path] = row
            files[path] = _recorded(row, in_scan=False)

    holders = _settle_winners(files, known, kept, outside, sources, max_bytes, topics)

    report = LoadReport(removed=removed)
    # Kept files are unchanged winners by construction; those outside this load are not news.
    report.unchanged = [row[0] for row in kept.rows()]
    if outside:
        report.unchanged = [path for path in report.unchanged if path not in outside]
    upserted: list[tuple[str, str]] = []  # (path, URL) of winners parsed by this load
    for url, holding in holders.items():
        file = files[holding[0]]
        if file.article is not None:
            upserted.append((file.path, url))
        elif file.in_scan:
            report.unchanged.append(file.path)
    upsert_articles: list[tuple[Article, str]] = []
    for path, url in sorted(upserted):
        article = files[path].article
        assert article is not None
        upsert_articles.append((article, path))
        (report.updated if url in sources else report.added).append(path)
        report.warnings.extend(article.warnings)
    for url, holding in sorted(holders.items()):
        if len(holding) > 1 and any(files[p].in_scan for p in holding):
            report.duplicates.extend(
                printable(
                    f"same URL {url} in {loser} and {holding[0]}; kept the newest, {holding[0]}"
                )
                for loser in holding[1:]
            )
    # Only what this load looked at: old rejections in folders it did not scan are not news.
    report.rejected = sorted(
        scan.rejected
        + [(f.path, f.error) for f in files.values() if f.error is not None and f.examined]
    )
    report.unchanged.sort()

    upsert_files = [
        record
        for path, file in sorted(files.items())
        if not file.as_recorded and (record := file.record()) != _record(known.get(path))
    ]
    # Every kept URL is in sources: only when some are not kept can an article lose its file.
    # A feed's articles are the feed's (see bot.sources): no seed folder's reload removes them.
    deleted = (
        sorted(
            url
            for url in sources.keys() - kept.urls()
            if url not in holders and not sources[url].startswith(FEED_SOURCE)
        )
        if len(kept) < len(sources)
        else []
    )
    changes = ReloadChanges(
        upsert_files=upsert_files,
        delete_files=removed,
        upsert_articles=upsert_articles,
        delete_articles=deleted,
    )
    return changes, report, _settled_listings(scan, files, holders, max_bytes, topics)


# --- the listing shortcut ------------------------------------------------------------------------

# Part of every fingerprint: a change to what goes into one makes every recorded one differ.
_LISTING_FORMAT = 2


def listing_key(scan: _Scan) -> str:
    """What a fingerprint is recorded under: the folders of the load, as scanned (resolved)."""
    return "\n".join(scan.folders)


def _listing_digest(scan: _Scan, max_bytes: int, topics: Sequence[str]) -> str | None:
    """The fingerprint of what ``scan`` found: every path, size and mtime, the limit and the
    topics (either changes what a load does). None if the load is not of folders only, or if
    the scan rejected something (rejections are read again every time).

    A file the scan did not stat (a symlink's target: size None) is never settled, so no
    recorded fingerprint holds one, and a listing holding one never matches.

    In scan order, not sorted: the order of an unchanged folder is the same from one listing
    to the next, and a different order only costs one load the long way.
    """
    if scan.rejected or scan.incomplete or scan.files_given or not scan.folders:
        return None
    found = scan.found
    seen = found.values()
    digest = hashlib.sha256(
        pickle.dumps((_LISTING_FORMAT, max_bytes, tuple(topics), scan.folders), protocol=5)
    )
    # Column by column, each in one C-level pass: the paths as one string, the folder of each
    # (an index into scan.folders) and its size and mtime as arrays of machine integers. About
    # half the time of pickling the mapping of tuples itself.
    digest.update("\0".join(found).encode("utf-8", "surrogateescape"))
    folder_index = {folder: index for index, folder in enumerate(scan.folders)}
    digest.update(array("q", [folder_index.get(root, -1) for root, _, _ in seen]).tobytes())
    digest.update(array("q", [-1 if size is None else size for _, size, _ in seen]).tobytes())
    digest.update(array("q", [mtime_ns for _, _, mtime_ns in seen]).tobytes())
    return digest.hexdigest()


def _scan_unless_settled(
    paths: Sequence[Path], recorded: Mapping[str, str], max_bytes: int, topics: Sequence[str]
) -> tuple[_Scan, LoadReport | None]:
    """The scan of ``paths``, and the report of a load with nothing to do (every file
    unchanged) when it has the fingerprint ``recorded`` for them, else None."""
    scan = _scan(paths)
    if recorded and _listing_unchanged(scan, recorded, max_bytes, topics):
        return scan, LoadReport(unchanged=sorted(scan.found))  # 100,000 paths: off the loop
    return scan, None


def _listing_unchanged(
    scan: _Scan, recorded: Mapping[str, str], max_bytes: int, topics: Sequence[str]
) -> bool:
    """True if ``scan`` has the fingerprint ``recorded`` for its folders."""
    wanted = recorded.get(listing_key(scan))
    return wanted is not None and _listing_digest(scan, max_bytes, topics) == wanted


def _settled_listings(
    scan: _Scan,
    files: Mapping[str, _File],
    holders: Mapping[str, Sequence[str]],
    max_bytes: int,
    topics: Sequence[str],
) -> dict[str, str]:
    """The fingerprint of this load's folders if it leaves them *settled*: once it is applied,
    the next plan over the same listing keeps every file found (see :func:`_plan`), so it would
    change nothing, reject nothing and report no duplicate. Else nothing.

    Kept files stay kept: no file of this load takes a kept file's URL (those are pulled into
    ``files`` by :func:`_settle_winners`). So only the files that needed a decision are checked:
    each must now hold its URL, with a row that matches what the scan saw.
    """
    found = scan.found
    for path, file in files.items():
        seen = found.get(path) if file.in_scan else None
        if seen is None:
            continue  # not in this load's folders: not part of its listing
        root, size, mtime_ns = seen
        if (
            file.error is not None
            or file.url is None
            or file.sha256 is None
            or holders.get(file.url, ("",))[0] != path
            or (file.size, file.mtime_ns) != (size, mtime_ns)
            or file.folder != root
        ):
            return {}
    digest = _listing_digest(scan, max_bytes, topics)
    return {} if digest is None else {listing_key(scan): digest}


def _record(row: _Row | None) -> SeedFileRecord | None:
    return None if row is None else SeedFileRecord(*row)


def _recorded(row: _Row, *, in_scan: bool) -> _File:
    """The outcome of a file whose row is exactly right: what the row says, not re-read.

    In the scan, its stat matched the row; outside it, this load did not even stat it.
    """
    path, folder, size, mtime_ns, sha256, url, error = row
    return _File(
        path,
        folder,
        size,
        mtime_ns,
        sha256,
        url,
        error,
        in_scan=in_scan,
        examined=in_scan,
        as_recorded=True,
    )


def _scan(paths: Sequence[Path]) -> _Scan:
    scan = _Scan()
    for given in paths:
        shown = _undecodable(str(given))
        if shown is not None:
            scan.rejected.append((shown, str(SeedError(shown, "the path is not valid UTF-8"))))
            continue
        try:
            expanded = given.expanduser()
        except RuntimeError:  # "~user" without such a user
            scan.rejected.append((str(given), str(SeedError(str(given), "no such file or folder"))))
            continue
        try:
            resolved = expanded.resolve(strict=True)
            st = os.stat(resolved)
        except RuntimeError:  # pathlib's word for a symlink loop
            scan.rejected.append((str(given), str(SeedError(str(given), "symlink loop"))))
            continue
        except OSError as exc:  # missing, a symlink loop, a link that cannot be read
            reason = {errno.ENOENT: "no such file or folder", errno.ELOOP: "symlink loop"}.get(
                exc.errno or 0, f"cannot read: {exc.strerror or exc}"
            )
            scan.rejected.append((str(given), str(SeedError(str(given), reason))))
            continue
        if stat.S_ISDIR(st.st_mode):
            scan.folders.append(str(resolved))
            _scan_folder(str(resolved), scan)
        elif stat.S_ISREG(st.st_mode):
            scan.files_given += 1
            # Its size and mtime are from the stat just taken.
            scan.found.setdefault(str(resolved), (None, st.st_size, st.st_mtime_ns))
        else:
            scan.rejected.append((str(given), str(SeedError(str(given), "not a regular file"))))
    return scan


def _scan_folder(root: str, scan: _Scan) -> None:
    def reject(path: str, reason: str) -> None:
        scan.rejected.append((path, str(SeedError(path, reason))))

    inside = root.rstrip(os.sep) + os.sep
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            # The folder is opened once and every file stat'ed relative to it: a stat by full
            # path walks every component of the path again, which is a tenth of a no-change
            # reload of a big folder.
            with _opened_folder(folder) as (fd, entries):
                pending.extend(_scan_entries(folder, fd, entries, root, inside, scan, reject))
        except OSError as exc:
            reject(folder, f"cannot read folder: {exc.strerror or exc}")
            scan.incomplete.append(folder)


@contextlib.contextmanager
def _opened_folder(folder: str) -> Iterator[tuple[int | None, list[os.DirEntry[str]]]]:
    """The entries of ``folder`` and a descriptor of it to stat them by name (None where the
    system cannot list a folder by descriptor: entries then carry their full path)."""
    if not _LIST_BY_DESCRIPTOR:
        with os.scandir(folder) as it:
            yield None, list(it)
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with os.scandir(fd) as it:
            entries = list(it)
        yield fd, entries
    finally:
        os.close(fd)


_LIST_BY_DESCRIPTOR = os.scandir in os.supports_fd and os.stat in os.supports_dir_fd


def _scan_entries(
    folder: str,
    fd: int | None,
    entries: Sequence[os.DirEntry[str]],
    root: str,
    inside: str,
    scan: _Scan,
    reject: Callable[[str, str], None],
) -> list[str]:
    """Sort the ``entries`` of ``folder`` (listed through ``fd``) into ``scan``; returns the
    sub-folders to scan next. Unsorted: the plan sorts what it reports itself, and sorting
    100,000 entries here would cost a no-change reload about 10% more for nothing."""
    found = scan.found
    is_reg = stat.S_ISREG
    lstat = os.stat
    by_name = fd is not None
    prefix = folder.rstrip(os.sep) + os.sep if by_name else ""
    # An ASCII name in a UTF-8 folder makes a UTF-8 path: only other names need the check.
    folder_utf8 = _undecodable(folder) is None
    subfolders: list[str] = []
    for first in range(0, len(entries), STEP_ENTRIES):
        if first:
            FOREGROUND.step_aside()  # in a bot, its replies in flight go first
        for entry in entries[first : first + STEP_ENTRIES]:
            name = entry.name
            if name.startswith("."):
                continue
            path = prefix + entry.path
            if not (folder_utf8 and name.isascii()):
                shown = _undecodable(path)
                if shown is not None:
                    # SQLite stores text as UTF-8: such a path cannot even be recorded, and one
                    # file must never fail the whole load.
                    reject(shown, "the file name is not valid UTF-8; rename the file")
                    continue
            try:
                # endswith first: one call, no new string, for the usual lower-case suffix.
                is_seed = name.endswith(_LOWER_SUFFIXES) or (
                    (dot := name.rfind(".")) > 0 and name[dot:].lower() in SEED_SUFFIXES
                )
                if is_seed and entry.is_file(follow_symlinks=False):
                    # The common case, inline: a plain seed file (not a link, not a folder).
                    known = found.get(path)
                    if known is None:
                        # Its stat, taken now: the only system call a file gets when it did
                        # not change.
                        try:
                            st = lstat(name if by_name else path, dir_fd=fd, follow_symlinks=False)
                        except OSError:
                            # It vanished after the listing: _examine stats it again and
                            # rejects it as any file that vanished before its read.
                            found[path] = (root, None, 0)
                        else:
                            # Not regular after all (replaced since the listing): _examine
                            # stats it again and says what it is.
                            found[path] = (
                                (root, st.st_size, st.st_mtime_ns)
                                if is_reg(st.st_mode)
                                else (root, None, 0)
                            )
                    elif known[0] is None:  # a folder beats "given directly"
                        found[path] = (root, known[1], known[2])
                else:
                    _scan_entry(entry, path, is_seed, root, inside, scan, subfolders, reject)
            except OSError as exc:
                # Entries vanish mid-scan (a file deleted, a process gone from /proc), links
                # cannot be read (/proc/PID/exe of a zombie), permissions differ: that entry is
                # rejected by name, and the scan goes on.
                reject(path, f"cannot read: {exc.strerror or exc}")
    return subfolders


def _scan_entry(
    entry: os.DirEntry[str],
    path: str,
    is_seed: bool,
    root: str,
    inside: str,
    scan: _Scan,
    subfolders: list[str],
    reject: Callable[[str, str], None],
) -> None:
    """Sort one folder entry that is not a plain seed file into a seed found (through a
    symlink), a sub-folder or a rejection; may raise OSError."""
    if entry.is_symlink():
        try:
            target = os.path.realpath(path)
        except OSError as exc:
            # realpath tolerates a missing target but not a link it cannot read: a link to a
            # zombie's /proc/PID/exe, or one removed between its lstat and its readlink. Its
            # name says nothing about what it pointed to, so it is rejected whatever its name.
            reject(path, f"cannot resolve symlink: {exc.strerror or exc}")
            return
        is_dir = os.path.isdir(target)
        if not (is_seed or is_dir):
            return
        if not target.startswith(inside):
            reject(path, f"symlink points outside {root}")
        elif not os.path.exists(target):
            reject(path, _why_broken(path))
        elif not is_dir:
            known = scan.found.get(target)
            if known is None:
                scan.found[target] = (root, None, 0)  # stat'd by _examine (links are few)
            elif known[0] is None:  # a folder beats "given directly"
                scan.found[target] = (root, known[1], known[2])
    elif entry.is_dir(follow_symlinks=False):
        subfolders.append(path)
    elif is_seed:
        # Not a regular file (the regular ones never get here): a FIFO would block the read
        # forever; sockets and devices make no sense.
        reject(path, "not a regular file")


def _why_broken(link: str) -> str:
    """Why a symlink's target cannot be reached: a loop, or nothing there."""
    try:
        os.stat(link)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop"
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
            return f"broken symlink: {exc.strerror or exc}"
    return "broken symlink"


def _undecodable(path: str) -> str | None:
    """A printable form of ``path`` if its bytes are not UTF-8 (else None)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path).decode("utf-8", "backslashreplace")
    return None


def _removed(scan: _Scan, unfound: Sequence[_Row]) -> list[_Row]:
    """Rows of files that came from a folder scanned by this load, and were not found in it."""
    if scan.vanished:
        return [row for row in unfound if row[1] is not None and row[0] in scan.vanished]
    if not scan.folders or not unfound:
        return []
    scanned = tuple(f.rstrip(os.sep) + os.sep for f in scan.folders)
    unscanned = tuple(f.rstrip(os.sep) + os.sep for f in scan.incomplete)
    return [
        row
        for row in unfound
        if row[1] is not None  # its folder: a file given directly is never removed
        and row[0].startswith(scanned)
        and not row[0].startswith(unscanned)
    ]


def _examine(
    path: str,
    folder: str | None,
    row: SeedFileRecord | None,
    max_bytes: int,
    size: int | None = None,
    mtime_ns: int = 0,
    *,
    topics: tuple[str, ...] = (),
) -> _File:
    """Stat a file (unless the scan did: then ``size`` and ``mtime_ns`` are a regular file's);
    read and parse it only if its bookkeeping says it may have changed."""
    if size is None:
        try:
            st = os.stat(path)
        except OSError as exc:
            error = str(SeedError(path, f"cannot read: {exc.strerror}"))
            return _File(path, folder, 0, 0, error=error)
        if not stat.S_ISREG(st.st_mode):
            error = str(SeedError(path, "not a regular file"))
            return _File(path, folder, st.st_size, st.st_mtime_ns, error=error)
        size, mtime_ns = st.st_size, st.st_mtime_ns
    file = _File(path, folder, size, mtime_ns)
    # The limit is checked before the bookkeeping: it may have changed since the last load.
    if size > max_bytes:
        file.error = _too_big(path, size, max_bytes)
        return file
    # A rejection is not trusted from the bookkeeping: the parser may accept the file now.
    if (
        row is not None
        and row.sha256 is not None
        and row.error is None
        and (row.size, row.mtime_ns) == (size, mtime_ns)
    ):
        file.sha256, file.url, file.error = row.sha256, row.url, row.error
        file.as_recorded = folder == row.folder
        return file
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        file.error = str(SeedError(path, f"cannot read: {exc.strerror}"))
        return file
    if len(data) > max_bytes:  # it grew after the stat
        file.error = _too_big(path, len(data), max_bytes)
        return file
    file.size = len(data)
    file.sha256 = hashlib.sha256(data).hexdigest()
    if row is not None and row.error is None and row.sha256 == file.sha256:  # touched, not changed
        file.url, file.error = row.url, row.error
        return file
    try:
        file.article = parse_seed(data, path)
    except SeedError as exc:
        file.error = str(exc)
    except Exception as exc:  # a parser bug must cost one file, never the whole reload
        log.exception("unexpected error parsing %s", printable(path))
        file.error = str(SeedError(path, f"cannot parse: {type(exc).__name__}: {exc}"))
    else:
        file.url = file.article.url
        if topics:
            file.article = with_topics(file.article, topics)
    return file


def _too_big(path: str, size: int, max_bytes: int) -> str:
    return str(SeedError(path, f"file is {size} bytes, over the limit of {max_bytes}"))


def _settle_winners(
    files: dict[str, _File],
    known: dict[str, _Row],
    kept: _Kept,
    outside: set[str],
    sources: Mapping[str, str],
    max_bytes: int,
    topics: tuple[str, ...] = (),
) -> dict[str, list[str]]:
    """Group live files by URL, the winner first; make sure each winner's article is at hand.

    The winner is the newest: the latest ``publishedDateTime``, then the greatest path. Dates
    are compared only between files holding the same URL, and every such file that this load
    did not parse is read and parsed now, since its bookkeeping holds no date. If its content is
    what its row says, only its date is noted (it did not change, so it is not rewritten);
    otherwise it is taken as newly examined. A winner whose article is neither parsed in this
    load nor already in the store from that very file (it just took the URL over) is then
    parsed too. Either can reject a file or change its URL, so the grouping is redone until
    stable; each round reads at least one more file, so this ends. A cold load parses every
    file, so an incremental one ends on the same winners.

    Only ``files`` are grouped. A ``kept`` file is the sole holder of its URL and its source
    already, so it wins it with nothing to do, unless a file of ``files`` holds that URL too:
    each round first moves such kept files into ``files`` (as their rows say) to be compared,
    noting their rows in ``known``.
    """
    dated: dict[str, _File] = {}  # files parsed here only to learn their date, as parsed
    while True:
        if kept:
            for file in list(files.values()):
                if file.url is not None and file.error is None:
                    row = kept.pop(file.url)
                    if row is not None:
                        path = row[0]
                        known[path] = row
                        files[path] = _recorded(row, in_scan=path not in outside)
        holders: dict[str, list[str]] = {}
        for path, file in files.items():
            if file.url is not None and file.error is None:
                holders.setdefault(file.url, []).append(path)
        dates: dict[str, datetime] = {}
        for path, file in itertools.chain(dated.items(), files.items()):
            if file.article is not None:
                dates[path] = file.article.published
        undated = sorted(
            path
            for paths in holders.values()
            if len(paths) > 1
            for path in paths
            if path not in dates
        )
        for path in undated:
            old = files[path]
            fresh = _examine(path, old.folder, None, max_bytes, topics=topics)
            fresh.in_scan = old.in_scan
            if fresh.article is not None and (fresh.sha256, fresh.url) == (old.sha256, old.url):
                dated[path] = fresh
            else:  # it changed since its row was written: this is its outcome now
                files[path] = fresh
        if undated:
            continue
        for paths in holders.values():
            if len(paths) > 1:
                # Dates, then paths: a total order, so the order files were met in never counts.
                paths.sort(key=lambda p: (dates[p], p), reverse=True)
        needed = sorted(
            paths[0]
            for url, paths in holders.items()
            if files[paths[0]].article is None and sources.get(url) != paths[0]
        )
        if not needed:
            return holders
        for path in needed:
            fresh = dated.pop(path, None) or _examine(
                path, files[path].folder, None, max_bytes, topics=topics
            )
            fresh.in_scan = files[path].in_scan
            files[path] = fresh


def _table(files: Mapping[str, SeedFileRecord]) -> SeedFileTable:
    """``files`` as a SeedFileTable (what the store returns), made from records otherwise."""
    if isinstance(files, SeedFileTable):
        return files
    return SeedFileTable(
        (r.path, r.folder, r.size, r.mtime_ns, r.sha256, r.url, r.error) for r in files.values()
    )


def _path_list(paths: Sequence[Path | str]) -> list[Path]:
    if isinstance(paths, str | Path):  # a lone path would otherwise be iterated char by char
        raise TypeError("paths must be a sequence of paths, not a single path")
    return [Path(p) for p in paths]


def _check_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")

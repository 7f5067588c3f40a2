"""Live sources: feeds, watched folders and git repositories that keep the collection current.

Each source in the config (``sources:``, plus ``seeds_dir`` as the folder source "seeds") is
polled on its own schedule by :class:`SourcePoller`:

* a **feed** is fetched as a careful feed reader does (:mod:`bot.fetch`: conditional GET,
  redirects, timeouts, a size cap), parsed (:mod:`bot.feeds`) and stored with
  :meth:`bot.library.Library.apply_feed`: its articles stay after they leave the feed, until
  ``feeds_keep_days`` after they were published;
* a **git** repository is cloned, then pulled (:mod:`bot.gitsource`), and its folder loaded like
  any seed folder;
* a **folder** is watched (:mod:`bot.watch`); the poll is a safety rescan every ``every``.

Each source's state (the feed's validators and address, last success, last error, consecutive
failures, next poll) lives in the database, so a restart neither fetches every feed again nor
forgets one that is failing, and processes sharing the database poll a source one at a time (a
lease per source, taken over if its holder dies). A failure is recorded and backs off
(:func:`next_delay`); it never touches another source or a stored article.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from .articles import printable
from .config import Config, SourceConfig, all_sources
from .feeds import FeedError, parse_feed
from .fetch import FetchError, FetchPolicy, fetch, open_session
from .gitsource import GitError, redact_url, sync_repository
from .loader import LoadReport
from .store import SourceState, StoreError

if TYPE_CHECKING:
    import aiohttp

    from .library import Library

log = logging.getLogger(__name__)

#: A failing source waits its interval doubled per consecutive failure, up to this (or its
#: interval, if longer): a feed down for a day is asked a few times an hour, not every minute.
BACKOFF_CAP_SECONDS = 6 * 3600.0
#: A server's Retry-After is honoured up to this long.
RETRY_AFTER_CAP_SECONDS = 7 * 86400.0
#: Poll times are spread by up to this share of the interval, so that sources configured
#: together do not all fire in the same second, every time.
JITTER = 0.1
#: A source never polled yet is first polled within this many seconds of the start (spread).
FIRST_POLL_SPREAD_SECONDS = 10.0
#: The scheduler looks at the sources' state at least this often (another process may have
#: polled one, or a moderator asked for a poll).
SCHEDULER_MAX_SLEEP = 30.0
#: After a poll ends, the schedule waits this long for others to end before looking again.
SCHEDULER_COALESCE = 0.1
#: Seconds one git clone or pull may take.
GIT_TIMEOUT_SECONDS = 300.0
#: Problems with single entries kept for the status views.
MAX_NOTES = 5


def source_lease(name: str) -> str:
    """The lease that makes one process at a time poll source ``name``."""
    return f"source:{name}"


# --- the pure parts: schedule and outcome ------------------------------------------------------


def next_delay(
    every: float,
    failures: int,
    *,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds until the next poll of a source polled every ``every`` seconds, after
    ``failures`` consecutive failures (0: the last poll worked).

    Failures double the interval each time, capped at BACKOFF_CAP_SECONDS (or the interval if
    that is longer); a server's Retry-After, when longer, wins. The result is spread by
    +-JITTER of itself.
    """
    delay = every
    if failures > 0:
        delay = min(every * 2.0 ** min(failures - 1, 30), max(BACKOFF_CAP_SECONDS, every))
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP_SECONDS))
    return delay * (1.0 + JITTER * (2.0 * rand() - 1.0))


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll of one source did."""

    name: str
    kind: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    rejected: int = 0
    not_modified: bool = False  # a feed answered 304: nothing to read
    error: str | None = None  # the poll failed: why, in one line
    skipped: str | None = None  # not polled: why (another process polls it, disabled...)
    notes: tuple[str, ...] = ()  # problems with single entries or files

    @property
    def failed(self) -> bool:
        return self.error is not None

    def summary(self) -> str:
        """One line: 'added 2, updated 1, unchanged 40, removed 0', or what went wrong."""
        if self.error is not None:
            return f"failed: {self.error}"
        if self.skipped is not None:
            return f"skipped: {self.skipped}"
        if self.not_modified:
            return "unchanged (not modified since the last poll)"
        text = (
            f"added {self.added}, updated {self.updated}, unchanged {self.unchanged}, "
            f"removed {self.removed}"
        )
        return f"{text}, rejected {self.rejected}" if self.rejected else text


def fresh_state(source: SourceConfig) -> SourceState:
    return SourceState(name=source.name, kind=source.kind, location=source.location)


def current_state(source: SourceConfig, saved: SourceState | None) -> SourceState:
    """The saved state of ``source``, or a fresh one when it has none or the config now points
    it somewhere else (a new URL is a new feed: no validators, failures or disabling carry)."""
    if saved is None or saved.location != source.location or saved.kind != source.kind:
        return fresh_state(source)
    return saved


def is_due(state: SourceState, now: datetime) -> bool:
    return state.disabled is None and (state.next_poll is None or state.next_poll <= now)


def _report_result(source: SourceConfig, report: LoadReport, folder: str) -> PollResult:
    """A folder load's report as a poll's outcome; the folder itself missing is a failure."""
    missing = [reason for path, reason in report.rejected if path == folder]
    notes = tuple(printable(reason) for _path, reason in report.rejected[:MAX_NOTES])
    return PollResult(
        name=source.name,
        kind=source.kind,
        added=len(report.added),
        updated=len(report.updated),
        unchanged=len(report.unchanged),
        removed=len(report.removed),
        rejected=len(report.rejected),
        error=missing[0] if missing else None,
        notes=notes,
    )


def health(state: SourceState) -> str:
    """'disabled', 'failing', 'ok' or 'new' (never polled)."""
    if state.disabled is not None:
        return "disabled"
    if state.failures > 0:
        return "failing"
    return "ok" if state.last_success is not None else "new"


def shown_location(source: SourceConfig) -> str:
    """Where a source reads from, for status views: a git URL's credentials hidden."""
    if source.kind == "git":
        where = redact_url(source.location)
        extra = [f"path {source.path}"] if source.path else []
        extra += [f"branch {source.branch}"] if source.branch else []
        return f"{where} ({', '.join(extra)})" if extra else where
    return source.location


def _when(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    seconds = (moment - now).total_seconds()
    span = abs(seconds)
    if span < 60:
        text = f"{span:.0f} s"
    elif span < 3600:
        text = f"{span / 60:.0f} min"
    elif span < 86400 * 2:
        text = f"{span / 3600:.1f} h"
    else:
        text = f"{span / 86400:.0f} days"
    return f"in {text}" if seconds > 0 else f"{text} ago"


def status_lines(
    rows: Sequence[tuple[SourceConfig, SourceState]], now: datetime, *, watched: bool = True
) -> list[str]:
    """``newsbot sources``: one block per source, its state and what it last did."""
    lines: list[str] = []
    for source, state in rows:
        kind = "folder (watched)" if source.kind == "folder" and watched else source.kind
        lines.append(f"{source.name}  [{kind}, {health(state)}]  {shown_location(source)}")
        stamp = (
            f"  last success: {_when(state.last_success, now)}"
            f" | next poll: {_when(state.next_poll, now) if not state.disabled else 'never'}"
            f" | every {_every(source.every)}"
        )
        lines.append(stamp)
        if state.outcome:
            lines.append(f"  last poll: {state.outcome}")
        if state.disabled:
            lines.append(f"  disabled: {state.disabled}")
        elif state.last_error:
            lines.append(f"  last error ({state.failures} in a row): {state.last_error}")
        lines.extend(f"  note: {note}" for note in (state.notes or "").splitlines())
    return lines


def _every(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:g}s"


# --- polling --------------------------------------------------------------------------------


class SourcePoller:
    """Polls the configured sources into the library: on demand (:meth:`poll`, the CLI) or
    on their schedules (:meth:`run`, the bot)."""

    def __init__(
        self,
        library: Library,
        config: Config,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.library = library
        self.config = config
        self.clock = clock or (lambda: datetime.now(UTC))
        self.sources: dict[str, SourceConfig] = {s.name: s for s in all_sources(config)}
        self.policy = FetchPolicy(
            total_timeout=config.feed_timeout_seconds,
            connect_timeout=min(10.0, config.feed_timeout_seconds),
            max_bytes=config.feed_max_bytes,
        )
        self._slots = asyncio.Semaphore(config.poll_concurrency)
        self._session: aiohttp.ClientSession | None = None
        self._running: dict[str, asyncio.Task[PollResult]] = {}  # the schedule's polls
        self._active: set[str] = set()  # every poll of this process, running now
        self._again: set[str] = set()  # asked for again while being polled
        # Watched folders' changed files, for their next poll to load (None: the whole folder).
        self._changed: dict[str, set[str] | None] = {}
        self._first_due: dict[str, datetime] = {}  # sources never polled: when to start
        self._known: dict[str, SourceState] = {}  # each source's state as last read or saved
        self._read_at = 0.0  # when _known was last read whole (monotonic)
        self._wake = asyncio.Event()

    async def close(self) -> None:
        for task in list(self._running.values()):
            task.cancel()
        for task in list(self._running.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> SourcePoller:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = open_session(self.policy)
        return self._session

    def polling(self) -> list[str]:
        """The sources this process is polling right now."""
        return sorted(self._active)

    def unknown(self, names: Iterable[str]) -> list[str]:
        """The names that are not configured sources."""
        return [name for name in names if name not in self.sources]

    async def states(self) -> list[tuple[SourceConfig, SourceState]]:
        """Each configured source with its current state, in config order."""
        saved = await self.library.store.source_states()
        return [(s, current_state(s, saved.get(s.name))) for s in self.sources.values()]

    async def poll_many(self, names: Sequence[str] = ()) -> list[PollResult]:
        """Poll ``names`` (default: every source) now, whatever their schedule, concurrently
        within ``poll_concurrency``; results in the order asked."""
        chosen = list(names) or list(self.sources)
        return list(await asyncio.gather(*(self.poll(n, force=True) for n in chosen)))

    async def poll(self, name: str, *, force: bool = False) -> PollResult:
        """Poll one source. Without ``force`` only if it is due (another process may have just
        polled it); with it, now, even if a 410 disabled it. Never raises for the source's
        own failures: they are the result, and recorded in its state."""
        source = self.sources[name]
        if name in self._active:
            # This process polls it now (its lease would let it in twice). A forced poll (a
            # watched folder changed again, a moderator asked) runs once more after it: the
            # change may have come after that poll read the folder.
            if force:
                self._again.add(name)
            return PollResult(name, source.kind, skipped="being polled now; polled again after")
        self._active.add(name)
        try:
            # The slot first: 500 due feeds wait here, not as 500 leases held in the database.
            async with self._slots:
                result = await self._poll_leased(source, force=force)
                while name in self._again:
                    self._again.discard(name)
                    result = await self._poll_leased(source, force=True)
            return result
        finally:
            self._active.discard(name)
            self._again.discard(name)

    async def _poll_leased(self, source: SourceConfig, *, force: bool) -> PollResult:
        name = source.name
        store = self.library.store
        holder = await store.take_lease(source_lease(name), now=self.clock())
        if holder is not None:
            # Another process polls it: the schedule looks again in a while, not at once.
            known = self._known.get(name) or fresh_state(source)
            later = self.clock() + timedelta(seconds=min(source.every, SCHEDULER_MAX_SLEEP))
            self._known[name] = replace(known, next_poll=later)
            return PollResult(name, source.kind, skipped=f"being polled by {holder}")
        try:
            # Read under the lease: a process that just finished polling it has saved its
            # state, and it may not be due any more.
            state = current_state(source, await store.source_state(name))
            if not force and not is_due(state, self.clock()):
                self._known[name] = state  # another process polled it meanwhile
                return PollResult(name, source.kind, skipped="not due")
            result, state = await self._poll(source, state)
            await self._record(source, state, result)
            return result
        finally:
            with contextlib.suppress(StoreError):
                await store.release_lease(source_lease(name))

    async def _poll(
        self, source: SourceConfig, state: SourceState
    ) -> tuple[PollResult, SourceState]:
        started = self.clock()
        state = replace(state, last_poll=started)
        try:
            if source.kind == "feed":
                return await self._poll_feed(source, state)
            if source.kind == "git":
                return await self._poll_git(source, state)
            return await self._poll_folder(source, state)
        except (FetchError, FeedError, GitError, SourceError, StoreError) as exc:
            error = printable(str(exc))
            retry_after = getattr(exc, "retry_after", None)
            disabled = None
            if getattr(exc, "gone", False):
                disabled = f"{error}: the feed is gone; fix its URL in the config"
            failures = state.failures + 1
            delay = next_delay(source.every, failures, retry_after=retry_after)
            state = replace(
                state,
                last_error=error,
                failures=failures,
                next_poll=self.clock() + timedelta(seconds=delay),
                disabled=disabled,
            )
            return PollResult(source.name, source.kind, error=error), state

    def _succeeded(
        self, source: SourceConfig, state: SourceState, result: PollResult
    ) -> SourceState:
        delay = next_delay(source.every, 0)
        return replace(
            state,
            last_success=self.clock(),
            last_error=None,
            failures=0,
            next_poll=self.clock() + timedelta(seconds=delay),
            disabled=None,
            outcome=result.summary(),
            notes="\n".join(result.notes) or None,
        )

    async def _poll_feed(
        self, source: SourceConfig, state: SourceState
    ) -> tuple[PollResult, SourceState]:
        url = state.fetch_url or source.location
        fetched = await fetch(
            self._http(),
            url,
            etag=state.etag,
            last_modified=state.last_modified,
            policy=self.policy,
        )
        state = replace(
            state,
            fetch_url=fetched.moved_to or url,
            etag=fetched.etag,
            last_modified=fetched.last_modified,
        )
        if fetched.moved_to and fetched.moved_to != url:
            log.info(
                "source %s moved permanently to %s: polling it there from now on",
                source.name,
                fetched.moved_to,
            )
        if fetched.status == 304:
            result = PollResult(source.name, source.kind, not_modified=True)
            return result, self._succeeded(source, state, result)
        # The library's clock: what the digest calls new is measured by it.
        now = self.library.clock()
        expire_before = now - timedelta(days=self.config.feeds_keep_days)
        try:
            parsed = await asyncio.to_thread(
                parse_feed,
                fetched.body,
                feed_url=fetched.url,
                source_name=source.name,
                now=now,
                content_type=fetched.content_type,
                topics=source.topics,
                oldest=expire_before,
            )
        except FeedError:
            # The body was not used: the next poll must fetch it whole, not get a 304.
            state = replace(state, etag=None, last_modified=None)
            raise
        applied = await self.library.apply_feed(
            source.name,
            [(item.key, item.article) for item in parsed.items],
            now=now,
            expire_before=expire_before,
            undated={item.article.url for item in parsed.items if item.dated_when_fetched},
        )
        result = PollResult(
            source.name,
            source.kind,
            added=len(applied.added),
            updated=len(applied.updated),
            unchanged=applied.unchanged + applied.elsewhere,
            removed=applied.expired,
            notes=tuple(parsed.problems[:MAX_NOTES]),
        )
        return result, self._succeeded(source, state, result)

    async def _poll_git(
        self, source: SourceConfig, state: SourceState
    ) -> tuple[PollResult, SourceState]:
        dest = Path(self.config.git_dir) / source.name
        synced = await sync_repository(
            source.location, dest, branch=source.branch, timeout=GIT_TIMEOUT_SECONDS
        )
        folder = (dest / source.path) if source.path else dest
        if not folder.is_dir():
            raise GitError(
                f"{redact_url(source.location)} has no folder {source.path!r}"
                f" (at commit {synced.commit[:12]})"
            )
        return await self._load_folder(source, state, folder)

    async def _poll_folder(
        self, source: SourceConfig, state: SourceState
    ) -> tuple[PollResult, SourceState]:
        # Taken before the load looks at the folder: what changes after it is polled again.
        changed = self._changed.pop(source.name, None)
        return await self._load_folder(source, state, Path(source.location), changed)

    async def _load_folder(
        self,
        source: SourceConfig,
        state: SourceState,
        folder: Path,
        changed: Collection[str] | None = None,
    ) -> tuple[PollResult, SourceState]:
        """Load ``folder`` (only its ``changed`` files, when a watcher said which)."""
        folder = folder.expanduser().absolute()
        signature = "\n".join(source.topics)
        if (state.topics or "") != signature and folder.is_dir():
            # Files loaded with other topics than the source's now: read them all again.
            await self.library.store.forget_file_hashes(str(folder.resolve()))
            changed = None
        if changed:
            report = await self.library.reload_changed(folder, changed, topics=source.topics)
        else:
            report = await self.library.reload([folder], topics=source.topics)
        result = _report_result(source, report, str(folder))
        if result.error is not None:
            raise SourceError(result.error)
        state = replace(state, topics=signature)
        return result, self._succeeded(source, state, result)

    async def _record(self, source: SourceConfig, state: SourceState, result: PollResult) -> None:
        try:
            await self.library.store.save_source_state(state)
        except StoreError as exc:
            log.warning("could not save the state of source %s: %s", source.name, exc)
        self._known[source.name] = state
        if result.failed:
            log.warning("source %s: %s", source.name, result.summary())
        elif result.not_modified or result.skipped:
            # Hundreds of feeds answer 304 every few minutes: not worth a line each.
            log.debug("source %s: %s", source.name, result.summary())
        else:
            log.info("source %s: %s", source.name, result.summary())

    # --- the schedule (the bot) -------------------------------------------------------------

    async def folder_changed(self, name: str, paths: Collection[str] | None = None) -> None:
        """A watched folder changed: load what changed now, ``paths`` (the whole folder when
        None); its state records the outcome."""
        pending = self._changed.get(name, set())
        if paths is None or pending is None:
            self._changed[name] = None
        else:
            self._changed[name] = pending | set(paths)
        await self.poll(name, force=True)

    def wake(self) -> None:
        """Look at the schedule now (e.g. after a moderator's poll)."""
        self._wake.set()

    async def run(self) -> None:
        """Poll every source when due, forever; never raises (the bot runs this as a task)."""
        while True:
            try:
                sleep = await self._start_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the source schedule failed; trying again")
                sleep = SCHEDULER_MAX_SLEEP
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=sleep)
            # Polls ending together (hundreds of feeds) are looked at in one pass, not each.
            await asyncio.sleep(SCHEDULER_COALESCE)

    async def _start_due(self) -> float:
        """Start the polls that are due; the seconds until the next one is."""
        now = self.clock()
        soonest = SCHEDULER_MAX_SLEEP
        if time.monotonic() >= self._read_at + SCHEDULER_MAX_SLEEP or not self._known:
            # Every source's state from the database now and then (another process polls
            # too); in between, this process's own polls keep what it knows up to date, so
            # that a poll ending does not cost a read of every source's row.
            self._known = {s.name: st for s, st in await self.states()}
            self._read_at = time.monotonic()
        for source in self.sources.values():
            state = self._known.get(source.name) or fresh_state(source)
            if source.name in self._running or state.disabled is not None:
                continue
            due = state.next_poll
            if due is None:
                # Never polled (or pointed somewhere new): soon, spread over a few seconds; a
                # folder was loaded as the bot started, and is rescanned after its interval.
                # Kept here, not saved: a poll saving its state meanwhile must not be undone.
                due = self._first_due.get(source.name)
                if due is None:
                    if source.kind == "folder":
                        first = next_delay(source.every, 0)
                    else:
                        first = min(FIRST_POLL_SPREAD_SECONDS, source.every) * random.random()
                    due = self._first_due[source.name] = now + timedelta(seconds=first)
            wait = (due - now).total_seconds()
            if wait > 0:
                soonest = min(soonest, wait)
                continue
            task = asyncio.create_task(self._scheduled(source.name), name=f"poll-{source.name}")
            self._running[source.name] = task
        return max(0.05, soonest)

    async def _scheduled(self, name: str) -> PollResult:
        try:
            return await self.poll(name)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug, or the database away: the schedule goes on
            log.exception("polling source %s failed", name)
            return PollResult(name, self.sources[name].kind, error=str(exc))
        finally:
            self._running.pop(name, None)
            self._wake.set()  # its next poll time is known now


class SourceError(Exception):
    """A source cannot be polled as configured (its folder is missing); one line."""

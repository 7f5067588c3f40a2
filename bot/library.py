"""The library: the store plus the search index that follows what it holds.

The CLI and the Discord bot share this one object. The database is the one truth: the index
records the corpus *generation* it serves, and whenever the database's generation differs (a
reload here, a ``newsbot load`` or another bot process there) the index catches up without
holding up replies: it reads the articles that changed since its generation from the database's
change log and applies them (:meth:`bot.search.SearchIndex.apply`, a slice at a time), or,
when the log does not reach back that far, loads a newer saved index or reads everything back
and builds anew. The new version is swapped in with one assignment,
so a query sees the old corpus or the new one, never a mix.

A long-running process (the bot) calls :meth:`Library.watch`, which notices another process's
change at once (PostgreSQL notifies; SQLite's data version is polled every 50 ms), checks the
generation every ``refresh_seconds`` whatever it heard, and keeps its
heartbeat in the database so that its claims are taken over if it dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Container, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from .articles import Article, IndexDoc
from .config import Config
from .foreground import FOREGROUND
from .loader import LoadReport, load_changed, load_seeds
from .memory import release_free_memory
from .store import FeedApplied, Store, StoreError

# The index, the model and the snapshot code (numpy with them) are imported where first used:
# a library that only loads seeds (``newsbot load``, most often with nothing to do) never
# needs them, and they are a third of such a command's time.
if TYPE_CHECKING:
    from . import meaning
    from .search import SearchIndex

log = logging.getLogger(__name__)

# Seconds a thread may hold the GIL while another waits for it, during a reload (default 0.005).
RELOAD_SWITCH_INTERVAL = 0.0005
#: The lease that makes reloads one at a time across every process sharing the database.
RELOAD_LEASE = "reload"
# How often a waiting `newsbot load` looks whether the other process's reload has finished.
LEASE_POLL_SECONDS = 0.25


# How long the event loop tokenizes a change's articles before letting replies run again.
APPLY_SLICE_SECONDS = 0.0005
# The longest the event loop holds a slice back for replies in flight: short, because under
# constant traffic (several /news in flight all the time) every slice waits this long.
APPLY_SLICE_WAIT_AT_MOST = 0.005
# A merged index is saved for the next start when the saved one is this many generations
# behind: well inside the change log (LOG_GENERATIONS), so a start never reads everything back.
SNAPSHOT_EVERY = 64
# ...and at most once per this many seconds (busy feeds move the corpus a generation per
# poll: saving the whole index every 64 of them would cost more than the polls), unless it
# falls SNAPSHOT_AT_MOST generations behind, still inside the change log.
SNAPSHOT_MIN_SECONDS = 120.0
SNAPSHOT_AT_MOST = 192


def _settle_memory() -> None:
    # Building or loading allocates and frees far more than the index it leaves: collect once,
    # then freeze what lives on (the vocabulary, the bot's own objects) so that later
    # collections skip it, and hand the freed heap back to the system.
    gc.collect()
    gc.freeze()
    release_free_memory()


class ReloadBusy(Exception):
    """Another process is reloading the collection right now; ``holder`` names it."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"a reload is already running ({holder})")
        self.holder = holder


@contextmanager
def _event_loop_first() -> Iterator[None]:
    """Hand the GIL back to the event loop sooner while a reload's threads are busy.

    A reload parses, reads back and indexes the corpus in worker threads. With CPython's
    default 5 ms switch interval, the event loop waits up to 5 ms every time it wants the GIL
    back, many times per interaction, so /news slowed to hundreds of ms during a reload.
    """
    previous = sys.getswitchinterval()
    sys.setswitchinterval(RELOAD_SWITCH_INTERVAL)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


class Library:
    def __init__(
        self,
        store: Store,
        config: Config,
        *,
        clock: Callable[[], datetime] | None = None,
        searchable: bool = True,
        readonly: bool = False,
    ) -> None:
        self.store = store
        self.config = config
        # When articles were first seen matters to the digest; tests move this clock.
        self.clock = clock or (lambda: datetime.now(UTC))
        self._embedder: meaning.Embedder | None = None  # loaded with the first index
        self._meaning_tried = False
        self._index: SearchIndex | None = None  # the served one; empty until the first
        #: The corpus generation the index was built from (0: none yet).
        self.index_generation = 0
        self._searchable = searchable
        self._readonly = readonly
        #: The generation of the index snapshot saved in the database (as far as we know).
        self._saved_generation = 0
        self._saved_at = -SNAPSHOT_MIN_SECONDS  # when this process last saved one (monotonic)
        # One reload at a time in this process; the database lease covers the others.
        self._reload_lock = asyncio.Lock()
        # One index refresh at a time: a reload and the watcher may both notice a change.
        self._refresh_lock = asyncio.Lock()
        # Set whenever a new index version is swapped in (see changed()).
        self._change_events: list[asyncio.Event] = []
        store.holder_timeout = timedelta(seconds=config.claim_timeout_seconds)

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        config: Config,
        *,
        clock: Callable[[], datetime] | None = None,
        searchable: bool = True,
        role: str | None = None,
        readonly: bool = False,
    ) -> AsyncIterator[Library]:
        """Open the store and build the index from what it holds (no seed loading here).

        ``searchable=False`` (``newsbot load``) skips the index altogether: building it would
        cost more than a no-change reload itself. ``role`` ('bot', 'load') makes this process
        beat a heartbeat in the database while open, so its claims stay its own. ``readonly``
        opens an existing SQLite database without writing to it (see Store.open).
        """
        store = await Store.open(config.database, readonly=readonly)
        heart: asyncio.Task[None] | None = None
        try:
            library = cls(store, config, clock=clock, searchable=searchable, readonly=readonly)
            if role is not None:
                await store.heartbeat(role=role)
                heart = asyncio.create_task(library._beat(role), name="newsbot-heartbeat")
            if searchable:
                await library.start_index()
            yield library
        finally:
            if heart is not None:
                heart.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heart
                with contextlib.suppress(StoreError):
                    await store.retire()  # our claims may be taken over at once
            await store.close()

    @property
    def reloading(self) -> bool:
        return self._reload_lock.locked()

    # --- keeping the index in step with the database --------------------------------------------

    async def start_index(self) -> None:
        """The first index of this process: the saved snapshot brought up to date with the
        change log when the database has one that reaches, else a build from every article."""
        loaded = await self._load_snapshot()
        if loaded is None:
            await self.rebuild_index()
            return
        index, generation = loaded
        self._swap(index, generation)
        self._saved_generation = generation
        await self.sync_index()
        _settle_memory()

    async def rebuild_index(self) -> None:
        """Build the index from everything the database holds and swap it in."""
        async with self._refresh_lock:
            with _event_loop_first():
                await self._rebuild()

    async def _rebuild(self) -> None:
        generation, index = await self.store.index_snapshot(self._build)
        self._swap(index, generation)
        _settle_memory()
        await self._save_snapshot(index, generation)

    async def _load_snapshot(self) -> tuple[SearchIndex, int] | None:
        from . import snapshot

        try:
            newest = await self._usable_saved_generation()
            if newest is None or newest <= self.index_generation:
                return None  # none usable, or not newer than what this process serves
            saved = await self.store.load_index_snapshot()
            if saved is None:
                return None
            generation, form, data = saved
            if form != snapshot.FORMAT:
                log.info("the saved index is of another format (%d); rebuilding it", form)
                return None
            index = await asyncio.to_thread(snapshot.load, data, self._meaning())
        except (StoreError, snapshot.SnapshotError) as exc:
            log.warning("could not use the saved index, so it is built anew: %s", exc)
            return None
        log.info("loaded the saved index of generation %d", generation)
        return index, generation

    async def save_index_for_next_start(self) -> bool:
        """Build and save the index if the saved one would not serve the next start (none, or
        older than the change log reaches): ``newsbot load`` does this after a large load, so
        that the bots load one index instead of each building it. True if it saved one."""
        if await self._usable_saved_generation() is not None:
            return False
        generation, index = await self.store.index_snapshot(self._build)
        await self._save_snapshot(index, generation)
        del index
        _settle_memory()
        return True

    def _snapshot_due(self, generation: int) -> bool:
        behind = generation - self._saved_generation
        if behind >= SNAPSHOT_AT_MOST:
            return True
        recent = time.monotonic() - self._saved_at < SNAPSHOT_MIN_SECONDS
        return behind >= SNAPSHOT_EVERY and not recent

    def _build(self, docs: Iterable[IndexDoc]) -> SearchIndex:
        from .search import SearchIndex

        return SearchIndex.build(docs, embedder=self._meaning())

    def _meaning(self) -> meaning.Embedder | None:
        """The model that gives articles and queries their vectors, if search by meaning is on."""
        if not self._meaning_tried and self.config.search.semantic:
            from . import meaning

            self._meaning_tried = True  # a missing model is reported once, not per build
            try:
                self._embedder = meaning.embedder()
            except meaning.MeaningUnavailable as exc:
                log.warning("search by meaning is off: %s", exc)
        return self._embedder

    async def _usable_saved_generation(self) -> int | None:
        """The saved index's generation if the change log reaches back to it, else None."""
        saved = await self.store.index_snapshot_generation()
        if saved is None:
            return None
        if not await self.store.change_log_reaches(saved):
            log.info("the saved index (generation %d) is older than the change log", saved)
            return None
        return saved

    async def _save_snapshot(self, index: SearchIndex, generation: int) -> None:
        """Save the index for the next start (never fatal: the next start builds instead)."""
        if self._readonly:
            return
        from . import snapshot

        try:
            await self.store.save_index_snapshot(
                generation,
                snapshot.FORMAT,
                await asyncio.to_thread(snapshot.dump, index),
                now=datetime.now(UTC),
            )
        except StoreError as exc:
            log.warning("could not save the index for the next start: %s", exc)
            return
        finally:
            release_free_memory()  # the bytes were a transient copy of the whole index
        self._saved_generation = generation
        self._saved_at = time.monotonic()
        log.info("saved the index of generation %d for the next start", generation)

    async def sync_index(self) -> bool:
        """Bring the index up to the database's corpus generation; True if it moved."""
        if not self._searchable:
            return False
        if await self.store.corpus_generation() == self.index_generation:
            return False
        async with self._refresh_lock:
            with _event_loop_first():
                changes = await self.store.corpus_changes(self.index_generation)
                if changes is None:
                    # Too far behind for the log (or a change too large to log): the index
                    # another process saved is the cheapest way forward, else a build.
                    loaded = await self._load_snapshot()
                    if loaded is not None:
                        self._swap(*loaded)
                        changes = await self.store.corpus_changes(self.index_generation)
                    if changes is None:
                        log.info("the change log does not reach back to this index: rebuilding")
                        await self._rebuild()
                        return True
                if changes.generation == self.index_generation:
                    return False  # another caller caught up while this one waited
                index = await self._apply(changes.upserts, changes.removed)
                self._swap(index, changes.generation)
                if index.needs_merge:
                    # Same articles, fewer segments: the next changes wait for this, queries
                    # do not (they read the version being merged).
                    index = await asyncio.to_thread(index.merged)
                    self._swap(index, changes.generation)
                    if self._snapshot_due(changes.generation):
                        await self._save_snapshot(index, changes.generation)
        return True

    async def _apply(self, upserts: list[IndexDoc], removed: list[str]) -> SearchIndex:
        """The next index version, tokenized here on the event loop a slice at a time.

        In a worker thread the same work competes for the GIL with every reply for as long as
        it runs (each reply then takes about twice as long); in slices of half a millisecond,
        with the loop's other work run between them, a reply waits one slice per await.
        """
        from .search import unique_docs

        # Its vectors are embedded in the thread below, stepping aside for replies in flight.
        builder = self.index.segment_builder()
        docs = unique_docs(upserts)
        clock = time.perf_counter
        position = 0
        while position < len(docs):
            # A reply needs many turns of the loop (each await on the database or Discord),
            # and would wait for one slice at each: while one is in flight, no slice runs
            # (for at most a few ms at a time, so that a change still moves on under
            # constant traffic), and slices are short, by the clock.
            await FOREGROUND.replies_first(APPLY_SLICE_WAIT_AT_MOST)
            until = clock() + APPLY_SLICE_SECONDS
            while position < len(docs) and clock() < until:
                builder.add([docs[position]])
                position += 1
            await asyncio.sleep(0)
        # Then the vectors (embedded 16 at a time, see bot.meaning.BATCH) and the arrays:
        # postings of the new segment, dead marks and counts over the whole collection (tens
        # of ms at 100,000 for a 1% change), in a thread, the loop first.
        return await asyncio.to_thread(self.index.with_segment, builder, removed)

    def collapse_stories(self, urls: list[str]) -> list[str]:
        """``urls`` (best first) keeping one per story told by several outlets (the index's
        judgement, by meaning and date; every URL when it has no vectors)."""
        return self.index.collapse_urls(urls)

    def changed(self) -> asyncio.Event:
        """An event set each time the index serves a new version (the caller clears it)."""
        event = asyncio.Event()
        self._change_events.append(event)
        return event

    @property
    def index(self) -> SearchIndex:
        """The index served now (an empty one until the first build or change)."""
        if self._index is None:
            from .search import SearchIndex

            self._index = SearchIndex.build([])
        return self._index

    def _swap(self, index: SearchIndex, generation: int) -> None:
        self._index = index  # the swap: one reference assignment
        self.index_generation = generation
        for event in self._change_events:
            event.set()
        log.info("serving %d articles (generation %d)", len(index), generation)

    async def watch(self) -> None:
        """Follow the database's corpus forever (the bot runs this as a task).

        Never raises: a database that is away for a while is logged and tried again.
        """
        interval = self.config.refresh_seconds
        while True:
            try:
                await self.store.wait_for_corpus_change(interval)
                if await self.sync_index():
                    log.info("the collection changed in the database: index refreshed")
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not follow the collection's changes; trying again")
                await asyncio.sleep(interval)

    async def _beat(self, role: str) -> None:
        every = self.config.claim_timeout_seconds / 3
        while True:
            await asyncio.sleep(every)
            try:
                await self.store.heartbeat(role=role)
            except StoreError as exc:
                log.warning("could not record the heartbeat: %s", exc)
            except Exception:
                # The beat must go on: without it this process's claims would be taken over.
                log.exception("could not record the heartbeat")

    # --- reloads --------------------------------------------------------------------------------

    async def reload(
        self,
        paths: Sequence[Path] | None = None,
        *,
        progress: Callable[[int, int], None] | None = None,
        wait: bool = True,
        topics: Sequence[str] = (),
    ) -> LoadReport:
        """Load ``paths`` (default: the configured seeds folder); then serve what the database
        holds. ``topics`` are added to every file parsed (a folder source's ``topics:``).

        One reload at a time across every process: with ``wait`` this waits for another
        process's reload to end; without, it raises :class:`ReloadBusy`.
        """
        async with self._exclusive(wait=wait):
            with _event_loop_first():
                report = await load_seeds(
                    self.store,
                    list(paths) if paths else [self.config.seeds_dir],
                    max_bytes=self.config.max_seed_bytes,
                    now=self.clock(),
                    progress=progress,
                    topics=topics,
                )
        # Whatever this load changed or not, the index now follows the database: another
        # process may have changed it since this one last looked.
        await self.sync_index()
        return report

    async def reload_changed(
        self, folder: Path, changed: Iterable[str], *, topics: Sequence[str] = ()
    ) -> LoadReport:
        """Load the files of ``folder`` a watcher saw change, and only them (see
        :func:`bot.loader.load_changed`); the whole folder when they need it. Then serve
        what the database holds."""
        async with self._exclusive(wait=True):
            with _event_loop_first():
                report = await load_changed(
                    self.store,
                    folder,
                    changed,
                    max_bytes=self.config.max_seed_bytes,
                    now=self.clock(),
                    topics=topics,
                )
        if report is None:  # the changes need the whole folder looked at
            return await self.reload([folder], topics=topics)
        await self.sync_index()
        return report

    async def apply_feed(
        self,
        name: str,
        items: Sequence[tuple[str, Article]],
        *,
        now: datetime,
        expire_before: datetime,
        undated: Container[str] = (),
    ) -> FeedApplied:
        """Store one poll of a feed (see :meth:`Store.apply_feed`) and serve it at once.

        Under the reload lease: a seed reload plans against the corpus as it was, and a feed
        storing in the middle would make it plan again (and again, with many busy feeds).
        """
        async with self._exclusive(wait=True):
            applied = await self.store.apply_feed(
                name, items, now=now, expire_before=expire_before, undated=undated
            )
        if applied.generation is not None:
            await self.sync_index()
        return applied

    @asynccontextmanager
    async def _exclusive(self, *, wait: bool) -> AsyncIterator[None]:
        """One change of the corpus at a time: in this process, and by lease across all."""
        if not wait and self._reload_lock.locked():
            raise ReloadBusy("this process")
        async with self._reload_lock:
            await self._take_reload_lease(wait=wait)
            try:
                yield
            finally:
                with contextlib.suppress(StoreError):
                    await self.store.release_lease(RELOAD_LEASE)

    async def _take_reload_lease(self, *, wait: bool) -> None:
        announced = False
        while True:
            holder = await self.store.take_lease(RELOAD_LEASE, now=datetime.now(UTC))
            if holder is None:
                return
            if not wait:
                raise ReloadBusy(holder)
            if not announced:
                # A warning, so that the quiet CLI commands say why they wait.
                log.warning("another process is loading the seeds (%s); waiting for it", holder)
                announced = True
            await asyncio.sleep(LEASE_POLL_SECONDS)

    async def ensure_loaded(self) -> None:
        """On first use (an empty database) load the configured seeds folder."""
        served = 0 if self._index is None else len(self._index)
        if served == 0 and await self.store.count_articles() == 0:
            report = await self.reload()
            log.info("first use: %s", report.summary())

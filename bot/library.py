"""The library: the store plus the search index built from it.

The CLI and the Discord bot share this one object. A reload runs the incremental, atomic loader
and then builds a *new* index off the event loop and swaps the reference in one assignment, so
a query running meanwhile is answered from the old corpus or the new one, never a mix.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from .config import Config
from .loader import LoadReport, load_seeds
from .search import SearchIndex
from .store import Store

log = logging.getLogger(__name__)

# Seconds a thread may hold the GIL while another waits for it, during a reload (default 0.005).
RELOAD_SWITCH_INTERVAL = 0.0005


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


def _build_index(store: Store) -> SearchIndex:
    return SearchIndex.build(store.read_all_articles_blocking())


class Library:
    def __init__(
        self,
        store: Store,
        config: Config,
        *,
        clock: Callable[[], datetime] | None = None,
        searchable: bool = True,
    ) -> None:
        self.store = store
        self.config = config
        # When articles were first seen matters to the digest; tests move this clock.
        self.clock = clock or (lambda: datetime.now(UTC))
        self.index = SearchIndex.build([])
        self._searchable = searchable
        # Set while the store may hold what the index does not (a reload wrote, and the rebuild
        # has not finished): the next reload rebuilds even if it changes nothing itself.
        self._index_stale = False
        # One reload at a time: a second /seeds reload waits for the first instead of racing it.
        self._reload_lock = asyncio.Lock()

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        config: Config,
        *,
        clock: Callable[[], datetime] | None = None,
        searchable: bool = True,
    ) -> AsyncIterator[Library]:
        """Open the store and build the index from what it holds (no seed loading here).

        ``searchable=False`` (``newsbot load``) skips the index altogether: building it would
        cost more than a no-change reload itself.
        """
        store = await Store.open(config.database)
        try:
            library = cls(store, config, clock=clock, searchable=searchable)
            if searchable:
                await library.refresh_index()
            yield library
        finally:
            await store.close()

    @property
    def reloading(self) -> bool:
        return self._reload_lock.locked()

    async def refresh_index(self) -> None:
        # Reading every article back and indexing them takes a while at scale: all of it runs in
        # a worker thread on a connection of its own, so the event loop keeps answering.
        index = await asyncio.to_thread(_build_index, self.store)
        self.index = index  # the swap: one reference assignment
        # The corpus lives until the next reload: keep the cyclic garbage collector from
        # walking its hundreds of thousands of objects again and again (pauses of 50-90 ms at
        # 10k articles otherwise). The old corpus is freed by reference counting; unfreezing
        # first lets this collection reclaim cycles that were alive at the previous freeze.
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        log.info("serving %d articles", len(index))

    async def reload(
        self,
        paths: Sequence[Path] | None = None,
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> LoadReport:
        """Load ``paths`` (default: the configured seeds folder) and swap in the new index."""
        async with self._reload_lock:
            with _event_loop_first():
                report = await load_seeds(
                    self.store,
                    list(paths) if paths else [self.config.seeds_dir],
                    max_bytes=self.config.max_seed_bytes,
                    now=self.clock(),
                    progress=progress,
                )
                if report.articles_changed:
                    self._index_stale = True  # cleared only once a rebuild has succeeded
                if self._searchable and (self._index_stale or not len(self.index)):
                    await self.refresh_index()
                    self._index_stale = False
                return report

    async def ensure_loaded(self) -> None:
        """On first use (an empty database) load the configured seeds folder."""
        if len(self.index) == 0 and await self.store.count_articles() == 0:
            report = await self.reload()
            log.info("first use: %s", report.summary())

"""Replies first: background work in a worker thread steps aside while a reply is being made.

A worker thread shares the GIL with the event loop. A reply needs the loop many times (once per
await on the database or Discord) and each time waits for the GIL from whichever thread holds
it; C code holds it for a whole call (the tokenizer, for one batch of texts). So while a change
is applied to the index in a thread, every reply made meanwhile is slower, several times over
for the one that meets the densest part of the work.

Background work calls :meth:`Foreground.step_aside` between its steps: while a reply is in
flight it sleeps (the GIL released), for a bounded time per step, so that it still moves on
under a constant stream of replies. Work done on the event loop in slices awaits
:meth:`Foreground.replies_first` between them instead. Replies mark themselves with
:meth:`Foreground.reply`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

#: The longest one step of background work waits for replies: a 1% change at 100,000 articles
#: is about 60 steps, so under constant replies it is applied at most about a second later.
STEP_ASIDE_AT_MOST = 0.02
# How often a waiting step looks again.
_POLL_SECONDS = 0.001


class Foreground:
    """How many replies are in flight (counted on the event loop; read from any thread)."""

    def __init__(self) -> None:
        self._in_flight = 0
        self._replying_thread: int | None = None  # the event loop's, once a reply was made

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @contextmanager
    def reply(self) -> Iterator[None]:
        """Mark a reply in flight for as long as the block runs (on the event loop)."""
        self._replying_thread = threading.get_ident()
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1

    def step_aside(self, at_most: float = STEP_ASIDE_AT_MOST) -> float:
        """In a worker thread: wait while replies are in flight, up to ``at_most`` seconds.
        Returns the seconds waited. On the event loop's own thread it never waits: the
        replies it would wait for could not move on meanwhile."""
        if not self._in_flight or threading.get_ident() == self._replying_thread:
            return 0.0
        started = time.perf_counter()
        deadline = started + at_most
        while self._in_flight:
            now = time.perf_counter()
            if now >= deadline:
                return now - started
            time.sleep(_POLL_SECONDS)
        return time.perf_counter() - started

    async def replies_first(self, at_most: float = STEP_ASIDE_AT_MOST) -> float:
        """On the event loop, in background work done there in slices: wait while replies
        are in flight, up to ``at_most`` seconds (the loop serves them meanwhile). Returns
        the seconds waited."""
        if not self._in_flight:
            return 0.0
        started = time.perf_counter()
        deadline = started + at_most
        while self._in_flight and time.perf_counter() < deadline:
            await asyncio.sleep(_POLL_SECONDS)
        return time.perf_counter() - started


#: The process's replies and background work.
FOREGROUND = Foreground()

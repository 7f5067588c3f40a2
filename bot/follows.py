"""Follows: channels that get every new article matching a query, topic or source.

The service decides; the cog (``bot/cogs/follows.py``) supplies a :class:`FollowPoster` that
puts a post in a channel, a thread or a forum. What *matches* is the search engine's
(:meth:`bot.search.SearchIndex.follow_matches`): the follow's filters as /news applies them,
and every query word found as /news finds a word.

Each pass (:meth:`FollowService.run_once`, run when the collection changes) looks at the
articles first seen since the follows last looked, asks the index which match, and posts:

* **exactly once** per (follow, article), across restarts and processes: an article is
  *claimed* in the database before it is posted and marked *posted* after; a claim whose holder
  died is taken over (then a nonce derived from the pair makes Discord answer a repeated create
  with the first message);
* **never the backlog**: a follow only posts articles first seen after it was created;
* **never a flood**: more than :data:`BURST` matches for one follow in one pass go out as one
  message listing them;
* **not forever into a wall**: a channel that refuses (missing permission, deleted) pauses the
  follow with the reason, shown by ``/following``; a failure that may pass (Discord 5xx, the
  network) gives the claims back, and later passes try again for up to HOLD_AT_MOST.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from .articles import Article
from .search import FollowQuery, SearchIndex
from .store import Follow, StoreError

if TYPE_CHECKING:
    from .library import Library

log = logging.getLogger(__name__)

#: More matches than this for one follow in one pass are posted as one list message.
BURST = 5
#: Each pass looks this far before a follow's mark again: an article committed by another
#: process a moment late (its first_seen is its writer's clock) is still seen; the claims make
#: looking twice harmless.
LOOKBACK = timedelta(seconds=60)
#: Articles one page of a pass reads (a pass reads page after page).
MAX_BATCH = 2000
#: A post that fails for now (Discord away) is tried again by later passes for this long;
#: after that its follow's mark moves on.
HOLD_AT_MOST = timedelta(hours=6)
#: How many recent stories ``/follow`` shows as a preview...
PREVIEW = 3
#: ...found among the newest this many articles, then twice as many, and so on.
PREVIEW_WINDOW = 200


class PostRefused(Exception):
    """The channel will not take posts (no permission, gone, not one the bot can post in)."""


class PostFailed(Exception):
    """The post failed for a reason that may pass (Discord 5xx, the network)."""


class FollowPoster(Protocol):
    """What the service needs from Discord; ``str()`` of the exceptions is shown to moderators."""

    async def post(self, follow: Follow, articles: Sequence[Article], nonce: str) -> int:
        """Post one article (its embed) or several (one list); the message id.

        Raises :class:`PostRefused` or :class:`PostFailed`."""


def post_nonce(follow_id: int, urls: Sequence[str]) -> str:
    """The same post always gets the same nonce (Discord allows 25 characters)."""
    digest = hashlib.blake2b("\n".join([str(follow_id), *urls]).encode(), digest_size=10)
    return "f" + digest.hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one pass did for one follow."""

    follow_id: int
    posted: tuple[str, ...] = ()  # URLs posted
    burst: bool = False  # posted as one list message
    paused: str | None = None  # the channel refused: the follow is paused, why
    failed: str | None = None  # a failure that may pass: tried again next pass...
    retry: tuple[str, ...] = ()  # ...with these URLs


def follow_query(follow: Follow) -> FollowQuery:
    return FollowQuery(follow.query, follow.topic, follow.source)


def posts_for(articles: Sequence[Article]) -> list[list[Article]]:
    """How one pass's matches for one follow go out: one post each, or one list past BURST."""
    if len(articles) > BURST:
        return [list(articles)]
    return [[article] for article in articles]


class FollowService:
    def __init__(
        self,
        library: Library,
        poster: FollowPoster,
        *,
        clock: Callable[[], datetime],
        owns_guild: Callable[[int], bool] = lambda _guild_id: True,
    ) -> None:
        self.library = library
        self.poster = poster
        self.clock = clock
        # In a sharded cluster, each process posts for the guilds of its own shards.
        self.owns_guild = owns_guild
        # Articles this process matched already (URL -> first seen), while a pass can still
        # read them again: they are not matched and claimed a second time.
        self._looked_at: dict[str, datetime] = {}
        self._matched_for: frozenset[int] = frozenset()  # the follows those were matched for

    def preview(self, query: FollowQuery, *, limit: int = PREVIEW) -> list[str]:
        """The URLs of the latest ``limit`` stories the follow would have posted (newest first)."""
        index = self.library.index
        found: list[str] = []
        # Newest first, in windows that double: a follow of a rare story looks further back,
        # one of a common one never turns every URL of the collection into a string.
        start, stop = 0, PREVIEW_WINDOW
        while len(found) < limit:
            newest = index.newest_urls(query.topic, query.source, limit=stop)
            found.extend(index.follow_matches([query], newest[start:])[0])
            if len(newest) < stop:
                break
            start, stop = stop, stop * 2
        return found[:limit]

    async def run_once(self) -> list[Delivery]:
        """One pass over every active follow of this process's guilds."""
        store = self.library.store
        follows = [
            f for f in await store.follows() if f.paused is None and self.owns_guild(f.guild_id)
        ]
        if not follows:
            return []
        ids = frozenset(f.id for f in follows)
        if not ids <= self._matched_for:
            # A follow this process has not matched for yet (saved since, here or by another
            # process): what was looked at must be looked at again, for it.
            self._looked_at.clear()
        self._matched_for = ids
        # Each follow looks from its mark (never before it was made), LOOKBACK early.
        since = min(max(f.checked_until - LOOKBACK, f.created_at) for f in follows)
        index = self.library.index
        deliveries: list[Delivery] = []
        horizon: datetime | None = None
        after: tuple[datetime, str] | None = None
        held_back: dict[str, datetime] = {}  # URLs whose post failed for now: seen again
        while True:
            # A page at a time, in (first seen, URL) order: a load of 100,000 articles all
            # first seen in the same instant is read through, not re-read forever.
            page = await store.first_seen_after(since, after=after, limit=MAX_BATCH)
            ready, complete = self._ready(index, page)
            fresh = [(url, seen) for url, seen in ready if url not in self._looked_at]
            if fresh:
                deliveries += await self._match(index, follows, fresh)
            retry = {url for d in deliveries for url in d.retry}
            for url, seen in ready:
                if url not in retry:
                    self._looked_at[url] = seen
                else:
                    held_back[url] = seen
            if ready:
                horizon = ready[-1][1]
            if not complete or len(page) < MAX_BATCH:
                break
            after = page[-1][1], page[-1][0]
        # What this process looked at is remembered while it can be read again (the
        # LOOKBACK window); older entries go.
        self._looked_at = {u: t for u, t in self._looked_at.items() if t >= since}
        if horizon is not None:
            # A follow whose post failed keeps its mark before that article, so that the next
            # passes read it again however long Discord stays away, up to HOLD_AT_MOST (a
            # channel failing for a day must not make every pass read the whole day again).
            held: dict[int, datetime] = {}
            for delivery in deliveries:
                for url in delivery.retry:
                    before = held_back[url] - timedelta(microseconds=1)
                    held[delivery.follow_id] = min(held.get(delivery.follow_id, before), before)
            marks: dict[datetime, list[int]] = {}
            for follow in follows:
                mark = max(min(horizon, held.get(follow.id, horizon)), horizon - HOLD_AT_MOST)
                if mark > follow.checked_until:
                    marks.setdefault(mark, []).append(follow.id)
            try:
                for mark, ids in marks.items():
                    await store.advance_follows(ids, mark)
            except StoreError as exc:  # the next pass looks again; the claims keep it right
                log.warning("could not record the follows' progress: %s", exc)
        return [d for d in deliveries if d.posted or d.paused or d.failed]

    @staticmethod
    def _ready(
        index: SearchIndex, page: list[tuple[str, datetime]]
    ) -> tuple[list[tuple[str, datetime]], bool]:
        """The page's articles up to the first one the index does not serve yet (another
        process just stored it: it and all after it wait for the next pass); and whether
        that was the whole page."""
        for position, (url, _seen) in enumerate(page):
            if not index.holds(url):
                return page[:position], False
        return page, True

    async def _match(
        self, index: SearchIndex, follows: list[Follow], fresh: list[tuple[str, datetime]]
    ) -> list[Delivery]:
        seen_at = dict(fresh)
        urls = [url for url, _ in fresh]
        queries = [follow_query(f) for f in follows]
        # Milliseconds per follow: in a worker thread, so replies go on meanwhile.
        matches = await asyncio.to_thread(index.follow_matches, queries, urls)
        deliveries: list[Delivery] = []
        for follow, matched in zip(follows, matches, strict=True):
            wanted = [
                url
                for url in matched
                if seen_at[url] > follow.created_at
                and seen_at[url] > follow.checked_until - LOOKBACK
            ]
            if wanted:
                deliveries.append(await self._deliver(follow, wanted))
        return deliveries

    async def _deliver(self, follow: Follow, urls: list[str]) -> Delivery:
        store = self.library.store
        won = await store.claim_follow_posts(follow.id, urls, self.clock())
        if not won:
            return Delivery(follow.id)  # posted before, or being posted by another process
        found = await store.articles_by_url(won)
        articles = [found[url] for url in won if url in found]
        gone = [url for url in won if url not in found]
        if gone:  # removed since: nothing to post, and nothing to post later either
            await store.mark_follow_posted(follow.id, gone, None, now=self.clock())
        posted: list[str] = []
        burst = False
        for batch in posts_for(articles):
            batch_urls = [a.url for a in batch]
            try:
                message_id = await self.poster.post(
                    follow, batch, post_nonce(follow.id, batch_urls)
                )
            except PostRefused as exc:
                reason = str(exc) or "the channel refused the post"
                log.warning("follow %d paused: %s", follow.id, reason)
                await store.pause_follow(follow.id, reason, now=self.clock())
                await store.release_follow_posts(follow.id, _not_yet(won, posted))
                return Delivery(follow.id, tuple(posted), burst, paused=reason)
            except PostFailed as exc:
                log.warning("follow %d: post failed, tried again later: %s", follow.id, exc)
                retry = _not_yet(won, posted)
                await store.release_follow_posts(follow.id, retry)
                return Delivery(
                    follow.id, tuple(posted), burst, failed=str(exc), retry=tuple(retry)
                )
            await store.mark_follow_posted(follow.id, batch_urls, message_id, now=self.clock())
            posted.extend(batch_urls)
            burst = burst or len(batch) > 1
        return Delivery(follow.id, tuple(posted), burst)


def _not_yet(won: Sequence[str], posted: Sequence[str]) -> list[str]:
    done = set(posted)
    return [url for url in won if url not in done]

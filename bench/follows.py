"""What follows cost: 1,000 follows over 200 guilds, 100 new articles per poll.

Run by hand from the repository root (never from the tests)::

    python bench/follows.py                      # 20,000 articles, 1,000 follows, 5 polls of 100
    python bench/follows.py --markdown           # tables ready for a README
    python bench/follows.py --quick              # 2,000 articles, 100 follows, 2 polls of 20

The set-up, shared by both parts:

* The corpus: the real articles (``../shared/corpora``, else ``seeds/``) scaled to
  ``--articles`` by ``bench.queries.scale_corpus`` and written as seed files; a helper process
  of this bench (``--child prepare``) loads them into a SQLite database with
  ``bot.loader.load_seeds``, all first seen in the same instant, and saves the index for the
  next start as ``newsbot load`` does. They are the follows' backlog, never posted: the follows
  are added a moment later, and a pass reads only articles first seen after the later of a
  follow's mark minus ``LOOKBACK`` (60 s) and its creation, so it never reads them (part 1's
  "pass reads" of the first poll shows it: that poll's articles only).
* ``--follows`` follows over ``--guilds`` guilds (round-robin, one channel of its own each:
  ``follows / guilds`` channels per guild), added with ``Store.add_follow`` after the corpus.
  Each follow's query is 2-3 distinctive words (lower-cased title words of at least 3 letters,
  no stopword, in at most 1% of the corpus's titles) of a random real title, in title order;
  ``--typo-share`` (20%) of them have one word of 5+ letters mistyped (one letter inserted,
  deleted, substituted or transposed); ``--topic-share`` (30%) filter on a topic of that
  article; ``--source-share`` (10%) on its source.
* ``--polls`` polls of ``--new`` new articles each, written as seed files into a folder of
  their own per poll (outside the seeds folder, so the bot does not load them itself). Each new
  article is a real article under a new URL with a made-up marker word before its title
  (``Vakzorquil: <title>``), published now, related links dropped. ``--match-share`` (30%) of
  them are *targeted*: the article some follow's query was drawn from (a follow not targeted
  before, where there is one), so they match at least that follow; the others are articles no
  follow's query was drawn from, and match one only by chance. Every figure below counts the
  (follow, article) pairs newsbot finds, not only the targeted ones.
* One more load of ``BIG_LOAD`` (2,500) new articles made the same way, for part 1 only:
  more than ``bot.follows.MAX_BATCH`` (2,000) articles first seen in one instant.

Two databases are copied from that one (SQLite's backup API), one per part.

1. **Matching per poll, in process** (a helper process, ``--child match``, so that the driver
   stays light for part 2): the index is the saved one; per poll, the poll's folder is loaded
   (``load_seeds``) and the index synced (``Library.sync_index``: a new index version), then:

   * the pass: ``FollowService.run_once`` itself (one service for every poll, as in the bot),
     with a poster that returns at once: reading the follows and the new articles (a page of at
     most ``MAX_BATCH`` rows at a time, in (first seen, URL) order, until none is left),
     matching those this service has not looked at yet (``asyncio.to_thread``), the claims and
     marks of every match, and the follows' progress marks (``Store.advance_follows``), in the
     database. It runs first, on the new index version, as the bot's pass after a load does.
     Counted by wrapping ``Store.first_seen_after`` and ``SearchIndex.follow_matches`` in this
     process: "pass reads / matches" is the rows it read against the URLs it handed to
     ``follow_matches``. It reads every article first seen after the follows' marks (the last
     poll's first-seen time) minus ``LOOKBACK``: earlier polls loaded within 60 s before (the
     baseline loop below takes seconds per poll) are read again, but only this poll's are
     matched (``FollowService`` remembers what it looked at while it can be read again). Then
     "idle pass": ``run_once`` again at once, nothing new, as the bot's 30-s pass
     (``PASS_EVERY_SECONDS``) when nothing changed: it reads the same rows and matches none.
   * newsbot: ``SearchIndex.follow_matches([FollowQuery of every follow], the poll's URLs)``,
     the call the pass makes; the median of ``--repeat`` runs, each *cold*: an index version
     caches what each query word is found as (``_follow_terms``), and every load makes a new
     version, so the bot's pass after a load pays the lookups; the bench empties that cache
     (``SearchIndex._follow_cache``) before each run. "Terms cached": the median of
     ``--repeat`` runs with the cache kept (what a second call on the same version pays).
     "Of it with 1 URL": the cold call with the poll's first URL only (median of
     ``--repeat``), the part paid per follow whatever the number of new articles (each query
     word's variants once per index version, each source filter's ids); the topic and source
     filters are checked per new article. On the first poll, one untimed call and 20 searches
     warm up first-use costs before the pass. In the bot the pass runs this call in a worker
     thread (``asyncio.to_thread``): the event loop goes on meanwhile, sharing the GIL with
     it (the matching is mostly Python).
   * the baseline, *a plain loop that runs every follow's query against the whole index*: for
     each follow, ``SearchIndex.search(query, topic=, provider=, limit=40)`` (40: search
     re-ranks its best ``RERANK_DEPTH`` = 40 candidates, so a larger limit returns no more),
     the hits kept that are among the poll's URLs. One run per poll (it is slow), after a warm-up
     of 20 searches. It is what /news does per query: words, typos, search by meaning (a query
     vector per search) and same-story collapsing.

   The two sets of (follow, article) pairs need not agree. A follow requires *every* query word
   (each as typed, within one typo, or as a prefix), its filters as /news applies them. Search
   is looser and deeper-rooted at once: it returns full matches (words covering at least 45% of
   the query's weight) *and then partial ones and neighbours in meaning* to fill the limit, so
   its extra pairs are mostly partial matches; and it ranks the whole collection, so a new
   article that matches but ranks below the 40 best of the index is missed. Both counts and the
   overlap are reported.

   After the polls, the big load: its ``BIG_LOAD`` articles loaded at once (one first-seen
   time), the index synced, one pass timed and counted as above; its posts are checked against
   ``follow_matches`` over the load's URLs (each expected pair posted once, none missing,
   none extra), and the follows' marks against the load's first-seen time (every mark moved
   up to it: the pass read the whole load, page after page).

2. **End to end**: a real ``newsbot run`` subprocess on the other database copy, the follows in
   it before it starts, connected to the loopback fake Discord (tests/fakediscord.py, via
   bench/cluster.py's ``ClusterFake``, in this process) holding the ``--guilds`` guilds and
   their channels. Per poll, a loader helper process (``--child loader``, as in
   bench/reload.py) loads the poll's folder with ``load_seeds``: the instant it returns is the
   commit (``time.monotonic``; CLOCK_MONOTONIC, one clock for every process on Linux). The bot
   notices the change (SQLite has no notification: it polls ``PRAGMA data_version`` every
   50 ms), brings its index up to date and runs a follows pass. Each ``POST
   /channels/{id}/messages`` reaching the fake is timestamped when aiohttp hands it over
   (before the body is read); the new articles' URLs in its body say which (follow, article)
   pairs it posts (a follow's channel is its own). Figures over every pair posted:
   commit -> its post request, p50 / p99 / max; posts against the pairs expected (part 1's
   ``follow_matches`` over the same data), with duplicates (a pair in more than one request)
   and misses; the bot's CPU (utime + stime of /proc/<pid>/stat) from the load request until
   every expected post arrived and the pass recorded every follow's progress (read from the
   database), beside the CPU the same bot used idle for as long (measured before the polls).
   The baseline column is *computed*: each poll's latencies plus that poll's (baseline -
   newsbot) matching time from part 1 (newsbot's cold figure), what a bot running the plain
   loop instead of ``follow_matches`` would have added before its first post.
   The next poll starts once the last one's posts and pass are done, plus one second (plus
   ``--gap``). "pass reads" in the per-poll table is computed, not measured: the rows a pass
   reads, first seen after the follows' marks (the last poll's first-seen time) minus 60 s
   (``LOOKBACK``), that is this poll and every earlier one first seen within 60 s before the
   last; of them the bot matches this poll's only (part 1 measures it); ``--gap 61`` leaves
   this poll's only. After the polls, the bot's CPU is measured for ``--idle-after`` seconds
   (61: two of its 30-s passes) beside its idle CPU before the polls: each such pass reads the
   last poll's rows from the database again and matches none of them.

The fake Discord answers every post at once: it simulates no rate limit (real Discord allows
5 messages per 5 s per channel and about 50 requests per second per bot). With one follow per
channel a poll's posts would fit the per-channel limit, but not the global one beyond 50 posts.

The bot, the fake plus this driver (one process), and the helper processes share this
machine's cores; the machine line says how many and how loaded.

Exit status: 0 when every run completed with every expected post made exactly once (the big
load's included); 1 when something failed (a process died or logged a traceback, a post was
missing or repeated, the big load's pass left a follow's mark behind).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import json
import math
import os
import random
import re
import shlex
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# Run as a script (``python bench/follows.py``): make ``bench``, ``bot`` and ``tests`` importable.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402

from bench.cluster import (  # noqa: E402
    Child,
    ClusterFake,
    Helper,
    children,
    stop_all,
    wait_connected,
    write_config,
)
from bench.interactions import machine_line, percentile, write_seeds  # noqa: E402
from bench.queries import (  # noqa: E402
    CORPUS_HELP,
    STOPWORDS,
    default_corpora,
    load_corpus,
    one_letter_edit,
    scale_corpus,
    strip_punct,
)
from bench.search import render  # noqa: E402
from bot.articles import Article  # noqa: E402
from bot.follows import LOOKBACK, MAX_BATCH  # noqa: E402
from bot.search import RERANK_DEPTH  # noqa: E402
from tests.botharness import TOKEN  # noqa: E402
from tests.fakediscord import FakeChannel, FakeGuild, RecordedRequest  # noqa: E402

QUICK = {
    "articles": 2_000, "follows": 100, "guilds": 20, "new": 20, "polls": 2, "idle_after": 31.0,
}  # fmt: skip
#: A distinctive word is in at most this share of the corpus's titles.
DISTINCTIVE_SHARE = 0.01
#: The baseline's search limit: search re-ranks its best RERANK_DEPTH candidates only.
BASELINE_LIMIT = RERANK_DEPTH
BASELINE_WARMUP = 20
#: Part 1's last load: more articles first seen in one instant than a pass reads in one page.
BIG_LOAD = max(2_500, MAX_BATCH + 500)
#: Give up waiting for a poll's posts and pass after this long.
GIVE_UP_S = 300.0
#: After a poll's posts and pass: this long for a late duplicate to show, before the next.
SETTLE_S = 1.0
IDLE_S = 5.0
#: After the polls, the bot's CPU is read this often; a sample this much over the median is busy.
SAMPLE_S = 0.5
BUSY_S = 0.05
WATCH_S = 0.02
NEW_URL = "https://bench.example/follows/"
_NEW_URL = re.compile(re.escape(NEW_URL) + r"p\d+/\d+")
_POST = re.compile(r"/channels/(\d+)/messages")
_SYLLABLES = ("zor", "vak", "quil", "lon", "bras", "ket", "mur", "fen", "dax", "tol", "wim", "pry")
_TICK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the follows and the new articles ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FollowSpec:
    guild_id: int
    channel_id: int
    query: str
    topic: str | None
    source: str | None
    drawn_from: str  # the URL of the article the query was drawn from
    typo: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "guild_id": self.guild_id,
            "channel_id": self.channel_id,
            "query": self.query,
            "topic": self.topic,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class Poll:
    number: int
    folder: Path
    urls: tuple[str, ...]
    targets: dict[str, int]  # URL of a targeted article -> the index of the follow it targets


def title_words(title: str) -> list[str]:
    """Distinct lower-cased title words a user would type (no stopwords, 3+ characters)."""
    kept = (strip_punct(raw).lower() for raw in title.split())
    return list(dict.fromkeys(w for w in kept if len(w) >= 3 and w not in STOPWORDS))


def marker(number: int) -> str:
    """A made-up word no corpus holds, one per ``number``."""
    digits = []
    number += len(_SYLLABLES) ** 2  # at least three syllables
    while number:
        number, digit = divmod(number, len(_SYLLABLES))
        digits.append(_SYLLABLES[digit])
    return "".join(digits).capitalize()


def make_guilds(guilds: int, per_guild: int) -> list[FakeGuild]:
    """Guild ids ``n << 22`` (as bench/cluster.py's), ``per_guild`` text channels each."""
    made = []
    for n in range(100, 100 + guilds):
        gid = n << 22
        channels = [FakeChannel(gid + 1 + c, f"news-{c + 1}", position=c) for c in range(per_guild)]
        made.append(FakeGuild(gid, f"guild {n}", channels))
    return made


def make_follows(
    real: Sequence[Article], corpus_titles: Sequence[str], guilds: Sequence[FakeGuild],
    args: argparse.Namespace, rng: random.Random,
) -> list[FollowSpec]:  # fmt: skip
    df: Counter[str] = Counter()
    for title in corpus_titles:
        df.update(title_words(title))
    cap = max(2, DISTINCTIVE_SHARE * len(corpus_titles))
    follows: list[FollowSpec] = []
    pool = list(real)
    rng.shuffle(pool)
    position = 0
    while len(follows) < args.follows:
        if position > 20 * len(pool) + args.follows:
            raise SystemExit("too few titles with two distinctive words for the follows")
        article = pool[position % len(pool)]
        position += 1
        distinctive = [w for w in title_words(article.title) if df[w] <= cap]
        if len(distinctive) < 2:
            continue
        chosen = sorted(
            rng.sample(range(len(distinctive)), min(rng.choice((2, 3)), len(distinctive)))
        )
        words = [distinctive[i] for i in chosen]
        typo = False
        long_words = [i for i, w in enumerate(words) if sum(c.isalpha() for c in w) >= 5]
        if long_words and rng.random() < args.typo_share:
            i = rng.choice(long_words)
            words[i] = one_letter_edit(words[i], rng)
            typo = True
        topic = (
            rng.choice(article.topics)
            if article.topics and rng.random() < args.topic_share
            else None
        )
        source = None
        if rng.random() < args.source_share:
            source = article.provider or article.provider_domain or None
        n = len(follows)
        guild = guilds[n % len(guilds)]
        channel = guild.channels[n // len(guilds)]
        follows.append(
            FollowSpec(guild.id, channel.id, " ".join(words), topic, source, article.url, typo)
        )  # fmt: skip
    return follows


def make_polls(
    real: Sequence[Article], follows: Sequence[FollowSpec], sizes: Sequence[int],
    match_share: float, rng: random.Random, folder: Path,
) -> list[Poll]:  # fmt: skip
    """One poll per size, numbered from 1, the targets drawn in one sequence."""
    by_url = {a.url: a for a in real}
    drawn = {f.drawn_from for f in follows}
    # Targets: follows in a random order, each targeted once before any is targeted again.
    follow_order = list(range(len(follows)))
    rng.shuffle(follow_order)
    others = [a for a in real if a.url not in drawn] or list(real)
    rng.shuffle(others)
    polls: list[Poll] = []
    used_targets = used_others = 0
    count = 0
    for number, size in enumerate(sizes, start=1):
        targeted = round(match_share * size)
        now = datetime.now(UTC).replace(microsecond=0)
        articles: list[Article] = []
        targets: dict[str, int] = {}
        for i in range(size):
            url = f"{NEW_URL}p{number}/{i + 1}"
            if i < targeted:
                target = follow_order[used_targets % len(follow_order)]
                used_targets += 1
                source = by_url[follows[target].drawn_from]
                targets[url] = target
            else:
                source = others[used_others % len(others)]
                used_others += 1
            count += 1
            articles.append(
                replace(
                    source, url=url, title=f"{marker(count)}: {source.title}",
                    published=now - timedelta(minutes=i), related=(), warnings=(),
                )
            )  # fmt: skip
        rng.shuffle(articles)
        poll_folder = folder / f"p{number}"
        write_seeds(articles, poll_folder)
        polls.append(Poll(number, poll_folder, tuple(a.url for a in articles), targets))
    return polls


# --- helper processes ----------------------------------------------------------------------------


def pairs(follows: Sequence[Any], found: Sequence[Sequence[str]]) -> list[tuple[int, str]]:
    """(follow id, URL) of each follow's matches."""
    return [(f.id, url) for f, urls in zip(follows, found, strict=True) for url in urls]


class NullPoster:
    """The follow service's poster for the in-process pass: every post succeeds at once."""

    def __init__(self) -> None:
        self.posted: list[tuple[int, str]] = []

    async def post(self, follow: Any, articles: Sequence[Article], nonce: str) -> int:
        self.posted += [(follow.id, a.url) for a in articles]
        return len(self.posted)


class PassWatch:
    """Counts, while entered, what ``FollowService.run_once`` reads (``Store.first_seen_after``:
    pages, rows) and matches (``SearchIndex.follow_matches``: calls, URLs) in this process."""

    def __init__(self, store: Any) -> None:
        from bot.search import SearchIndex

        self.on = False
        self.pages = self.read = self.calls = self.matched = 0
        reading = store.first_seen_after
        matching = SearchIndex.follow_matches
        watch = self

        async def first_seen_after(*args: Any, **kwargs: Any) -> Any:
            rows = await reading(*args, **kwargs)
            if watch.on:
                watch.pages += 1
                watch.read += len(rows)
            return rows

        def follow_matches(index: Any, follows: Any, urls: Sequence[str]) -> Any:
            if watch.on:  # the pass's worker thread; one call at a time
                watch.calls += 1
                watch.matched += len(urls)
            return matching(index, follows, urls)

        store.first_seen_after = first_seen_after
        SearchIndex.follow_matches = follow_matches  # type: ignore[method-assign]

    def __enter__(self) -> PassWatch:
        self.pages = self.read = self.calls = self.matched = 0
        self.on = True
        return self

    def __exit__(self, *_exc: object) -> None:
        self.on = False

    def counts(self) -> dict[str, int]:
        return {"pages": self.pages, "read": self.read, "calls": self.calls,
                "matched": self.matched}  # fmt: skip


def forget_follow_terms(index: Any) -> None:
    """Empty the index version's cache of follow words' terms (``SearchIndex._follow_cache``,
    private): the state of a version just made, which the bot's pass after a load meets."""
    index._follow_cache.clear()


async def child_main(kind: str, config_path: str, spec_path: str) -> int:
    """The helper side (``--child``): runs in its own process, prints JSON lines."""
    from bot.config import load_config
    from bot.follows import FollowService, follow_query
    from bot.library import Library
    from bot.loader import load_seeds
    from bot.store.base import iso

    config = load_config(config_path)
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8")) if spec_path else {}

    if kind == "prepare":
        now = datetime.now(UTC)
        async with Library.open(config, searchable=False) as library:
            started = time.perf_counter()
            report = await load_seeds(
                library.store, [config.seeds_dir], max_bytes=config.max_seed_bytes, now=now
            )
            loaded = time.perf_counter()
            await library.save_index_for_next_start()
            saved = time.perf_counter()
            ids = []
            for f in spec["follows"]:
                made = await library.store.add_follow(
                    **f, role_id=None, created_by=424_242, now=datetime.now(UTC),
                    max_per_guild=len(spec["follows"]),
                )  # fmt: skip
                ids.append(made.id)
            added = time.perf_counter()
        print(json.dumps({
            "summary": report.summary(), "load_s": loaded - started, "snapshot_s": saved - loaded,
            "follows_s": added - saved, "ids": ids,
        }), flush=True)  # fmt: skip
        return 0

    if kind == "match":
        async with Library.open(config) as library:
            store, poster = library.store, NullPoster()
            follows = await store.follows()
            queries = [follow_query(f) for f in follows]
            service = FollowService(library, poster, clock=lambda: datetime.now(UTC))
            watch = PassWatch(store)

            async def load(folder: str) -> tuple[str, float, float]:
                now = datetime.now(UTC)
                started = time.perf_counter()
                await load_seeds(store, [folder], max_bytes=config.max_seed_bytes, now=now)
                loaded = time.perf_counter()
                await library.sync_index()
                return iso(now), loaded - started, time.perf_counter() - loaded

            async def one_pass() -> dict[str, Any]:
                poster.posted.clear()
                with watch:
                    before = time.perf_counter()
                    await service.run_once()
                    took = time.perf_counter() - before
                return {"s": took, **watch.counts(), "posted": list(poster.posted)}

            for poll in spec["polls"]:
                _seen, load_s, sync_s = await load(poll["folder"])
                index, urls = library.index, poll["urls"]
                fresh = set(urls)
                if poll is spec["polls"][0]:  # first-use costs are not the figures
                    index.follow_matches(queries, urls)
                    for q in queries[:BASELINE_WARMUP]:
                        index.search(q.query, topic=q.topic, provider=q.source, limit=spec["limit"])
                    forget_follow_terms(index)
                passed = await one_pass()  # on the new index version, as the bot's
                idle = await one_pass()  # nothing new since
                cold: list[float] = []
                for _ in range(spec["repeat"]):
                    forget_follow_terms(index)
                    before = time.perf_counter()
                    found = index.follow_matches(queries, urls)
                    cold.append(time.perf_counter() - before)
                warm = []
                for _ in range(spec["repeat"]):
                    before = time.perf_counter()
                    index.follow_matches(queries, urls)
                    warm.append(time.perf_counter() - before)
                one = []
                for _ in range(spec["repeat"]):
                    forget_follow_terms(index)
                    before = time.perf_counter()
                    index.follow_matches(queries, urls[:1])
                    one.append(time.perf_counter() - before)
                before = time.perf_counter()
                plain: list[list[str]] = []
                for q in queries:
                    hits = index.search(
                        q.query, topic=q.topic, provider=q.source, limit=spec["limit"]
                    )
                    plain.append([h.url for h in hits if h.url in fresh])
                baseline_s = time.perf_counter() - before
                print(json.dumps({
                    "poll": poll["number"], "load_s": load_s, "sync_s": sync_s,
                    "newsbot_s": cold, "warm_s": warm, "one_url_s": one,
                    "baseline_s": baseline_s, "pass": passed, "idle": idle,
                    "newsbot": pairs(follows, found), "baseline": pairs(follows, plain),
                }), flush=True)  # fmt: skip
            # More articles first seen in one instant than a pass reads in one page.
            big = spec["big"]
            seen, load_s, sync_s = await load(big["folder"])
            passed = await one_pass()
            expected = library.index.follow_matches(queries, big["urls"])
            behind = [f.id for f in await store.follows() if iso(f.checked_until) < seen]
            print(json.dumps({
                "big": len(big["urls"]), "load_s": load_s, "sync_s": sync_s, "pass": passed,
                "expected": pairs(follows, expected), "behind": behind,
            }), flush=True)  # fmt: skip
        return 0

    # The loader: one load per line read (a folder), as `newsbot load <folder>` would do it.
    async with Library.open(config, searchable=False, role="load") as library:
        print(json.dumps({"ready": True}), flush=True)
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line.strip():
                return 0
            now = datetime.now(UTC)
            started = time.monotonic()
            report = await load_seeds(
                library.store, [line.strip()], max_bytes=config.max_seed_bytes, now=now
            )
            committed = time.monotonic()
            print(json.dumps({
                "start": started, "commit": committed, "seen": iso(now),
                "summary": report.summary(),
            }), flush=True)  # fmt: skip


# Its helpers load and match tens of thousands of articles: more time, longer lines.
HELPER_TIMEOUT = 3600


async def start_helper(kind: str, config: Path, spec: Path | None = None) -> Helper:
    """This file's ``--child`` ``kind`` in a process of its own."""
    return await Helper.start(
        __file__, "--child", kind, "--child-config", str(config), "--child-spec", str(spec or ""),
        cwd=config.parent, name=f"{kind} helper", limit=2**26,
    )  # fmt: skip


async def run_helper(kind: str, config: Path, spec: Path, replies: int) -> list[dict[str, Any]]:
    helper = await start_helper(kind, config, spec)
    try:
        return [await helper.reply(HELPER_TIMEOUT) for _ in range(replies)]
    finally:
        await helper.close(60)
        if helper.proc.returncode != 0:
            raise RuntimeError(f"{kind} helper failed:\n" + "\n".join(helper.errors[-30:]))


# --- the fake: post requests with their arrival --------------------------------------------------

_ARRIVAL: contextvars.ContextVar[float] = contextvars.ContextVar("follows_arrival")


@dataclass(frozen=True, slots=True)
class PostRequest:
    at: float  # time.monotonic() when aiohttp handed the request to the fake
    channel_id: int
    urls: tuple[str, ...]  # the new articles it posts
    status: int


class FollowsFake(ClusterFake):
    """ClusterFake recording every ``POST /channels/{id}/messages`` with its arrival time."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.posts: list[PostRequest] = []

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        # aiohttp runs each request in a task of its own: the variable is this request's.
        _ARRIVAL.set(time.monotonic())
        return await super()._rest(request)

    def _handle(self, rec: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        status, payload, headers = super()._handle(rec)
        match = _POST.fullmatch(rec.path)
        if rec.method == "POST" and match is not None:
            urls = tuple(sorted(set(_NEW_URL.findall(json.dumps(rec.json)))))
            self.posts.append(PostRequest(_ARRIVAL.get(rec.at), int(match[1]), urls, status))
        return status, payload, headers


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (every thread), from /proc/<pid>/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return math.nan
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # fields 14 and 15 of stat(5)


# --- the run -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PassCount:
    """One in-process ``run_once``: its time, what it read and matched, what it posted."""

    s: float
    pages: int  # Store.first_seen_after calls
    read: int  # rows they returned
    calls: int  # SearchIndex.follow_matches calls
    matched: int  # URLs handed to them
    posted: list[tuple[int, str]]  # (follow id, URL), one per article posted

    @classmethod
    def of(cls, reply: dict[str, Any]) -> PassCount:
        return cls(
            reply["s"], reply["pages"], reply["read"], reply["calls"], reply["matched"],
            [(int(f), u) for f, u in reply["posted"]],
        )  # fmt: skip


@dataclass
class MatchPoll:
    number: int
    new: int
    newsbot_s: float  # median of the cold repeats (the words' terms not cached)
    newsbot_runs: list[float]
    warm_s: float  # median of the repeats with the terms cached
    one_url_s: float  # median of cold follow_matches with the first URL only: the per-follow part
    baseline_s: float
    load_s: float
    sync_s: float
    newsbot: set[tuple[int, str]]
    baseline: set[tuple[int, str]]
    pass_: PassCount
    idle: PassCount

    @property
    def passed(self) -> set[tuple[int, str]]:
        return set(self.pass_.posted)


@dataclass
class BigLoad:
    """Part 1's load of BIG_LOAD articles first seen in one instant, and its pass."""

    articles: int
    load_s: float
    sync_s: float
    pass_: PassCount
    expected: set[tuple[int, str]]
    behind: list[int]  # follows whose mark stayed before the load's first-seen time

    @property
    def posted(self) -> int:
        return len(set(self.pass_.posted) & self.expected)

    @property
    def twice(self) -> int:
        return sum(1 for n in Counter(self.pass_.posted).values() if n > 1)

    @property
    def missing(self) -> int:
        return len(self.expected - set(self.pass_.posted))

    @property
    def unexpected(self) -> int:
        return len(set(self.pass_.posted) - self.expected)

    @property
    def ok(self) -> bool:
        return not (self.twice or self.missing or self.unexpected or self.behind)


@dataclass
class E2EPoll:
    number: int
    expected: int
    commit: float = math.nan
    seen: str = ""  # the load's first-seen time (iso), as the store keeps it
    load_s: float = math.nan
    pass_done_s: float = math.nan  # commit -> every follow's mark moved past the poll
    window_s: float = math.nan  # load request -> all posts and the pass done
    cpu_s: float = math.nan
    latencies: list[float] = field(default_factory=list)  # s, one per (follow, article) posted
    first_post_s: float = math.nan
    posted: int = 0
    duplicates: int = 0
    missing: int = 0
    unexpected: int = 0
    refused: int = 0  # post requests the fake answered with an error


@dataclass
class Run:
    articles: int = 0
    real: int = 0
    files: int = 0
    follows: list[FollowSpec] = field(default_factory=list)
    follow_ids: list[int] = field(default_factory=list)
    polls: list[Poll] = field(default_factory=list)
    big: Poll | None = None  # part 1's load of BIG_LOAD articles
    big_load: BigLoad | None = None
    prepared: dict[str, Any] = field(default_factory=dict)
    match: list[MatchPoll] = field(default_factory=list)
    e2e: list[E2EPoll] = field(default_factory=list)
    connect_s: float = math.nan
    idle_cpu_rate: float = math.nan  # CPU seconds per second, idle before the polls
    idle_after_rate: float = math.nan  # the same after the polls (--idle-after)
    idle_after: list[tuple[float, float]] = field(default_factory=list)  # (s in, CPU s) samples
    problems: list[str] = field(default_factory=list)


async def prepare(args: argparse.Namespace, tmp: Path, run: Run) -> tuple[Path, Path]:
    """The corpus, the follows, the polls' folders; the two database copies (match, bot)."""
    real_all = list(load_corpus(args.corpus or default_corpora()).articles)
    if not real_all:
        raise SystemExit("no articles in the corpus (use --corpus DIR)")
    rng = random.Random(f"newsbot-follows:{args.seed}")
    log(f"{args.articles:,} articles: writing the seed files...")
    scaled = scale_corpus(real_all, args.articles, args.seed)[: args.articles]
    seeds = tmp / "seeds"
    run.files = write_seeds(scaled, seeds)
    kept = {a.url for a in scaled}
    real = [a for a in real_all if a.url in kept]
    titles = [a.title for a in scaled]
    del scaled
    run.articles, run.real = run.files, len(real)
    per_guild = math.ceil(args.follows / args.guilds)
    guilds = make_guilds(args.guilds, per_guild)
    run.follows = make_follows(real, titles, guilds, args, rng)
    sizes = [args.new] * args.polls + [BIG_LOAD]
    *run.polls, run.big = make_polls(
        real, run.follows, sizes, args.match_share, rng, tmp / "incoming"
    )

    template = tmp / "template.sqlite3"
    spec = tmp / "prepare.json"
    spec.write_text(json.dumps({"follows": [f.to_json() for f in run.follows]}), encoding="utf-8")
    config = helper_config(tmp, "prepare", template, seeds)
    log(f"loading {run.files:,} articles and adding {len(run.follows):,} follows...")
    [run.prepared] = await run_helper("prepare", config, spec, 1)
    run.follow_ids = list(run.prepared["ids"])
    copies = []
    for name in ("match", "bot"):
        target = tmp / f"{name}.sqlite3"
        with (
            contextlib.closing(sqlite3.connect(template)) as src,
            contextlib.closing(sqlite3.connect(target)) as dst,
        ):
            src.backup(dst)
        copies.append(target)
    return copies[0], copies[1]


def helper_config(folder: Path, name: str, database: Path, seeds: Path) -> Path:
    """A config for a helper that never connects to Discord (JSON is YAML)."""
    path = folder / f"{name}.yaml"
    config = {"seeds_dir": str(seeds), "database": str(database), "log_level": "WARNING"}
    path.write_text(json.dumps(config, indent=1), encoding="utf-8")
    return path


async def measure_matching(args: argparse.Namespace, tmp: Path, database: Path, run: Run) -> None:
    config = helper_config(tmp, "match", database, tmp / "seeds")
    spec = tmp / "match.json"
    spec.write_text(json.dumps({
        "repeat": args.repeat, "limit": BASELINE_LIMIT,
        "polls": [{"number": p.number, "folder": str(p.folder), "urls": list(p.urls)}
                  for p in run.polls],
        "big": {"folder": str(run.big.folder), "urls": list(run.big.urls)} if run.big else None,
    }), encoding="utf-8")  # fmt: skip
    log(f"part 1: matching {len(run.polls)} polls in process (the baseline is slow)...")
    *replies, last = await run_helper("match", config, spec, len(run.polls) + 1)
    for reply in replies:
        run.match.append(
            MatchPoll(
                number=reply["poll"], new=len(run.polls[reply["poll"] - 1].urls),
                newsbot_s=statistics.median(reply["newsbot_s"]), newsbot_runs=reply["newsbot_s"],
                warm_s=statistics.median(reply["warm_s"]),
                one_url_s=statistics.median(reply["one_url_s"]),
                baseline_s=reply["baseline_s"], load_s=reply["load_s"],
                sync_s=reply["sync_s"], newsbot={(int(f), u) for f, u in reply["newsbot"]},
                baseline={(int(f), u) for f, u in reply["baseline"]},
                pass_=PassCount.of(reply["pass"]), idle=PassCount.of(reply["idle"]),
            )
        )  # fmt: skip
        m = run.match[-1]
        log(
            f"poll {m.number}: newsbot {m.newsbot_s * 1000:.1f} ms, baseline "
            f"{m.baseline_s * 1000:.0f} ms; pairs {len(m.newsbot)} / {len(m.baseline)}; pass "
            f"read {m.pass_.read}, matched {m.pass_.matched}"
        )
    big = run.big_load = BigLoad(
        articles=last["big"], load_s=last["load_s"], sync_s=last["sync_s"],
        pass_=PassCount.of(last["pass"]), expected={(int(f), u) for f, u in last["expected"]},
        behind=list(last["behind"]),
    )  # fmt: skip
    log(
        f"{big.articles:,} articles in one load: {big.posted}/{len(big.expected)} posted, pass "
        f"{big.pass_.pages} pages, read {big.pass_.read}, matched {big.pass_.matched}"
    )
    if not big.ok:
        run.problems.append(
            f"the {big.articles:,}-article load: {big.missing} missing, {big.unexpected} "
            f"unexpected, {big.twice} posted twice, {len(big.behind)} follows' marks behind"
        )


def min_checked(db: sqlite3.Connection) -> str:
    row = db.execute("SELECT min(checked_until) FROM follows WHERE paused IS NULL").fetchone()
    return str(row[0] or "")


async def measure_e2e(args: argparse.Namespace, tmp: Path, database: Path, run: Run) -> None:
    per_guild = math.ceil(args.follows / args.guilds)
    guilds = make_guilds(args.guilds, per_guild)
    channel_of = {fid: f.channel_id for fid, f in zip(run.follow_ids, run.follows, strict=True)}
    poll_of = {url: p.number for p in run.polls for url in p.urls}
    async with FollowsFake(guilds=guilds, token=TOKEN) as fake:
        config = write_config(
            tmp, fake, str(database), tmp / "seeds", log_level="INFO",
            # The seeds folder's safety rescan (every 5 minutes by default) out of the way.
            sources=[{"name": "seeds", "folder": str(tmp / "seeds"), "every": "7d"}],
        )  # fmt: skip
        loader = await start_helper("loader", config)
        watch = sqlite3.connect(f"file:{database}?mode=ro", uri=True, isolation_level=None)
        try:
            await loader.reply(timeout=600)  # ready
            async with children() as started:
                log("part 2: newsbot run...")
                launched = time.monotonic()
                bot = await Child.start("bot", tmp, "--config", str(config), "run")
                started.append(bot)
                await wait_connected(fake, [bot], timeout=1200)
                run.connect_s = time.monotonic() - launched
                await quiet(bot)
                pid = bot.proc.pid
                before, cpu = time.monotonic(), cpu_seconds(pid)
                await asyncio.sleep(IDLE_S)
                run.idle_cpu_rate = (cpu_seconds(pid) - cpu) / (time.monotonic() - before)
                for poll, matched in zip(run.polls, run.match, strict=True):
                    expected = {(channel_of[f], u) for f, u in matched.newsbot}
                    result = await one_poll(fake, bot, loader, watch, poll, expected, poll_of)
                    run.e2e.append(result)
                    log(
                        f"poll {poll.number}: {result.posted}/{result.expected} posted, "
                        f"max {max(result.latencies, default=math.nan) * 1000:.0f} ms, "
                        f"pass done {result.pass_done_s:.2f} s"
                    )
                    await asyncio.sleep(SETTLE_S + args.gap)
                await asyncio.sleep(2.0)  # a late duplicate of the last poll
                if args.idle_after:
                    log(f"the bot's CPU for {args.idle_after:g} s after the polls...")
                    began, last = time.monotonic(), cpu_seconds(pid)
                    while time.monotonic() - began < args.idle_after:
                        await asyncio.sleep(SAMPLE_S)
                        now = cpu_seconds(pid)
                        run.idle_after.append((time.monotonic() - began, now - last))
                        last = now
                    spent = sum(cpu for _, cpu in run.idle_after)
                    run.idle_after_rate = spent / (time.monotonic() - began)
                final = Counter(
                    (p.channel_id, u) for p in fake.posts if p.status == 200 for u in p.urls
                )
                repeated = sum(1 for n in final.values() if n > 1)
                if repeated:
                    run.problems.append(f"{repeated} (follow, article) pairs posted more than once")
                run.problems += await stop_all([bot])
        finally:
            watch.close()
            await loader.close(60)
            if loader.proc.returncode not in (0, None):
                run.problems.append(
                    f"loader exited with {loader.proc.returncode}: "
                    + " | ".join(loader.errors[-10:])
                )
        run.problems += [f"fake error: {e!r}" for e in fake.errors[:3]]


async def quiet(bot: Child, limit: float = 120.0) -> None:
    """Until the bot's CPU is quiet (its start-up load, index and first pass are done)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        bot.check_alive()
        cpu = cpu_seconds(bot.proc.pid)
        await asyncio.sleep(1.0)
        if cpu_seconds(bot.proc.pid) - cpu < 0.05:
            return


async def one_poll(
    fake: FollowsFake, bot: Child, loader: Helper, watch: sqlite3.Connection, poll: Poll,
    expected: set[tuple[int, str]], poll_of: dict[str, int],
) -> E2EPoll:  # fmt: skip
    result = E2EPoll(poll.number, len(expected))
    first = len(fake.posts)
    pid = bot.proc.pid
    requested, cpu = time.monotonic(), cpu_seconds(pid)
    loaded = await loader.ask(str(poll.folder), HELPER_TIMEOUT)
    if f"added {len(poll.urls)}" not in loaded["summary"]:
        raise RuntimeError(f"poll {poll.number} load: {loaded['summary']}")
    result.commit, result.load_s = loaded["commit"], loaded["commit"] - loaded["start"]
    result.seen = loaded["seen"]
    arrived: dict[tuple[int, str], float] = {}
    seen = first
    deadline = result.commit + GIVE_UP_S
    while True:
        bot.check_alive()
        for post in fake.posts[seen:]:
            if post.status != 200:
                result.refused += 1
                continue
            for url in post.urls:
                arrived.setdefault((post.channel_id, url), post.at)
        seen = len(fake.posts)
        if math.isnan(result.pass_done_s) and min_checked(watch) >= loaded["seen"]:
            result.pass_done_s = time.monotonic() - result.commit
        if expected <= arrived.keys() and not math.isnan(result.pass_done_s):
            break
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(WATCH_S)
    result.window_s = time.monotonic() - requested
    result.cpu_s = cpu_seconds(pid) - cpu
    await asyncio.sleep(SETTLE_S)  # what a pass might still send now is a duplicate or extra
    pairs = Counter(
        (p.channel_id, u) for p in fake.posts[first:] if p.status == 200 for u in p.urls
        if poll_of.get(u) == poll.number
    )  # fmt: skip
    result.posted = sum(1 for pair in pairs if pair in expected)
    result.duplicates = sum(1 for n in pairs.values() if n > 1)
    result.missing = len(expected - pairs.keys())
    result.unexpected = sum(1 for pair in pairs if pair not in expected)
    mine = [t for (c, u), t in arrived.items() if poll_of.get(u) == poll.number]
    result.latencies = sorted(t - result.commit for t in mine)
    result.first_post_s = result.latencies[0] if result.latencies else math.nan
    return result


# --- the report ----------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return "—" if math.isnan(seconds) else f"{seconds * 1000:,.1f}"


def secs(seconds: float) -> str:
    return "—" if math.isnan(seconds) else f"{seconds:.2f}"


def times(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:,.1f}x"


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 and not math.isnan(a) else math.nan


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(v for v in values if not math.isnan(v))
    return percentile(ordered, q) if ordered else math.nan


def matching_table(run: Run, markdown: bool) -> str:
    header = (
        "poll", "new", "newsbot follow_matches ms", "terms cached ms", "of it with 1 URL ms",
        "baseline search loop ms", "ratio", "pairs newsbot", "pairs baseline", "in both",
        "pass reads / matches", "pass (run_once) ms", "idle pass reads / matches", "idle pass ms",
    )  # fmt: skip
    body = []
    for m in run.match:
        body.append([
            str(m.number), str(m.new), ms(m.newsbot_s), ms(m.warm_s), ms(m.one_url_s),
            ms(m.baseline_s), times(ratio(m.baseline_s, m.newsbot_s)), str(len(m.newsbot)),
            str(len(m.baseline)), str(len(m.newsbot & m.baseline)),
            f"{m.pass_.read:,} / {m.pass_.matched:,}", ms(m.pass_.s),
            f"{m.idle.read:,} / {m.idle.matched:,}", ms(m.idle.s),
        ])  # fmt: skip
    if run.match:
        med = statistics.median
        nb = med(m.newsbot_s for m in run.match)
        base = med(m.baseline_s for m in run.match)
        body.append([
            "median", str(int(med(m.new for m in run.match))), ms(nb),
            ms(med(m.warm_s for m in run.match)), ms(med(m.one_url_s for m in run.match)),
            ms(base), times(ratio(base, nb)), f"{med(len(m.newsbot) for m in run.match):g}",
            f"{med(len(m.baseline) for m in run.match):g}",
            f"{med(len(m.newsbot & m.baseline) for m in run.match):g}",
            f"{med(m.pass_.read for m in run.match):,g} / "
            f"{med(m.pass_.matched for m in run.match):,g}",
            ms(med(m.pass_.s for m in run.match)),
            f"{med(m.idle.read for m in run.match):,g} / "
            f"{med(m.idle.matched for m in run.match):,g}",
            ms(med(m.idle.s for m in run.match)),
        ])  # fmt: skip
    return render(header, body, markdown)


def big_table(big: BigLoad, markdown: bool) -> str:
    header = ("measure", "in process", "note")
    p = big.pass_
    body = [
        [
            f"{big.articles:,} articles in one load: matched pairs posted / expected",
            f"{big.posted:,} / {len(big.expected):,}", "follow_matches over the load's URLs",
        ],
        [
            "posted twice / missing / unexpected",
            f"{big.twice} / {big.missing} / {big.unexpected}", "exactly once: 0 / 0 / 0",
        ],
        [
            "follows whose mark stayed before the load", str(len(big.behind)),
            "0: every mark moved up to the load's first-seen time",
        ],
        [
            "its pass: pages read / rows read / URLs matched (calls)",
            f"{p.pages} / {p.read:,} / {p.matched:,} ({p.calls})",
            f"pages of at most MAX_BATCH = {MAX_BATCH:,} rows; matched: the load's "
            f"{big.articles:,}",
        ],
        [
            "its pass ms", ms(p.s),
            f"load {secs(big.load_s)} s, index sync {ms(big.sync_s)} ms before it",
        ],
    ]  # fmt: skip
    return render(header, body, markdown)


def e2e_baseline(run: Run) -> list[float]:
    """Each latency plus its poll's (baseline - newsbot) matching time (computed)."""
    return [
        lat + (m.baseline_s - m.newsbot_s)
        for e, m in zip(run.e2e, run.match, strict=True)
        for lat in e.latencies
    ]


def e2e_table(run: Run, markdown: bool) -> str:
    header = ("measure", "newsbot", "baseline (same run)", "ratio")
    lat = [v for e in run.e2e for v in e.latencies]
    base = e2e_baseline(run)
    body: list[list[str]] = []
    for label, q in (("p50", 0.5), ("p99", 0.99), ("max", 1.0)):
        a, b = pct(lat, q), pct(base, q)
        body.append([
            f"stored → post request {label} ms (n={len(lat)})", ms(a),
            f"plain loop (computed) {ms(b)}", times(ratio(b, a)),
        ])  # fmt: skip
    expected = sum(e.expected for e in run.e2e)
    posted = sum(e.posted for e in run.e2e)
    body.append([
        "(follow, article) pairs posted / expected", f"{posted:,} / {expected:,}",
        "expected: part 1's follow_matches", "—",
    ])  # fmt: skip
    body.append([
        "posted twice / missing / unexpected",
        f"{sum(e.duplicates for e in run.e2e)} / {sum(e.missing for e in run.e2e)} / "
        f"{sum(e.unexpected for e in run.e2e)}", "exactly once: 0 / 0 / 0", "—",
    ])  # fmt: skip
    cpu = statistics.median(e.cpu_s for e in run.e2e) if run.e2e else math.nan
    window = statistics.median(e.window_s for e in run.e2e) if run.e2e else math.nan
    idle = run.idle_cpu_rate * window
    body.append([
        "bot CPU per poll s (median)", secs(cpu),
        f"idle for as long ({secs(window)} s) {secs(idle)}", times(ratio(cpu, idle)),
    ])  # fmt: skip
    done = statistics.median(e.pass_done_s for e in run.e2e) if run.e2e else math.nan
    body.append([
        "commit → pass done s (median)", secs(done), "—", "—",
    ])  # fmt: skip
    if not math.isnan(run.idle_after_rate):
        body.append([
            "bot CPU s per s, idle after the polls", f"{run.idle_after_rate:.3f}",
            f"idle before the polls {run.idle_cpu_rate:.3f}",
            times(ratio(run.idle_after_rate, run.idle_cpu_rate)),
        ])  # fmt: skip
    return render(header, body, markdown)


def bursts(samples: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """(seconds in, CPU seconds above the median sample) of each run of busy samples."""
    if not samples:
        return []
    base = statistics.median(cpu for _, cpu in samples)
    found: list[tuple[float, float]] = []
    start, extra = math.nan, 0.0
    for at, cpu in [*samples, (math.nan, base)]:  # the sentinel ends a last burst
        if cpu - base > BUSY_S:
            if math.isnan(start):
                start, extra = at - SAMPLE_S, 0.0
            extra += cpu - base
        elif not math.isnan(start):
            found.append((start, extra))
            start = math.nan
    return found


def pass_reads(run: Run) -> list[int]:
    """Per poll, the rows its pass reads (computed): the articles first seen after the marks
    (the last poll's first-seen time) minus LOOKBACK, this poll's included. The bot matches
    this poll's only (it looked at the others already)."""
    seen = [datetime.fromisoformat(e.seen) for e in run.e2e]
    reads = []
    for k in range(len(run.e2e)):
        since = seen[k - 1] - LOOKBACK if k else seen[0] - timedelta(microseconds=1)
        reads.append(sum(len(run.polls[j].urls) for j in range(k + 1) if seen[j] > since))
    return reads


def e2e_poll_table(run: Run, markdown: bool) -> str:
    header = (
        "poll", "pass reads (computed)", "expected", "posted", "twice", "missing", "first ms",
        "p50 ms", "p99 ms", "max ms", "pass done s", "load s", "bot CPU s", "idle CPU s",
    )  # fmt: skip
    body = []
    for e, reads in zip(run.e2e, pass_reads(run), strict=True):
        body.append([
            str(e.number), str(reads), str(e.expected), str(e.posted), str(e.duplicates),
            str(e.missing),
            ms(e.first_post_s), ms(pct(e.latencies, 0.5)), ms(pct(e.latencies, 0.99)),
            ms(pct(e.latencies, 1.0)), secs(e.pass_done_s), secs(e.load_s), secs(e.cpu_s),
            secs(run.idle_cpu_rate * e.window_s),
        ])  # fmt: skip
    return render(header, body, markdown)


def details(run: Run, args: argparse.Namespace, bullet: str) -> list[str]:
    follows = run.follows
    typo = sum(f.typo for f in follows)
    topic = sum(f.topic is not None for f in follows)
    source = sum(f.source is not None for f in follows)
    ids = run.follow_ids
    targeted = hit = 0
    for poll, m in zip(run.polls, run.match, strict=True):
        for url, target in poll.targets.items():
            targeted += 1
            hit += (ids[target], url) in m.newsbot
    matched_articles = {u for m in run.match for _, u in m.newsbot}
    new_total = sum(len(p.urls) for p in run.polls)
    only_newsbot = sum(len(m.newsbot - m.baseline) for m in run.match)
    only_baseline = sum(len(m.baseline - m.newsbot) for m in run.match)
    pass_agrees = all(m.passed == m.newsbot for m in run.match)
    prepared = run.prepared
    out = [
        f"{bullet}Corpus: {run.real:,} real articles scaled to {run.files:,} seed files; "
        f"`{prepared.get('summary', '')}` in {prepared.get('load_s', math.nan):.1f} s, index "
        f"saved in {prepared.get('snapshot_s', math.nan):.1f} s, {len(follows):,} follows added "
        f"in {prepared.get('follows_s', math.nan):.2f} s.",
        f"{bullet}Follows: {len(follows):,} over {args.guilds} guilds "
        f"({math.ceil(args.follows / args.guilds)} channels each, one follow per channel); "
        f"{typo} with a typo, {topic} with a topic filter, {source} with a source filter. "
        "Examples: " + "; ".join(f"“{f.query}”" + (f" in {f.topic}" if f.topic else "")
                                + (f" from {f.source}" if f.source else "") for f in follows[:4])
        + ".",
        f"{bullet}New articles: {len(run.polls)} polls × {args.new}; {targeted} targeted "
        f"({args.match_share:.0%}), of which {hit} matched their follow; "
        f"{len(matched_articles)} of {new_total} new articles matched some follow.",
        f"{bullet}Pairs: newsbot only {only_newsbot} (ranked below the whole index's best "
        f"{BASELINE_LIMIT} for that query), baseline only {only_baseline} (search's partial "
        "matches and neighbours in meaning, which a follow does not accept). The in-process "
        f"pass posted {'exactly' if pass_agrees else 'NOT'} the follow_matches pairs"
        f" in every poll.",
        f"{bullet}newsbot matching, every cold run (ms): "
        + "; ".join(", ".join(f"{v * 1000:.1f}" for v in m.newsbot_runs) for m in run.match)
        + ". In-process load of a poll: "
        + ", ".join(f"{m.load_s:.2f}" for m in run.match) + " s; index sync "
        + ", ".join(f"{m.sync_s * 1000:.0f}" for m in run.match) + " ms.",
    ]  # fmt: skip
    if run.e2e:
        first = [e.first_post_s for e in run.e2e]
        out.append(
            f"{bullet}End to end: connected {run.connect_s:.1f} s after launch; idle bot CPU "
            f"{run.idle_cpu_rate:.3f} s per s; commit → first post per poll "
            + ", ".join(ms(v) for v in first)
            + " ms; post requests the fake refused: "
            + str(sum(e.refused for e in run.e2e))
            + "."
        )
    if run.idle_after:
        busy = bursts(run.idle_after)
        out.append(
            f"{bullet}After the polls ({args.idle_after:g} s, CPU read every {SAMPLE_S:g} s): "
            f"{len(busy)} burst(s) of the bot's CPU above its median rate"
            + (
                ", at " + ", ".join(f"{at:.1f} s ({cpu:.2f} s CPU)" for at, cpu in busy)
                if busy
                else ""
            )
            + "; a pass runs every 30 s when nothing changes (PASS_EVERY_SECONDS): it reads the "
            "articles first seen since the marks minus LOOKBACK again (the last poll's) and "
            "matches none of them (in process: "
            + ", ".join(f"{m.idle.read} read, {m.idle.matched} matched" for m in run.match[-1:])
            + ")."
        )
    return out


NOTES = (
    "Matching: `SearchIndex.follow_matches` for every follow and the poll's new URLs against the "
    "plain loop: `SearchIndex.search(query, topic, provider, "
    f"limit={BASELINE_LIMIT})` per follow over the whole index, keeping the poll's URLs (one "
    "run). Same process, same index, after loading and syncing the poll. newsbot: median of "
    "--repeat cold runs (the index version's cache of the follow words' terms emptied before "
    "each, as a new version after a load has it); 'terms cached': median of --repeat runs with "
    "it kept.",
    "'pass': `FollowService.run_once` with a poster that returns at once (reads a page of at "
    f"most MAX_BATCH = {MAX_BATCH:,} rows at a time, matching in a worker thread, claims, marks, "
    "every follow's progress), run first on the poll's new index version. 'pass reads / "
    "matches': rows it read (`Store.first_seen_after`) / URLs it handed to `follow_matches`, "
    "counted in process: it reads every article first seen after the marks minus LOOKBACK "
    "(60 s), earlier polls within 60 s included, and matches only those it has not looked at. "
    "'idle pass': `run_once` again at once with nothing new, as the bot's 30-s pass.",
    "Pairs differ by design: a follow needs every query word (as typed, one typo, or a prefix); "
    "search accepts a full match at 45% of the query's weight and fills its limit with partial "
    "matches and neighbours in meaning, but only from the 40 best of the whole collection.",
    "'of it with 1 URL': a cold follow_matches with the poll's first URL only, the cost paid per "
    "follow whatever the number of new articles (each query word's variants, once per index "
    "version; each source filter's ids); topic and source filters are checked per new article.",
    f"The {BIG_LOAD:,}-article load: one load of more than MAX_BATCH articles, all first seen in "
    "one instant, after the polls (part 1 only); its pass must read it page after page, post "
    "every pair follow_matches finds in it once and move every follow's mark up to it.",
    "End to end: a real `newsbot run` on SQLite and the fake Discord; a loader process loads "
    "each poll's folder; from the commit to each `POST /channels/{id}/messages` reaching the "
    "fake, per (follow, article) posted. The baseline is computed: the same latencies plus the "
    "poll's extra matching time of the plain loop over newsbot's cold follow_matches (part 1).",
    "'pass reads (computed)': the rows the poll's pass reads, first seen after the follows' marks "
    "(the last poll's first-seen time) minus LOOKBACK (60 s): this poll's, and earlier polls' "
    "first seen within 60 s before the last; the bot matches this poll's only (the others it "
    "looked at already; part 1 counts it). 'Idle after the polls': the bot's CPU over "
    "--idle-after seconds once the polls are done; its 30-s passes (PASS_EVERY_SECONDS) read "
    "the last poll's rows again and match none of them.",
    "The fake Discord simulates no rate limit (real Discord: 5 messages / 5 s per channel, "
    "about 50 requests / s per bot); every post is answered at once.",
    "'pass done': the database shows every active follow's mark at the poll's first-seen time "
    "(`Store.advance_follows`, the pass's last step). Bot CPU: utime + stime from the load request "
    "until every expected post arrived and the pass was done; idle: the bot's idle CPU rate "
    "(measured before the polls) times that window.",
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=20_000, help="corpus size (scaled up)")
    parser.add_argument("--corpus", type=Path, action="append", metavar="DIR", help=CORPUS_HELP)
    parser.add_argument("--follows", type=int, default=1_000, help="follows in all")
    parser.add_argument("--guilds", type=int, default=200, help="guilds the follows are over")
    parser.add_argument("--new", type=int, default=100, help="new articles per poll")
    parser.add_argument("--polls", type=int, default=5, help="polls")
    parser.add_argument(
        "--match-share", type=float, default=0.3, help="share of new articles targeted at a follow"
    )
    parser.add_argument("--typo-share", type=float, default=0.2, help="follows with a typo")
    parser.add_argument("--topic-share", type=float, default=0.3, help="follows with a topic")
    parser.add_argument("--source-share", type=float, default=0.1, help="follows with a source")
    parser.add_argument("--repeat", type=int, default=5, help="follow_matches runs per poll")
    parser.add_argument(
        "--gap", type=float, default=0.0,
        help="extra seconds between end-to-end polls (61: a pass reads the last poll only)",
    )  # fmt: skip
    parser.add_argument(
        "--idle-after", type=float, default=61.0,
        help="seconds the bot's CPU is measured after the polls (0: not measured)",
    )  # fmt: skip
    parser.add_argument("--only-matching", action="store_true", help="part 1 only (no newsbot run)")
    parser.add_argument("--seed", type=int, default=1, help="for the corpus, follows and polls")
    parser.add_argument("--quick", action="store_true", help="small sizes: " + ", ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items()
    ))  # fmt: skip
    parser.add_argument("--markdown", action="store_true", help="markdown headings and tables")
    parser.add_argument("--child", choices=("prepare", "match", "loader"), help=argparse.SUPPRESS)
    parser.add_argument("--child-config", help=argparse.SUPPRESS)
    parser.add_argument("--child-spec", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return args
    if args.quick:
        given = {a.split("=")[0] for a in (argv if argv is not None else sys.argv[1:])}
        for key, value in QUICK.items():
            if f"--{key.replace('_', '-')}" not in given:
                setattr(args, key, value)
    if min(args.articles, args.follows, args.guilds, args.new, args.polls, args.repeat) < 1:
        parser.error("sizes must be at least 1")
    if args.gap < 0 or args.idle_after < 0:
        parser.error("--gap and --idle-after must not be negative")
    if args.guilds > args.follows:
        parser.error("--guilds must not exceed --follows")
    for name in ("match_share", "typo_share", "topic_share", "source_share"):
        if not 0 <= getattr(args, name) <= 1:
            parser.error(f"--{name.replace('_', '-')} must be between 0 and 1")
    return args


async def bench(args: argparse.Namespace) -> bool:
    h = "## " if args.markdown else ""
    bullet = "- " if args.markdown else ""
    load_at_start = os.getloadavg()[0]
    command = shlex.join(["python", "bench/follows.py", *sys.argv[1:]])
    print(f"{bullet}Command: `{command}`", flush=True)
    run = Run()
    with tempfile.TemporaryDirectory(prefix="newsbot-follows-") as name:
        tmp = Path(name)
        try:
            match_db, bot_db = await prepare(args, tmp, run)
            await measure_matching(args, tmp, match_db, run)
            if not args.only_matching:
                await measure_e2e(args, tmp, bot_db, run)
        except Exception as exc:
            log(f"failed: {exc!r}")
            run.problems.append(f"{exc!r}"[:3000])
    out = [
        "",
        f"{h}Matching one poll: {args.follows:,} follows × {args.new} new articles, "
        f"{run.files:,}-article index (in process)",
        "",
        matching_table(run, args.markdown),
    ]
    if run.big_load is not None:
        out += [
            "",
            f"{h}One load of {run.big_load.articles:,} new articles first seen in one instant "
            f"(more than MAX_BATCH = {MAX_BATCH:,}), {args.follows:,} follows (in process)",
            "",
            big_table(run.big_load, args.markdown),
        ]
    if run.e2e:
        out += [
            "",
            f"{h}End to end: `newsbot run` + fake Discord, {args.follows:,} follows over "
            f"{args.guilds} guilds, {len(run.e2e)} polls of {args.new}",
            "",
            e2e_table(run, args.markdown),
            "",
            e2e_poll_table(run, args.markdown),
        ]
    out += ["", *details(run, args, bullet)]
    expected_all = all(e.missing == 0 and e.duplicates == 0 for e in run.e2e)
    if not expected_all:
        run.problems.append("not every expected post was made exactly once (see the tables)")
    ok = not run.problems and (bool(run.e2e) or args.only_matching) and bool(run.match)
    out += [f"{bullet}PROBLEM: {p}" for p in run.problems]
    out += [
        "",
        f"{bullet}Machine: {machine_line(load_at_start)}; the bot, the fake Discord + this "
        "driver (one process) and the helper processes share it.",
        "",
        f"{h}What the figures are",
        "",
        *(f"{bullet}{n}" for n in NOTES),
        "",
        f"{bullet}Run: {'completed' if ok else 'FAILED'}.",
    ]
    print("\n".join(out), flush=True)
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    """Prints the report; exits 1 when a run failed or a post was missing or repeated."""
    args = parse_args(argv)
    if args.child:
        return asyncio.run(child_main(args.child, args.child_config, args.child_spec))
    try:
        ok = asyncio.run(bench(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

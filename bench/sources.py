"""What polling live feeds costs: 500 feeds on loopback, 50 of them changed each cycle.

Run by hand from the repository root (never from the tests)::

    python bench/sources.py                                   # 500 feeds, 50 changed, 5 cycles
    python bench/sources.py --feeds 500 --changed 50 --cycles 5 --markdown
    python bench/sources.py --quick                           # 50 feeds, 5 changed, 2 cycles

The feeds: ``--feeds`` RSS 2.0 feeds of ``--entries`` (20) entries each, served by the tests'
loopback feed server (tests/feedserver.py ``FeedServer``, in this process, on 127.0.0.1) with an
ETag (a hash of the body) and a Last-Modified (the time of the feed's last change), 304 to a
request whose validators match, bodies not compressed. The entries' titles and excerpts are the
real corpus's (``../shared/corpora``, else ``seeds/``; scaled up to feeds x entries distinct
articles by ``bench.queries.scale_corpus``), dated within the last weeks (newer than
``feeds_keep_days``), the excerpt sent as HTML. A *change* puts one new entry at the top of a
feed, whose oldest entry drops off (a feed is a window on the newest 20): its title is a real
title after a made-up word no corpus holds (``Zorvakquilfen: <title>``), so ``/news <word>``
can only be answered with it. Each cycle changes ``--changed`` feeds picked at random.

Three ways of doing one cycle's work are measured in the same run, one after the other (every
figure of the report is the median over ``--cycles`` cycles unless it says otherwise):

1. **Baseline: a plain loop of full GETs and full reloads.** A helper process of this bench
   (this file run with ``--child baseline``, so that its CPU is its own), running for the whole
   phase. One cycle, started right after the changes were made: GET every feed with aiohttp,
   ``poll_concurrency`` (8) at a time, without validators (so every answer is a 200 with the
   whole body); then parse every body, one after the other, with ``bot.feeds.parse_feed``
   (feedparser, plus the mapping to articles newsbot itself uses); then a full reload: a fresh
   SQLite database, every feed's articles written into it (``Store.apply_feed``, one
   transaction per feed: all of them are new there), and the search index built from scratch
   from it (``Library.rebuild_index()``: the same index newsbot serves, words and meaning
   vectors). The change is served when that index is built: its time-to-served is the cycle's
   wall time. CPU is the helper's ``time.process_time()`` over the cycle (every thread), wall
   its ``perf_counter`` (CLOCK_MONOTONIC, one clock for every process on Linux). The model for
   the meaning vectors is loaded before the first cycle; the database of a cycle is deleted
   after it (not timed).
2. **``newsbot run`` on its schedule.** A real ``newsbot run`` subprocess on a SQLite database
   in a temporary folder, connected to the loopback fake Discord (tests/fakediscord.py via
   bench/cluster.py's ``ClusterFake``), with a config listing the feeds as ``sources:``
   (``every: --every``, 20 s; ``poll_concurrency`` left at its default). It first polls every
   feed into its empty database (the *first fill*, in the details). Then each cycle: the
   changes are made at t0; the cycle ends when every feed has been requested at least once
   since t0 and every changed feed's new story was served. Per cycle: the requests the feed
   server received in that window and the 304s it sent, the bytes of the bodies it sent;
   the bot process's CPU (utime + stime of /proc/<pid>/stat, every thread) over the window;
   the wall from the window's first request to the last feed's first request (which is the
   schedule's ``every``, give or take its 10% jitter, not a measure of work). Time-to-served:
   from the change to the first ``/news <word>`` answered with the new story as its first
   embed. To keep the bench's own /news from weighing on the bot's CPU, a changed feed's word
   is asked only once the server has sent that feed's new body, then every 50 ms until it is
   served (so each figure is up to 50 ms + one /news late). Those probes are part of the bot's
   CPU figure; the *net* figure takes off their estimated cost (the bot's CPU per probe,
   measured in phase 3 apart for a probe that finds its story and one that does not, times
   the cycle's count of each). RSS (VmRSS in /proc/<pid>/status) after the first fill plus
   30 /news, and after the cycles.
3. **``newsbot sources poll`` per cycle.** The same database and feeds; a config with the same
   sources polled ``every: 7d`` (so that the running bot's schedule leaves them alone: each
   source's next poll is in the database, set by whoever polled it last). First one
   ``newsbot sources poll`` with no change (every feed answers 304; before the bot starts);
   then a ``newsbot run`` on that config is started and connected, and its CPU per probe
   /news is measured (100 sequential /news for words whose story it serves, 100 for words no
   feed ever had: the calibration used above), and its CPU over 5 s idle. Each cycle: the
   changes, then one ``newsbot sources poll`` (a CLI subprocess that polls every source now,
   concurrently within ``poll_concurrency``, and stores what changed; the bot follows the
   database as it does for any other process's change). Per cycle: the CLI's wall (launch to
   exit: interpreter start, imports and opening the database included) and CPU
   (``getrusage(RUSAGE_CHILDREN)`` around it: nothing else of this bench exits meanwhile) and
   peak RSS (its VmHWM, read every 50 ms while it runs), the running bot's CPU from the changes
   until every new story was served (applying them to its index; net of the bench's probes as
   above), requests and 304s in the CLI's lifetime, and change -> served as in 2.

The baseline's time-to-served is its cycle's wall: the changes were made just before it
started. On a schedule, a change also waits for the next poll: for the schedule row the
baseline figure is computed from its measured cycle as if it ran every ``max(every, cycle)``
seconds, the change landing at a uniformly random moment: p50 = period / 2 + cycle, max =
period + cycle. It is marked "computed".

The feed server, the fake Discord and this driver share one process (and one event loop);
that process, the bot (or the baseline helper, or the CLI) share this machine's cores; the
machine line says how many and how loaded.

Exit status: 0 when every phase completed, 1 when something failed (a process died or logged a
traceback, a change was not served within two minutes, a /news went unanswered, a CLI poll
reported a failed source).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
import math
import os
import random
import re
import resource
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

# Run as a script (``python bench/sources.py``): make ``bench``, ``bot`` and ``tests`` importable.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from bench.cluster import (  # noqa: E402
    Child,
    ClusterFake,
    Helper,
    children,
    first_title,
    stop_all,
    wait_connected,
    write_config,
)
from bench.interactions import USERS, TimedFake, machine_line  # noqa: E402
from bench.queries import CORPUS_HELP, default_corpora, load_corpus, scale_corpus  # noqa: E402
from bench.search import render  # noqa: E402
from bot.articles import Article  # noqa: E402
from bot.config import Config  # noqa: E402
from tests.botharness import GUILD_ID, TOKEN, make_guild  # noqa: E402
from tests.feedserver import FeedServer, rss  # noqa: E402

DEFAULTS = {"feeds": 500, "changed": 50, "cycles": 5, "every": 20.0}
QUICK = {"feeds": 50, "changed": 5, "cycles": 2, "every": 10.0}
#: The poll interval of phase 3's config: long enough that the bot's schedule never polls.
CLI_EVERY = "7d"
POLL_S = 0.05
#: Give up waiting for a change to be served (or a cycle's polls) after this long.
GIVE_UP_S = 120.0
WARMUP = 30
CALIBRATION = 100
_SYLLABLES = ("zor", "vak", "quil", "lon", "bras", "ket", "mur", "fen", "dax", "tol", "wim", "pry")
_SERVING = re.compile(r"serving (\d+) articles")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the feeds -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hit:
    """One request the feed server answered."""

    at: float  # perf_counter() when the answer was ready
    path: str
    status: int
    size: int  # bytes of body sent


@dataclass
class Traffic:
    requests: int = 0
    not_modified: int = 0
    full: int = 0  # 200s
    other: int = 0  # anything else (a failure)
    bytes: int = 0
    first: float = math.nan  # the window's first request
    last_first: float = math.nan  # the last feed's first request in the window
    feeds_seen: int = 0  # distinct feeds requested in the window


class TimedFeedServer(FeedServer):
    """FeedServer that also logs each answer with its time, status and body size, and tells
    the bench when a feed it waits for sent its (new) body."""

    def __init__(self) -> None:
        super().__init__()
        self.hits: list[Hit] = []
        self.last_request: dict[str, float] = {}
        self.awaiting: dict[str, Change] = {}  # path -> the change its next 200 sends

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        response = await super()._handle(request)
        body = response.body if isinstance(response, web.Response) else None
        size = len(body) if isinstance(body, bytes | bytearray) else 0
        now = time.perf_counter()
        self.hits.append(Hit(now, request.path, response.status, size))
        self.last_request[request.path] = now
        if response.status == 200 and request.path in self.awaiting:
            change = self.awaiting.pop(request.path)
            change.fetched_at = now
            change.fetched.set()
        return response

    def traffic(self, start: float, end: float) -> Traffic:
        out = Traffic()
        firsts: dict[str, float] = {}
        for hit in self.hits:
            if not start <= hit.at <= end:
                continue
            out.requests += 1
            out.bytes += hit.size
            if hit.status == 304:
                out.not_modified += 1
            elif hit.status == 200:
                out.full += 1
            else:
                out.other += 1
            firsts.setdefault(hit.path, hit.at)
        if firsts:
            out.first, out.last_first = min(firsts.values()), max(firsts.values())
        out.feeds_seen = len(firsts)
        return out

    def polled_since(self, paths: Sequence[str], moment: float) -> bool:
        return all(self.last_request.get(p, -math.inf) >= moment for p in paths)


@dataclass
class Change:
    feed: int
    path: str
    word: str
    title: str
    at: float  # perf_counter() once the new body is served
    fetched: asyncio.Event = field(default_factory=asyncio.Event)
    fetched_at: float = math.nan  # perf_counter() when the server sent the new body
    last_answer: dict[str, Any] | None = None  # the last /news <word> callback body


class Words:
    """Made-up words no corpus holds, each used once (four syllables: far apart from each
    other, so that no typo-tolerant match of one can stand in for another)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def __call__(self) -> str:
        while True:
            word = "".join(self.rng.choice(_SYLLABLES) for _ in range(4)).capitalize()
            if word not in self.used:
                self.used.add(word)
                return word


class Feeds:
    """The feeds' entries, served by the server; :meth:`change` adds one entry to some."""

    def __init__(
        self,
        server: TimedFeedServer,
        articles: Sequence[Article],
        count: int,
        entries: int,
        spare: Sequence[Article],
        seed: int,
    ) -> None:
        self.server = server
        self.rng = random.Random(f"newsbot-sources:{seed}:changes")
        self.words = Words(random.Random(f"newsbot-sources:{seed}:words"))
        self.spare = itertools.cycle(spare)
        self.names = [f"feed{i:04d}" for i in range(count)]
        self.paths = [f"/feeds/{name}.xml" for name in self.names]
        self.urls = [server.url(path) for path in self.paths]
        self.titles: list[str] = []
        self.entries: list[list[dict[str, Any]]] = []
        now = datetime.now(UTC)
        dates = random.Random(f"newsbot-sources:{seed}:dates")
        for i in range(count):
            chunk = articles[i * entries : (i + 1) * entries]
            # Newest first, the oldest some weeks back: well inside feeds_keep_days.
            ages = sorted(dates.uniform(0.5, 24 * 40) for _ in chunk)
            self.entries.append(
                [entry(a, now - timedelta(hours=age)) for a, age in zip(chunk, ages, strict=True)]
            )
            self.titles.append(chunk[0].provider or f"Feed {i}")
            self._serve(i, now)
        self.size = entries

    def _serve(self, i: int, moment: datetime) -> None:
        body = rss(self.entries[i], title=self.titles[i], link=f"https://{self.names[i]}.example/")
        self.server.set_feed(self.paths[i], body, last_modified=format_datetime(moment, True))

    def pick(self, count: int) -> list[int]:
        return self.rng.sample(range(len(self.paths)), count)

    def change(self, feeds: Sequence[int]) -> list[Change]:
        """One new entry at the top of each feed (its oldest drops off), served at once."""
        changes = []
        now = datetime.now(UTC)
        for i in feeds:
            word = self.words()
            article = next(self.spare)
            title = f"{word}: {article.title}"
            new = entry(article, now)
            new |= {"title": title, "link": f"https://{self.names[i]}.example/{word.lower()}"}
            new["id"] = new["link"]
            self.entries[i] = [new, *self.entries[i][: self.size - 1]]
            self._serve(i, now)
            change = Change(i, self.paths[i], word, title, time.perf_counter())
            self.server.awaiting[change.path] = change
            changes.append(change)
        return changes

    def some_titles(self, count: int, seed: int) -> list[str]:
        rng = random.Random(f"newsbot-sources:{seed}:queries")
        picked = rng.sample(range(len(self.paths)), min(count, len(self.paths)))
        return [str(self.entries[i][rng.randrange(len(self.entries[i]))]["title"]) for i in picked]


def entry(article: Article, published: datetime) -> dict[str, Any]:
    return {
        "title": article.title,
        "link": article.url,
        "id": article.url,
        "summary": f"<p>{article.excerpt}</p>",
        "published": published,
        "categories": list(article.topics[:3]),
    }


def feed_config(feeds: Feeds, every: str) -> list[dict[str, str]]:
    return [
        {"name": name, "feed": url, "every": every}
        for name, url in zip(feeds.names, feeds.urls, strict=True)
    ]


# --- measuring processes -------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (every thread), from /proc/<pid>/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return math.nan
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # fields 14 and 15 of stat(5)


def rss_mb(pid: int) -> float:
    """VmRSS of the whole process, from /proc (MB)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return math.nan
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return int(match[1]) / 1024 if match else math.nan


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- the baseline helper -------------------------------------------------------------------------


async def baseline_child(spec_path: str) -> int:
    """``--child baseline``: one plain full-GET + full-reload cycle per line read on stdin."""
    from bot import meaning
    from bot.config import load_config
    from bot.feeds import parse_feed
    from bot.library import Library

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    config = load_config(spec["config"])
    folder = Path(spec["folder"])
    names: list[str] = spec["names"]
    urls: list[str] = spec["urls"]
    if config.search.semantic:
        with contextlib.suppress(meaning.MeaningUnavailable):
            meaning.embedder()  # loaded once per process, as in the bot: not a cycle's cost
    print(json.dumps({"ready": True}), flush=True)
    for number in itertools.count(1):
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line.strip():
            return 0
        started, cpu = time.perf_counter(), time.process_time()
        now = datetime.now(UTC)
        expire_before = now - timedelta(days=config.feeds_keep_days)
        slots = asyncio.Semaphore(spec["concurrency"])
        async with aiohttp.ClientSession() as session:
            bodies = await asyncio.gather(*(plain_get(session, slots, url) for url in urls))
        fetched = time.perf_counter()
        parsed = [
            parse_feed(
                body,
                feed_url=url,
                source_name=name,
                now=now,
                content_type=content_type,
                oldest=expire_before,
            )
            for name, url, (body, content_type) in zip(names, urls, bodies, strict=True)
        ]
        parsed_at = time.perf_counter()
        database = folder / f"baseline-{number}.sqlite3"
        fresh = dataclasses.replace(config, database=database)
        articles = 0
        async with Library.open(fresh, searchable=False) as library:
            for name, feed in zip(names, parsed, strict=True):
                applied = await library.store.apply_feed(
                    name,
                    [(item.key, item.article) for item in feed.items],
                    now=now,
                    expire_before=expire_before,
                )
                articles += len(applied.added)
            stored = time.perf_counter()
            await library.rebuild_index()
            indexed = time.perf_counter()
            served = len(library.index)
        cpu = time.process_time() - cpu
        for path in folder.glob(f"{database.name}*"):
            path.unlink()
        print(
            json.dumps({
                "start": started, "fetched": fetched, "parsed": parsed_at, "stored": stored,
                "indexed": indexed, "cpu": cpu, "bytes": sum(len(b) for b, _ in bodies),
                "articles": articles, "served": served,
                "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }),
            flush=True,
        )  # fmt: skip
    return 0


async def plain_get(
    session: aiohttp.ClientSession, slots: asyncio.Semaphore, url: str
) -> tuple[bytes, str]:
    """(body, Content-Type) of a GET without validators: always the whole body."""
    async with slots, session.get(url) as response:
        response.raise_for_status()
        return await response.read(), response.headers.get("Content-Type", "")


# --- results -------------------------------------------------------------------------------------


@dataclass
class Cycle:
    wall: float = math.nan
    cpu: float = math.nan  # the process doing the polling (helper, bot, or CLI)
    bot_cpu: float = math.nan  # phase 3: the running bot's, applying the changes (raw)
    traffic: Traffic = field(default_factory=Traffic)
    served: list[float] = field(default_factory=list)  # change -> served, s (NaN: never)
    applied: list[float] = field(default_factory=list)  # new body sent -> served, s
    news: int = 0  # /news the bench sent in the window
    hits: int = 0  # of which answered with the new story

    def take(self, probes: Probes) -> None:
        self.served, self.applied = probes.served, probes.applied
        self.news, self.hits = probes.sent, probes.hits

    parts: dict[str, float] = field(default_factory=dict)  # baseline: seconds per step


@dataclass
class Run:
    feeds: int
    changed: int
    every: float
    concurrency: int
    articles: int  # feeds x entries
    baseline: list[Cycle] = field(default_factory=list)
    baseline_rss: float = math.nan
    baseline_maxrss: float = math.nan
    baseline_served: int = 0  # articles in a baseline cycle's index
    scheduled: list[Cycle] = field(default_factory=list)
    fill_s: float = math.nan  # launch -> every feed's entries served
    fill_cpu: float = math.nan
    connect_s: float = math.nan
    rss_start: float = math.nan
    rss_after: float = math.nan
    cli: list[Cycle] = field(default_factory=list)
    cli_idle: Cycle = field(default_factory=Cycle)  # no change: every feed 304
    cli_bot_rss: float = math.nan
    cli_peak_rss: list[float] = field(default_factory=list)  # VmHWM of each CLI poll
    served_words: list[str] = field(default_factory=list)  # stories the bot served
    hit_cpu: float = math.nan  # the bot's CPU per probe /news answered with its story
    miss_cpu: float = math.nan  # ... per probe /news that found nothing (yet)
    hit_p50_ms: float = math.nan
    miss_p50_ms: float = math.nan
    idle_cpu: float = math.nan  # the CLI phase's bot, CPU s per s with nothing to do
    problems: list[str] = field(default_factory=list)


# --- driving /news -------------------------------------------------------------------------------


def shows(body: dict[str, Any] | None, word: str) -> bool:
    """The first embed is the story of ``word`` (its title starts with it; the rest of the
    title may be cut to an embed's length or cleaned by the feed parser)."""
    first = first_title(body) if body is not None else None
    return first is not None and first.removeprefix("▶ ").startswith(f"{word}:")


async def ask(fake: TimedFake, query: str, user: int, timeout: float) -> dict[str, Any] | None:
    iid = await fake.slash(
        "news", {"query": query}, guild_id=GUILD_ID, user=USERS[user % len(USERS)]
    )
    got = await fake.answer(iid, timeout)
    fake.forget(iid)
    return None if got is None else (got[1].request.json or {})


async def served_after(
    fake: TimedFake, bot: Child, change: Change, timeout: float
) -> tuple[float, int]:
    """(perf_counter() of the first /news <word> answered with its story, NaN: never; /news
    sent). Asks only once the server has sent the feed's new body."""
    deadline = change.at + GIVE_UP_S
    try:
        await asyncio.wait_for(change.fetched.wait(), GIVE_UP_S)
    except TimeoutError:
        return math.nan, 0
    sent = 0
    while time.perf_counter() < deadline:
        bot.check_alive()
        iid = await fake.slash("news", {"query": change.word}, guild_id=GUILD_ID)
        got = await fake.answer(iid, timeout)
        fake.forget(iid)
        sent += 1
        change.last_answer = None if got is None else (got[1].request.json or {})
        if got is not None and shows(change.last_answer, change.word):
            return got[1].at, sent
        await asyncio.sleep(POLL_S)
    return math.nan, sent


@dataclass
class Probes:
    """What the /news probes of one cycle's changes found."""

    served: list[float]  # change -> served, s (NaN: never)
    applied: list[float]  # the feed's new body sent -> served, s
    sent: int  # /news sent
    hits: int  # of which answered with the story (one per change served)


async def watch_changes(
    fake: TimedFake, bot: Child, changes: Sequence[Change], timeout: float
) -> Probes:
    results = await asyncio.gather(*(served_after(fake, bot, c, timeout) for c in changes))
    return Probes(
        served=[at - c.at for c, (at, _) in zip(changes, results, strict=True)],
        applied=[at - c.fetched_at for c, (at, _) in zip(changes, results, strict=True)],
        sent=sum(sent for _, sent in results),
        hits=sum(not math.isnan(at) for at, _ in results),
    )


def not_served(changes: Sequence[Change], served: Sequence[float], bot: Child) -> str | None:
    missing = [c for c, s in zip(changes, served, strict=True) if math.isnan(s)]
    if not missing:
        return None
    first = missing[0]
    answer = json.dumps(first.last_answer, ensure_ascii=False)[:600]
    kept = Path(tempfile.gettempdir()) / f"newsbot-sources-{os.getpid()}-{bot.proc.pid}.log"
    kept.write_text("\n".join(bot.lines) + "\n", encoding="utf-8")
    tail = "\n".join(bot.lines[-15:])
    return (
        f"{len(missing)} change(s) not served within {GIVE_UP_S:.0f} s "
        f"({', '.join(c.word for c in missing[:5])}); {first.title!r} of {first.path} "
        f"({'fetched' if first.fetched.is_set() else 'never fetched'}), last /news answer: "
        f"{answer}\nthe bot's whole log: {kept}\nbot log tail:\n{tail}"
    )


async def wait_until(check: Callable[[], bool], bot: Child, give_up: float) -> bool:
    deadline = time.perf_counter() + give_up
    while not check():
        bot.check_alive()
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


# --- phase 1: the baseline -----------------------------------------------------------------------


async def baseline_phase(args: argparse.Namespace, feeds: Feeds, tmp: Path, run: Run) -> None:
    folder = tmp / "baseline"
    folder.mkdir()
    config = folder / "baseline.yaml"
    # JSON is YAML. The defaults otherwise, search by meaning included, as the bot's config.
    config.write_text(
        json.dumps({"database": str(folder / "unused.sqlite3"), "seeds_dir": str(folder)}),
        encoding="utf-8",
    )
    spec = folder / "spec.json"
    spec.write_text(
        json.dumps({
            "config": str(config), "folder": str(folder), "names": feeds.names,
            "urls": feeds.urls, "concurrency": run.concurrency,
        }),
        encoding="utf-8",
    )  # fmt: skip
    helper = await Helper.start(
        __file__, "--child", "baseline", "--child-spec", str(spec),
        cwd=spec.parent, name="baseline helper",
    )  # fmt: skip
    try:
        await helper.reply(timeout=600)  # ready
        for number in range(1, args.cycles + 1):
            changes = feeds.change(feeds.pick(args.changed))
            for change in changes:  # nobody waits for these
                feeds.server.awaiting.pop(change.path, None)
            result = await helper.ask("cycle")
            end = result["indexed"]
            cycle = Cycle(
                wall=end - result["start"],
                cpu=result["cpu"],
                traffic=feeds.server.traffic(result["start"], end),
                served=[end - change.at for change in changes],
                parts={
                    "fetch": result["fetched"] - result["start"],
                    "parse": result["parsed"] - result["fetched"],
                    "store": result["stored"] - result["parsed"],
                    "index": result["indexed"] - result["stored"],
                },
            )
            run.baseline.append(cycle)
            run.baseline_served = int(result["served"])
            run.baseline_maxrss = float(result["maxrss_mb"])
            log(
                f"baseline cycle {number}: {cycle.wall:.2f} s wall, {cycle.cpu:.2f} s CPU, "
                f"{cycle.traffic.requests} requests"
            )
        run.baseline_rss = rss_mb(helper.proc.pid)
    finally:
        await helper.close()
        if helper.proc.returncode not in (0, None):
            run.problems.append(
                f"baseline helper exited with {helper.proc.returncode}: "
                + " | ".join(helper.errors[-10:])
            )


# --- phase 2: newsbot run on its schedule --------------------------------------------------------


def serving_count(bot: Child) -> int:
    """The largest 'serving N articles' the bot logged so far."""
    counts = [int(m[1]) for line in bot.lines if (m := _SERVING.search(line))]
    return max(counts, default=0)


async def scheduled_phase(
    args: argparse.Namespace,
    feeds: Feeds,
    fake: ClusterFake,
    tmp: Path,
    database: Path,
    run: Run,
) -> None:
    config = write_config(
        tmp, fake, str(database), tmp / "seeds",
        discord={"guild_ids": [GUILD_ID]}, sources=feed_config(feeds, f"{args.every:g}s"),
    )  # fmt: skip
    expected = len(feeds.paths) * feeds.size
    queries = feeds.some_titles(WARMUP, args.seed)
    async with children() as started:
        log(f"newsbot run, {len(feeds.paths)} feeds every {args.every:g} s...")
        launched = time.perf_counter()
        bot = await Child.start("bot (schedule)", tmp, "--config", str(config), "run")
        started.append(bot)
        await wait_connected(fake, [bot], timeout=600)
        run.connect_s = time.perf_counter() - launched
        filled = await wait_until(
            lambda: serving_count(bot) >= expected, bot, GIVE_UP_S + args.every * 2
        )
        if not filled:
            raise RuntimeError(
                f"the first fill did not reach {expected:,} articles (last logged: "
                f"{serving_count(bot):,})\n" + "\n".join(bot.lines[-15:])
            )
        run.fill_s = time.perf_counter() - launched
        run.fill_cpu = cpu_seconds(bot.proc.pid)
        for n, query in enumerate(queries):  # first-use costs
            if await ask(fake, query, n, args.timeout) is None:
                run.problems.append(f"warm-up /news {query!r} unanswered")
        run.rss_start = rss_mb(bot.proc.pid)
        for number in range(1, args.cycles + 1):
            changes = feeds.change(feeds.pick(args.changed))
            t0 = changes[0].at
            cpu0 = cpu_seconds(bot.proc.pid)
            watch = asyncio.create_task(watch_changes(fake, bot, changes, args.timeout))
            polled = await wait_until(
                lambda t0=t0: feeds.server.polled_since(feeds.paths, t0),
                bot,
                max(GIVE_UP_S, 3 * args.every),
            )
            probes = await watch
            end = time.perf_counter()
            cycle = Cycle(cpu=cpu_seconds(bot.proc.pid) - cpu0)
            cycle.take(probes)
            cycle.traffic = feeds.server.traffic(t0, end)
            cycle.wall = cycle.traffic.last_first - cycle.traffic.first
            run.scheduled.append(cycle)
            if not polled:
                run.problems.append(f"schedule cycle {number}: not every feed was polled")
            if problem := not_served(changes, probes.served, bot):
                raise RuntimeError(f"schedule cycle {number}: {problem}")
            run.served_words += [c.word for c in changes]
            log(
                f"schedule cycle {number}: {cycle.traffic.requests} requests, "
                f"{cycle.traffic.not_modified} 304s, bot CPU {cycle.cpu:.2f} s, served p50 "
                f"{median(probes.served):.2f} s"
            )
        run.rss_after = rss_mb(bot.proc.pid)
        run.problems += await stop_all([bot])


# --- phase 3: newsbot sources poll ---------------------------------------------------------------


def peak_rss_mb(pid: int) -> float:
    """VmHWM (the peak of VmRSS so far) of a live process, from /proc (MB)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return math.nan
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    return int(match[1]) / 1024 if match else math.nan


async def timed_cli(tmp: Path, config: Path, feeds: Feeds, cycle: Cycle, run: Run) -> str | None:
    """One ``newsbot sources poll`` into ``cycle``; a problem line when it failed.

    Its peak RSS is its VmHWM, read every 50 ms while it runs (the last reading before it
    exits: a peak in its last 50 ms would be missed)."""
    cpu0 = children_cpu()
    started = time.perf_counter()
    child = await Child.start("cli", tmp, "--config", str(config), "sources", "poll")
    peak = math.nan
    try:
        while child.proc.returncode is None:
            if time.perf_counter() - started > 600:
                raise RuntimeError("newsbot sources poll still running after 600 s")
            reading = peak_rss_mb(child.proc.pid)
            peak = reading if math.isnan(peak) else max(peak, reading)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(child.proc.wait()), POLL_S)
    finally:
        status = await child.stop(timeout=10)  # reaps it and collects its output
    cycle.wall = time.perf_counter() - started
    cycle.cpu = children_cpu() - cpu0
    cycle.traffic = feeds.server.traffic(started, time.perf_counter())
    run.cli_peak_rss.append(peak)
    if status != 0:
        failed = [line for line in child.lines if "failed" in line or "Error" in line]
        return f"newsbot sources poll exited with {status}: " + " | ".join(failed[:5])[:600]
    return None


async def cli_phase(
    args: argparse.Namespace,
    feeds: Feeds,
    fake: ClusterFake,
    tmp: Path,
    database: Path,
    run: Run,
) -> None:
    config = write_config(
        tmp, fake, str(database), tmp / "seeds",
        discord={"guild_ids": [GUILD_ID]}, sources=feed_config(feeds, CLI_EVERY),
    )  # fmt: skip
    log("newsbot sources poll with no change (no bot running)...")
    if problem := await timed_cli(tmp, config, feeds, run.cli_idle, run):
        run.problems.append(problem)
    queries = feeds.some_titles(WARMUP, args.seed + 1)
    async with children() as started:
        log("newsbot run (sources every 7d: the CLI polls them)...")
        bot = await Child.start("bot (CLI polls)", tmp, "--config", str(config), "run")
        started.append(bot)
        await wait_connected(fake, [bot], timeout=600)
        for n, query in enumerate(queries):
            await ask(fake, query, n, args.timeout)
        await calibrate(args, feeds, fake, bot, run)
        for number in range(1, args.cycles + 1):
            await asyncio.sleep(1.0)  # a quiet bot at each start
            changes = feeds.change(feeds.pick(args.changed))
            bot_cpu0 = cpu_seconds(bot.proc.pid)
            watch = asyncio.create_task(watch_changes(fake, bot, changes, args.timeout))
            cycle = Cycle()
            problem = await timed_cli(tmp, config, feeds, cycle, run)
            cycle.take(await watch)
            cycle.bot_cpu = cpu_seconds(bot.proc.pid) - bot_cpu0
            run.cli.append(cycle)
            if problem:
                run.problems.append(f"CLI cycle {number}: {problem}")
            if problem := not_served(changes, cycle.served, bot):
                raise RuntimeError(f"CLI cycle {number}: {problem}")
            log(
                f"CLI cycle {number}: {cycle.wall:.2f} s wall, {cycle.cpu:.2f} s CPU, "
                f"{cycle.traffic.requests} requests, {cycle.traffic.not_modified} 304s"
            )
        run.cli_bot_rss = rss_mb(bot.proc.pid)
        run.problems += await stop_all([bot])


async def calibrate(
    args: argparse.Namespace, feeds: Feeds, fake: ClusterFake, bot: Child, run: Run
) -> None:
    """The bot's CPU per probe /news, to take the bench's own probes off the cycles' CPU.

    A probe asks for one made-up word: either its story is served (a hit: the words of the
    stories served in phase 2, still stored) or not yet (a miss: words no feed ever had).
    Each kind is timed apart, CALIBRATION of them one after the other; then the bot's CPU
    over 5 s with nothing to do."""
    hits = itertools.cycle(run.served_words or ["nothing"])
    for kind in ("hit", "miss"):
        cpu0 = cpu_seconds(bot.proc.pid)
        latencies, wrong = [], 0
        for n in range(CALIBRATION):
            word = next(hits) if kind == "hit" else feeds.words()
            asked = time.perf_counter()
            body = await ask(fake, word, n, args.timeout)
            latencies.append(time.perf_counter() - asked)
            wrong += body is None or shows(body, word) != (kind == "hit")
        cpu = (cpu_seconds(bot.proc.pid) - cpu0) / CALIBRATION
        p50 = statistics.median(latencies) * 1000
        if kind == "hit":
            run.hit_cpu, run.hit_p50_ms = cpu, p50
        else:
            run.miss_cpu, run.miss_p50_ms = cpu, p50
        if wrong:
            run.problems.append(f"calibration: {wrong} {kind} /news answered otherwise")
    cpu0 = cpu_seconds(bot.proc.pid)
    await asyncio.sleep(5.0)
    run.idle_cpu = (cpu_seconds(bot.proc.pid) - cpu0) / 5.0
    log(
        f"calibration: bot CPU per probe /news {run.hit_cpu * 1000:.1f} ms (hit), "
        f"{run.miss_cpu * 1000:.1f} ms (miss); idle {run.idle_cpu * 1000:.0f} ms/s"
    )


# --- the report ----------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    clean = [v for v in values if not math.isnan(v)]
    return statistics.median(clean) if clean else math.nan


def seconds(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.2f} s"


def mb(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.0f} MB"


def kib(value: float) -> str:
    return "—" if math.isnan(value) else f"{value / 1024:,.0f} KiB"


def times(a: float, b: float) -> str:
    return "—" if math.isnan(a) or math.isnan(b) or b <= 0 else f"{a / b:.3f}x"


def p50_max(values: Sequence[float]) -> tuple[float, float]:
    clean = [v for v in values if not math.isnan(v)]
    return (statistics.median(clean), max(clean)) if clean else (math.nan, math.nan)


def pair(values: tuple[float, float]) -> str:
    return f"{seconds(values[0])} / {seconds(values[1])}"


def requests_cell(cycles: Sequence[Cycle]) -> str:
    requests = median([c.traffic.requests for c in cycles])
    not_modified = median([c.traffic.not_modified for c in cycles])
    if math.isnan(requests):
        return "—"
    share = f" ({not_modified / requests:.0%})" if requests else ""
    return f"{requests:.0f} / {not_modified:.0f}{share}"


def probes_cpu(run: Run, cycle: Cycle) -> float:
    """The bot's estimated CPU answering the cycle's probe /news (calibrated)."""
    return cycle.hits * run.hit_cpu + (cycle.news - cycle.hits) * run.miss_cpu


def net_cpu(run: Run, raw: float, cycle: Cycle) -> float:
    probes = probes_cpu(run, cycle)
    return raw if math.isnan(probes) else max(0.0, raw - probes)


def table(run: Run, markdown: bool) -> str:
    header = ("per cycle (median of the cycles)", "newsbot", "baseline (same run)", "ratio")
    base_wall = median([c.wall for c in run.baseline])
    base_cpu = median([c.cpu for c in run.baseline])
    base_bytes = median([c.traffic.bytes for c in run.baseline])
    cli_wall = median([c.wall for c in run.cli])
    cli_cpu = median([c.cpu for c in run.cli])
    cli_bot = median([net_cpu(run, c.bot_cpu, c) for c in run.cli])
    cli_bot_raw = median([c.bot_cpu for c in run.cli])
    cli_total = median([c.cpu + net_cpu(run, c.bot_cpu, c) for c in run.cli])
    sched_cpu = median([net_cpu(run, c.cpu, c) for c in run.scheduled])
    sched_raw = median([c.cpu for c in run.scheduled])
    sched_wall = median([c.wall for c in run.scheduled])
    cli_bytes = median([c.traffic.bytes for c in run.cli])
    sched_bytes = median([c.traffic.bytes for c in run.scheduled])
    served_cli = p50_max([s for c in run.cli for s in c.served])
    served_sched = p50_max([s for c in run.scheduled for s in c.served])
    served_base = p50_max([s for c in run.baseline for s in c.served])
    period = max(run.every, base_wall)
    base_sched = (period / 2 + base_wall, period + base_wall)
    cli_peak = median(run.cli_peak_rss)
    body = [
        ["1. `sources poll` CLI: wall (launch → exit)", seconds(cli_wall),
         f"full cycle {seconds(base_wall)}", times(cli_wall, base_wall)],
        ["2. `sources poll` CLI: CPU, the CLI + the bot applying", seconds(cli_total),
         seconds(base_cpu), times(cli_total, base_cpu)],
        ["   of which the CLI / the bot, net (bot raw)",
         f"{seconds(cli_cpu)} / {seconds(cli_bot)} ({seconds(cli_bot_raw)})", "", ""],
        ["3. `newsbot run` on schedule: bot CPU, net (raw)",
         f"{seconds(sched_cpu)} ({seconds(sched_raw)})", seconds(base_cpu),
         times(sched_cpu, base_cpu)],
        [f"4. on schedule: wall, first → last feed's request (every {run.every:g} s)",
         seconds(sched_wall), f"full cycle {seconds(base_wall)}", "—"],
        ["5. requests / 304s sent: CLI", requests_cell(run.cli), requests_cell(run.baseline),
         "—"],
        ["   requests / 304s sent: on schedule", requests_cell(run.scheduled),
         requests_cell(run.baseline), "—"],
        ["6. body bytes sent: CLI", kib(cli_bytes), kib(base_bytes), times(cli_bytes, base_bytes)],
        ["   body bytes sent: on schedule", kib(sched_bytes), kib(base_bytes),
         times(sched_bytes, base_bytes)],
        [f"7. change → served p50 / max, CLI (n={sum(len(c.served) for c in run.cli)})",
         pair(served_cli), f"end of cycle {pair(served_base)}",
         times(served_cli[0], served_base[0])],
        [f"8. change → served p50 / max, on schedule (n="
         f"{sum(len(c.served) for c in run.scheduled)})",
         pair(served_sched), f"computed {pair(base_sched)}",
         times(served_sched[0], base_sched[0])],
        ["9. RSS `newsbot run`: after start → after cycles",
         f"{mb(run.rss_start)} → {mb(run.rss_after)}",
         f"helper after cycles {mb(run.baseline_rss)}", times(run.rss_after, run.baseline_rss)],
        ["   peak RSS of a `sources poll` CLI", mb(cli_peak),
         f"helper peak {mb(run.baseline_maxrss)}", times(cli_peak, run.baseline_maxrss)],
    ]  # fmt: skip
    return render(header, body, markdown)


def cycles_line(name: str, cycles: Sequence[Cycle], run: Run, *, bot: bool = False) -> str:
    parts = []
    for number, c in enumerate(cycles, 1):
        served = p50_max(c.served)
        text = (
            f"#{number} wall {c.wall:.2f} s, CPU {c.cpu:.2f} s"
            + (f" + bot {c.bot_cpu:.2f} s" if bot else "")
            + f", {c.traffic.requests} req/{c.traffic.not_modified} 304/{c.traffic.full} 200"
            + (f"/{c.traffic.other} other" if c.traffic.other else "")
            + f", {kib(c.traffic.bytes)}, served p50 {served[0]:.2f} max {served[1]:.2f} s"
            + (f", {c.news} /news probes ({c.hits} hits)" if c.news else "")
        )
        parts.append(text)
    return f"{name}: " + "; ".join(parts) + "."


def applied_cell(cycles: Sequence[Cycle]) -> str:
    values = p50_max([a for c in cycles for a in c.applied])
    return f"p50 {seconds(values[0])}, max {seconds(values[1])}"


def details(run: Run, bullet: str) -> list[str]:
    return [
        f"{bullet}{cycles_line('Baseline cycles', run.baseline, run)}",
        f"{bullet}Baseline steps (median s): "
        + ", ".join(
            f"{step} {median([c.parts[step] for c in run.baseline]):.2f}"
            for step in ("fetch", "parse", "store", "index")
        )
        + f"; {run.baseline_served:,} articles in each cycle's index.",
        f"{bullet}{cycles_line('Schedule cycles', run.scheduled, run)}",
        f"{bullet}Schedule, the feed's new body sent → served: {applied_cell(run.scheduled)} "
        "(the rest of change → served is the wait for the feed's next poll).",
        f"{bullet}First fill (empty database, first polls spread over 10 s): launch → "
        f"{run.articles:,} articles served {seconds(run.fill_s)} (connected after "
        f"{seconds(run.connect_s)}), bot CPU since launch {seconds(run.fill_cpu)}.",
        f"{bullet}{cycles_line('CLI cycles', run.cli, run, bot=True)}",
        f"{bullet}CLI, the feed's new body sent → served: {applied_cell(run.cli)}.",
        f"{bullet}CLI poll with no change (no bot running): wall {seconds(run.cli_idle.wall)}, "
        f"CPU {seconds(run.cli_idle.cpu)}, {run.cli_idle.traffic.requests} requests, "
        f"{run.cli_idle.traffic.not_modified} 304s; peak RSS of the CLI polls "
        + ", ".join(mb(v) for v in run.cli_peak_rss)
        + f"; the CLI phase's bot RSS at the end {mb(run.cli_bot_rss)}.",
        f"{bullet}Calibration (the CLI phase's bot, {CALIBRATION} sequential /news of each "
        f"kind): bot CPU per probe {run.hit_cpu * 1000:.1f} ms when its story is served (p50 "
        f"{run.hit_p50_ms:.1f} ms), {run.miss_cpu * 1000:.1f} ms when not (p50 "
        f"{run.miss_p50_ms:.1f} ms); idle {run.idle_cpu * 1000:.0f} ms of CPU per s. Net CPU = "
        "raw - hits x the first - other probes x the second.",
    ]


NOTES = (
    "Baseline: a helper process; per cycle, GET every feed without validators (aiohttp, "
    "poll_concurrency at a time), parse every body with bot.feeds.parse_feed (feedparser), "
    "write every article into a fresh SQLite database (Store.apply_feed per feed) and build "
    "the search index from scratch (Library.rebuild_index). Served = index built = end of "
    "cycle; the changes were made just before it started.",
    "CLI: `newsbot sources poll` (conditional GETs, only changed feeds parsed and stored); its "
    "wall includes interpreter start and imports. The running bot (sources every 7d so that "
    "it polls nothing itself) applies the changes to its index from the database.",
    "On schedule: `newsbot run` with the feeds every --every s; a cycle is the window from the "
    "changes until every feed was requested again and every change served, so its wall (row "
    "4) is set by the schedule. The baseline's row 8 figure is computed: a change waits for "
    "the next cycle (period max(every, cycle)) and then the whole cycle.",
    "CPU: /proc/<pid>/stat utime+stime of the bot; getrusage(RUSAGE_CHILDREN) for the CLI; "
    "process_time() in the baseline helper. Net: less the bench's /news probes (calibration). "
    "Bytes: response bodies the feed server sent (no compression), headers not counted.",
    "Ratio: newsbot / baseline (below 1: newsbot does less, or is faster).",
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=DEFAULTS["feeds"], help="feeds served")
    parser.add_argument(
        "--changed", type=int, default=DEFAULTS["changed"], help="feeds changed per cycle"
    )
    parser.add_argument("--cycles", type=int, default=DEFAULTS["cycles"], help="cycles per phase")
    parser.add_argument("--entries", type=int, default=20, help="entries per feed")
    parser.add_argument(
        "--every", type=float, default=DEFAULTS["every"], help="seconds between a feed's polls"
    )
    parser.add_argument("--corpus", type=Path, action="append", metavar="DIR", help=CORPUS_HELP)
    parser.add_argument("--seed", type=int, default=1, help="for the corpus and the changes")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait a callback")
    parser.add_argument("--quick", action="store_true", help="a smoke test: " + ", ".join(
        f"--{k} {v:g}" for k, v in QUICK.items()
    ))  # fmt: skip
    parser.add_argument("--markdown", action="store_true", help="markdown headings and tables")
    parser.add_argument("--child", choices=("baseline",), help=argparse.SUPPRESS)
    parser.add_argument("--child-spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return args
    if args.quick:
        given = {a.split("=")[0] for a in (argv if argv is not None else sys.argv[1:])}
        for key, value in QUICK.items():
            if f"--{key}" not in given:
                setattr(args, key, value)
    if min(args.feeds, args.changed, args.cycles, args.entries) < 1:
        parser.error("--feeds, --changed, --cycles and --entries must be at least 1")
    if args.changed > args.feeds:
        parser.error("--changed cannot exceed --feeds")
    if not 1 <= args.every <= 3600:
        parser.error("--every must be between 1 and 3600 seconds")
    return args


def emit(lines: Sequence[str]) -> None:
    print("\n".join(lines), flush=True)


def corpus_articles(args: argparse.Namespace) -> tuple[list[Article], list[Article], int]:
    """(feeds x entries distinct articles, the real ones for new entries, real count)."""
    real = list(load_corpus(args.corpus or default_corpora()).articles)
    if not real:
        raise SystemExit("no articles in the corpus (use --corpus DIR)")
    needed = args.feeds * args.entries
    articles = scale_corpus(real, needed, args.seed)
    if len(articles) < needed:  # fewer wanted than the originals: scale_corpus returns them all
        articles = articles * math.ceil(needed / len(articles))
    spare = list(real)
    random.Random(f"newsbot-sources:{args.seed}:spare").shuffle(spare)
    return articles[:needed], spare, len(real)


async def bench(args: argparse.Namespace) -> bool:
    h = "## " if args.markdown else ""
    bullet = "- " if args.markdown else ""
    load_at_start = os.getloadavg()[0]
    articles, spare, real = corpus_articles(args)
    if len({a.url for a in articles}) < len(articles):
        raise SystemExit("the corpus is too small for that many distinct entries")
    command = shlex.join(["python", "bench/sources.py", *sys.argv[1:]])
    run = Run(args.feeds, args.changed, args.every, Config().poll_concurrency, len(articles))
    emit([
        f"{bullet}Command: `{command}`",
        f"{bullet}{args.feeds:,} RSS feeds x {args.entries} entries ({len(articles):,} "
        f"articles from {real:,} real ones), {args.changed} changed per cycle, {args.cycles} "
        f"cycle{'' if args.cycles == 1 else 's'} per phase; poll_concurrency "
        f"{run.concurrency}; SQLite; search by meaning on.",
    ])  # fmt: skip
    ok = True
    with tempfile.TemporaryDirectory(prefix="newsbot-sources-") as folder:
        tmp = Path(folder)
        (tmp / "seeds").mkdir()
        database = tmp / "newsbot.sqlite3"
        async with TimedFeedServer() as server:
            feeds = Feeds(server, articles, args.feeds, args.entries, spare, args.seed)
            try:
                log(f"baseline: {args.cycles} cycles of full GETs and full reloads...")
                await baseline_phase(args, feeds, tmp, run)
                async with ClusterFake(guilds=[make_guild()], token=TOKEN) as fake:
                    await scheduled_phase(args, feeds, fake, tmp, database, run)
                    await cli_phase(args, feeds, fake, tmp, database, run)
                    run.problems += [f"fake error: {e!r}" for e in fake.errors[:3]]
            except Exception as exc:
                ok = False
                log(f"failed: {exc!r}")
                run.problems.append(f"{exc!r}"[:3000])
    out = ["", f"{h}{args.feeds:,} feeds, {args.changed} changed per cycle", ""]
    if run.baseline and run.scheduled and run.cli:
        out += [table(run, args.markdown), ""]
    out += details(run, bullet)
    if run.problems:
        ok = False
        out += [f"{bullet}PROBLEM: {p}" for p in run.problems]
    emit(out)
    emit([
        "",
        f"{bullet}Machine: {machine_line(load_at_start)}; load average (1, 5, 15 min) now "
        + ", ".join(f"{v:.2f}" for v in os.getloadavg()) + ".",
        "", f"{h}What the figures are", "", *(f"{bullet}{n}" for n in NOTES),
        "", f"{bullet}Run: {'completed' if ok else 'FAILED'}.",
    ])  # fmt: skip
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    """Prints the report; exits 1 when a phase failed."""
    args = parse_args(argv)
    if args.child:
        return asyncio.run(baseline_child(args.child_spec))
    try:
        ok = asyncio.run(bench(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

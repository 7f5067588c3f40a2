"""What a reload costs a running ``newsbot run``: freshness, latency, memory, at 10k-100k articles.

Run by hand from the repository root (never from the tests)::

    python bench/reload.py                          # 10,000, 50,000 and 100,000 articles
    python bench/reload.py --sizes 20000 --markdown # one size, tables ready for a README
    python bench/reload.py --quick                  # 2,000 and 10,000, few samples: a smoke test

What is measured is what an operator runs: a real ``newsbot run`` subprocess on a SQLite
database, with a config file written by the bench, connected to the loopback fake Discord
(tests/fakediscord.py, on 127.0.0.1, in this process; bench/cluster.py's ``ClusterFake``). The
corpus is the real one (``../shared/corpora``, else ``seeds/``) scaled up to each size by
``bench.queries.scale_corpus`` and written as seed files, then loaded with ``newsbot load``
before the bot starts. Corpus changes are loaded by a helper process of this bench (this file
run with ``--child loader``), which keeps the database open and calls
``bot.loader.load_seeds`` on the seeds folder: the instant ``load_seeds`` returns is the
commit. It is a process of its own so that its parsing does not hold the GIL of the process
the fake runs in (which would show as /news latency); ``time.perf_counter`` is
CLOCK_MONOTONIC on Linux, one clock for every process.

For each size, a table; every figure sits beside a baseline measured in the same run:

1. cold start: seconds from launching ``newsbot run`` to the first ``/news`` answered with a
   hit (an embed), polled every 10 ms once the gateway is connected: the process opened the
   database, built its index of the whole corpus, ran its start-up (no-change) load of the seed
   folder and connected. Baseline: a full index rebuild + a no-change ``newsbot load``, the
   work a start cannot avoid today. The cold ``newsbot load`` (empty database) is its own row.
2. one changed file: one seed file gets a new, unique made-up title and the loader helper
   loads the folder; from the commit to the first ``/news <new title>`` answered with that
   title (polled every 10 ms, so up to one poll + one /news late). p50 and max over every
   one-file reload of row 4. Baseline: a full rebuild of the index from the database at this
   size (``Library.rebuild_index()``, or ``refresh_index()`` where it does not exist: what
   every change cost before), timed in another helper process (``--child rebuild``, median of
   3, before the bot starts) plus the median ``load_seeds`` time of one changed file.
   SQLite cannot notify: the bot polls ``PRAGMA data_version`` every 50 ms (and checks the
   generation every ``refresh_seconds``, 2 s by default, ``--refresh-seconds``), so up to
   50 ms of each figure is that poll.
3. ``/news`` p99 idle, then while 1% of the seed files' titles change (a made-up word added)
   and the helper loads them: from the load's start until the bot serves the new corpus (one
   of the changed files, the marker, gets a whole new title; every tenth /news of each sender
   asks for it, and the window closes when that /news answers with it and the load has
   returned). Idle runs the same mix (the marker being a title already served). With 1 and
   with 8 interactions in flight (8 senders, each sending its next /news when the previous is
   answered). Rounds (each on other files) repeat until ``--samples`` answers fell inside a
   window, at most ``--max-rounds``. Target: during p99 <= 2x idle p99. The row below it
   keeps the answers that overlapped the bot's own part, from the commit until the marker was
   served (before the commit, the loader process is parsing: its CPU, not the bot's work,
   competes with the bot and the fake for the machine's cores).
4. Whole-process RSS (VmRSS in /proc/<pid>/status) of the ``newsbot run`` child after start
   (and 30 warm-up queries), and after ``--reloads`` one-file reloads (100; 20 with
   ``--quick``), each waited for until served. Targets: <= 300 MB at 100,000 articles, growth
   <= 5%.
5. A no-match ``/news`` (three random consonant strings, sharing no word with any title:
   the bot's no-hit path) p99 against a matching query's p99, interleaved one after the other,
   1 in flight. Target: no-match <= 2x matching.

A /news latency is the fake's: from sending INTERACTION_CREATE to the bot's callback reaching
it (see bench/interactions.py). The bot, the fake plus this driver, and the loader helper all
share this machine's cores; the machine line says how many and how loaded.

Exit status: 0 when every run completed (targets missed or not: they are marked ✓/✗), 1 when
something failed (the bot died or logged a traceback, a /news went unanswered, a load failed).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import random
import re
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Run as a script (``python bench/reload.py``): make ``bench``, ``bot`` and ``tests`` importable.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from bench.cluster import (  # noqa: E402
    Child,
    ClusterFake,
    Helper,
    children,
    cli,
    first_title,
    made_up_title,
    stop_all,
    wait_connected,
    write_config,
)
from bench.interactions import (  # noqa: E402
    SORRY,
    USERS,
    TimedFake,
    gibberish,
    machine_line,
    summarize,
    write_seeds,
)
from bench.queries import (  # noqa: E402
    CORPUS_HELP,
    default_corpora,
    generate_queries,
    load_corpus,
    scale_corpus,
)
from bench.search import render  # noqa: E402
from bot.articles import Article  # noqa: E402
from tests.botharness import GUILD_ID, TOKEN, make_guild  # noqa: E402

DEFAULT_SIZES = (10_000, 50_000, 100_000)
QUICK = {"sizes": "2000,10000", "reloads": 20, "samples": 150, "max_rounds": 4}
#: Targets (a figure missing one gets ✗; the exit status does not change).
DURING_RATIO_TARGET = 2.0
RSS_TARGET_MB = 300.0
RSS_TARGET_AT = 100_000  # the RSS cap applies from this size up
RSS_GROWTH_TARGET = 0.05
NO_MATCH_RATIO_TARGET = 2.0
# A reload that finds nothing changed (load_seeds, in a running process), at any size.
NOCHANGE_TARGET_S = 0.5
NOCHANGE_REPEAT = 5
#: Every tenth /news of a sender asks for the marker title (see the module docstring, 3.).
MARKER_EVERY = 10
WARMUP = 30
#: How often a figure that waits for an answer asks again: it is late by up to this much.
POLL_S = 0.01
#: Give up waiting for a change to be served after this long.
SERVED_GIVE_UP_S = 120.0
_TITLE_LINE = re.compile(r"^title: (.*)$", re.M)
_SYLLABLES = ("zor", "vak", "quil", "lon", "bras", "ket", "mur", "fen", "dax", "tol", "wim", "pry")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- helper processes: the loader and the rebuild baseline ---------------------------------------


async def child_main(kind: str, config_path: str, repeat: int) -> int:
    """The helper side (``--child``): runs in its own process, prints JSON lines."""
    from bot.config import load_config
    from bot.library import Library
    from bot.loader import load_seeds

    config = load_config(config_path)
    if kind == "rebuild":
        opened = time.perf_counter()
        async with Library.open(config) as library:
            open_s = time.perf_counter() - opened
            method = getattr(library, "rebuild_index", None)
            name = "rebuild_index"
            if method is None:
                method, name = library.refresh_index, "refresh_index"
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                await method()
                times.append(time.perf_counter() - started)
        print(json.dumps({"method": name, "open_s": open_s, "times": times}), flush=True)
        return 0
    # The loader: one load of the seeds folder per line read, as `newsbot load` would do it.
    async with Library.open(config, searchable=False, role="load") as library:
        print(json.dumps({"ready": True}), flush=True)
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line.strip():
                return 0
            started = time.perf_counter()
            report = await load_seeds(
                library.store,
                [config.seeds_dir],
                max_bytes=config.max_seed_bytes,
                now=datetime.now(UTC),
            )
            committed = time.perf_counter()
            print(
                json.dumps({"start": started, "commit": committed, "summary": report.summary()}),
                flush=True,
            )


async def start_helper(kind: str, config: Path, repeat: int = 1) -> Helper:
    """This file's ``--child`` ``kind`` ("loader" or "rebuild") in a process of its own."""
    return await Helper.start(
        __file__, "--child", kind, "--child-config", str(config), "--child-repeat", str(repeat),
        cwd=config.parent, name=f"{kind} helper",
    )  # fmt: skip


async def rebuild_times(config: Path) -> tuple[str, float]:
    """(method used, median seconds of 3 full index rebuilds) in a process of its own."""
    helper = await start_helper("rebuild", config, repeat=3)
    try:
        result = await helper.reply()
    finally:
        await helper.close()
    if helper.proc.returncode != 0:
        raise RuntimeError("rebuild helper failed:\n" + "\n".join(helper.errors[-30:]))
    return str(result["method"]), statistics.median(result["times"])


# --- seed files ----------------------------------------------------------------------------------


def made_up_word(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(3)).capitalize()


def set_title(path: Path, make: Callable[[str], str]) -> bool:
    """Rewrite the file's ``title:`` line with ``make(old title)``; False when it has none."""
    text = path.read_text(encoding="utf-8")
    match = _TITLE_LINE.search(text)
    if match is None:
        return False
    try:
        old = yaml.safe_load(match[0])["title"]
    except (yaml.YAMLError, TypeError, KeyError):
        return False
    # A JSON string is a YAML double-quoted scalar.
    new = json.dumps(make(str(old)), ensure_ascii=False)
    path.write_text(text[: match.start(1)] + new + text[match.end(1) :], encoding="utf-8")
    return True


@dataclass
class Corpus:
    folder: Path
    files: int
    real: list[Article]  # the real articles in the folder: the queries' targets
    pool: list[Path]  # files no query targets, for the edits (each used once)
    built_s: float


def build_corpus(real_all: Sequence[Article], size: int, seed: int, folder: Path) -> Corpus:
    started = time.perf_counter()
    # Asked for fewer than the originals, scale_corpus returns them all: cut to size.
    scaled = scale_corpus(real_all, size, seed)[:size]
    files = write_seeds(scaled, folder)
    kept = {a.url for a in scaled}
    real = [a for a in real_all if a.url in kept]
    urls = [a.url for a in scaled]
    del scaled
    targets = {q.url for q in generate_queries(real, 600, seed)}
    pool = [folder / f"{i:05d}.md" for i, url in enumerate(urls, 1) if url not in targets]
    random.Random(f"newsbot-reload:{seed}:{size}").shuffle(pool)
    return Corpus(folder, files, real, pool, time.perf_counter() - started)


# --- driving /news -------------------------------------------------------------------------------


async def ask(
    fake: TimedFake, query: str, user: int, timeout: float
) -> tuple[float | None, dict[str, Any] | None]:
    """(latency s, callback body) of one /news; (None, None) when no callback came."""
    iid = await fake.slash(
        "news", {"query": query}, guild_id=GUILD_ID, user=USERS[user % len(USERS)]
    )
    got = await fake.answer(iid, timeout)
    fake.forget(iid)
    if got is None:
        return None, None
    latency, arrival = got
    return latency, (arrival.request.json or {})


def has_hit(body: dict[str, Any] | None) -> bool:
    return body is not None and bool((body.get("data") or {}).get("embeds"))


def shows(body: dict[str, Any] | None, title: str) -> bool:
    """The first embed is the article titled ``title`` (a video's title starts with "▶ ")."""
    first = first_title(body) if body is not None else None
    return first is not None and first.removeprefix("▶ ") == title


async def served_at(fake: TimedFake, bot: Child, title: str, timeout: float) -> float:
    """perf_counter() of the first /news answered with ``title``, polled; NaN: never."""
    deadline = time.perf_counter() + SERVED_GIVE_UP_S
    while time.perf_counter() < deadline:
        bot.check_alive()
        iid = await fake.slash("news", {"query": title}, guild_id=GUILD_ID)
        got = await fake.answer(iid, timeout)
        fake.forget(iid)
        if got is not None and shows(got[1].request.json or {}, title):
            return got[1].at
        await asyncio.sleep(POLL_S)
    return math.nan


def is_sorry(body: dict[str, Any] | None) -> bool:
    return body is not None and SORRY in str((body.get("data") or {}).get("content") or "")


@dataclass
class Stream:
    """Matching queries with a marker title every MARKER_EVERY-th /news of each sender."""

    queries: Iterator[str]
    marker: str
    latencies: list[float | None] = field(default_factory=list)
    answered: list[float] = field(default_factory=list)  # perf_counter of each answer
    sorry: int = 0
    marker_seen: float = math.nan  # perf_counter of the first answer with the marker's title


async def senders(
    fake: TimedFake,
    bot: Child,
    stream: Stream,
    concurrency: int,
    timeout: float,
    done: Callable[[], bool],
) -> None:
    """``concurrency`` senders, each sending its next /news when its last one was answered."""

    async def sender(number: int) -> None:
        for sent in itertools.count(1):
            if done():
                return
            bot.check_alive()
            marker = sent % MARKER_EVERY == 0
            query = stream.marker if marker else next(stream.queries)
            latency, body = await ask(fake, query, number * 1000 + sent, timeout)
            stream.latencies.append(latency)
            stream.answered.append(time.perf_counter())
            stream.sorry += is_sorry(body)
            if marker and math.isnan(stream.marker_seen) and shows(body, stream.marker):
                stream.marker_seen = time.perf_counter()

    await asyncio.gather(*(sender(n) for n in range(concurrency)))


# --- one size ------------------------------------------------------------------------------------


@dataclass
class Latency:
    concurrency: int
    idle: list[float | None] = field(default_factory=list)
    during: list[float | None] = field(default_factory=list)
    # The part of `during` that overlapped the bot's own work (commit -> marker served), not
    # the loader process's parsing before the commit.
    applying: list[float | None] = field(default_factory=list)
    rounds: int = 0
    windows: list[float] = field(default_factory=list)  # load start -> served, s
    served: list[float] = field(default_factory=list)  # commit -> marker served, s
    loads: list[float] = field(default_factory=list)  # load_seeds of the 1% change, s
    changed: int = 0  # files per round


@dataclass
class SizeRun:
    size: int
    files: int = 0
    built_s: float = math.nan
    cold_load_s: float = math.nan
    nochange_load_s: float = math.nan  # `newsbot load` with nothing changed, median
    nochange_inproc: list[float] = field(default_factory=list)  # load_seeds of the same
    rebuild_method: str = ""
    rebuild_s: float = math.nan
    connect_s: float = math.nan
    cold_start_s: float = math.nan
    fresh: list[float] = field(default_factory=list)  # commit -> served, one-file reloads
    one_load: list[float] = field(default_factory=list)  # load_seeds of one changed file
    rss_start: float = math.nan
    rss_after: float = math.nan
    reloads: int = 0
    latency: list[Latency] = field(default_factory=list)
    matching: list[float | None] = field(default_factory=list)
    no_match: list[float | None] = field(default_factory=list)
    matching_hits: int = 0
    no_match_hits: int = 0
    sorry: int = 0
    problems: list[str] = field(default_factory=list)


def rss_mb(pid: int) -> float:
    """VmRSS of the whole process, from /proc (MB)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return math.nan
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return int(match[1]) / 1024 if match else math.nan


async def run_size(
    args: argparse.Namespace, real_all: Sequence[Article], size: int, tmp: Path
) -> SizeRun:
    run = SizeRun(size)
    log(f"{size:,} articles: writing the seed files...")
    corpus = build_corpus(real_all, size, args.seed, tmp / "seeds")
    run.files, run.built_s = corpus.files, corpus.built_s
    edits = itertools.cycle(corpus.pool)  # a file edited twice gets its second change
    rng = random.Random(f"newsbot-reload:{args.seed}:{size}:titles")
    queries = [q.query for q in generate_queries(corpus.real, 600, args.seed)]
    database = tmp / "newsbot.sqlite3"
    async with ClusterFake(guilds=[make_guild()], token=TOKEN) as fake:
        config = write_config(
            tmp, fake, str(database), corpus.folder,
            discord={"guild_ids": [GUILD_ID]}, refresh_seconds=args.refresh_seconds,
            watch_folders=args.watch,
        )  # fmt: skip
        log(f"{size:,}: newsbot load (cold)...")
        status, output, run.cold_load_s = await cli(tmp, config, "load")
        if status != 0:
            raise RuntimeError(f"newsbot load failed ({status}):\n{output[-3000:]}")
        nochange: list[float] = []
        for _ in range(NOCHANGE_REPEAT):
            status, output, took = await cli(tmp, config, "load")
            if status != 0:
                raise RuntimeError(f"newsbot load (no change) failed ({status}):\n{output[-3000:]}")
            nochange.append(took)
        run.nochange_load_s = statistics.median(nochange)
        log(f"{size:,}: full index rebuilds (baseline)...")
        run.rebuild_method, run.rebuild_s = await rebuild_times(config)

        loader = await start_helper("loader", config)
        try:
            await loader.reply(timeout=600)  # ready
            log(f"{size:,}: load_seeds with nothing changed...")
            for _ in range(NOCHANGE_REPEAT):
                done = await loader.ask("load")
                run.nochange_inproc.append(done["commit"] - done["start"])
            async with children() as started:
                log(f"{size:,}: newsbot run...")
                launched = time.perf_counter()
                bot = await Child.start("bot", tmp, "--config", str(config), "run")
                started.append(bot)
                await wait_connected(fake, [bot], timeout=1200)
                run.connect_s = time.perf_counter() - launched
                run.cold_start_s = await first_hit(fake, bot, corpus.real[0].title, args) - launched
                await measure(args, fake, bot, loader, corpus, edits, rng, queries, run)
                run.problems += await stop_all([bot])
        finally:
            await loader.close()
            if loader.proc.returncode not in (0, None):
                run.problems.append(
                    f"loader exited with {loader.proc.returncode}: "
                    + " | ".join(loader.errors[-10:])
                )
        run.problems += [f"fake error: {e!r}" for e in fake.errors[:3]]
    return run


async def first_hit(fake: TimedFake, bot: Child, query: str, args: argparse.Namespace) -> float:
    """perf_counter of the first /news answered with a hit."""
    deadline = time.perf_counter() + SERVED_GIVE_UP_S
    last: dict[str, Any] | None = None
    while time.perf_counter() < deadline:
        bot.check_alive()
        iid = await fake.slash("news", {"query": query}, guild_id=GUILD_ID)
        got = await fake.answer(iid, args.timeout)
        fake.forget(iid)
        if got is not None:
            last = got[1].request.json or {}
            if has_hit(last):
                return got[1].at
        await asyncio.sleep(POLL_S)
    raise RuntimeError(
        f"no /news {query!r} answered with a hit within {SERVED_GIVE_UP_S:.0f} s of the "
        f"connection; last answer {json.dumps(last)[:500]}{bot_tail(bot)}"
    )


def bot_tail(bot: Child, lines: int = 15) -> str:
    return "\nbot log tail:\n" + "\n".join(bot.lines[-lines:])


async def measure(
    args: argparse.Namespace,
    fake: TimedFake,
    bot: Child,
    loader: Helper,
    corpus: Corpus,
    edits: Iterator[Path],
    rng: random.Random,
    queries: Sequence[str],
    run: SizeRun,
) -> None:
    pid = bot.proc.pid
    cycle = itertools.cycle(queries)
    for n, nonsense in enumerate(gibberish(WARMUP, args.seed + 1)):  # first-use costs
        await ask(fake, next(cycle), n, args.timeout)
        await ask(fake, nonsense.query, n, args.timeout)
    run.rss_start = rss_mb(pid)

    # 2 and 4: one-file reloads, each waited for until served.
    log(f"{run.size:,}: {args.reloads} one-file reloads...")
    title = ""
    for number in range(args.reloads):
        # A random pause first: back-to-back reloads would fall into step with the bot's
        # polling and always wait about the same part of it.
        await asyncio.sleep(rng.uniform(0, args.refresh_seconds))
        title = made_up_title(rng)
        path = next(edits)
        if not set_title(path, lambda _old, t=title: t):
            raise RuntimeError(f"{path}: no title line to edit")
        result = await loader.ask("load")
        # A watching bot may have loaded the file first: then there is nothing left to load.
        done_by_bot = args.watch and re.search(r"\bupdated 0\b", result["summary"])
        if not (re.search(r"\bupdated 1\b", result["summary"]) or done_by_bot):
            run.problems.append(f"one-file load {number}: {result['summary']}")
        run.one_load.append(result["commit"] - result["start"])
        served = await served_at(fake, bot, title, args.timeout)
        if math.isnan(served):
            raise RuntimeError(
                f"one-file reload {number} ({result['summary']}) not served within "
                f"{SERVED_GIVE_UP_S:.0f} s{bot_tail(bot)}"
            )
        run.fresh.append(served - result["commit"])
        run.reloads += 1
    run.rss_after = rss_mb(pid)

    # 5: no-match against matching, interleaved, 1 in flight.
    log(f"{run.size:,}: no-match and matching /news...")
    for n, nonsense in enumerate(gibberish(args.samples, args.seed)):
        latency, body = await ask(fake, next(cycle), n, args.timeout)
        run.matching.append(latency)
        run.matching_hits += has_hit(body)
        run.sorry += is_sorry(body)
        latency, body = await ask(fake, nonsense.query, n, args.timeout)
        run.no_match.append(latency)
        run.no_match_hits += has_hit(body)
        run.sorry += is_sorry(body)

    # 3: idle, then during 1% changes, 1 and 8 in flight.
    changed = max(1, round(corpus.files / 100))
    for concurrency in (1, 8):
        log(f"{run.size:,}: /news idle and during 1% changes, {concurrency} in flight...")
        lat = Latency(concurrency, changed=changed)
        idle = Stream(cycle, title)
        await senders(
            fake,
            bot,
            idle,
            concurrency,
            args.timeout,
            lambda s=idle: len(s.latencies) >= args.samples,
        )
        lat.idle, run.sorry = idle.latencies, run.sorry + idle.sorry
        while len(lat.during) < args.samples and lat.rounds < args.max_rounds:
            lat.rounds += 1
            title = await one_percent_round(args, fake, bot, loader, edits, rng, cycle, lat, run)
            await asyncio.sleep(0.5)  # each round starts from a quiet bot
        run.latency.append(lat)


async def one_percent_round(
    args: argparse.Namespace,
    fake: TimedFake,
    bot: Child,
    loader: Helper,
    edits: Iterator[Path],
    rng: random.Random,
    cycle: Iterator[str],
    lat: Latency,
    run: SizeRun,
) -> str:
    """Change 1% of the files' titles (the marker's whole title); /news until it is served."""
    marker = made_up_title(rng)
    word = made_up_word(rng)
    paths = [next(edits) for _ in range(lat.changed)]
    edited = set_title(paths[0], lambda _old: marker)
    if not edited:
        raise RuntimeError(f"{paths[0]}: no title line to edit")
    edited += sum(set_title(path, lambda old: f"{old} {word}") for path in paths[1:])
    stream = Stream(cycle, marker)
    started = time.perf_counter()
    load = asyncio.create_task(loader.ask("load"))

    def done() -> bool:
        if time.perf_counter() - started > SERVED_GIVE_UP_S:
            return True
        return load.done() and not math.isnan(stream.marker_seen)

    try:
        await senders(fake, bot, stream, lat.concurrency, args.timeout, done)
        result = await load
    finally:
        if not load.done():
            load.cancel()
    if math.isnan(stream.marker_seen):
        raise RuntimeError(
            f"a 1% change ({result['summary']}) was not served within "
            f"{SERVED_GIVE_UP_S:.0f} s{bot_tail(bot)}"
        )
    # A watching bot loads what it saw first: the loader then finds fewer files to update.
    if not re.search(rf"\bupdated {edited}\b", result["summary"]) and not args.watch:
        run.problems.append(f"1% load: {result['summary']}")
    lat.during += stream.latencies
    lat.applying += [
        latency
        for latency, answered in zip(stream.latencies, stream.answered, strict=True)
        if answered > result["commit"] and answered - (latency or 0.0) <= stream.marker_seen
    ]
    run.sorry += stream.sorry
    lat.windows.append(time.perf_counter() - started)
    lat.served.append(stream.marker_seen - result["commit"])
    lat.loads.append(result["commit"] - result["start"])
    return marker


# --- the report ----------------------------------------------------------------------------------


def seconds(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.2f} s"


def mb(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.0f} MB"


def ms(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.1f} ms"


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 and not math.isnan(a) else math.nan


def times(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.2f}x"


def mark(ok: bool | None) -> str:
    return "" if ok is None else " ✓" if ok else " ✗"


def at_most(value: float, limit: float) -> str:
    """The target "≤ limit x", marked when there is a value."""
    return f"≤ {limit:g}x" + mark(None if math.isnan(value) else value <= limit)


def median(values: Sequence[float]) -> float:
    clean = [v for v in values if not math.isnan(v)]
    return statistics.median(clean) if clean else math.nan


def table(run: SizeRun, markdown: bool) -> str:
    header = ("measure", "figure", "baseline (same run)", "ratio", "target")
    body: list[list[str]] = []
    start_base = run.rebuild_s + run.nochange_load_s
    body.append([
        "1. cold start: launch → first /news hit", seconds(run.cold_start_s),
        f"rebuild + no-change load {seconds(start_base)}",
        times(ratio(run.cold_start_s, start_base)), "—",
    ])  # fmt: skip
    body.append([
        "   cold `newsbot load` (empty database)", seconds(run.cold_load_s),
        f"no-change load {seconds(run.nochange_load_s)}", "—", "—",
    ])  # fmt: skip
    inproc = median(run.nochange_inproc)
    met = None if math.isnan(inproc) else inproc <= NOCHANGE_TARGET_S
    body.append([
        f"0. no-change reload: load_seeds, median of {len(run.nochange_inproc)}",
        seconds(inproc), f"whole `newsbot load` process {seconds(run.nochange_load_s)}", "—",
        f"≤ {NOCHANGE_TARGET_S:g} s" + mark(met),
    ])  # fmt: skip
    fresh = sorted(v for v in run.fresh if not math.isnan(v))
    p50 = statistics.median(fresh) if fresh else math.nan
    worst = max(run.fresh) if run.fresh else math.nan
    one_load = median(run.one_load)
    fresh_base = run.rebuild_s + one_load
    body.append([
        f"2. one changed file: commit → served, p50 / max (n={len(run.fresh)})",
        f"{seconds(p50)} / {seconds(worst)}",
        f"rebuild {seconds(run.rebuild_s)} + load_seeds {seconds(one_load)}",
        times(ratio(p50, fresh_base)), "—",
    ])  # fmt: skip
    for lat in run.latency:
        idle, during = summarize(lat.idle).p99, summarize(lat.during).p99
        r = ratio(during, idle)
        body.append([
            f"3. /news p99 during a 1% change, {lat.concurrency} in flight",
            ms(during), f"idle {ms(idle)}", times(r),
            at_most(r, DURING_RATIO_TARGET),
        ])  # fmt: skip
        applying = summarize(lat.applying).p99
        r = ratio(applying, idle)
        body.append([
            f"   of which while the bot applies it (n={len(lat.applying)})",
            ms(applying), f"idle {ms(idle)}", times(r), at_most(r, DURING_RATIO_TARGET),
        ])  # fmt: skip
    growth = ratio(run.rss_after - run.rss_start, run.rss_start)
    cap = run.size >= RSS_TARGET_AT
    targets = f"growth ≤ {RSS_GROWTH_TARGET:.0%}" + mark(
        None if math.isnan(growth) else growth <= RSS_GROWTH_TARGET
    )
    if cap:
        targets += f"; ≤ {RSS_TARGET_MB:.0f} MB" + mark(run.rss_after <= RSS_TARGET_MB)
    body.append([
        f"4. RSS after {run.reloads} one-file reloads", mb(run.rss_after),
        f"after start {mb(run.rss_start)}",
        "—" if math.isnan(growth) else f"{growth:+.1%}", targets,
    ])  # fmt: skip
    no_match, matching = summarize(run.no_match).p99, summarize(run.matching).p99
    r = ratio(no_match, matching)
    body.append([
        "5. no-match /news p99", ms(no_match), f"matching {ms(matching)}", times(r),
        at_most(r, NO_MATCH_RATIO_TARGET),
    ])  # fmt: skip
    return render(header, body, markdown)


def details(run: SizeRun, bullet: str) -> list[str]:
    out = [
        f"{bullet}{run.files:,} seed files (written in {run.built_s:.1f} s); connected "
        f"{seconds(run.connect_s)} after launch; full rebuild = `{run.rebuild_method}()`, "
        "median of 3.",
        f"{bullet}one-file reloads: commit → served "
        + ", ".join(f"p{int(q * 100)} {seconds(_quantile(run.fresh, q))}" for q in (0.1, 0.5, 0.9))
        + f"; load_seeds median {seconds(median(run.one_load))}.",
    ]
    for lat in run.latency:
        idle, during = summarize(lat.idle), summarize(lat.during)
        out.append(
            f"{bullet}{lat.concurrency} in flight: idle n={idle.n} p50 {ms(idle.p50)} p99 "
            f"{ms(idle.p99)} max {ms(idle.max)}; during n={during.n} p50 {ms(during.p50)} p99 "
            f"{ms(during.p99)} max {ms(during.max)}; {lat.rounds} round(s) of {lat.changed:,} "
            f"files, load_seeds {', '.join(f'{v:.2f}' for v in lat.loads)} s, commit → served "
            f"{', '.join(f'{v:.2f}' for v in lat.served)} s, windows "
            f"{', '.join(f'{v:.2f}' for v in lat.windows)} s."
        )
    matching, no_match = summarize(run.matching), summarize(run.no_match)
    out.append(
        f"{bullet}matching n={matching.n} p50 {ms(matching.p50)} ({run.matching_hits} with a "
        f"hit); no-match n={no_match.n} p50 {ms(no_match.p50)} ({run.no_match_hits} with a hit)."
    )
    return out


def _quantile(values: Sequence[float], q: float) -> float:
    clean = sorted(v for v in values if not math.isnan(v))
    return clean[max(0, math.ceil(q * len(clean)) - 1)] if clean else math.nan


def failures(run: SizeRun) -> list[str]:
    problems = list(run.problems)
    missing = sum(
        summarize(v).missing
        for v in [
            run.matching,
            run.no_match,
            *(x for lat in run.latency for x in (lat.idle, lat.during)),
        ]
    )
    if missing:
        problems.append(f"{missing} /news got no callback within the timeout")
    if run.sorry:
        problems.append(f"{run.sorry} /news answered with the bot's apology")
    return problems


NOTES = (
    "0: the bench's loader process (a Library opened as `newsbot load` opens it) runs load_seeds "
    "of the seeds folder with nothing changed since the last load; beside it, the whole "
    "`newsbot load` process (interpreter, imports, opening the database, the same load).",
    "1: launch of `newsbot run` → the first /news answered with an embed (the bot opened the "
    "database, built its index, ran its start-up no-change load and connected). Baseline: what "
    "that start-up must at least do, a full index rebuild plus a no-change load, timed apart.",
    "2: one seed file gets a new made-up title; the bench's loader process runs load_seeds; "
    "commit (load_seeds returned) → first /news answered with the new title (10 ms polls). "
    "Baseline: a full index rebuild from the database (what every change cost before) plus "
    "the load itself. SQLite has no notification: the bot polls its data version every 50 ms.",
    "3: p99 of /news (matching queries, every 10th the marker title) idle, and from a 1% "
    "change's load start until the bot served it; 1 and 8 senders. 'Of which while the bot "
    "applies it': the answers that overlapped the commit → served part (before the commit the "
    "loader process parses the files on the same cores).",
    "4: VmRSS of the `newsbot run` process after start + warm-up, and after the one-file "
    "reloads of row 2.",
    "5: p99 of /news with three random consonant strings (no title shares a word) against "
    "matching queries, interleaved, 1 in flight.",
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="corpus sizes, comma-separated"
    )
    parser.add_argument("--corpus", type=Path, action="append", metavar="DIR", help=CORPUS_HELP)
    parser.add_argument("--reloads", type=int, default=100, help="one-file reloads (rows 2, 4)")
    parser.add_argument("--samples", type=int, default=500, help="/news per latency figure")
    parser.add_argument("--max-rounds", type=int, default=10, help="1%% changes at most per mode")
    parser.add_argument(
        "--refresh-seconds", type=float, default=2.0, help="the bot's refresh_seconds (default)"
    )
    parser.add_argument(
        "--watch", action=argparse.BooleanOptionalAction, default=False,
        help="the bot watches its seeds folder and loads changes itself too (default: off, so "
        "that every change is loaded by the bench's loader process, as by `newsbot load`)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=1, help="for the corpus and the queries")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait a callback")
    parser.add_argument("--quick", action="store_true", help="small sizes: " + ", ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items()
    ))  # fmt: skip
    parser.add_argument("--markdown", action="store_true", help="markdown headings and tables")
    parser.add_argument("--child", choices=("loader", "rebuild"), help=argparse.SUPPRESS)
    parser.add_argument("--child-config", help=argparse.SUPPRESS)
    parser.add_argument("--child-repeat", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return args
    if args.quick:
        given = {a.split("=")[0] for a in (argv if argv is not None else sys.argv[1:])}
        for key, value in QUICK.items():
            if f"--{key.replace('_', '-')}" not in given:
                setattr(args, key, value)
    try:
        args.size_list = [int(s.replace("_", "")) for s in str(args.sizes).split(",") if s]
    except ValueError:
        parser.error("--sizes takes numbers separated by commas")
    if not args.size_list or min(args.size_list) < 10:
        parser.error("every size must be at least 10")
    if min(args.reloads, args.samples, args.max_rounds) < 1:
        parser.error("--reloads, --samples and --max-rounds must be at least 1")
    return args


def emit(lines: Sequence[str]) -> None:
    """Print as the run goes: a long run's finished sizes are not lost to a later failure."""
    print("\n".join(lines), flush=True)


async def bench(args: argparse.Namespace) -> bool:
    """Print the report, each size's section as soon as it is measured; True: all completed."""
    h = "## " if args.markdown else ""
    bullet = "- " if args.markdown else ""
    load_at_start = os.getloadavg()[0]
    real_all = list(load_corpus(args.corpus or default_corpora()).articles)
    if not real_all:
        raise SystemExit("no articles in the corpus (use --corpus DIR)")
    command = shlex.join(["python", "bench/reload.py", *sys.argv[1:]])
    emit([
        f"{bullet}Command: `{command}`",
        f"{bullet}Corpus: {len(real_all):,} real articles scaled to each size; SQLite; "
        f"refresh_seconds {args.refresh_seconds:g}; the bot, the fake Discord + this driver "
        "(one process) and the loader helper share the machine.",
    ])  # fmt: skip
    ok = True
    for size in args.size_list:
        # Each size in a folder of its own, removed (100,000 files) before the next one.
        with tempfile.TemporaryDirectory(prefix="newsbot-reload-") as tmp:
            try:
                run = await run_size(args, real_all, size, Path(tmp))
            except Exception as exc:  # one size failing still reports the others
                ok = False
                log(f"{size:,} articles failed: {exc!r}")
                emit(["", f"{h}{size:,} articles: FAILED", "", f"{exc!r}"[:3000]])
                continue
        out = ["", f"{h}{run.size:,} articles", "", table(run, args.markdown), ""]
        out += details(run, bullet)
        problems = failures(run)
        if problems:
            ok = False
            out += [f"{bullet}PROBLEM: {p}" for p in problems]
        emit(out)
    emit([
        "",
        f"{bullet}Machine: {machine_line(load_at_start)}; load average (1, 5, 15 min) now "
        + ", ".join(f"{v:.2f}" for v in os.getloadavg()) + ".",
        "", f"{h}What the figures are", "", *(f"{bullet}{n}" for n in NOTES),
        "", f"{bullet}Run: {'completed' if ok else 'FAILED'} (targets are marked ✓/✗).",
    ])  # fmt: skip
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    """Prints the report; exits 1 when a run failed (not when a target was missed)."""
    args = parse_args(argv)
    if args.child:
        return asyncio.run(child_main(args.child, args.child_config, args.child_repeat))
    try:
        ok = asyncio.run(bench(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

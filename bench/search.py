"""Benchmark newsbot's SearchIndex against SQLite FTS5 and rapidfuzz, on real and scaled corpora.

Run by hand (never from the tests)::

    python bench/search.py                      # real corpora + 100k synthetic scale-up
    python bench/search.py --markdown           # tables ready to paste into a README
    python bench/search.py --scale 6000 100000 --queries 1000 --seed 1
    python bench/search.py --stdin-export /tmp/q.jsonl --engines none   # queries only

Every figure of a table comes from the same run, so ratios between engines hold up on a noisy
machine better than absolute timings do. Queries come from ``bench.queries``; see its docstring
for the four kinds.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import importlib
import math
import os
import platform
import shlex
import sqlite3
import statistics
import sys
import time
import traceback
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

# Run as a script (``python bench/search.py``): make ``bench`` and ``bot`` importable.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rapidfuzz import fuzz, process, utils  # noqa: E402

from bench.queries import (  # noqa: E402
    CORPUS_HELP,
    KINDS,
    Corpus,
    Query,
    clone_origin,
    default_corpora,
    generate_queries,
    load_corpus,
    normalise_title,
    scale_corpus,
    seed_files,
    write_jsonl,
)
from bot.articles import Article  # noqa: E402

try:
    import psutil
except ImportError:  # psutil is a test extra; without it memory shows as n/a
    psutil = None

LIMIT = 5  # every engine returns its top 5: enough for hit@5, and the same work for all
WARMUP = 20
ENGINES = ("newsbot", "fts5", "token_set", "wratio")
SLOW = ("token_set", "wratio")  # rapidfuzz scans every article per query: sampled at scale
MB = 1024 * 1024


# --- engines ---------------------------------------------------------------------------------


class Engine(Protocol):
    label: str

    def build(self, articles: Sequence[Article]) -> None: ...

    def search(self, query: str) -> list[str]: ...  # URLs, best first, at most LIMIT

    def close(self) -> None: ...


class NewsbotEngine:
    label = "newsbot SearchIndex"

    def __init__(self, index_class: Any) -> None:
        self.index_class = index_class
        self.index: Any = None

    def build(self, articles: Sequence[Article]) -> None:
        self.index = self.index_class.build(articles)

    def search(self, query: str) -> list[str]:
        return [hit.url for hit in self.index.search(query, limit=LIMIT)]

    def close(self) -> None:
        self.index = None


class Fts5Engine:
    label = "FTS5 bm25"

    def __init__(self) -> None:
        self.db: sqlite3.Connection | None = None
        self.urls: list[str] = []

    def build(self, articles: Sequence[Article]) -> None:
        self.db = sqlite3.connect(":memory:")
        self.db.execute("CREATE VIRTUAL TABLE fts USING fts5(title, excerpt)")
        with self.db:  # one transaction: per-row commits would measure the journal, not FTS5
            self.db.executemany(
                "INSERT INTO fts(rowid, title, excerpt) VALUES (?, ?, ?)",
                ((i, a.title, a.excerpt) for i, a in enumerate(articles)),
            )
        # URLs stay in Python, indexed by rowid, so the FTS table only holds searchable text.
        self.urls = [a.url for a in articles]

    @staticmethod
    def match_expression(query: str) -> str:
        # Quoting every token neutralises FTS5 syntax (AND, NEAR, *, ^, column:) in user text;
        # a token with no word character would be an empty phrase, so it is dropped.
        tokens = [t.replace('"', '""') for t in query.split() if any(c.isalnum() for c in t)]
        return " OR ".join(f'"{t}"' for t in tokens)

    def search(self, query: str) -> list[str]:
        expression = self.match_expression(query)
        if not expression or self.db is None:
            return []
        rows = self.db.execute(
            "SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY bm25(fts, 10.0, 1.0) LIMIT ?",
            (expression, LIMIT),
        ).fetchall()
        return [self.urls[rowid] for (rowid,) in rows]

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
        self.db, self.urls = None, []


class RapidfuzzEngine:
    def __init__(self, label: str, scorer: Callable[..., float]) -> None:
        self.label = label
        self.scorer = scorer
        self.choices: list[str] = []
        self.urls: list[str] = []

    def build(self, articles: Sequence[Article]) -> None:
        self.choices = [f"{a.title} {a.excerpt}" for a in articles]
        self.urls = [a.url for a in articles]

    def search(self, query: str) -> list[str]:
        # As a naive bot would call it: default_process runs on every choice, every query.
        found = process.extract(
            query, self.choices, scorer=self.scorer, processor=utils.default_process, limit=LIMIT
        )
        return [self.urls[index] for _choice, _score, index in found]

    def close(self) -> None:
        self.choices, self.urls = [], []


def make_engine(name: str, index_class: Any) -> Engine:
    if name == "newsbot":
        return NewsbotEngine(index_class)
    if name == "fts5":
        return Fts5Engine()
    if name == "token_set":
        return RapidfuzzEngine("rapidfuzz token_set_ratio", fuzz.token_set_ratio)
    return RapidfuzzEngine("rapidfuzz WRatio", fuzz.WRatio)


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    note: str = ""  # "n/a (...)" replaces every figure; a marker like "†" flags a sample
    build_s: float | None = None
    rss_mb: float | None = None
    peak_mb: float | None = None  # tracemalloc peak during build (--tracemalloc)
    queries: int = 0
    hits1: dict[str, float] = field(default_factory=dict)  # kind or "all" -> fraction
    hits5: dict[str, float] = field(default_factory=dict)
    # Scaled corpora only: a clone of the target counts as a hit ("found the right story").
    story1: dict[str, float] = field(default_factory=dict)
    story5: dict[str, float] = field(default_factory=dict)
    results: list[list[str]] = field(default_factory=list, repr=False)
    p50_ms: float | None = None
    p99_ms: float | None = None
    marker: str = ""


def rss() -> int | None:
    return psutil.Process().memory_info().rss if psutil is not None else None


def release_memory() -> None:
    """Collect garbage and hand free heap pages back to the OS (glibc), so that the next
    engine's RSS delta is not hidden by memory that an earlier, released engine left in the
    allocator's free lists (SQLite and large Python objects use malloc, not pymalloc)."""
    gc.collect()
    if sys.platform.startswith("linux"):
        # musl or another libc has no malloc_trim: RSS deltas are just rougher there.
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: p99 of 1,000 timings is the 10th slowest, an observed value."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def hit_rates(
    queries: Sequence[Query],
    results: Sequence[list[str]],
    k: int,
    key: Callable[[str], str] = str,
) -> dict[str, float]:
    """Per kind and "all": the share of queries whose target is among the top ``k`` results,
    comparing ``key(result URL)`` with the target URL (``key`` maps a clone to its original)."""
    rates: dict[str, float] = {}
    for kind in (*KINDS, "all"):
        pairs = [(q, r) for q, r in zip(queries, results, strict=True) if kind in ("all", q.kind)]
        if pairs:
            rates[kind] = sum(any(key(u) == q.url for u in r[:k]) for q, r in pairs) / len(pairs)
    return rates


def measure(
    engine: Engine, articles: Sequence[Article], queries: Sequence[Query], warmup: int
) -> Row:
    """Build, then search every query once (timed), after ``warmup`` untimed queries.

    The engine is left built, so the caller decides when its memory is released.
    """
    row = Row(engine.label, queries=len(queries))
    release_memory()
    before = rss()
    start = time.perf_counter()
    try:
        engine.build(articles)
    except NotImplementedError:
        row.note = "n/a (not implemented yet)"
        return row
    row.build_s = time.perf_counter() - start
    gc.collect()  # count what the engine keeps, not garbage its build left for the collector
    after = rss()
    if before is not None and after is not None:
        row.rss_mb = (after - before) / MB
    try:
        for query in queries[:warmup]:
            engine.search(query.query)
        gc.collect()
        results: list[list[str]] = []
        timings: list[int] = []
        for query in queries:
            t0 = time.perf_counter_ns()
            urls = engine.search(query.query)
            timings.append(time.perf_counter_ns() - t0)
            results.append(urls)
    except NotImplementedError:
        row.note = "n/a (search not implemented yet)"
        return row
    timings.sort()
    row.p50_ms = statistics.median(timings) / 1e6
    row.p99_ms = percentile(timings, 0.99) / 1e6
    row.hits1 = hit_rates(queries, results, 1)
    row.hits5 = hit_rates(queries, results, LIMIT)
    row.results = results
    return row


def tracemalloc_peak(engine: Engine, articles: Sequence[Article]) -> float | None:
    """Peak Python allocation during a second build; separate because tracing slows it ~3x."""
    gc.collect()
    tracemalloc.start()
    try:
        engine.build(articles)
        _current, peak = tracemalloc.get_traced_memory()
    except NotImplementedError:
        return None
    finally:
        tracemalloc.stop()
        engine.close()
    return peak / MB


# --- output ----------------------------------------------------------------------------------


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    # About three significant digits: more would be noise on a shared machine.
    if value < 1:
        return f"{value:.3f}"
    if value < 10:
        return f"{value:.2f}"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def fmt_hits(first: dict[str, float], top: dict[str, float], kind: str) -> str:
    if kind not in first:
        return "n/a"
    return f"{first[kind] * 100:.1f} / {top[kind] * 100:.1f}"


def fmt_ratio(row: Row, base: Row | None) -> str:
    # "How many times faster newsbot is": baseline latency / newsbot latency.
    if row is base:
        return "1×"
    if base is None or base.p50_ms is None or row.p50_ms is None or row.p99_ms is None:
        return "n/a"
    assert base.p99_ms is not None
    return f"{row.p50_ms / base.p50_ms:.1f}× / {row.p99_ms / base.p99_ms:.1f}×"


def render(header: Sequence[str], body: Sequence[Sequence[str]], markdown: bool) -> str:
    """Aligned columns; with ``markdown`` a pipe table that still reads well as plain text.

    A body row of two cells (engine, note) is a note row, e.g. "n/a (not implemented yet)":
    the note runs across the other columns instead of widening the second one.
    """
    full = [r for r in body if len(r) == len(header)]
    widths = [max(len(r[i]) for r in [header, *full]) for i in range(len(header))]
    widths[0] = max(widths[0], *(len(r[0]) for r in body)) if body else widths[0]

    def line(cells: Sequence[str]) -> str:
        if len(cells) == 2:
            name, note = cells[0].ljust(widths[0]), cells[1]
            if markdown:
                return f"| {name} | {note} |" + " |" * (len(header) - 2)
            return f"{name}  {note}"
        padded = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |" if markdown else "  ".join(padded).rstrip()

    if markdown:
        rule = (
            "|"
            + "|".join("-" * (w + 1) + ":" if i else "-" * (w + 2) for i, w in enumerate(widths))
            + "|"
        )
    else:
        rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in body)])


def table(rows: Sequence[Row], markdown: bool, with_peak: bool) -> str:
    """The main table: build, memory, strict hit rates and latency, one row per engine."""
    base = next((r for r in rows if r.label == NewsbotEngine.label and r.p50_ms is not None), None)
    header = ["Engine", "Build s", "ΔRSS MB"]
    if with_peak:
        header.append("tracemalloc peak MB")
    header += ["hit@1 / hit@5 % all", *KINDS, "p50 ms", "p99 ms", "newsbot speed-up p50 / p99"]
    header.append("Queries")
    body: list[list[str]] = []
    for row in rows:
        name = f"{row.label} {row.marker}".strip()
        if row.note:
            body.append([name, row.note])
            continue
        cells = [
            name,
            f"{row.build_s:.2f}" if row.build_s is not None else "n/a",
            f"{row.rss_mb:.1f}" if row.rss_mb is not None else "n/a",
        ]
        if with_peak:
            cells.append(f"{row.peak_mb:.1f}" if row.peak_mb is not None else "n/a")
        cells += [fmt_hits(row.hits1, row.hits5, k) for k in ("all", *KINDS)]
        cells += [fmt_ms(row.p50_ms), fmt_ms(row.p99_ms), fmt_ratio(row, base), f"{row.queries:,}"]
        body.append(cells)
    return render(header, body, markdown)


def story_table(rows: Sequence[Row], markdown: bool) -> str:
    """Scaled corpora: hit rates where any clone of the target also counts (same searches)."""
    header = ["Engine", "story hit@1 / hit@5 % all", *KINDS, "Queries"]
    body: list[list[str]] = []
    for row in rows:
        name = f"{row.label} {row.marker}".strip()
        if row.note:
            body.append([name, row.note])
            continue
        cells = [fmt_hits(row.story1, row.story5, k) for k in ("all", *KINDS)]
        body.append([name, *cells, f"{row.queries:,}"])
    return render(header, body, markdown)


# --- main ------------------------------------------------------------------------------------


def load_index_class(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr or "SearchIndex")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--corpus", type=Path, nargs="+", default=None, metavar="DIR", help=CORPUS_HELP,
    )  # fmt: skip
    parser.add_argument(
        "--scale", type=int, nargs="*", default=[100_000], metavar="N",
        help="synthetic corpus sizes besides the real one (default 100000; none: real only)",
    )  # fmt: skip
    parser.add_argument("--queries", type=int, default=1000, help="total, split over 4 kinds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--engines", default=",".join(ENGINES),
        help=f"comma-separated subset of {','.join(ENGINES)}, or 'none' (default: all)",
    )  # fmt: skip
    parser.add_argument(
        "--slow-sample", type=int, default=50, metavar="N",
        help="queries for rapidfuzz on scaled corpora, where it scans 100k strings per query",
    )  # fmt: skip
    parser.add_argument(
        "--index", default="bot.search:SearchIndex", metavar="MODULE:CLASS",
        help="the index class to benchmark as 'newsbot' (default bot.search:SearchIndex)",
    )  # fmt: skip
    parser.add_argument(
        "--tracemalloc", action="store_true", help="also report the build's Python peak"
    )
    parser.add_argument("--markdown", action="store_true", help="markdown headings and tables")
    parser.add_argument(
        "--stdin-export", type=Path, metavar="PATH", help="write the queries as JSONL"
    )
    args = parser.parse_args(argv)
    names = (
        []
        if args.engines.strip() == "none"
        else [n.strip() for n in args.engines.split(",") if n.strip()]
    )
    unknown = sorted(set(names) - set(ENGINES))
    if unknown:
        parser.error(f"unknown engines {unknown}; choose from {','.join(ENGINES)}")
    args.engines = [n for n in ENGINES if n in names]  # newsbot first: it is measured clean
    if args.queries < len(KINDS):
        parser.error(f"--queries must be at least {len(KINDS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    say = print
    h = "## " if args.markdown else ""
    dirs = args.corpus or default_corpora()
    missing = [d for d in dirs if not d.is_dir()]
    if missing:
        print(
            f"corpus dir not found: {', '.join(map(str, missing))} (use --corpus DIR)",
            file=sys.stderr,
        )
        return 2

    started = time.perf_counter()
    corpus = load_corpus(dirs)
    if not corpus.articles:
        print(
            f"no articles loaded: {corpus.files} .md files, {len(corpus.rejected)} rejected",
            file=sys.stderr,
        )
        return 2
    queries = generate_queries(corpus.articles, args.queries, args.seed)
    if args.stdin_export:
        write_jsonl(queries, args.stdin_export)
        print(f"wrote {len(queries):,} queries to {args.stdin_export}", file=sys.stderr)
    if not args.engines:
        return 0
    scales = sorted({n for n in args.scale if n > len(corpus.articles)})
    corpora: list[tuple[str, list[Article]]] = [("real", list(corpus.articles))]
    corpora += [(f"{n:,}", scale_corpus(corpus.articles, n, args.seed)) for n in scales]
    prepared = time.perf_counter() - started

    say(f"{h}newsbot search benchmark".strip())
    say("")
    say(header_text(args, corpus, queries, corpora, prepared, dirs))
    say("")
    sys.stdout.flush()

    rows: dict[str, list[Row]] = {label: [] for label, _ in corpora}
    if "newsbot" in args.engines:
        index_class = load_index_class(args.index)
        # Measured before any baseline exists and with every newsbot index kept alive until
        # all are measured: a build cannot reuse memory another index freed, so its RSS delta
        # is what it really holds.
        alive: list[Engine] = []
        for label, articles in corpora:
            engine = make_engine("newsbot", index_class)
            rows[label].append(run(engine, articles, queries, WARMUP, ""))
            alive.append(engine)
        for engine in alive:
            engine.close()
        del alive
        if args.tracemalloc:
            for (_label, articles), row in zip(corpora, [r[0] for r in rows.values()], strict=True):
                if not row.note:
                    row.peak_mb = tracemalloc_peak(make_engine("newsbot", index_class), articles)
    for name in args.engines:
        if name == "newsbot":
            continue
        for position, (label, articles) in enumerate(corpora):
            sample, marker, warmup = queries, "", WARMUP
            if name in SLOW and position > 0:
                # ~0.5-2 s per query at 100k: a sample keeps the run to minutes. The sample is
                # the first N of the interleaved list, so it is balanced across kinds; a small
                # warm-up suffices (rapidfuzz has no caches to fill).
                sample, marker, warmup = queries[: args.slow_sample], "†", 3
            engine = make_engine(name, None)
            row = run(engine, articles, sample, warmup, marker)
            engine.close()  # released before the next engine is measured
            del engine
            rows[label].append(row)

    originals = {a.url for a in corpus.articles}

    def story(url: str) -> str:
        return clone_origin(url, originals)

    for label, articles in corpora:
        title = "Real corpus" if label == "real" else f"Synthetic scale-up to {label}"
        say(f"{h}{title}: {len(articles):,} articles".strip())
        say("")
        say(table(rows[label], args.markdown, args.tracemalloc))
        say("")
        if label == "real":
            continue
        for row in rows[label]:
            if row.results:
                sample = queries[: len(row.results)]
                row.story1 = hit_rates(sample, row.results, 1, story)
                row.story5 = hit_rates(sample, row.results, LIMIT, story)
        say(
            f"Same searches at {label}, counting a clone of the target as a hit (did the engine "
            "find the right story among the distractors, whatever the tie order):"
        )
        say("")
        say(story_table(rows[label], args.markdown))
        say("")
    say(notes_text(args, corpora))
    say("")
    say(f"Total run time: {time.perf_counter() - started:.0f} s.")
    return 0


def run(
    engine: Engine, articles: Sequence[Article], queries: Sequence[Query], warmup: int, marker: str
) -> Row:
    print(
        f"  measuring {engine.label} on {len(articles):,} articles...", file=sys.stderr, flush=True
    )
    try:
        row = measure(engine, articles, queries, warmup)
    except Exception as exc:  # one broken engine must not lose the other engines' figures
        traceback.print_exc()
        row = Row(engine.label, note=f"error: {type(exc).__name__}: {exc}"[:80])
    row.marker = marker
    return row


def header_text(
    args: argparse.Namespace,
    corpus: Corpus,
    queries: Sequence[Query],
    corpora: Sequence[tuple[str, list[Article]]],
    prepared: float,
    dirs: Sequence[Path],
) -> str:
    command = shlex.join(["python", "bench/search.py", *sys.argv[1:]])
    cpus = os.cpu_count() or 0
    per_kind = ", ".join(f"{k} {sum(q.kind == k for q in queries):,}" for k in KINDS)
    titles: dict[str, int] = {}
    for article in corpus.articles:
        key = normalise_title(article.title)
        titles[key] = titles.get(key, 0) + 1
    by_url = {a.url: a for a in corpus.articles}
    shared = sum(
        titles[normalise_title(by_url[q.url].title)] > 1 for q in queries if q.kind == "exact"
    )
    scaled = ", ".join(f"{len(a):,}" for label, a in corpora if label != "real") or "none"
    folders: dict[str, int] = {}
    for path in seed_files(dirs):
        # .../<corpus>/_news/<file>.md -> <corpus>; a plain folder of .md files -> its name
        name = path.parent.parent.name if path.parent.name == "_news" else path.parent.name
        folders[name] = folders.get(name, 0) + 1
    files = ", ".join(f"{name} {count:,}" for name, count in sorted(folders.items()))
    lines = [
        f"Command: `{command}`",
        f"Machine: Python {platform.python_version()}, {platform.system()} {platform.machine()}, "
        f"{cpus} CPUs, SQLite {sqlite3.sqlite_version}; "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; seed {args.seed}.",
        f"Corpus: {corpus.files:,} files ({files}); "
        f"{len(corpus.rejected)} rejected; {corpus.duplicate_urls} duplicate URLs dropped; "
        f"{len(corpus.articles):,} distinct articles. Scaled corpora (articles): {scaled} "
        f"(loading, queries and scale-up took {prepared:.1f} s).",
        f"Queries: {len(queries):,} ({per_kind}), drawn from the real articles only"
        + (
            f"; {shared} exact-title queries target a title that another URL shares, "
            "which caps exact hit@1 below 100%."
            if shared
            else "."
        ),
    ]
    lines += [f"Rejected: {reason}" for reason in corpus.rejected]
    return "\n".join(f"- {line}" if args.markdown else line for line in lines)


def notes_text(args: argparse.Namespace, corpora: Sequence[tuple[str, list[Article]]]) -> str:
    notes = [
        "hit@1 / hit@5: share of queries (%) whose target URL is the first / among the first "
        f"{LIMIT} results; every engine is asked for {LIMIT} results.",
        f"Latency: one search per query with time.perf_counter_ns after the build and "
        f"{WARMUP} untimed warm-up queries; p99 is nearest-rank. Speed-up = baseline latency / "
        "newsbot latency (above 1× newsbot is faster).",
        "ΔRSS: psutil RSS after build minus before (after gc and malloc_trim). newsbot is "
        "measured first, before any baseline exists, with each of its indexes kept until all "
        "are measured; each baseline is released before the next. The corpus itself is not "
        "counted.",
        "FTS5: in-memory SQLite FTS5 table (title, excerpt), unicode61 tokenizer, query = OR of "
        "the quoted whitespace tokens, ORDER BY bm25(fts, 10.0, 1.0).",
        "rapidfuzz: process.extract(query, [title + ' ' + excerpt], scorer, "
        f"processor=default_process, limit={LIMIT}).",
    ]
    if len(corpora) > 1:
        notes += [
            f"† rapidfuzz on scaled corpora: only the first {args.slow_sample} queries (balanced "
            "over the kinds, 3 warm-up), as a full run would take an hour; its hit rates are "
            "from that sample and noisy.",
            "Scale-up: the real articles plus clones with a ?v=N URL, 1-3 title and 1-3 excerpt "
            "words replaced by corpus words and another article's topics, all shuffled. A clone "
            "whose edits miss the query's words ties with the target, so at scale strict hit@1 "
            "is partly decided by how an engine breaks ties.",
        ]
    return "\n".join(f"- {n}" if args.markdown else n for n in notes)


if __name__ == "__main__":
    sys.exit(main())

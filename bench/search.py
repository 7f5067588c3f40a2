"""Benchmark newsbot's SearchIndex against SQLite FTS5 and rapidfuzz, on real and scaled corpora.

Run by hand (never from the tests)::

    python bench/search.py                      # real corpora + 100k synthetic scale-up
    python bench/search.py --markdown           # tables ready to paste into a README
    python bench/search.py --scale 6000 100000 --queries 1000 --seed 1
    python bench/search.py --engines newsbot,newsbot-words --paraphrases none
    python bench/search.py --stdin-export /tmp/q.jsonl --engines none   # queries only

Engines:

* ``newsbot``: the shipped configuration, ``SearchIndex.build(articles, embedder=...)``: words
  and typos fused with nearest neighbours by meaning (WordLlama static embeddings,
  :mod:`bot.meaning`).
* ``newsbot-words``: the same index built without the embedder: words and typos only (the
  baseline search by meaning has to keep up with).
* ``meaning``: the embedding alone: the cosine of the query's vector with every article's
  float32 vector (same model and texts as newsbot's), top k; no lexical part at all.
* ``fts5``, ``token_set``, ``wratio``: SQLite FTS5 bm25 and two rapidfuzz scorers.

Tables, every figure of each from the same run (so ratios between engines hold up on a noisy
machine better than absolute timings do):

* per corpus size (the real one, then synthetic scale-ups): build time, memory, hit@1 / hit@5
  per query kind (``bench.queries`` makes them: typo, partial, excerpt, exact; see its
  docstring), latency; at scale also "story" hit rates, where a clone of the target counts;
* paraphrases (``bench/paraphrases.jsonl``, real corpus only): queries that share at most one
  content word with their target's title: hit@1 / hit@5 / hit@10 and the share of queries
  with no answer at all, each engine asked for 10 results;
* what search by meaning costs: build CPU seconds with and without the embedder, the bytes of
  the vectors, and latency beside the words-only index, at every size.
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
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

# Run as a script (``python bench/search.py``): make ``bench`` and ``bot`` importable.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from rapidfuzz import fuzz, process, utils  # noqa: E402

from bench.queries import (  # noqa: E402
    CORPUS_HELP,
    KINDS,
    Corpus,
    Paraphrase,
    Query,
    clone_origin,
    default_corpora,
    generate_queries,
    load_corpus,
    normalise_title,
    read_paraphrases,
    scale_corpus,
    seed_files,
    write_jsonl,
)
from bot.articles import Article  # noqa: E402
from bot.meaning import (  # noqa: E402
    DIM,
    MODEL,
    Embedder,
    MeaningUnavailable,
    article_text,
    embedder,
)
from bot.tokens import query_words  # noqa: E402

try:
    import psutil
except ImportError:  # psutil is a test extra; without it memory shows as n/a
    psutil = None

LIMIT = 5  # every engine returns its top 5: enough for hit@5, and the same work for all
PARAPHRASE_LIMIT = 10  # the paraphrase table's hit@10: its searches ask for 10 (untimed)
WARMUP = 20
ENGINES = ("newsbot", "newsbot-words", "meaning", "fts5", "token_set", "wratio")
# Measured first, each with its index for every size kept alive until all sizes are measured.
NEWSBOT = ("newsbot", "newsbot-words")
NEEDS_MODEL = ("newsbot", "meaning")
SLOW = ("token_set", "wratio")  # rapidfuzz scans every article per query: sampled at scale
LABELS = {
    "newsbot": "newsbot SearchIndex",
    "newsbot-words": "newsbot, words only",
    "meaning": "WordLlama cosine only",
    "fts5": "FTS5 bm25",
    "token_set": "rapidfuzz token_set_ratio",
    "wratio": "rapidfuzz WRatio",
}
DEFAULT_PARAPHRASES = ROOT / "bench" / "paraphrases.jsonl"
P99_TARGET_MS = 10.0  # newsbot's p99 at the largest scale-up should stay at or under this
MB = 1024 * 1024


# --- engines ---------------------------------------------------------------------------------


class Engine(Protocol):
    label: str

    def build(self, articles: Sequence[Article]) -> None: ...

    def search(self, query: str, limit: int = LIMIT) -> list[str]: ...  # URLs, best first

    def close(self) -> None: ...


class NewsbotEngine:
    def __init__(self, label: str, index_class: Any, model: Embedder | None) -> None:
        self.label = label
        self.index_class = index_class
        self.model = model  # None: words and typos only
        self.index: Any = None

    def build(self, articles: Sequence[Article]) -> None:
        if self.model is None:
            self.index = self.index_class.build(articles)
        else:
            self.index = self.index_class.build(articles, embedder=self.model)

    def search(self, query: str, limit: int = LIMIT) -> list[str]:
        return [hit.url for hit in self.index.search(query, limit=limit)]

    def vector_bytes(self) -> int | None:
        """What the index's vectors hold (8-bit codes, scales, sign bits); None without any."""
        parts = [s.meaning for s in getattr(self.index, "_segments", ())]
        if not parts or any(p is None for p in parts):
            return None
        return sum(p.codes.nbytes + p.scales.nbytes + p.signs.nbytes for p in parts)

    def close(self) -> None:
        self.index = None


class MeaningEngine:
    """The embedding alone: exact cosine over float32 vectors, no words, no shortlist."""

    label = LABELS["meaning"]

    def __init__(self, model: Embedder) -> None:
        self.model = model
        self.vectors: np.ndarray | None = None
        self.urls: list[str] = []

    def build(self, articles: Sequence[Article]) -> None:
        # The texts newsbot embeds (bot.meaning.article_text), a slice at a time as it does.
        vectors = [
            self.model.embed([article_text(a.title, a.excerpt) for a in articles[i : i + 2048]])
            for i in range(0, len(articles), 2048)
        ]
        self.vectors = np.concatenate(vectors) if vectors else np.zeros((0, DIM), np.float32)
        self.urls = [a.url for a in articles]

    def search(self, query: str, limit: int = LIMIT) -> list[str]:
        # The query text newsbot embeds: its folded words, space-separated.
        text = " ".join(query_words(query))
        if not text or self.vectors is None or not len(self.urls):
            return []
        vector = self.model.embed_one(text)
        if not vector.any():  # no token the model knows: every cosine would be 0
            return []
        cosine = self.vectors @ vector
        k = min(limit, len(cosine))
        top = np.argpartition(-cosine, k - 1)[:k]
        top = top[np.lexsort((top, -cosine[top]))]  # nearest first, ties by position
        return [self.urls[i] for i in top.tolist()]

    def vector_bytes(self) -> int | None:
        return None if self.vectors is None else self.vectors.nbytes

    def close(self) -> None:
        self.vectors, self.urls = None, []


class Fts5Engine:
    label = LABELS["fts5"]

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

    def search(self, query: str, limit: int = LIMIT) -> list[str]:
        expression = self.match_expression(query)
        if not expression or self.db is None:
            return []
        rows = self.db.execute(
            "SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY bm25(fts, 10.0, 1.0) LIMIT ?",
            (expression, limit),
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

    def search(self, query: str, limit: int = LIMIT) -> list[str]:
        # As a naive bot would call it: default_process runs on every choice, every query.
        found = process.extract(
            query, self.choices, scorer=self.scorer, processor=utils.default_process, limit=limit
        )
        return [self.urls[index] for _choice, _score, index in found]

    def close(self) -> None:
        self.choices, self.urls = [], []


def make_engine(name: str, index_class: Any, model: Embedder | None) -> Engine:
    """``model`` is required for newsbot and meaning (see NEEDS_MODEL)."""
    if name in NEWSBOT:
        assert name == "newsbot-words" or model is not None
        return NewsbotEngine(LABELS[name], index_class, model if name == "newsbot" else None)
    if name == "meaning":
        assert model is not None
        return MeaningEngine(model)
    if name == "fts5":
        return Fts5Engine()
    if name == "token_set":
        return RapidfuzzEngine(LABELS[name], fuzz.token_set_ratio)
    return RapidfuzzEngine(LABELS[name], fuzz.WRatio)


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    note: str = ""  # "n/a (...)" replaces every figure; a marker like "†" flags a sample
    build_s: float | None = None
    build_cpu_s: float | None = None  # time.process_time: every thread (the tokenizer's too)
    vector_mb: float | None = None  # newsbot: 8-bit vectors + scales + sign bits; meaning: f32
    rss_mb: float | None = None
    peak_mb: float | None = None  # tracemalloc peak during build (--tracemalloc)
    queries: int = 0
    hits1: dict[str, float] = field(default_factory=dict)  # kind or "all" -> fraction
    hits5: dict[str, float] = field(default_factory=dict)
    # Scaled corpora only: a clone of the target counts as a hit ("found the right story").
    story1: dict[str, float] = field(default_factory=dict)
    story5: dict[str, float] = field(default_factory=dict)
    results: list[list[str]] = field(default_factory=list, repr=False)
    # Real corpus only: the paraphrase queries' results (PARAPHRASE_LIMIT each, untimed).
    para_results: list[list[str]] = field(default_factory=list, repr=False)
    p50_ms: float | None = None
    p99_ms: float | None = None
    marker: str = ""

    @property
    def name(self) -> str:
        """The engine as a table names it, with its marker."""
        return f"{self.label} {self.marker}".strip()


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


def paraphrase_rates(
    paraphrases: Sequence[Paraphrase], results: Sequence[list[str]]
) -> dict[str, float]:
    """hit@1, hit@5, hit@10 (any accepted URL among the top k) and "none" (no result at all),
    as shares of the queries. URLs are compared percent-decoded (the corpora mix both forms)."""
    accepted = [{urllib.parse.unquote(u) for u in p.urls} for p in paraphrases]
    found = [[urllib.parse.unquote(u) for u in r] for r in results]
    rates = {"none": sum(not r for r in found) / len(found)}
    for k in (1, 5, PARAPHRASE_LIMIT):
        hits = sum(any(u in a for u in r[:k]) for a, r in zip(accepted, found, strict=True))
        rates[f"hit@{k}"] = hits / len(found)
    return rates


def measure(
    engine: Engine,
    articles: Sequence[Article],
    queries: Sequence[Query],
    warmup: int,
    paraphrases: Sequence[Paraphrase] = (),
) -> Row:
    """Build, then search every query once (timed), after ``warmup`` untimed queries; then
    every paraphrase once, untimed, for up to PARAPHRASE_LIMIT results.

    The engine is left built, so the caller decides when its memory is released.
    """
    row = Row(engine.label, queries=len(queries))
    # Each engine starts with the query-word cache empty (earlier engines filled it).
    getattr(query_words, "cache_clear", lambda: None)()
    release_memory()
    before = rss()
    start = time.perf_counter()
    cpu = time.process_time()
    try:
        engine.build(articles)
    except NotImplementedError:
        row.note = "n/a (not implemented yet)"
        return row
    row.build_s = time.perf_counter() - start
    row.build_cpu_s = time.process_time() - cpu
    vector_bytes = getattr(engine, "vector_bytes", lambda: None)()
    row.vector_mb = vector_bytes / MB if vector_bytes is not None else None
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
        row.para_results = [engine.search(p.query, PARAPHRASE_LIMIT) for p in paraphrases]
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


def fmt_num(value: float | None, digits: int) -> str:
    return f"{value:.{digits}f}" if value is not None else "n/a"


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
    base = find(rows, "newsbot")
    header = ["Engine", "Build s", "ΔRSS MB"]
    if with_peak:
        header.append("tracemalloc peak MB")
    header += ["hit@1 / hit@5 % all", *KINDS, "p50 ms", "p99 ms", "newsbot speed-up p50 / p99"]
    header.append("Queries")
    body: list[list[str]] = []
    for row in rows:
        if row.note:
            body.append([row.name, row.note])
            continue
        cells = [
            row.name,
            f"{row.build_s:.2f}" if row.build_s is not None else "n/a",
            f"{row.rss_mb:.1f}" if row.rss_mb is not None else "n/a",
        ]
        if with_peak:
            cells.append(f"{row.peak_mb:.1f}" if row.peak_mb is not None else "n/a")
        cells += [fmt_hits(row.hits1, row.hits5, k) for k in ("all", *KINDS)]
        cells += [fmt_ms(row.p50_ms), fmt_ms(row.p99_ms), fmt_ratio(row, base), f"{row.queries:,}"]
        body.append(cells)
    return render(header, body, markdown)


def find(rows: Sequence[Row], name: str) -> Row | None:
    """The measured row of engine ``name`` (None when it was not run or has no figures)."""
    return next((r for r in rows if r.label == LABELS[name] and r.p50_ms is not None), None)


def kind_delta(rows: Sequence[Row], story: bool = False) -> str | None:
    """newsbot minus newsbot-words, hit@1 per kind in points: what meaning costs the kinds of
    query words alone already answer (``story``: with clones of the target counted as hits)."""
    meaning, words = find(rows, "newsbot"), find(rows, "newsbot-words")
    if meaning is None or words is None:
        return None
    ours, theirs = (meaning.story1, words.story1) if story else (meaning.hits1, words.hits1)
    kinds = [k for k in ("all", *KINDS) if k in ours and k in theirs]
    if not kinds:
        return None
    deltas = [f"{kind} {(ours[kind] - theirs[kind]) * 100:+.1f}" for kind in kinds]
    worst = min((ours[k] - theirs[k] for k in kinds if k != "all"), default=0.0)
    verdict = "met" if worst >= -0.01 else "missed"
    return (
        f"newsbot minus newsbot-words, {'story ' if story else ''}hit@1 in points: "
        f"{', '.join(deltas)} (target: no kind more than 1 point lower: {verdict})."
    )


def paraphrase_table(rows: Sequence[Row], paraphrases: Sequence[Paraphrase], markdown: bool) -> str:
    """Hit rates at 1, 5 and 10, and queries without any answer, one row per engine."""
    header = ["Engine", "hit@1 %", "hit@5 %", f"hit@{PARAPHRASE_LIMIT} %", "no answer %"]
    header.append("Queries")
    body: list[list[str]] = []
    for row in rows:
        if row.note:
            body.append([row.name, row.note])
            continue
        if len(row.para_results) != len(paraphrases) or not paraphrases:
            body.append([row.name, "n/a (not measured)"])
            continue
        rates = paraphrase_rates(paraphrases, row.para_results)
        cells = [f"{rates[k] * 100:.1f}" for k in ("hit@1", "hit@5", f"hit@{PARAPHRASE_LIMIT}")]
        body.append([row.name, *cells, f"{rates['none'] * 100:.1f}", f"{len(paraphrases):,}"])
    return render(header, body, markdown)


def cost_table(
    rows: dict[str, list[Row]], corpora: Sequence[tuple[str, list[Article]]], markdown: bool
) -> str:
    """Search by meaning against words only, per corpus size: build CPU, vectors, latency."""
    header = [
        "Corpus",
        "Articles",
        "Build CPU s newsbot / words",
        "Embedding CPU s",
        "Vectors MB",
        "ΔRSS MB newsbot / words",
        "p50 ms newsbot / words",
        "p99 ms newsbot / words",
    ]
    body: list[list[str]] = []
    for label, articles in corpora:
        meaning, words = find(rows[label], "newsbot"), find(rows[label], "newsbot-words")
        if meaning is None or words is None:
            body.append([label, "n/a (newsbot or newsbot-words not measured)"])
            continue
        embedding = (
            meaning.build_cpu_s - words.build_cpu_s
            if meaning.build_cpu_s is not None and words.build_cpu_s is not None
            else None
        )
        body.append(
            [
                label,
                f"{len(articles):,}",
                f"{fmt_num(meaning.build_cpu_s, 2)} / {fmt_num(words.build_cpu_s, 2)}",
                fmt_num(embedding, 2),
                fmt_num(meaning.vector_mb, 1),
                f"{fmt_num(meaning.rss_mb, 1)} / {fmt_num(words.rss_mb, 1)}",
                f"{fmt_ms(meaning.p50_ms)} / {fmt_ms(words.p50_ms)}",
                f"{fmt_ms(meaning.p99_ms)} / {fmt_ms(words.p99_ms)}",
            ]
        )
    return render(header, body, markdown)


def p99_verdict(rows: dict[str, list[Row]], corpora: Sequence[tuple[str, list[Article]]]) -> str:
    label, articles = corpora[-1]
    meaning, words = find(rows[label], "newsbot"), find(rows[label], "newsbot-words")
    if meaning is None or meaning.p99_ms is None:
        return ""
    verdict = "met" if meaning.p99_ms <= P99_TARGET_MS else "missed"
    beside = f"; newsbot-words {fmt_ms(words.p99_ms)} ms in the same run" if words else ""
    return (
        f"At {len(articles):,} articles newsbot's p99 is {fmt_ms(meaning.p99_ms)} ms "
        f"(target ≤ {P99_TARGET_MS:g} ms: {verdict}){beside}."
    )


def story_table(rows: Sequence[Row], markdown: bool) -> str:
    """Scaled corpora: hit rates where any clone of the target also counts (same searches)."""
    header = ["Engine", "story hit@1 / hit@5 % all", *KINDS, "Queries"]
    body: list[list[str]] = []
    for row in rows:
        if row.note:
            body.append([row.name, row.note])
            continue
        cells = [fmt_hits(row.story1, row.story5, k) for k in ("all", *KINDS)]
        body.append([row.name, *cells, f"{row.queries:,}"])
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
    parser.add_argument(
        "--paraphrases", default=str(DEFAULT_PARAPHRASES), metavar="PATH",
        help="paraphrase queries (JSONL) for the real corpus; 'none' skips them "
        "(default: bench/paraphrases.jsonl)",
    )  # fmt: skip
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
    args.paraphrases = None if args.paraphrases.strip() == "none" else Path(args.paraphrases)
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
    paraphrases: list[Paraphrase] = []
    skipped: list[Paraphrase] = []
    if args.paraphrases is not None:
        try:
            every = read_paraphrases(args.paraphrases)
        except (OSError, ValueError) as exc:
            print(f"paraphrases: {exc}", file=sys.stderr)
            return 2
        # Only queries with a target in the corpus count (a --corpus of other articles has
        # none); URLs are compared percent-decoded, as the corpora hold both spellings.
        known = {urllib.parse.unquote(a.url) for a in corpus.articles}
        for paraphrase in every:
            found = any(urllib.parse.unquote(u) in known for u in paraphrase.urls)
            (paraphrases if found else skipped).append(paraphrase)
    scales = sorted({n for n in args.scale if n > len(corpus.articles)})
    corpora: list[tuple[str, list[Article]]] = [("real", list(corpus.articles))]
    corpora += [(f"{n:,}", scale_corpus(corpus.articles, n, args.seed)) for n in scales]
    prepared = time.perf_counter() - started

    # The model is loaded, and its token table paged in by embedding the real articles once,
    # before anything is measured: the bot does both at start-up, and the first engine to
    # embed must not be charged for pages of a file every process on the host shares.
    model: Embedder | None = None
    model_error = ""
    loaded = 0.0
    if set(NEEDS_MODEL) & set(args.engines):
        t0 = time.perf_counter()
        try:
            model = embedder()
            model.embed([article_text(a.title, a.excerpt) for a in corpus.articles])
        except MeaningUnavailable as exc:
            model_error = f"no model: {exc}"[:70]
            print(f"search by meaning unavailable: {exc}", file=sys.stderr)
        loaded = time.perf_counter() - t0

    say(f"{h}newsbot search benchmark".strip())
    say("")
    say(header_text(args, corpus, queries, corpora, prepared, dirs, paraphrases, skipped, loaded))
    say("")
    sys.stdout.flush()

    rows: dict[str, list[Row]] = {label: [] for label, _ in corpora}
    index_class = load_index_class(args.index) if set(NEWSBOT) & set(args.engines) else None

    def first(position: int) -> Sequence[Paraphrase]:
        return paraphrases if position == 0 else ()  # the paraphrases target real articles

    # newsbot and newsbot-words are measured before any baseline exists, each with its index
    # for every size kept alive until all sizes are measured: a build cannot reuse memory
    # another index freed, so its RSS delta is what it really holds.
    for name in (n for n in args.engines if n in NEWSBOT):
        if name in NEEDS_MODEL and model is None:
            for label, _ in corpora:
                rows[label].append(Row(LABELS[name], note=f"n/a ({model_error})"))
            continue
        alive: list[Engine] = []
        for position, (label, articles) in enumerate(corpora):
            engine = make_engine(name, index_class, model)
            rows[label].append(run(engine, articles, queries, WARMUP, "", first(position)))
            alive.append(engine)
        for engine in alive:
            engine.close()
        del alive
        if args.tracemalloc:
            for label, articles in corpora:
                row = rows[label][-1]
                if not row.note:
                    engine = make_engine(name, index_class, model)
                    row.peak_mb = tracemalloc_peak(engine, articles)
    for name in args.engines:
        if name in NEWSBOT:
            continue
        for position, (label, articles) in enumerate(corpora):
            if name in NEEDS_MODEL and model is None:
                rows[label].append(Row(LABELS[name], note=f"n/a ({model_error})"))
                continue
            sample, marker, warmup = queries, "", WARMUP
            if name in SLOW and position > 0:
                # ~0.5-2 s per query at 100k: a sample keeps the run to minutes. The sample is
                # the first N of the interleaved list, so it is balanced across kinds; a small
                # warm-up suffices (rapidfuzz has no caches to fill).
                sample, marker, warmup = queries[: args.slow_sample], "†", 3
            engine = make_engine(name, None, model)
            row = run(engine, articles, sample, warmup, marker, first(position))
            engine.close()  # released before the next engine is measured
            del engine
            rows[label].append(row)

    originals = {a.url for a in corpus.articles}

    def story(url: str) -> str:
        return clone_origin(url, originals)

    for position, (label, articles) in enumerate(corpora):
        title = "Real corpus" if label == "real" else f"Synthetic scale-up to {label}"
        say(f"{h}{title}: {len(articles):,} articles".strip())
        say("")
        say(table(rows[label], args.markdown, args.tracemalloc))
        say("")
        delta = kind_delta(rows[label])
        if delta:
            say(delta)
            say("")
        if position == 0 and paraphrases:
            say(f"{h}Paraphrases on the real corpus: {len(paraphrases):,} queries".strip())
            say("")
            say(
                "Queries in other words than the target's title (at most one content word "
                f"shared); every engine asked for {PARAPHRASE_LIMIT} results; a hit is any "
                "accepted URL of the query among the first k:"
            )
            say("")
            say(paraphrase_table(rows[label], paraphrases, args.markdown))
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
        delta = kind_delta(rows[label], story=True)
        if delta:
            say(delta)
            say("")
    if {"newsbot", "newsbot-words"} <= set(args.engines):
        say(f"{h}Search by meaning: what it costs".strip())
        say("")
        say(
            "newsbot (with the embedder) beside newsbot-words (the same index without it), "
            "from the rows above: build CPU seconds (time.process_time, all threads), their "
            "difference (embedding the articles), the index's vectors, memory and latency:"
        )
        say("")
        say(cost_table(rows, corpora, args.markdown))
        say("")
        verdict = p99_verdict(rows, corpora)
        if verdict:
            say(verdict)
            say("")
    say(notes_text(args, corpora))
    say("")
    say(f"Total run time: {time.perf_counter() - started:.0f} s.")
    return 0


def run(
    engine: Engine,
    articles: Sequence[Article],
    queries: Sequence[Query],
    warmup: int,
    marker: str,
    paraphrases: Sequence[Paraphrase] = (),
) -> Row:
    print(
        f"  measuring {engine.label} on {len(articles):,} articles...", file=sys.stderr, flush=True
    )
    try:
        row = measure(engine, articles, queries, warmup, paraphrases)
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
    paraphrases: Sequence[Paraphrase] = (),
    skipped: Sequence[Paraphrase] = (),
    loaded: float = 0.0,
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
    # Thread pools change latency on a small shared machine: numpy's BLAS runs the cosines.
    pools = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "RAYON_NUM_THREADS")
    threads = ", ".join(f"{v}={os.environ[v]}" for v in pools if v in os.environ)
    threads = threads or "thread pools at their defaults"
    lines = [
        f"Command: `{command}`",
        f"Machine: Python {platform.python_version()}, {platform.system()} {platform.machine()}, "
        f"{cpus} CPUs, SQLite {sqlite3.sqlite_version}, numpy {np.__version__}; "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; seed {args.seed}; {threads}.",
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
    if args.paraphrases is not None:
        several = sum(len(p.urls) > 1 for p in paraphrases)
        lines.append(
            f"Paraphrases: {len(paraphrases):,} queries from {display(args.paraphrases)} "
            f"({several} accept more than one URL)"
            + (
                f"; {len(skipped)} skipped, no accepted URL in the corpus: "
                + ", ".join(shlex.quote(p.url) for p in skipped[:3])
                + (" ..." if len(skipped) > 3 else "")
                if skipped
                else "."
            )
        )
    if set(NEEDS_MODEL) & set(args.engines):
        lines.append(
            f"Model: {MODEL}; loading it and embedding the real articles once (to page its "
            f"token table in) took {loaded:.1f} s before anything was measured."
        )
    lines += [f"Rejected: {reason}" for reason in corpus.rejected]
    return "\n".join(f"- {line}" if args.markdown else line for line in lines)


def display(path: Path) -> str:
    """``path`` relative to the repository when it is inside it."""
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(ROOT))
    return str(path)


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
        "newsbot: SearchIndex.build(articles, embedder=bot.meaning.embedder()), the shipped "
        "configuration: words and typos, with the articles nearest the query in meaning "
        "(8-bit vectors shortlisted by sign bits) joining the candidates; partial matches "
        "rank below full ones. newsbot, words only (newsbot-words): the same index built "
        "without the embedder. WordLlama cosine only (meaning): the same model's float32 "
        "vector of each article (bot.meaning.article_text) against the query's (its folded "
        "words), exact cosine over every article, the nearest first; no lexical part.",
        "Build CPU s: time.process_time around the build, so the tokenizer's threads count "
        "(set RAYON_NUM_THREADS=1 for one thread); the model is loaded before any build.",
    ]
    if args.paraphrases is not None:
        notes.append(
            f"Paraphrases: real corpus only; each engine searched every paraphrase once after "
            f"its timed queries (untimed), asking for {PARAPHRASE_LIMIT} results. hit@k: any "
            "of the query's accepted URLs (percent-decoded) among the first k; no answer: an "
            "empty result list."
        )
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

"""Soak: a long mixed run of the real bot through the loopback fake Discord.

Run by hand from the repository root (never from the tests)::

    python bench/soak.py                              # 20,000 interactions, 10,000 articles
    python bench/soak.py --interactions 2000          # a quick one
    python bench/soak.py --markdown                   # tables ready for a README

It drives, ``--concurrency`` at a time: ``/news`` (most of it, some with a topic or a source),
query autocomplete, paging clicks on earlier answers (their ``custom_id`` and message, clicked
by the user who searched), "Related" clicks (by anyone), and now and then ``/seeds reload`` by a
moderator, most of them after the driver edited, added or removed a seed file so the reload has
real work to do (and its report is checked against that). It then prints:

* errors: interactions without a callback, callbacks the fake refused, replies of the wrong
  type, the bot's "Sorry, something went wrong", reload reports that do not match the edit,
  every log record at ERROR (a handler on the root logger counts them; WARNINGs are counted
  apart) and ``fake.errors``. Target: none.
* latency per kind, as bench/interactions.py measures it (INTERACTION_CREATE sent by the fake
  to the callback's arrival at the fake), with ``/news`` answered while a reload ran apart.
* resident memory (psutil RSS) after the warm-up and at the end, each after a full garbage
  collection and ``malloc_trim`` with no interaction in flight. Target: growth under 10%.

The fake runs in this process too, and keeps every request, dispatch, gateway frame (its RESUME
replay log), interaction and message it ever saw. That is harness memory, not the bot's, so the
driver drops it as it goes: each interaction's record once answered, and every
``TimedFake.TRIM_EVERY`` interactions the request/dispatch lists, the replay log and the messages no
paging click can still target (``TimedFake.trim``). The remaining harness memory (the live
pool of messages, the latency arrays) is bounded or tiny.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import ctypes
import gc
import json
import logging
import math
import os
import random
import re
import shlex
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

# Run as a script (``python bench/soak.py``): make ``bench``, ``bot`` and ``tests`` importable.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from bench.interactions import (  # noqa: E402
    LATENCY_HEADER,
    SORRY,
    USERS,
    Corpus,
    GcWatch,
    TimedFake,
    latency_cells,
    machine_line,
    newsbot,
    prefixes,
    prepare_corpus,
    quiet_voice_warnings,
    seed_text,
    summarize,
)
from bench.queries import CORPUS_HELP, generate_queries  # noqa: E402
from bench.search import render  # noqa: E402
from bot.articles import parse_seed  # noqa: E402
from bot.memory import map_large_allocations  # noqa: E402
from tests.botharness import MOD_ROLE, MODERATOR, BotHarness  # noqa: E402
from tests.fakediscord import FakeUser  # noqa: E402

EPHEMERAL = 1 << 6
#: The share of each kind among the interactions that are not reloads.
MIX = {"news": 0.55, "autocomplete": 0.25, "page": 0.13, "related": 0.07}
#: Answers whose buttons may still be clicked; older ones are forgotten (by us and the fake).
LIVE_POOL = 200
#: What the driver does to the seed folder before each reload, in turn: most reloads change
#: something (so the bot re-plans, rewrites SQLite and rebuilds the index), some find nothing.
RELOAD_EDITS = ("edit", "add", "none", "remove", "edit", "add", "remove", "none")
FOLLOWUP_TIMEOUT = 120.0
_SUMMARY = re.compile(r"added (\d+), updated (\d+), unchanged (\d+), removed (\d+), rejected (\d+)")


# --- counting what went wrong ----------------------------------------------------------------


class LogCounter(logging.Handler):
    """Counts WARNING and ERROR records from anywhere (bot, discord.py, asyncio, the fake)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        level = "ERROR" if record.levelno >= logging.ERROR else "WARNING"
        self.counts[level] += 1
        kept = self.examples.setdefault(level, [])
        if len(kept) < 5:
            text = f"{record.name}: {record.getMessage()}"
            if record.exc_info and record.exc_info[1] is not None:
                text += f" [{type(record.exc_info[1]).__name__}: {record.exc_info[1]}]"
            kept.append(text[:300])


@dataclass
class Problems:
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def add(self, what: str, example: str) -> None:
        self.counts[what] += 1
        self.examples.setdefault(what, example[:300])


# --- the traffic -----------------------------------------------------------------------------


@dataclass
class Live:
    """A /news answer whose buttons can still be clicked."""

    owner: FakeUser
    message_id: int
    buttons: dict[str, dict[str, Any]]  # "prev" / "next" / "related" -> the component


def buttons_of(reply: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for row in (reply.get("data") or {}).get("components") or []:
        for button in row.get("components", []):
            kind = str(button.get("custom_id", "")).split(":")[1:2]
            if kind:
                found[kind[0]] = button
    return found


class Soak:
    def __init__(
        self,
        fake: TimedFake,
        harness: BotHarness,
        corpus: Corpus,
        seeds: Path,
        args: argparse.Namespace,
    ) -> None:
        self.fake = fake
        self.harness = harness
        self.args = args
        self.seeds = seeds
        self.rng = random.Random(f"newsbot-soak:{args.seed}")
        # Queries over the real articles (the scaled corpus holds them all); reused in a cycle.
        self.queries = generate_queries(corpus.real, 4_000, args.seed)
        self.typed = prefixes(self.queries, args.seed)
        self.by_url = {a.url: a for a in corpus.real}
        self.files = corpus.files  # 00001.md ... as bench.interactions.write_seeds names them
        self.live: list[Live] = []
        self.clicking: set[int] = set()  # messages out of the pool while a page click runs
        # The fake may forget every message but these: the answers a click may still target.
        # Those out for a page click count too: were one forgotten, a Related click on it
        # would make the fake invent a message holding only that button, and the next page
        # click would carry a message without its button, which discord.py ignores silently.
        fake.keep_messages = lambda: [m.message_id for m in self.live] + list(self.clicking)
        self.latency: dict[str, array.array[float]] = {}
        self.outcomes: Counter[str] = Counter()
        self.problems = Problems()
        self.reloading = False
        self.reloads = 0  # reloads asked for
        self.turn = 0  # position in RELOAD_EDITS
        self.added: list[str] = []  # seed files the soak added and may remove again
        self.record = False
        self.remaining = 0
        self.done = 0
        self.rss_trail: list[tuple[int, float]] = []

    # -- bookkeeping ----------------------------------------------------------------------------

    def note(self, kind: str, latency: float | None) -> None:
        if self.record:
            # array('d'): 8 bytes a figure, so the driver's own records barely move the RSS.
            self.latency.setdefault(kind, array.array("d")).append(
                math.nan if latency is None else latency
            )

    def problem(self, what: str, example: str) -> None:
        if self.record:
            self.problems.add(what, example)

    def outcome(self, what: str) -> None:
        if self.record:
            self.outcomes[what] += 1

    async def answer(
        self, kind: str, iid: str, during_reload: bool = False, custom_id: str | None = None
    ) -> dict[str, Any] | None:
        """Wait for the callback; note its latency; return its body if the fake accepted it."""
        got = await self.fake.answer(iid, self.args.timeout)
        label = f"{kind} (reload running)" if during_reload else kind
        if got is None:
            self.note(label, None)
            self.problem("no callback", f"{kind} {iid}{self.clicked_message_note(iid, custom_id)}")
            return None
        latency, arrival = got
        self.note(label, latency)
        if arrival.status != 200:
            self.problem(
                "callback refused by the fake", f"{kind}: {arrival.status} {arrival.reply}"
            )
            return None
        body = arrival.request.json or {}
        content = (body.get("data") or {}).get("content") or ""
        if SORRY in content:
            self.problem("'Sorry, something went wrong'", f"{kind}: {content}")
        return body

    def clicked_message_note(self, iid: str, custom_id: str | None) -> str:
        """Whether a click the bot did not answer carried its button: without it discord.py
        drops the click without a word (``ViewStore.schedule_dynamic_item_call``), a harness
        fault; with it, the bot lost the click."""
        itx = self.fake._interactions.get(iid)  # read before forget(); private to the fake
        if custom_id is None or itx is None or itx.message is None:
            return ""
        held = custom_id in json.dumps(itx.message.get("components"))
        return f" ({custom_id}; the clicked message {'held' if held else 'lacked'} that button)"

    def wrong(self, kind: str, body: dict[str, Any], expected: str) -> None:
        data = body.get("data") or {}
        shown = data.get("content") or [e.get("title") for e in data.get("embeds") or []]
        self.problem(
            "wrong reply", f"{kind}: expected {expected}, got type {body.get('type')}: {shown}"
        )

    # -- the actions ----------------------------------------------------------------------------

    def pick(self) -> str:
        if not self.reloading and self.rng.random() < 1 / self.args.reload_every:
            return "reload"
        kind = self.rng.choices(list(MIX), weights=list(MIX.values()))[0]
        if kind == "page" and not any(
            not live.buttons.get(d, {"disabled": True}).get("disabled")
            for live in self.live
            for d in ("prev", "next")
        ):
            return "news"
        if kind == "related" and not self.live:
            return "news"
        return kind

    async def news(self) -> None:
        query = self.queries[self.rng.randrange(len(self.queries))]
        options: dict[str, str] = {"query": query.query}
        target = self.by_url[query.url]
        roll = self.rng.random()
        if roll < 0.10 and target.topics:  # a topic the target has, as picked from the list
            options["topic"] = self.rng.choice(target.topics)
        elif roll < 0.15 and target.provider:
            options["source"] = target.provider
        user = self.rng.choice(USERS)
        during = self.reloading
        iid = await self.fake.slash("news", options, user=user)
        try:
            body = await self.answer("news", iid, during)
            if body is None:
                return
            data = body.get("data") or {}
            if body.get("type") != 4:
                self.wrong("news", body, "type 4")
            elif data.get("embeds"):
                self.outcome("news: a story")
                arrival = self.fake.tracked[iid].callback.result()
                message_id = int(arrival.reply["interaction"]["response_message_id"])
                self.live.append(Live(user, message_id, buttons_of(body)))
                if len(self.live) > LIVE_POOL:
                    self.live.pop(0)
            elif data.get("flags", 0) & EPHEMERAL and data.get("content"):
                self.outcome("news: no-hit reply")
            else:
                self.wrong("news", body, "an embed or an ephemeral message")
        finally:
            self.fake.forget(iid)

    async def autocomplete(self) -> None:
        typed = self.typed[self.rng.randrange(len(self.typed))]
        iid = await self.fake.autocomplete(
            "news", {"query": typed.query}, focused="query", user=self.rng.choice(USERS)
        )
        try:
            body = await self.answer("autocomplete", iid)
            if body is None:
                return
            choices = (body.get("data") or {}).get("choices")
            if body.get("type") != 8 or not isinstance(choices, list) or len(choices) > 25:
                self.wrong("autocomplete", body, "type 8 with at most 25 choices")
            else:
                self.outcome("autocomplete: some choices" if choices else "autocomplete: none")
        finally:
            self.fake.forget(iid)

    def _take(self, wanted: Sequence[str]) -> tuple[Live, str] | None:
        """A live answer with one of ``wanted`` enabled, out of the pool while it is clicked."""
        usable = [
            (i, d)
            for i, live in enumerate(self.live)
            for d in wanted
            if d in live.buttons and not live.buttons[d].get("disabled")
        ]
        if not usable:
            return None
        index, direction = self.rng.choice(usable)
        return self.live.pop(index), direction

    async def page(self) -> None:
        taken = self._take(("prev", "next"))
        if taken is None:
            return await self.news()
        live, direction = taken
        self.clicking.add(live.message_id)
        custom_id = live.buttons[direction]["custom_id"]
        iid = await self.fake.click(custom_id, message_id=live.message_id, user=live.owner)
        try:
            body = await self.answer("page", iid, custom_id=custom_id)
            if body is None:
                return
            data = body.get("data") or {}
            if body.get("type") == 7 and data.get("embeds"):
                self.outcome("page: turned")
                live.buttons = buttons_of(body)
                self.live.append(live)
            elif body.get("type") == 4 and data.get("flags", 0) & EPHEMERAL:
                # "removed since" / "expired": right when a reload removed the story.
                self.outcome(f"page: refused ({str(data.get('content'))[:40]}…)")
            else:
                self.wrong("page", body, "type 7 with an embed")
        finally:
            self.clicking.discard(live.message_id)
            self.fake.forget(iid)

    async def related(self) -> None:
        taken = self._take(("related",))
        if taken is None:
            return await self.news()
        live, _ = taken
        self.live.append(live)  # a Related click does not change the message: back at once
        custom_id = live.buttons["related"]["custom_id"]
        iid = await self.fake.click(
            custom_id, message_id=live.message_id, user=self.rng.choice(USERS)
        )
        try:
            body = await self.answer("related", iid, custom_id=custom_id)
            if body is None:
                return
            data = body.get("data") or {}
            embeds = data.get("embeds") or []
            ephemeral = body.get("type") == 4 and data.get("flags", 0) & EPHEMERAL
            if ephemeral and embeds and str(embeds[0].get("title", "")).startswith("Related to:"):
                self.outcome("related: shown")
            elif ephemeral and data.get("content"):
                self.outcome(f"related: refused ({str(data.get('content'))[:40]}…)")
            else:
                self.wrong("related", body, "an ephemeral 'Related to:' embed")
        finally:
            self.fake.forget(iid)

    def edit_seeds(self) -> dict[str, int]:
        """Change the seed folder for the next reload; returns the counts its report must show."""
        edit = RELOAD_EDITS[self.turn % len(RELOAD_EDITS)]
        self.turn += 1
        if edit == "remove" and not self.added:
            edit = "none"
        if edit == "edit":
            path = self.seeds / f"{self.rng.randint(1, self.files):05d}.md"
            article = parse_seed(path.read_bytes(), str(path))
            # A longer title: the size changes, so the loader cannot take the file as unchanged.
            changed = replace(article, title=f"{article.title} (rev {self.reloads})"[:250])
            path.write_text(seed_text(changed), encoding="utf-8")
            return {"updated": 1}
        if edit == "add":
            source = self.rng.choice(list(self.by_url.values()))
            name = f"soak-{self.reloads:05d}.md"
            new = replace(
                source,
                url=f"https://soak.example/{self.reloads}",
                title=f"Soak story {self.reloads}: {source.title}"[:250],
            )
            (self.seeds / name).write_text(seed_text(new), encoding="utf-8")
            self.added.append(name)
            return {"added": 1}
        if edit == "remove":
            (self.seeds / self.added.pop(0)).unlink()
            return {"removed": 1}
        return {}

    async def reload(self) -> None:
        self.reloading = True
        try:
            expected = self.edit_seeds()
            self.reloads += 1
            iid = await self.fake.slash(
                "seeds", {}, subcommand="reload", user=MODERATOR, roles=[MOD_ROLE]
            )
            try:
                body = await self.answer("reload: deferred", iid)
                if body is None:
                    return
                if body.get("type") != 5:
                    self.wrong("reload", body, "type 5 (deferred)")
                    return
                got = await self.fake.followup(iid, FOLLOWUP_TIMEOUT)
                self.note("reload: report", None if got is None else got[0])
                if got is None:
                    self.problem("reload: no report", iid)
                    return
                self.check_report(got[1].request.json or {}, expected)
            finally:
                self.fake.forget(iid)
        finally:
            self.reloading = False

    def check_report(self, message: dict[str, Any], expected: dict[str, int]) -> None:
        embeds = message.get("embeds") or []
        text = str(embeds[0].get("description", "")) if embeds else str(message.get("content"))
        if SORRY in text:
            self.problem("'Sorry, something went wrong'", f"reload: {text}")
            return
        found = _SUMMARY.search(text)
        if found is None:
            self.problem("reload: unexpected report", text)
            return
        counts = dict(
            zip(
                ("added", "updated", "unchanged", "removed", "rejected"),
                map(int, found.groups()),
                strict=True,
            )
        )
        want = {k: expected.get(k, 0) for k in ("added", "updated", "removed", "rejected")}
        if any(counts[k] != v for k, v in want.items()):
            self.problem("reload: report does not match the edit", f"expected {want}: {text}")
        else:
            self.outcome(f"reload: {'+'.join(expected) or 'nothing changed'}, as expected")

    # -- running ----------------------------------------------------------------------------

    async def worker(self) -> None:
        actions = {
            "news": self.news,
            "autocomplete": self.autocomplete,
            "page": self.page,
            "related": self.related,
            "reload": self.reload,
        }
        while self.remaining > 0:
            self.remaining -= 1
            await actions[self.pick()]()
            self.done += 1
            if self.record and self.done % max(1, self.args.interactions // 10) == 0:
                self.rss_trail.append((self.done, rss_mb()))

    async def run(self, count: int, *, record: bool) -> float:
        self.record, self.remaining, self.done = record, count, 0
        started = time.perf_counter()
        await asyncio.gather(*(self.worker() for _ in range(self.args.concurrency)))
        return time.perf_counter() - started

    async def settle_reload(self) -> None:
        """One reload that edits a file, so the index is rebuilt once before the baseline."""
        self.record = False
        while RELOAD_EDITS[self.turn % len(RELOAD_EDITS)] != "edit":
            self.turn += 1
        await self.reload()


# --- memory ------------------------------------------------------------------------------------


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / (1024 * 1024)


def release_memory() -> None:
    """Full collection, then glibc hands free heap pages back (so RSS shows what is held)."""
    gc.collect()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


@dataclass
class Snapshot:
    rss_mb: float
    objects: int
    tasks: int
    views: int  # discord.py's ViewStore: message-bound views and dispatchable items
    db_mb: float
    # What a leak would be made of: live objects by type, pending tasks by coroutine.
    types: Counter[str] = field(default_factory=Counter)
    coroutines: Counter[str] = field(default_factory=Counter)

    @staticmethod
    async def take(soak: Soak) -> Snapshot:
        soak.fake.trim()
        await asyncio.sleep(0.2)  # let the bot finish anything it still had to send
        release_memory()
        bot: Any = soak.harness.bot
        store = getattr(getattr(bot, "_connection", None), "_view_store", None)
        views = sum(len(getattr(store, n, ())) for n in ("_views", "_synced_message_views"))
        database = Path(soak.harness.config.database)
        db_bytes = sum(
            p.stat().st_size for p in database.parent.glob(database.name + "*") if p.is_file()
        )
        objects = gc.get_objects()
        tasks = asyncio.all_tasks()
        return Snapshot(
            rss_mb(),
            len(objects),
            len(tasks),
            views,
            db_bytes / 2**20,
            Counter(type(o).__qualname__ for o in objects),
            Counter(getattr(t.get_coro(), "__qualname__", "?") for t in tasks),
        )


def growth_text(before: Counter[str], after: Counter[str], top: int = 6) -> str:
    grown = sorted(((after[k] - before[k], k) for k in after), reverse=True)
    shown = [f"{k} {n:+,}" for n, k in grown[:top] if n > 0]
    return ", ".join(shown) or "none"


# --- the run -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interactions", type=int, default=20_000, help="measured interactions")
    parser.add_argument("--articles", type=int, default=10_000, help="corpus size (scaled up)")
    parser.add_argument("--corpus", type=Path, action="append", metavar="DIR", help=CORPUS_HELP)
    parser.add_argument("--concurrency", type=int, default=8, help="interactions in flight")
    parser.add_argument(
        "--reload-every", type=int, default=400, help="mean interactions between /seeds reloads"
    )
    parser.add_argument("--warmup", type=int, default=500, help="unmeasured interactions first")
    parser.add_argument("--seed", type=int, default=1, help="for the corpus and the traffic")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait a callback")
    parser.add_argument("--markdown", action="store_true", help="markdown headings and tables")
    args = parser.parse_args(argv)
    if min(args.interactions, args.articles, args.concurrency, args.reload_every) < 1:
        parser.error("--interactions, --articles, --concurrency, --reload-every must be >= 1")
    return args


async def soak(args: argparse.Namespace) -> tuple[str, bool]:
    h = "## " if args.markdown else ""
    bullet = "- " if args.markdown else ""
    command = shlex.join(["python", "bench/soak.py", *sys.argv[1:]])
    print(f"{bullet}Command: `{command}`", flush=True)
    load_at_start = os.getloadavg()[0]
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet_voice_warnings()
    counter = LogCounter()
    logging.getLogger().addHandler(counter)

    with tempfile.TemporaryDirectory(prefix="newsbot-soak-") as tmp:
        folder = Path(tmp)
        seeds = folder / "seeds"
        corpus = prepare_corpus(seeds, args.articles, args.seed, args.corpus)
        async with newsbot(folder, seeds) as (fake, harness):
            driver = Soak(fake, harness, corpus, seeds, args)
            warm_s = await driver.run(args.warmup, record=False)
            await driver.settle_reload()
            before = await Snapshot.take(driver)
            warm_counts = dict(counter.counts)
            print(
                f"warmed up ({args.warmup} interactions, {warm_s:.1f} s); "
                f"RSS {before.rss_mb:.1f} MB",
                file=sys.stderr,
            )
            counter.counts.clear()
            counter.examples.clear()
            with GcWatch() as gcs:
                wall = await driver.run(args.interactions, record=True)
            driver.record = False
            after = await Snapshot.take(driver)
            fake_errors = list(fake.errors)
        # After the bot stopped: a shutdown that logs errors is a problem too.

    problems = driver.problems
    if counter.counts["ERROR"]:
        problems.counts["log records at ERROR"] = counter.counts["ERROR"]
        problems.examples["log records at ERROR"] = " | ".join(counter.examples["ERROR"][:2])
    if fake_errors:
        problems.counts["fake.errors"] = len(fake_errors)
        problems.examples["fake.errors"] = repr(fake_errors[0])[:300]

    growth = 100 * (after.rss_mb - before.rss_mb) / before.rss_mb
    ok = not problems.counts and growth < 10.0
    measured = sum(len(v) for k, v in driver.latency.items() if k != "reload: report")
    lines = [
        f"{bullet}Machine: {machine_line(load_at_start)}.",
        f"{bullet}Corpus: {len(corpus.real):,} real articles scaled to {corpus.files:,} "
        f"seed files. Traffic: {args.interactions:,} interactions ({measured:,} callbacks "
        f"measured) in {wall:.1f} s ({args.interactions / wall:,.0f}/s), {args.concurrency} in "
        f"flight, after a warm-up of {args.warmup} and one index-rebuilding reload; "
        f"{driver.reloads} reloads in all; mix "
        + ", ".join(f"{k} {v:.0%}" for k, v in MIX.items())
        + f", a reload about every {args.reload_every}.",
        f"{bullet}Cooldown off (cooldown_seconds=0); production digest settings; "
        f"WARNING records during the warm-up: {warm_counts.get('WARNING', 0)}, "
        f"ERROR: {warm_counts.get('ERROR', 0)}.",
        "",
        f"{h}Errors (target: none)",
        "",
    ]
    kinds = [
        "no callback",
        "callback refused by the fake",
        "wrong reply",
        "'Sorry, something went wrong'",
        "reload: no report",
        "reload: unexpected report",
        "reload: report does not match the edit",
        "log records at ERROR",
        "fake.errors",
    ]
    kinds += [k for k in problems.counts if k not in kinds]
    body = [[k, str(problems.counts.get(k, 0))] for k in kinds]
    body.append(["(log records at WARNING, not counted)", str(counter.counts["WARNING"])])
    lines.append(render(("error", "count"), body, args.markdown))
    # Examples under the table: one long text in a column would stretch every row.
    examples = [(k, problems.examples[k]) for k in kinds if k in problems.examples]
    examples += [("WARNING", w) for w in counter.examples.get("WARNING", [])]
    if examples:
        lines += ["", "First examples:"]
        lines += [f"{bullet}{kind}: {text}" for kind, text in examples]

    lines += ["", f"{h}Latency per kind (ms)", ""]
    order = [
        "news",
        "news (reload running)",
        "autocomplete",
        "page",
        "related",
        "reload: deferred",
        "reload: report",
    ]
    order += [k for k in driver.latency if k not in order]
    rows = [[k, *latency_cells(summarize(driver.latency[k]))] for k in order if k in driver.latency]
    lines.append(render(("kind", *LATENCY_HEADER), rows, args.markdown))

    lines += ["", f"{h}Outcomes", ""]
    lines.append(
        render(
            ("outcome", "count"),
            [[k, f"{v:,}"] for k, v in sorted(driver.outcomes.items())],
            args.markdown,
        )
    )

    lines += ["", f"{h}Memory (target: RSS growth under 10%)", ""]
    mem = [
        [
            "after warm-up",
            f"{before.rss_mb:.1f}",
            f"{before.objects:,}",
            str(before.tasks),
            str(before.views),
            f"{before.db_mb:.1f}",
        ],
        [
            "at the end",
            f"{after.rss_mb:.1f}",
            f"{after.objects:,}",
            str(after.tasks),
            str(after.views),
            f"{after.db_mb:.1f}",
        ],
        [
            "growth",
            f"{growth:+.1f}%",
            f"{after.objects - before.objects:+,}",
            f"{after.tasks - before.tasks:+d}",
            f"{after.views - before.views:+d}",
            f"{after.db_mb - before.db_mb:+.1f}",
        ],
    ]
    lines.append(
        render(
            ("point", "RSS MB", "Python objects", "asyncio tasks", "stored views", "SQLite MB"),
            mem,
            args.markdown,
        )
    )
    trail = ", ".join(f"{n:,}: {mb:.0f}" for n, mb in driver.rss_trail)
    lines += [
        "",
        f"{bullet}RSS along the way (MB, no collection forced): {trail or 'n/a'}.",
        f"{bullet}Both memory points: no interaction in flight, the fake's records trimmed, "
        "gc.collect() and malloc_trim(0). The bot, the fake and this driver share the process; "
        "the fake's request/dispatch lists, replay log and old messages are cleared every "
        f"{TimedFake.TRIM_EVERY} interactions (harness memory, not the bot's).",
        f"{bullet}Object types that grew the most: {growth_text(before.types, after.types)}; "
        f"tasks by coroutine that grew: {growth_text(before.coroutines, after.coroutines)}.",
        f"{bullet}Full garbage collections during the measured run: {len(gcs.full_ms)}"
        + (
            f", {sum(gcs.full_ms):.0f} ms in all, the longest {max(gcs.full_ms):.0f} ms."
            if gcs.full_ms
            else "."
        ),
        *(
            [
                f'{bullet}"Can\'t keep up ... websocket is 41.3s behind" is not a stall: the '
                "fake acknowledges a heartbeat before discord.py's keep-alive thread has noted "
                "when it sent it, so discord.py measures from the previous heartbeat, one "
                "interval (41.25 s) earlier (Rapptz/discord.py pull request #10448)."
            ]
            if any("Can't keep up" in e for e in counter.examples.get("WARNING", []))
            else []
        ),
        f"{bullet}The SQLite file grows by design: every /news answer with a story saves its "
        "hits for the buttons, kept 30 days.",
        "",
        f"{bullet}Verdict: {'PASS' if ok else 'FAIL'} (errors: {sum(problems.counts.values())}, "
        f"RSS growth {growth:+.1f}%).",
    ]
    return "\n".join(lines), ok


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # The bot runs in this process: set its memory up as `newsbot run` does (bot.cli.main).
    # Without it glibc's moving mmap threshold grows the heap with every index version, and
    # the memory figure would be of a process no operator runs.
    map_large_allocations()
    text, ok = asyncio.run(soak(args))
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

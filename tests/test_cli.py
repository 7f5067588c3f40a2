"""The ``newsbot`` command line, run for real: ``python -m bot`` in a subprocess.

Each test works in its own temporary folder holding a copy of the shipped seeds, with
NEWSBOT_CONFIG and DISCORD_TOKEN removed from the environment, so nothing here depends on the
developer's setup or touches the repository's own database. Invocations that do not depend on
each other run concurrently (a subprocess costs ~0.4 s, mostly imports), which keeps the file
well under 20 s.

Every invocation goes through :func:`newsbot`/:func:`newsbot_all`, which assert that no
"Traceback" appears in stdout or stderr: the CLI's promise is one-line errors, always.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.botharness import SHIPPED_SEEDS

REPO = Path(__file__).resolve().parents[1]
DB_NAME = "newsbot.sqlite3"  # the default database, relative to the working directory
TIMEOUT = 60  # seconds; a hung CLI must fail the test, not hang the suite


@dataclass(frozen=True)
class Seed:
    """What the CLI must show for one shipped seed (written out by hand, not parsed, so a
    parser regression cannot make the expectations agree with a wrong output)."""

    file: str
    title: str
    url: str
    provider: str
    domain: str
    published: str  # as the text output shows it: 'YYYY-MM-DD HH:MM' UTC
    excerpt_start: str
    related_title: str  # the first related story
    related_url: str
    related_provider: str


SEEDS = (
    Seed(
        "2020-06-11-amazon-and-microsoft-pause-police-facial-recognition-and-demand.md",
        "Amazon and Microsoft pause police facial recognition and demand regulation",
        "https://qz.com/1867967/amazon-and-microsoft-pause-police-facial-recognition/",
        "Quartz",
        "qz.com",
        "2020-06-11 21:57",
        "In the immediate term, Amazon’s moratorium will have a greater impact",
        "A Bill in Congress Would Limit Uses of Facial Recognition",
        "https://www.wired.com/story/bill-congress-limit-uses-facial-recognition/",
        "Wired",
    ),
    Seed(
        "2020-06-11-amazon-wont-let-police-use-its-facial-recognition-tech.md",
        "Amazon Won't Let Police Use Its Facial Recognition Tech for One Year",
        "https://www.wired.com/story/amazon-facial-recognition-police-one-year-ban-rekognition/",
        "Wired",
        "wired.com",
        "2020-06-11 01:06",
        "Amid nationwide protests over police brutality, the company is stopping",
        "Clearview AI still backs facial recognition, despite competitors' concerns",
        "https://www.cnet.com/news/clearview-ai-still-backs-facial-recognition-despite-competitors-concerns/",
        "CNET",
    ),
    Seed(
        "2020-06-11-microsoft-declines-to-sell-facial-recognition-tech-to-police.md",
        "Microsoft declines to sell facial recognition tech to police",
        "https://www.reuters.com/article/us-microsoft-facial-recognition/"
        "microsoft-declines-to-sell-facial-recognition-tech-to-police-idUSKBN23I2T6",
        "Reuters",
        "reuters.com",
        "2020-06-11 17:56",
        "Microsoft Corp said on Thursday it would not sell its facial-recognition technology",
        "IBM stops work on facial recognition over human rights concerns",
        "https://www.engadget.com/ibm-exits-facial-recognition-business-012915316.html",
        "Engadget",
    ),
    Seed(
        "2020-06-12-amazon-ibm-and-microsoft-wont-say-which-police-departments.md",
        "Amazon, IBM, And Microsoft Won’t Say Which Police Departments Used Their Facial "
        "Recognition Technology",
        "https://www.buzzfeednews.com/article/carolinehaskins1/"
        "amazon-ibm-and-microsoft-wont-say-which-police-departments",
        "BuzzFeed News",
        "buzzfeednews.com",
        "2020-06-12 19:03",
        "IBM, Amazon, and Microsoft pledged to restrict or eliminate law enforcement’s access",
        "A Bill in Congress Would Limit Uses of Facial Recognition",
        "https://www.wired.com/story/bill-congress-limit-uses-facial-recognition/",
        "Wired",
    ),
    Seed(
        "2020-06-17-congress-cops-and-facial-recognition-amazons-pause-puts-the.md",
        "Congress, cops and facial recognition: Amazon's pause puts the pressure on",
        "https://www.cnet.com/news/"
        "congress-cops-and-facial-recognition-amazons-pause-puts-the-pressure-on/",
        "CNET",
        "cnet.com",
        "2020-06-17 12:03",
        "Tech giants are starting to revisit their facial recognition programs",
        "Equitable tech: Companies pause facial recognition, but major questions remain",
        "https://www.techrepublic.com/article/"
        "equitable-tech-companies-pause-facial-recognition-but-major-questions-remain/",
        "TechRepublic",
    ),
)
BY_TITLE = {s.title: s for s in SEEDS}
BY_URL = {s.url: s for s in SEEDS}
QUARTZ, WIRED, REUTERS, BUZZFEED, CNET = SEEDS  # in file-name order

NO_TOKEN = (
    "newsbot: error: no Discord bot token: set DISCORD_TOKEN in the environment "
    "or put DISCORD_TOKEN=... in a .env file in the working directory"
)
NONSENSE = "qzxwvj kkqzzv"  # matches nothing, not even fuzzily


def report(
    added: int = 0, updated: int = 0, unchanged: int = 0, removed: int = 0, rejected: int = 0
) -> str:
    return (
        f"added {added}, updated {updated}, unchanged {unchanged}, "
        f"removed {removed}, rejected {rejected}"
    )


def would(load: int = 0, rejected: int = 0) -> str:
    """``newsbot check``'s summary: what a load would do (check itself writes nothing)."""
    return f"{load} would load, {rejected} rejected (nothing written)"


# --- running the CLI ------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    status: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    def json(self) -> Any:
        return json.loads(self.out)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NEWSBOT_CONFIG", "DISCORD_TOKEN")}
    # The package is importable from the repository whether or not it was pip-installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    # Titles hold curly quotes; the child must write UTF-8 whatever the runner's locale.
    env["PYTHONUTF8"] = "1"
    return env


def _start(args: Sequence[str], cwd: Path, *, stdin: bool = False) -> subprocess.Popen[bytes]:
    # A fresh interpreter each time, exactly as a user's shell would start it.
    return subprocess.Popen(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=_env(),
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _finish(args: Sequence[str], proc: subprocess.Popen[bytes], stdin: str | None = None) -> Run:
    data = stdin.encode() if stdin is not None else None
    out, err = proc.communicate(data, timeout=TIMEOUT)
    run = Run(tuple(args), proc.returncode, out.decode(), err.decode())
    assert "Traceback" not in run.out + run.err, run
    return run


def newsbot(*args: str, cwd: Path, stdin: str | None = None) -> Run:
    return _finish(args, _start(args, cwd, stdin=stdin is not None), stdin)


def newsbot_all(
    calls: Sequence[Sequence[str]], cwd: Path, *, stdin: str | None = None
) -> list[Run]:
    """Run independent invocations at once (none may write what another one reads); each
    gets ``stdin`` if given. Collecting them one by one cannot deadlock: a child whose
    output pipe is full just waits for its turn."""
    procs = [(call, _start(call, cwd, stdin=stdin is not None)) for call in calls]
    return [_finish(call, proc, stdin) for call, proc in procs]


def one_error_line(run: Run) -> str:
    """The CLI's usage-error contract: exit 2, nothing on stdout, one line on stderr."""
    assert run.status == 2, run
    assert run.out == "", run
    lines = run.err.splitlines()
    assert len(lines) == 1, run
    assert lines[0].startswith("newsbot: error: "), run
    return lines[0]


# --- fixtures -------------------------------------------------------------------------------


def seed_text(url: str, title: str, *, topics: Sequence[str] = ("Robotics",)) -> str:
    """A minimal valid seed file (JSON strings are valid YAML double-quoted strings)."""
    return "\n".join(
        [
            "---",
            f"title: {json.dumps(title)}",
            'excerpt: "A story written for the CLI tests."',
            "publishedDateTime: 2021-03-04T05:06:00Z",
            f"webUrl: {json.dumps(url)}",
            "provider:",
            "  name: Example News",
            "  domain: example.com",
            "topics:",
            *(f"  - {json.dumps(t)}" for t in topics),
            "---",
            "",
        ]
    )


def fingerprint(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``folder``: (mtime_ns, sha256); to prove a command wrote nothing."""
    return {
        str(p.relative_to(folder)): (
            p.stat().st_mtime_ns,
            hashlib.sha256(p.read_bytes()).hexdigest(),
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh working directory: a copy of the shipped seeds, no database, no .env."""
    shutil.copytree(SHIPPED_SEEDS, tmp_path / "seeds")
    return tmp_path.resolve()  # the loader reports resolved paths


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One loaded working directory shared by the read-only tests (search, digest)."""
    folder = tmp_path_factory.mktemp("loaded").resolve()
    shutil.copytree(SHIPPED_SEEDS, folder / "seeds")
    run = newsbot("load", cwd=folder)
    assert run.status == 0, run
    before = fingerprint(folder)
    yield folder
    # The tests sharing it must really be read-only, or their order would matter.
    assert fingerprint(folder) == before


def test_the_shipped_seeds_are_the_ones_these_tests_describe() -> None:
    assert sorted(p.name for p in SHIPPED_SEEDS.iterdir()) == sorted(s.file for s in SEEDS)


# --- search ---------------------------------------------------------------------------------


def test_search_on_a_fresh_database_creates_it_loads_the_seeds_and_shows_the_top_hit(
    home: Path,
) -> None:
    assert not (home / DB_NAME).exists()

    run = newsbot("search", "facial recognition", cwd=home)

    assert run.status == 0, run
    assert run.err == ""  # first use loads quietly: the output is the answer
    with sqlite3.connect(home / DB_NAME) as db:
        assert db.execute("SELECT count(*) FROM articles").fetchone() == (5,)
    lines = run.lines
    # The top hit, the way Discord shows it: title, link, source and date, excerpt, related.
    top = BY_TITLE[lines[0]]
    assert lines[1] == top.url
    assert lines[2] == f"{top.provider} · {top.published} UTC"
    assert lines[3] == ""
    assert lines[4].startswith(top.excerpt_start)
    related = lines.index("Related:")
    assert (
        lines[related + 1] == f"  {top.related_title} <{top.related_url}> — {top.related_provider}"
    )
    assert lines[related + 1 :].index("") > 1  # more than one related link listed
    # The footer: domain, topics, and where this hit stands among all of them.
    more = lines.index("More results:")
    footer = lines[more - 2]
    assert footer.startswith(f"{top.domain} · Computer Vision, AI"), footer
    assert footer.endswith(" · 1 of 5"), footer
    # Then every other seed, numbered, with source, date and link.
    listed = lines[more + 1 :]
    assert len(listed) == 2 * 4
    others = [s for s in SEEDS if s is not top]
    for number, (entry, link) in enumerate(zip(listed[::2], listed[1::2], strict=True), start=2):
        seed = next(s for s in others if entry.startswith(f"{number:>3}. {s.title} ("))
        assert entry == f"{number:>3}. {seed.title} ({seed.provider}, {seed.published[:10]})"
        assert link == f"     {seed.url}"
        others.remove(seed)
    assert others == []


def test_search_json_has_the_hit_fields_and_honours_limit_topic_and_provider(loaded: Path) -> None:
    full, limited, topic, wired, cnet, no_topic = runs = newsbot_all(
        [
            ["search", "--json", "facial recognition"],
            ["search", "--json", "--limit", "2", "facial recognition"],
            ["search", "--json", "--topic", "natural language processing", "police"],
            ["search", "--json", "--provider", "wired", "facial recognition"],
            ["search", "--json", "--provider", "cnet.com", "facial recognition"],
            ["search", "--json", "--topic", "Blockchain", "facial recognition"],
        ],
        cwd=loaded,
    )
    for run in runs:
        assert run.status == 0, run

    hits = full.json()
    assert isinstance(hits, list)
    assert sorted(h["url"] for h in hits) == sorted(BY_URL)
    for hit in hits:
        seed = BY_URL[hit["url"]]
        assert hit["title"] == seed.title
        assert hit["provider"] == seed.provider
        assert datetime.fromisoformat(hit["published"]).strftime("%Y-%m-%d %H:%M") == seed.published
        assert isinstance(hit["score"], int | float)
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)  # best first

    assert limited.json() == hits[:2]  # --limit cuts the same ranking, it does not re-rank
    # The only seed tagged "Natural Language Processing" (topics match whatever the case).
    assert [h["url"] for h in topic.json()] == [WIRED.url]
    assert [h["url"] for h in wired.json()] == [WIRED.url]  # provider by name...
    assert [h["url"] for h in cnet.json()] == [CNET.url]  # ...or by domain
    assert no_topic.json() == []


def test_search_stdin_answers_one_line_per_query_in_order(loaded: Path) -> None:
    queries = f"facial recognition\n{NONSENSE}\ncongress cops pressure\n"

    as_json, as_text, unmatched = newsbot_all(
        [
            ["search", "--stdin", "--json", "--limit", "3"],
            ["search", "--stdin"],
            ["search", NONSENSE],  # ignores its stdin
        ],
        cwd=loaded,
        stdin=queries,
    )

    assert as_json.status == 0, as_json
    first, nothing, third = (json.loads(line) for line in as_json.lines)  # exactly 3 lines
    assert len(first) == 3 and {h["url"] for h in first} <= set(BY_URL)
    assert nothing == []
    assert [h["url"] for h in third] == [CNET.url]  # all words must match: only one does
    assert as_text.status == 0, as_text
    assert len(as_text.lines) == 3
    assert as_text.lines[1] == "(no hits)"
    assert as_text.lines[2] == CNET.title
    # A single query with no hit says so in words (and may suggest close titles).
    assert unmatched.status == 0, unmatched
    assert unmatched.lines[0] == f"No article matches '{NONSENSE}'."


def test_a_closed_stdout_ends_the_command_quietly(loaded: Path) -> None:
    # Like `newsbot search ... | head -1`: the reader goes away while output is still coming.
    streaming = _start(["search", "--stdin", "--json"], loaded, stdin=True)
    assert streaming.stdin is not None and streaming.stdout is not None
    streaming.stdin.write(b"facial recognition\n" * 1000)  # ~3 MB of answers: far over a pipe
    streaming.stdin.close()
    # The reader is gone before the child even starts: it fails on the final flush instead.
    closed_early = _start(["search", "facial recognition"], loaded)
    assert closed_early.stdout is not None
    closed_early.stdout.close()

    assert json.loads(streaming.stdout.readline())  # a first answer arrives...
    streaming.stdout.close()  # ...then the reader hangs up

    for proc in (streaming, closed_early):
        assert proc.stderr is not None
        with proc.stderr:  # closed here: `pytest -W default` reports a pipe left open
            err = proc.stderr.read().decode()
        assert proc.wait(timeout=TIMEOUT) == 141, err  # 128 + SIGPIPE, as a shell reports it
        assert err == ""


# --- load -----------------------------------------------------------------------------------


def test_load_reports_then_reloads_incrementally(home: Path) -> None:
    first = newsbot("load", cwd=home)
    assert (first.status, first.out) == (0, report(added=5) + "\n")
    again = newsbot("load", cwd=home)
    assert (again.status, again.out) == (0, report(unchanged=5) + "\n")

    # A file named directly is loaded whatever the folder; the folder's reload keeps it.
    extra = home / "extra.md"
    extra.write_text(seed_text("https://example.com/robots", "Robots learn to fold laundry"))
    single = newsbot("load", "extra.md", cwd=home)
    assert (single.status, single.out) == (0, report(added=1) + "\n")
    folder = newsbot("load", "seeds", cwd=home)
    assert (folder.status, folder.out) == (0, report(unchanged=5) + "\n")

    # A file removed from the folder is removed from the store when the folder is reloaded.
    (home / "seeds" / CNET.file).unlink()
    removed = newsbot("load", cwd=home)
    assert (removed.status, removed.out) == (0, report(unchanged=4, removed=1) + "\n")
    # A path that does not exist is rejected by name and removes nothing: the search that
    # runs alongside still finds everything (it only reads; WAL lets both proceed).
    missing, found = newsbot_all(
        [["load", "nowhere"], ["search", "--stdin", "--json"]],
        cwd=home,
        stdin="facial recognition\nrobots laundry\n",
    )
    assert missing.status == 1, missing
    assert missing.lines == [report(rejected=1), "  rejected: nowhere: no such file or folder"]
    seeds, robots = (json.loads(line) for line in found.lines)
    assert sorted(h["url"] for h in seeds) == sorted(s.url for s in SEEDS if s is not CNET)
    assert [h["url"] for h in robots] == ["https://example.com/robots"]


def test_a_load_does_not_import_the_search_index(home: Path) -> None:
    # A load writes articles; the bots build the index. numpy, the index and the model are a
    # third of a no-change `newsbot load` (about 0.1 s and 90 MB), so they stay out of it.
    assert newsbot("load", cwd=home).status == 0
    traced = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bot", "load"],
        cwd=home,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert traced.returncode == 0, traced.stderr
    assert traced.stdout == report(unchanged=5) + "\n"
    imported = {line.rsplit("|", 1)[-1].strip() for line in traced.stderr.splitlines()}
    assert "bot.loader" in imported  # the trace is there, and lists what the load imports
    assert not imported & {"numpy", "bot.search", "bot.segments", "bot.meaning", "discord"}


def test_a_bad_seed_file_is_named_with_its_reason_and_the_others_still_load(home: Path) -> None:
    bad = home / "seeds" / "2020-07-01-notes.md"
    bad.write_text("Remember to write the front matter.\n")

    run = newsbot("load", cwd=home)

    assert run.status == 1, run
    assert run.lines == [
        report(added=5, rejected=1),
        f"  rejected: {bad}:1: no YAML front matter: the file must start with a '---' line",
    ]
    found = newsbot("search", "--json", "facial recognition", cwd=home)
    assert sorted(h["url"] for h in found.json()) == sorted(BY_URL)
    # Still rejected (and still exit 1) on the next load, though the file is not parsed again.
    again = newsbot("load", cwd=home)
    assert again.status == 1, again
    assert again.lines[0] == report(unchanged=5, rejected=1)
    assert again.lines[1].startswith(f"  rejected: {bad}:1: no YAML front matter")


# --- check ----------------------------------------------------------------------------------


def test_check_reports_like_load_and_writes_nothing(home: Path) -> None:
    good, other_db = newsbot_all([["check"], ["--db", "elsewhere.sqlite3", "check"]], cwd=home)
    assert (good.status, good.out) == (0, would(load=5) + "\n")
    assert (other_db.status, other_db.out) == (0, would(load=5) + "\n")
    assert sorted(p.name for p in home.iterdir()) == ["seeds"]  # no database was created

    # After a real load, check compares with an empty store (not the database) and changes
    # nothing: not the database, not its WAL, not the seeds.
    assert newsbot("load", cwd=home).status == 0
    bad = home / "seeds" / "2020-07-01-notes.md"
    bad.write_text("---\ntitle: [unclosed\n---\n")
    before = fingerprint(home)

    folder, single = newsbot_all([["check"], ["check", str(bad)]], cwd=home)

    assert folder.status == 1, folder
    assert folder.lines[0] == would(load=5, rejected=1)
    assert folder.lines[1] == f"  rejected: {bad}:3: YAML error: did not find expected ',' or ']'"
    assert single.status == 1, single
    assert single.lines == [would(rejected=1), folder.lines[1]]
    assert fingerprint(home) == before


# --- digest ---------------------------------------------------------------------------------

# select_digest's order: quality (91, 89, 87, 87, 73), ties newest first.
DIGEST_ORDER = [WIRED, REUTERS, CNET, QUARTZ, BUZZFEED]


def test_digest_previews_the_new_stories_best_first(loaded: Path) -> None:
    text, as_json, later, later_json = newsbot_all(
        [
            ["digest"],
            ["digest", "--json"],
            ["digest", "--since", "2999-01-01"],
            ["digest", "--json", "--since", "2999-01-01"],
        ],
        cwd=loaded,
    )

    assert text.status == 0, text
    lines = text.lines
    assert lines[0].startswith("News digest — ")
    stories = [line for line in lines if " <https://" in line]
    assert len(stories) == 5
    for line, seed in zip(stories, DIGEST_ORDER, strict=True):
        assert line.startswith(f"{seed.title} <{seed.url}> — {seed.provider} · "), line
    assert lines[-1] == "Times in UTC"

    assert as_json.status == 0, as_json
    payload = as_json.json()
    assert isinstance(payload, dict)
    # A first digest covers the last day, as the bot's does.
    since = datetime.fromisoformat(payload["since"])
    assert timedelta(hours=23) < datetime.now(UTC) - since < timedelta(hours=25)
    assert payload["rest"] == 0
    assert [s["url"] for s in payload["stories"]] == [s.url for s in DIGEST_ORDER]
    assert payload["stories"][0]["title"] == WIRED.title

    # Stories count as new when first *loaded*, so a date after the load leaves nothing.
    assert (later.status, later.out) == (
        0,
        "Nothing new for the digest since 2999-01-01 00:00 UTC.\n",
    )
    assert later_json.json() == {"since": "2999-01-01T00:00:00+00:00", "rest": 0, "stories": []}


def test_digest_of_an_empty_collection_says_nothing_new(tmp_path: Path) -> None:
    (tmp_path / "seeds").mkdir()
    run = newsbot("digest", cwd=tmp_path)
    assert run.status == 0
    assert run.out.startswith("Nothing new for the digest since ")


# --- usage and setup errors -----------------------------------------------------------------


def test_usage_errors_are_one_line_exit_2_and_touch_nothing(home: Path) -> None:
    notes = home / "notes.txt"
    notes.write_text("not a database\n")
    (home / "bad.yaml").write_text("serch:\n  limit: 2\n")
    before = fingerprint(home)
    calls: list[tuple[list[str], str]] = [
        (["search", "--bogus", "x"], "newsbot: error: unrecognized arguments: --bogus"),
        ([], "newsbot: error: the following arguments are required: COMMAND"),
        (["--config", "missing.yaml", "search", "x"], "missing.yaml: config file not found"),
        (["--config", "bad.yaml", "load"], "bad.yaml: unknown key 'serch'"),
        (["--db", "notes.txt", "search", "x"], "notes.txt: not a newsbot database"),
        (["--db", "notes.txt", "load"], "notes.txt: not a newsbot database"),
        (["--db", "seeds", "digest"], "seeds: cannot open"),  # a folder
        (["search"], "newsbot: error: search needs a QUERY (or --stdin)"),
        (["search", "   "], "newsbot: error: search needs a QUERY (or --stdin)"),
        (["search", "--stdin", "x"], "newsbot: error: give a QUERY or --stdin, not both"),
        # A sub-command's own option errors too start "newsbot: error:", not "newsbot search:".
        (["search", "--limit", "0", "x"], "newsbot: error: argument --limit: '0' must be"),
    ]

    runs = newsbot_all([args for args, _ in calls], cwd=home)

    for run, (_, expected) in zip(runs, calls, strict=True):
        assert expected in one_error_line(run), run
    # Nothing was created or changed: no database for a command that never ran, and the
    # text file given as a database is left exactly as it was.
    assert fingerprint(home) == before


def test_run_and_sync_without_a_token_say_how_to_set_it(home: Path) -> None:
    for run in newsbot_all([["run"], ["sync"]], cwd=home):
        assert one_error_line(run) == NO_TOKEN, run
    assert not (home / DB_NAME).exists()  # refused before opening anything

    # A .env in the working directory is where the token may live instead: with one, sync
    # gets past the token and stops at the next thing missing (never reaching Discord).
    (home / ".env").write_text("# the bot's secret\nexport DISCORD_TOKEN='not-a-real-token'\n")
    no_guilds = one_error_line(newsbot("sync", cwd=home))
    assert no_guilds.startswith("newsbot: error: no guilds to sync to"), no_guilds


# --- config files ---------------------------------------------------------------------------


def test_a_config_file_changes_only_what_it_says(home: Path) -> None:
    (home / "limit.yaml").write_text("search: {limit: 2}\n")
    first_use = newsbot("--config", "limit.yaml", "search", "--json", "police", cwd=home)
    assert first_use.status == 0, first_use
    assert len(first_use.json()) == 2
    # Every other key keeps its default, relative to the working directory.
    assert (home / DB_NAME).is_file()

    text, overridden = newsbot_all(
        [
            ["--config", "limit.yaml", "search", "police"],
            ["--config", "limit.yaml", "search", "--json", "--limit", "3", "police"],
        ],
        cwd=home,
    )
    assert text.status == 0, text
    assert " · 1 of 2" in text.out
    assert [line[:5] for line in text.lines if line[:5] in ("  2. ", "  3. ")] == ["  2. "]
    assert len(overridden.json()) == 3  # the option beats the file


def test_relative_paths_in_a_config_file_are_taken_from_its_folder(home: Path) -> None:
    conf = home / "conf"
    shutil.copytree(home / "seeds", conf / "articles")
    shutil.rmtree(home / "seeds")  # so the default "seeds" folder could not be used by mistake
    (conf / "paths.yaml").write_text("seeds_dir: articles\ndatabase: data/news.sqlite3\n")
    work = home / "work"
    work.mkdir()

    found = newsbot(
        "--config", "../conf/paths.yaml", "search", "--json", "facial recognition", cwd=work
    )
    checked = newsbot("--config", "../conf/paths.yaml", "check", cwd=work)

    assert found.status == 0, found
    assert sorted(h["url"] for h in found.json()) == sorted(BY_URL)
    assert (conf / "data" / "news.sqlite3").is_file()
    assert list(work.iterdir()) == []
    assert (checked.status, checked.out) == (0, would(load=5) + "\n")


def test_the_report_lists_every_rejection_but_only_a_few_warnings_unless_verbose() -> None:
    from bot.cli import format_report
    from bot.loader import LoadReport

    report = LoadReport(
        added=["a.md"],
        rejected=[(f"r{i}.md", f"r{i}.md: no URL") for i in range(12)],
        warnings=[f"w{i}.md: related item 1 has no http(s) URL; dropped" for i in range(30)],
    )
    short = format_report(report).splitlines()
    assert short[0] == "added 1, updated 0, unchanged 0, removed 0, rejected 12"
    assert sum(line.startswith("  rejected: ") for line in short) == 12
    assert sum(line.startswith("  warning: ") for line in short) == 10
    assert short[-1] == "  ... and 20 more warning lines (-v shows all)"
    full = format_report(report, verbose=True).splitlines()
    assert sum(line.startswith("  warning: ") for line in full) == 30


def test_the_digest_preview_is_dated_in_the_configured_time_zone(home: Path) -> None:
    from bot.embeds import digest_embed

    # A zone whose date differs from UTC's right now (UTC+14 or UTC-11), so that dating the
    # preview by UTC would show the wrong day.
    now = datetime.now(UTC)
    name = "Pacific/Kiritimati" if now.hour >= 10 else "Pacific/Pago_Pago"
    (home / "zone.yaml").write_text(f"digest:\n  timezone: {name}\n")
    zone = ZoneInfo(name)
    before = now.astimezone(zone).date()
    assert before != now.date()
    run = newsbot("--config", "zone.yaml", "digest", cwd=home)
    after = datetime.now(UTC).astimezone(zone).date()
    titles = {digest_embed([], 0, day, tz_name="UTC").title for day in (before, after)}
    assert run.status == 0
    assert run.out.splitlines()[0] in titles


def test_run_and_sync_that_cannot_reach_discord_say_so_in_one_line(home: Path) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on once this closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = f"http://127.0.0.1:{port}/api/v10"
    (home / "offline.yaml").write_text(
        f"discord:\n  guild_ids: [1]\n  api_base: {api}\n  gateway_url: ws://127.0.0.1:{port}/\n"
    )
    (home / ".env").write_text("DISCORD_TOKEN=not-a-real-token\n")
    run, sync = newsbot_all(
        [["--config", "offline.yaml", "run"], ["--config", "offline.yaml", "sync"]], cwd=home
    )
    expected = f"newsbot: error: cannot reach Discord at {api}: "
    # `run` logs its start-up (the store, the seeds) before it tries Discord; the error is last.
    assert run.status == 2, run
    assert run.err.splitlines()[-1].startswith(expected), run
    assert one_error_line(sync).startswith(expected), sync
    assert "not-a-real-token" not in run.err + sync.err


def test_search_outside_a_project_folder_says_where_it_looked(tmp_path: Path) -> None:
    run = newsbot("search", "facial recognition", cwd=tmp_path)
    assert one_error_line(run) == (
        "newsbot: error: no database at newsbot.sqlite3 and no seeds folder at seeds: "
        "run newsbot in the project folder, or pass --config (or --db)"
    )
    assert list(tmp_path.iterdir()) == []  # no stray database left behind

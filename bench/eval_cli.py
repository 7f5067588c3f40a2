"""Score ``newsbot search --stdin --json`` against a query set written by ``bench/search.py``.

    python bench/search.py --stdin-export /tmp/queries.jsonl --engines none
    python bench/eval_cli.py /tmp/queries.jsonl [--markdown] [-- extra CLI arguments]

The CLI gets one query per line on stdin and must print one JSON array per line, in order,
each hit an object with a ``"url"``. The CLI searches its own configured corpus, so point it at
the corpora the queries came from (the real ones: scaled corpora only exist inside search.py).
Timing is for the whole process (start-up and index build included), so it is only a rough
throughput figure; bench/search.py measures per-query latency properly.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.queries import KINDS, Query, read_jsonl  # noqa: E402
from bench.search import render  # noqa: E402

LIMIT = 5


def default_command() -> list[str]:
    """``newsbot`` from PATH or beside this Python, else ``bot.cli:main`` run by this Python."""
    args = ["search", "--stdin", "--json"]
    for found in (shutil.which("newsbot"), Path(sys.executable).parent / "newsbot"):
        if found and Path(found).exists():
            return [str(found), *args]
    # Not installed (no console script): call the entry point the script would call.
    return [sys.executable, "-c", "import sys; from bot.cli import main; sys.exit(main())", *args]


def parse_output(stdout: str, expected: int) -> list[list[str]]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    if len(lines) != expected:
        raise ValueError(f"expected {expected} JSON lines on stdout, got {len(lines)}")
    results: list[list[str]] = []
    for number, line in enumerate(lines, start=1):
        hits = json.loads(line)
        if not isinstance(hits, list):
            raise ValueError(f"output line {number} is not a JSON array: {line[:80]}")
        results.append([h["url"] for h in hits if isinstance(h, dict) and "url" in h])
    return results


def report(queries: Sequence[Query], results: Sequence[list[str]], markdown: bool) -> str:
    header = ["Kind", "Queries", "hit@1 %", f"hit@{LIMIT} %"]
    body: list[list[str]] = []
    for kind in (*KINDS, "all"):
        pairs = [(q, r) for q, r in zip(queries, results, strict=True) if kind in ("all", q.kind)]
        if not pairs:
            continue
        top1 = sum(q.url in r[:1] for q, r in pairs) / len(pairs)
        top5 = sum(q.url in r[:LIMIT] for q, r in pairs) / len(pairs)
        body.append([kind, f"{len(pairs):,}", f"{top1 * 100:.1f}", f"{top5 * 100:.1f}"])
    return render(header, body, markdown)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("queries", type=Path, help="JSONL from bench/search.py --stdin-export")
    parser.add_argument(
        "--cmd", help="the command to run, shell-quoted (default: newsbot search --stdin --json)"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds (default 600)")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("extra", nargs="*", help="after --: extra arguments for the CLI")
    args = parser.parse_args(argv)

    queries = read_jsonl(args.queries)
    if not queries:
        print(f"{args.queries}: no queries", file=sys.stderr)
        return 2
    command = (shlex.split(args.cmd) if args.cmd else default_command()) + args.extra
    # A query holding a newline would shift every later answer by one line.
    stdin = "".join(" ".join(q.query.split()) + "\n" for q in queries)
    started = time.perf_counter()
    done = subprocess.run(
        command, input=stdin, capture_output=True, text=True, timeout=args.timeout, cwd=ROOT
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        print(f"{shlex.join(command)} exited with {done.returncode}:", file=sys.stderr)
        print(done.stderr[-2000:], file=sys.stderr)
        return 1
    try:
        results = parse_output(done.stdout, len(queries))
    except (ValueError, KeyError, json.JSONDecodeError) as exc:
        print(f"{shlex.join(command)}: bad output: {exc}", file=sys.stderr)
        print(done.stderr[-2000:], file=sys.stderr)
        return 1

    print(f"Command: `{shlex.join(command)}` < {args.queries}")
    print(
        f"{len(queries):,} queries in {elapsed:.1f} s for the whole process "
        f"({elapsed / len(queries) * 1000:.2f} ms per query, start-up and build included)."
    )
    print()
    print(report(queries, results, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``newsbot sources`` run for real (``python -m bot`` in a subprocess) against feeds served by
the loopback feed server in this test's event loop."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.feedserver import FeedServer, rss
from tests.test_cli import REPO, Run, _env

TIMEOUT = 120


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    async with FeedServer() as running:
        yield running


async def newsbot(*args: str, cwd: Path) -> Run:
    """The CLI in a subprocess, awaited, so that this loop goes on serving the feeds."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args,
        cwd=cwd, env=_env(), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    run = Run(tuple(args), proc.returncode or 0, out.decode(), err.decode())
    assert "Traceback" not in run.out + run.err, run
    return run


def write_config(tmp_path: Path, server: FeedServer) -> Path:
    (tmp_path / "seeds").mkdir(exist_ok=True)
    config = tmp_path / "newsbot.yaml"
    config.write_text(
        f"""
seeds_dir: seeds
database: news.sqlite3
sources:
  - name: lighthouse
    feed: {server.url("/lighthouse.xml")}
    every: 10m
    topics: [Coast]
  - name: vanished
    feed: {server.url("/vanished.xml")}
""",
        encoding="utf-8",
    )
    return config


def item(n: int) -> dict[str, object]:
    return {
        "title": f"Lighthouse keeper {n} logs the gannet migration",
        "link": f"https://coast.example.org/gannets/{n}",
        "id": f"gannets-{n}",
        "summary": "Counted from the lamp room.",
        "published": datetime.now(UTC) - timedelta(hours=n),
    }


async def test_sources_lists_polls_reports_and_exits_by_outcome(
    tmp_path: Path, server: FeedServer
) -> None:
    server.set_feed("/lighthouse.xml", rss([item(1), item(2)], title="Coast Watch"))
    server.set_status("/vanished.xml", 404)
    config = str(write_config(tmp_path, server))

    listed = await newsbot("--config", config, "sources", cwd=tmp_path)
    assert listed.status == 0, listed
    assert "lighthouse  [feed, new]" in listed.out
    assert "vanished  [feed, new]" in listed.out
    assert "seeds  [folder (watched), new]" in listed.out

    polled = await newsbot("--config", config, "sources", "poll", cwd=tmp_path)
    assert polled.status == 1, polled  # one source failed
    lines = polled.out.splitlines()
    assert "lighthouse: added 2, updated 0, unchanged 0, removed 0" in lines
    assert "vanished: failed: HTTP 404 Not Found" in lines

    found = await newsbot("--config", config, "search", "--json", "gannet migration", cwd=tmp_path)
    assert found.status == 0, found
    assert {hit["url"] for hit in found.json()} >= {"https://coast.example.org/gannets/1"}
    assert found.json()[0]["topics"][-1] == "Coast"

    again = await newsbot("--config", config, "sources", "poll", "lighthouse", cwd=tmp_path)
    assert again.status == 0, again
    assert again.out.strip() == "lighthouse: unchanged (not modified since the last poll)"
    assert server.not_modified["/lighthouse.xml"] == 1

    state = await newsbot("--config", config, "sources", cwd=tmp_path)
    assert "vanished  [feed, failing]" in state.out
    assert "last error (1 in a row): HTTP 404 Not Found" in state.out


async def test_unknown_source_and_bad_source_config_are_one_line_errors(
    tmp_path: Path, server: FeedServer
) -> None:
    config = write_config(tmp_path, server)
    unknown = await newsbot("--config", str(config), "sources", "poll", "nope", cwd=tmp_path)
    assert unknown.status == 2 and unknown.out == ""
    assert unknown.err.strip().startswith("newsbot: error: no source named 'nope'")
    assert "lighthouse" in unknown.err

    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  - name: twice\n    feed: http://a.example/\n    folder: x\n")
    refused = await newsbot("--config", str(bad), "sources", cwd=tmp_path)
    assert refused.status == 2
    assert refused.err.strip() == (
        f"newsbot: error: {bad}: 'sources[0]' (twice) needs exactly one of feed, folder or git,"
        " not feed and folder"
    )


def test_the_repository_config_documents_every_source_key() -> None:
    text = (REPO / "config" / "default.yaml").read_text(encoding="utf-8")
    keys = ("sources:", "feeds_keep_days:", "git_dir:", "poll_concurrency:", "feed_max_bytes:",
            "feed_timeout_seconds:", "watch_folders:", "every:")  # fmt: skip
    for key in keys:
        assert key in text, key

"""Live sources in the running bot: the real discord.py client against the loopback fake
Discord, feeds from the loopback feed server, folders watched on disk."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.config import SourceConfig
from tests.botharness import (
    BOB,
    MOD_ROLE,
    MODERATOR,
    BotHarness,
    embed_of,
    running_bot,
)
from tests.fakediscord import EPHEMERAL, PLAIN_MEMBER
from tests.feedserver import FeedServer, rss

pytestmark = pytest.mark.usefixtures("backend")

#: The issue's promise for a watched folder: a change is served within 5 s.
WATCH_PROMISE_SECONDS = 5.0


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    async with FeedServer() as running:
        yield running


def story(n: int, word: str) -> dict[str, Any]:
    return {
        "title": f"Harbour council approves {word} ferry timetable {n}",
        "link": f"https://harbour.example.net/{word}/{n}",
        "id": f"harbour-{word}-{n}",
        "summary": "The council voted on Tuesday.",
        "published": datetime.now(UTC) - timedelta(hours=n),
    }


async def served(harness: BotHarness, query: str, title_start: str, timeout: float) -> float:
    """Seconds until /news answers ``query`` with a story titled ``title_start...``."""
    started = time.monotonic()
    while True:
        body = await harness.news(query)
        embeds = body["data"].get("embeds") or []
        if embeds and embed_of(body)["title"].startswith(title_start):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{query!r} not served within {timeout} s: {body}")
        await asyncio.sleep(0.1)


async def test_a_feed_source_is_polled_on_schedule_and_served(
    tmp_path: Path, server: FeedServer
) -> None:
    server.set_feed("/harbour.xml", rss([story(1, "quillback")], title="Harbour Gazette"))
    source = SourceConfig("harbour", "feed", server.url("/harbour.xml"), every=1.0)
    async with running_bot(tmp_path, sources=(source,)) as harness:
        await served(harness, "quillback ferry", "Harbour council approves quillback", 20)
        # The feed changes; the next poll (within a second or two) brings the new story.
        server.set_feed(
            "/harbour.xml",
            rss([story(2, "saltmarsh"), story(1, "quillback")], title="Harbour Gazette"),
        )
        await served(harness, "saltmarsh ferry", "Harbour council approves saltmarsh", 20)
        assert server.conditional["/harbour.xml"] >= 1  # polls carried the validators
        body = embed_of(await harness.news("saltmarsh ferry"))
        assert "Harbour Gazette" in str(body)


async def test_sources_status_shows_each_source_to_moderators_only(
    tmp_path: Path, server: FeedServer
) -> None:
    server.set_feed("/ok.xml", rss([story(1, "kelpie")]))
    server.set_status("/broken.xml", 404)
    sources = (
        SourceConfig("gazette", "feed", server.url("/ok.xml"), every=900.0),
        SourceConfig("broken", "feed", server.url("/broken.xml"), every=900.0),
    )
    async with running_bot(tmp_path, sources=sources) as harness:
        refused = await harness.command("sources", "status", user=BOB, permissions=PLAIN_MEMBER)
        assert refused["data"]["flags"] & EPHEMERAL
        assert "Manage Server" in refused["data"]["content"]

        # A moderator polls every source now, then asks for the status.
        fake = harness.fake
        before = len(fake.requests)
        iid = await fake.slash("sources", {}, subcommand="poll", user=MODERATOR, roles=[MOD_ROLE])
        assert (await fake.wait_for_callback(iid)).json["type"] == 5
        followup = await fake.wait_for_request(
            lambda r: r.index >= before and r.method == "POST" and r.path.startswith("/webhooks/")
        )
        summary = followup.json["embeds"][0]["description"]
        assert "**gazette**: added 1" in summary
        assert "**broken**: failed: HTTP 404" in summary

        body = await harness.command("sources", "status", user=MODERATOR, roles=[MOD_ROLE])
        assert body["data"]["flags"] & EPHEMERAL
        embed = body["data"]["embeds"][0]
        fields = {f["name"]: f["value"] for f in embed["fields"]}
        gazette = next(v for k, v in fields.items() if "gazette" in k)
        broken = next(v for k, v in fields.items() if "broken" in k)
        seeds = next(v for k, v in fields.items() if "seeds" in k)
        assert "Last success <t:" in gazette and "Next poll <t:" in gazette
        assert "HTTP 404" in broken and "Last error" in broken
        assert "unchanged 5" in seeds  # polled with the others
        assert "1 failing" in embed["description"]


async def test_a_watched_folder_serves_a_new_file_within_seconds_without_a_reload(
    tmp_path: Path,
) -> None:
    async with running_bot(tmp_path, watch_folders=True) as harness:
        seeds = Path(harness.config.seeds_dir)
        template = sorted(seeds.glob("*.md"))[0].read_text(encoding="utf-8")
        await asyncio.sleep(0.3)  # the watch is set up as the bot starts
        started = time.monotonic()
        (seeds / "2026-11-28-zanzibar.md").write_text(
            template.replace("https://qz.com/1867967/", "https://example.com/zanzibar/").replace(
                "Amazon and Microsoft pause", "Zanzibar lighthouse keepers pause"
            ),
            encoding="utf-8",
        )
        await served(harness, "zanzibar lighthouse keepers", "Zanzibar lighthouse", 15)
        elapsed = time.monotonic() - started
        assert elapsed < WATCH_PROMISE_SECONDS, elapsed

        # Removed: gone from /news too, with no reload.
        (seeds / "2026-11-28-zanzibar.md").unlink()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            body = await harness.news("zanzibar lighthouse keepers")
            embeds = body["data"].get("embeds") or []
            if not embeds or not embed_of(body)["title"].startswith("Zanzibar"):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the removed file's story is still served")


async def test_a_watched_folder_loads_an_edit_alone_and_a_new_sub_folder_whole(
    tmp_path: Path,
) -> None:
    async with running_bot(tmp_path, watch_folders=True) as harness:
        seeds = Path(harness.config.seeds_dir)
        first = sorted(seeds.glob("*.md"))[0]
        template = first.read_text(encoding="utf-8")
        await asyncio.sleep(0.3)  # the watch is set up as the bot starts
        first.write_text(
            template.replace("Amazon and Microsoft pause", "Quokka wardens pause"),
            encoding="utf-8",
        )
        await served(harness, "quokka wardens", "Quokka wardens", 15)
        # Only the edited file was looked at: the source's outcome counts one file.
        store = harness.bot.library.store
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            state = (await store.source_states()).get("seeds")
            if state is not None and state.outcome and "updated 1" in state.outcome:
                break
            await asyncio.sleep(0.1)
        assert state is not None and state.outcome is not None
        assert "updated 1," in state.outcome and "unchanged 0" in state.outcome, state.outcome

        # A folder moved in whole (the watcher reports the folder): the folder is loaded.
        staging = tmp_path / "staging"
        staging.mkdir()
        (staging / "walrus.md").write_text(
            template.replace("https://qz.com/1867967/", "https://example.com/walrus/").replace(
                "Amazon and Microsoft pause", "Walrus census takers pause"
            ),
            encoding="utf-8",
        )
        staging.rename(seeds / "arrivals")
        await served(harness, "walrus census takers", "Walrus census", 15)

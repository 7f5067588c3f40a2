"""`newsbot run` and `newsbot sync` for real: a subprocess against the fake Discord, sharding."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import discord
import pytest

from bot.client import ShardedNewsBot
from bot.config import DiscordConfig
from bot.runner import _sync
from tests.botharness import GUILD_ID, REPO, TOKEN, make_config, make_guild, running_bot
from tests.fakediscord import FakeChannel, FakeDiscord, FakeGuild


def write_config(tmp_path: Path, fake: FakeDiscord) -> Path:
    (tmp_path / "seeds").mkdir()
    for seed in (REPO / "tests" / "data" / "seeds").glob("*.md"):  # not the live seeds/
        (tmp_path / "seeds" / seed.name).write_bytes(seed.read_bytes())
    config = tmp_path / "newsbot.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            seeds_dir: seeds
            database: news.sqlite3
            discord:
              guild_ids: [{GUILD_ID}]
              api_base: {fake.api_base}
              gateway_url: {fake.gateway_url}
            """
        ),
        encoding="utf-8",
    )
    return config


async def test_newsbot_run_serves_news_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    async with FakeDiscord(guilds=[make_guild()], token=TOKEN) as fake:
        config = write_config(tmp_path, fake)
        env = {k: v for k, v in os.environ.items() if k != "NEWSBOT_CONFIG"}
        env |= {"DISCORD_TOKEN": TOKEN, "PYTHONPATH": str(REPO)}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "--config", str(config), "run",
            cwd=tmp_path, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            await fake.wait_until_connected(timeout=30)
            # Commands synced to the configured guild through the configured API base.
            await fake.wait_for_request(
                lambda r: r.method == "PUT" and r.path.endswith(f"/guilds/{GUILD_ID}/commands"),
                timeout=30,
            )
            iid = await fake.slash("news", {"query": "facial recognition"})
            callback = (await fake.wait_for_callback(iid, timeout=10)).json
            assert "facial recognition" in callback["data"]["embeds"][0]["title"].lower()
        finally:
            process.send_signal(signal.SIGTERM)
            output, _ = await asyncio.wait_for(process.communicate(), 30)
        log = output.decode()
        assert process.returncode == 0, log
        assert "serving 5 articles" in log
        assert "Traceback" not in log
        assert TOKEN not in log
        assert (tmp_path / "news.sqlite3").exists()


async def test_sync_publishes_the_commands_globally(tmp_path: Path) -> None:
    async with FakeDiscord(guilds=[make_guild()], token=TOKEN) as fake:
        with fake.patch_discord():
            config = make_config(tmp_path)
            count, failures = await _sync(config, TOKEN, globally=True)
        assert (count, failures) == (7, {})
        puts = [r for r in fake.requests if r.method == "PUT"]
        assert {r.path for r in puts} == {
            f"/applications/{fake.application_id}/guilds/{GUILD_ID}/commands",
            f"/applications/{fake.application_id}/commands",
        }
        assert {c["name"] for c in fake.commands()} == {
            "news",
            "digest",
            "seeds",
            "sources",
            "follow",
            "following",
            "unfollow",
        }
        # The guild copies made at login are gone: they would show beside the global ones.
        assert fake.commands(GUILD_ID) == []
        # No gateway session was needed for that.
        assert fake.identify_count == 0


async def test_sync_reports_a_guild_that_refused(tmp_path: Path) -> None:
    async with FakeDiscord(guilds=[make_guild()], token=TOKEN) as fake:
        with fake.patch_discord():
            fake.fail_next(
                "PUT", rf"/applications/\d+/guilds/{GUILD_ID}/commands", 403,
                {"code": 50001, "message": "Missing Access"},
            )  # fmt: skip
            count, failures = await _sync(make_config(tmp_path), TOKEN, globally=False)
    assert count == 7
    assert failures == {GUILD_ID: "403 Missing Access"}
    assert fake.commands(GUILD_ID) == []


async def test_a_sharded_bot_answers_on_the_guilds_shard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_identify_pause(
        self: discord.Client, shard_id: int | None, *, initial: bool = False
    ) -> None:
        return None  # discord.py waits 5 s between shards' IDENTIFYs: Discord's rate, not ours

    monkeypatch.setattr(ShardedNewsBot, "before_identify_hook", no_identify_pause)
    guilds = [
        FakeGuild(n << 22, f"guild {n}", [FakeChannel((n << 22) + 1, "general")]) for n in (4, 5)
    ]
    discord_config = DiscordConfig(guild_ids=(4 << 22, 5 << 22), shard_count=2)
    async with running_bot(
        tmp_path, guilds=guilds, shard_count=2, discord=discord_config
    ) as harness:
        assert isinstance(harness.bot, ShardedNewsBot)
        assert harness.fake.identify_count == 2
        iid = await harness.fake.slash("news", {"query": "facial recognition"}, guild_id=5 << 22)
        callback = (await harness.fake.wait_for_callback(iid)).json
        assert callback["type"] == 4
        sent = next(d for d in harness.fake.dispatches if d.event == "INTERACTION_CREATE")
        assert sent.shard == (1, 2)


async def test_newsbot_run_stopped_while_its_shards_log_in_stops_at_once(
    tmp_path: Path,
) -> None:
    # Discord's max_concurrency 1: the second shard waits a 5 s window after the first's login.
    guilds = [
        FakeGuild(n << 22, f"guild {n}", [FakeChannel((n << 22) + 1, "general")]) for n in (4, 5)
    ]
    async with FakeDiscord(guilds=guilds, token=TOKEN, shard_count=2) as fake:
        config = write_config(tmp_path, fake)
        env = {k: v for k, v in os.environ.items() if k != "NEWSBOT_CONFIG"}
        env |= {"DISCORD_TOKEN": TOKEN, "PYTHONPATH": str(REPO)}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "--config", str(config), "run", "--shard-count", "2",
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            async with asyncio.timeout(30):
                while fake.identify_count < 1:
                    await asyncio.sleep(0.01)
        finally:
            process.send_signal(signal.SIGTERM)  # a service manager stopping it mid-start
            output, _ = await asyncio.wait_for(process.communicate(), 4)
        log = output.decode()
        assert process.returncode == 0, log
        assert "stopped while connecting" in log
        assert fake.identify_count == 1  # the waiting shard never logged in
        assert "Traceback" not in log


async def test_newsbot_run_serves_a_feed_and_a_watched_folder_as_they_change(
    tmp_path: Path,
) -> None:
    from datetime import UTC, datetime

    from tests.feedserver import FeedServer, rss

    def story(word: str) -> dict[str, object]:
        return {
            "title": f"Observatory confirms {word} comet sighting",
            "link": f"https://sky.example.org/{word}",
            "id": word,
            "summary": "Seen from the ridge.",
            "published": datetime.now(UTC),
        }

    async def answer(fake: FakeDiscord, query: str, title_start: str) -> None:
        for _ in range(300):
            iid = await fake.slash("news", {"query": query})
            embeds = (await fake.wait_for_callback(iid, timeout=10)).json["data"].get("embeds")
            if embeds and embeds[0]["title"].startswith(title_start):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{query!r} never answered with {title_start!r}")

    async with FakeDiscord(guilds=[make_guild()], token=TOKEN) as fake, FeedServer() as feeds:
        feeds.set_feed("/sky.xml", rss([story("vermilion")], title="Sky Desk"))
        config = write_config(tmp_path, fake)
        notes = tmp_path / "notes"
        notes.mkdir()
        config.write_text(
            config.read_text(encoding="utf-8")
            + f"sources:\n  - {{name: sky, feed: '{feeds.url('/sky.xml')}', every: 1s}}\n"
            + "  - {name: notes, folder: notes}\n",
            encoding="utf-8",
        )
        env = {k: v for k, v in os.environ.items() if k != "NEWSBOT_CONFIG"}
        env |= {"DISCORD_TOKEN": TOKEN, "PYTHONPATH": str(REPO)}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "--config", str(config), "run",
            cwd=tmp_path, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            await fake.wait_until_connected(timeout=30)
            await answer(fake, "vermilion comet", "Observatory confirms vermilion")
            feeds.set_feed("/sky.xml", rss([story("cobalt"), story("vermilion")]))
            await answer(fake, "cobalt comet", "Observatory confirms cobalt")
            seed = next((REPO / "tests" / "data" / "seeds").glob("*.md")).read_text("utf-8")
            lines = seed.splitlines()
            for i, line in enumerate(lines):
                if line.startswith("title:"):
                    lines[i] = 'title: "Lantern festival lights the harbour"'
                elif line.startswith("webUrl:"):
                    lines[i] = 'webUrl: "https://example.org/lantern"'
            (notes / "2026-11-28-lantern.md").write_text("\n".join(lines), encoding="utf-8")
            await answer(fake, "lantern festival harbour", "Lantern festival")
        finally:
            process.send_signal(signal.SIGTERM)
            output, _ = await asyncio.wait_for(process.communicate(), 30)
        log = output.decode()
        assert process.returncode == 0, log
        assert "Traceback" not in log
        assert feeds.conditional["/sky.xml"] >= 1

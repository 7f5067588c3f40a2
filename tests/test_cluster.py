"""Several real `newsbot` processes on one database, against the loopback fake Discord.

Two `newsbot run` processes split the shards and share one PostgreSQL database: each posts
the digests of its own guilds exactly once, also when one is killed mid-post and restarted,
and a seed reloaded through one is found through the other. On SQLite, a bot serves what a
CLI `newsbot load` adds without a restart. `newsbot cluster` starts and stops its children,
and `newsbot migrate` moves a SQLite database to PostgreSQL with nothing lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bot.store import Store
from tests.botharness import (
    MODERATOR,
    REPO,
    SHIPPED_SEEDS,
    TOKEN,
    running_bot,
)
from tests.fakediscord import MANAGE_GUILD, PLAIN_MEMBER, FakeChannel, FakeDiscord, FakeGuild

SHARDS = 2
# Two guilds on each of the two shards ((id >> 22) % 2), each with its own digest channel.
GUILD_NUMBERS = (6, 8, 7, 9)
GUILDS = [n << 22 for n in GUILD_NUMBERS]
CHANNEL = {guild: guild + 1 for guild in GUILDS}
MODERATE = {"user": MODERATOR, "permissions": PLAIN_MEMBER | MANAGE_GUILD}


def guilds() -> list[FakeGuild]:
    return [FakeGuild(g, f"guild {g >> 22}", [FakeChannel(CHANNEL[g], "news")]) for g in GUILDS]


def shard_of(guild: int) -> int:
    return (guild >> 22) % SHARDS


def copy_seeds(tmp_path: Path) -> Path:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for seed in SHIPPED_SEEDS.glob("*.md"):
        (seeds / seed.name).write_bytes(seed.read_bytes())
    return seeds


def write_config(tmp_path: Path, fake: FakeDiscord, database: Path | str, **extra: Any) -> Path:
    copy_seeds(tmp_path)
    # A digest time that has just passed: due at once, within the grace window.
    due = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%H:%M")
    settings: dict[str, Any] = {
        "seeds_dir": "seeds",
        "database": str(database),
        "refresh_seconds": 0.5,
        "claim_timeout_seconds": 2,
        "discord": {
            "guild_ids": GUILDS,
            "moderator_role_ids": [],
            "api_base": fake.api_base,
            "gateway_url": fake.gateway_url,
        },
        "digest": {
            "channels": {str(g): c for g, c in CHANNEL.items()},
            "time": due,
            "timezone": "UTC",
            "check_seconds": 0.2,
        },
        "search": {"cooldown_seconds": 0},
        **extra,
    }
    config = tmp_path / "newsbot.yaml"
    config.write_text(json.dumps(settings, indent=2), encoding="utf-8")  # JSON is YAML
    return config


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NEWSBOT_CONFIG"}
    return env | {"DISCORD_TOKEN": TOKEN, "PYTHONPATH": str(REPO)}


class Process:
    """A `newsbot` child whose output is collected as it runs."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, tmp_path: Path, *args: str) -> Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", *args,
            cwd=tmp_path, env=environment(),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.lines.append(line.decode(errors="replace").rstrip())

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    async def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
        status = await asyncio.wait_for(self.proc.wait(), timeout)
        await self._reader
        return status


@contextlib.asynccontextmanager
async def processes() -> AsyncIterator[list[Process]]:
    started: list[Process] = []
    try:
        yield started
    finally:
        for process in started:
            with contextlib.suppress(Exception):
                await process.stop(signal.SIGKILL, timeout=10)


async def run_shard(tmp_path: Path, config: Path, shard: int) -> Process:
    return await Process.start(
        tmp_path, "--config", str(config), "run",
        "--shard-ids", str(shard), "--shard-count", str(SHARDS),
    )  # fmt: skip


async def wait_until(check: Any, timeout: float, what: str) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)
    assert check(), what


def posts(fake: FakeDiscord, guild_ids: Iterable[int] = GUILDS) -> dict[int, int]:
    return {g: len(fake.messages_in(CHANNEL[g])) for g in guild_ids}


async def news_title(fake: FakeDiscord, query: str, guild: int) -> str | None:
    iid = await fake.slash("news", {"query": query}, guild_id=guild)
    body = (await fake.wait_for_callback(iid, timeout=10)).json
    embeds = body["data"].get("embeds") or []
    return embeds[0]["title"] if embeds else None


def new_seed(seeds: Path, title: str, url: str) -> None:
    (seeds / "2026-11-28-new.md").write_text(
        textwrap.dedent(
            f"""\
            ---
            title: "{title}"
            publishedDateTime: 2026-11-28T08:00:00Z
            webUrl: "{url}"
            provider: {{name: Example, domain: example.org}}
            ---
            """
        ),
        encoding="utf-8",
    )


async def test_two_processes_split_the_shards_and_post_each_digest_once(
    tmp_path: Path, pg_database: str
) -> None:
    async with FakeDiscord(guilds=guilds(), token=TOKEN, shard_count=SHARDS) as fake:
        config = write_config(tmp_path, fake, pg_database)
        # The first digest post of a guild on shard 1 reaches the channel, but its answer is
        # held back: that process is killed right there, mid-post.
        victim = next(g for g in GUILDS if shard_of(g) == 1)
        hold = fake.hold_next("POST", rf"/channels/{CHANNEL[victim]}/messages")
        async with processes() as running:
            running += [await run_shard(tmp_path, config, shard) for shard in range(SHARDS)]
            await fake.wait_until_connected(timeout=60)
            await asyncio.wait_for(hold.reached.wait(), 30)
            await running[1].stop(signal.SIGKILL)

            # Shard 0's process posts its own guilds' digests, and only those.
            shard0 = [g for g in GUILDS if shard_of(g) == 0]
            await wait_until(lambda: all(posts(fake, shard0).values()), 30, "shard 0 digests")
            assert posts(fake)[victim] == 1  # the killed post did land

            running.append(await run_shard(tmp_path, config, 1))  # the restart
            shard1 = [g for g in GUILDS if shard_of(g) == 1]
            await wait_until(lambda: all(posts(fake, shard1).values()), 30, "shard 1 digests")
            async with await Store.open(pg_database) as store:

                async def all_recorded() -> bool:
                    records = [await store.last_digest(g) for g in GUILDS]
                    return all(r is not None and r.status == "posted" for r in records)

                async with asyncio.timeout(30):
                    while not await all_recorded():
                        await asyncio.sleep(0.1)
                victim_record = await store.last_digest(victim)
            await asyncio.sleep(1)  # a few more scheduler ticks in both processes
            assert posts(fake) == dict.fromkeys(GUILDS, 1), posts(fake)
            # The restarted process took the dead one's claim over and found its post.
            assert victim_record is not None and victim_record.attempts == 2
            assert victim_record.message_id == int(fake.messages_in(CHANNEL[victim])[0]["id"])

            # Each process scheduled only the guilds of its own shard. Shard 1's were posted
            # (once each, above) by the killed process or by its restart: the killed one may
            # have died between recording a post and logging it, so only shard 0's process,
            # never killed, is held to logging each of its own.
            for processes_of_shard, shard in (((running[0],), 0), ((running[1], running[2]), 1)):
                for guild in GUILDS:
                    mentioned = any(f"digest {guild}/" in p.log for p in processes_of_shard)
                    if shard_of(guild) != shard:
                        assert not mentioned, (shard, guild)
                    elif shard == 0:
                        assert mentioned, (shard, guild)

            # A seed reloaded through one process is found through the other within 5 s.
            new_seed(tmp_path / "seeds", "Airship crosses the fjord", "https://example.org/fjord")
            a_guild, b_guild = shard0[0], shard1[0]
            iid = await fake.slash("seeds", {}, subcommand="reload", guild_id=a_guild, **MODERATE)
            await fake.wait_for_callback(iid, timeout=10)
            followup = await fake.wait_for_request(
                lambda r: r.method == "POST" and r.path.startswith("/webhooks/"), timeout=30
            )
            assert "added 1" in followup.json["embeds"][0]["description"]
            started = asyncio.get_running_loop().time()
            while await news_title(fake, "airship fjord", b_guild) != "Airship crosses the fjord":
                assert asyncio.get_running_loop().time() - started < 5, "not served within 5 s"
                await asyncio.sleep(0.1)

            for process in (running[0], running[2]):
                assert await process.stop() == 0, process.log
                assert "Traceback" not in process.log, process.log


async def test_a_cli_load_is_served_by_a_running_bot_on_sqlite(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as harness:
        assert harness.library is not None and harness.bot is not None
        assert await harness.news("zeppelin harbour") is not None
        new_seed(harness.config.seeds_dir, "Zeppelin lands in the harbour", "https://e.org/z")
        load = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "--db", str(harness.config.database), "load",
            str(harness.config.seeds_dir),
            env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await load.communicate()
        assert load.returncode == 0, output.decode()
        assert "added 1" in output.decode()
        # The default refresh_seconds (2 s) is well inside the 5 s promised.
        started = asyncio.get_running_loop().time()
        while True:
            body = await harness.news("zeppelin harbour")
            embeds = body["data"].get("embeds") or []
            if embeds and embeds[0]["title"] == "Zeppelin lands in the harbour":
                break
            assert asyncio.get_running_loop().time() - started < 5, "not served within 5 s"
            await asyncio.sleep(0.1)


async def test_newsbot_cluster_runs_one_child_per_shard_range_and_stops_on_a_hang_up(
    tmp_path: Path,
) -> None:
    async with FakeDiscord(guilds=guilds(), token=TOKEN, shard_count=SHARDS) as fake:
        config = write_config(tmp_path, fake, tmp_path / "news.sqlite3")
        async with processes() as running:
            # --shard-count left out: Discord's recommendation (2) is used.
            cluster = await Process.start(
                tmp_path, "--config", str(config), "cluster", "--processes", "2"
            )
            running.append(cluster)
            await fake.wait_until_connected(timeout=60)
            shards = sorted(
                tuple(frame["d"]["shard"])
                for frame in fake.gateway_received
                if frame.get("op") == 2  # IDENTIFY
            )
            assert shards == [(0, 2), (1, 2)]
            for guild in (GUILDS[0], GUILDS[2]):  # one guild on each shard
                assert await news_title(fake, "facial recognition", guild) is not None
            # A hang-up (the terminal or ssh session closed) stops it as cleanly as SIGTERM.
            assert await cluster.stop(signal.SIGHUP) == 0, cluster.log
        stopped = [line for line in cluster.lines if line.endswith("bot.runner: stopped")]
        assert len(stopped) == 2, cluster.log  # each child, once
        assert "shards 0-0 of 2" in cluster.log and "shards 1-1 of 2" in cluster.log
        assert "Traceback" not in cluster.log, cluster.log


def free_ports(count: int) -> int:
    """A base port with ``count`` free ports from it (checked, not reserved)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + count > 65535:
            continue
        try:
            with contextlib.ExitStack() as stack:
                for port in range(base, base + count):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no run of free ports")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_cluster_children_get_their_own_metrics_port_and_stop_when_the_launcher_dies(
    tmp_path: Path,
) -> None:
    port = free_ports(2)
    async with FakeDiscord(guilds=guilds(), token=TOKEN, shard_count=SHARDS) as fake:
        metrics = {"enabled": True, "host": "127.0.0.1", "port": port}
        config = write_config(tmp_path, fake, tmp_path / "news.sqlite3", metrics=metrics)
        async with processes() as running:
            cluster = await Process.start(
                tmp_path, "--config", str(config), "cluster", "--processes", "2"
            )
            running.append(cluster)
            await fake.wait_until_connected(timeout=60)
            async with aiohttp.ClientSession() as http:
                for child_port in (port, port + 1):  # one port each, no clash
                    url = f"http://127.0.0.1:{child_port}/healthz"
                    async with asyncio.timeout(20):
                        while True:
                            with contextlib.suppress(aiohttp.ClientError):
                                async with http.get(url) as answer:
                                    if answer.status == 200:
                                        break
                            await asyncio.sleep(0.1)
            pids = [int(m) for m in re.findall(r"child \d+ \(pid (\d+)\)", cluster.log)]
            assert len(pids) == 2 and all(alive(p) for p in pids)
            await cluster.stop(signal.SIGKILL)  # the launcher dies without a word
            async with asyncio.timeout(20):
                while any(alive(p) for p in pids):
                    await asyncio.sleep(0.1)


async def test_newsbot_migrate_copies_everything_and_old_buttons_keep_working(
    tmp_path: Path, pg_database: str
) -> None:
    source = tmp_path / "news.sqlite3"
    copy_seeds(tmp_path)
    now = datetime.now(UTC)
    async with await Store.open(source) as store:
        pass
    load = subprocess.run(
        [sys.executable, "-m", "bot", "--db", str(source), "load", str(tmp_path / "seeds")],
        env=environment(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert load.returncode == 0, load.stderr
    async with await Store.open(source) as store:
        urls = [a.url for a in await store.all_articles()]
        search_id = await store.save_search(42, "facial recognition", urls[:3], now)
        await store.set_guild_settings(GUILDS[0], now=now, digest_channel_id=7, digest_enabled=True)
        assert await store.claim_digest(GUILDS[0], "2026-11-27", now)
        await store.mark_digest_posted(GUILDS[0], "2026-11-27", 99, now)
        generation = await store.corpus_generation()

    def migrate(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", "--db", str(source), "migrate", "--to", pg_database,
             *extra],
            env=environment(), capture_output=True, text=True, check=False,
        )  # fmt: skip

    first = migrate()
    assert first.returncode == 0, first.stderr
    assert "articles 5" in first.stdout and "searches 1" in first.stdout
    async with await Store.open(pg_database) as copied:
        assert [a.url for a in await copied.all_articles()] == urls
        saved = await copied.load_search(search_id)  # an old button's id still works
        assert saved is not None and saved.urls == tuple(urls[:3]) and saved.user_id == 42
        assert await copied.save_search(43, "x", [], now) != search_id
        settings = await copied.get_guild_settings(GUILDS[0])
        assert settings is not None and settings.digest_channel_id == 7
        record = await copied.last_digest(GUILDS[0])
        assert record is not None and (record.status, record.message_id) == ("posted", 99)
        assert await copied.corpus_generation() > generation
        assert len(await copied.seed_files()) == 5  # the next load is incremental there too

    again = migrate()
    assert again.returncode == 2
    assert "already holds data" in again.stderr and "--replace" in again.stderr
    replaced = migrate("--replace")
    assert replaced.returncode == 0, replaced.stderr
    async with await Store.open(pg_database) as copied:
        assert await copied.load_search(search_id + 1) is None  # the target's own rows went
        assert len(await copied.all_articles()) == 5

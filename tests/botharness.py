"""Run the real newsbot bot against the loopback fake Discord, with a real SQLite file.

``BotHarness`` starts the same objects ``newsbot run`` starts (the library, then ``make_bot``),
only pointed at the fake and given a clock the test can move. ``restart()`` stops the bot and
starts a new one on the same database, as a process restart would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.client import NewsBot, ShardedNewsBot, make_bot
from bot.config import Config, DigestConfig, DiscordConfig, SearchConfig
from bot.library import Library
from tests.fakediscord import FakeChannel, FakeDiscord, FakeGuild, FakeRole, FakeUser

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
#: The tests' own copy of the five shipped seeds: an operator may add to seeds/ freely.
SHIPPED_SEEDS = REPO / "tests" / "data" / "seeds"
TOKEN = "harness-token-Mzk0MjE.fake.c2VjcmV0"
GUILD_ID = 111_111_111_111_111_111
GENERAL = 222_222_222_222_222_221
NEWS_CHANNEL = 222_222_222_222_222_222
MOD_ROLE = 555_555_555_555_555_555
ALICE = FakeUser(333_333_333_333_333_331, "alice")
BOB = FakeUser(333_333_333_333_333_332, "bob")
MODERATOR = FakeUser(333_333_333_333_333_333, "mod")


def embed_of(body: dict[str, Any]) -> dict[str, Any]:
    """The one embed of an interaction callback's message."""
    (embed,) = body["data"]["embeds"]
    return embed


def buttons_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for row in body["data"].get("components", []) for c in row["components"]]


@contextmanager
def write_lock_held_elsewhere(path: Path) -> Iterator[None]:
    """Another process in the middle of a write transaction on the SQLite file at ``path``
    (as a `newsbot load` committing many articles is), until the block ends."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "db.execute('BEGIN IMMEDIATE')\n"
            "print('held', flush=True)\n"
            "sys.stdin.readline()\n"
            "db.execute('COMMIT')\n",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.close()  # the holder's readline returns: it commits and exits
        holder.wait(timeout=10)


class Clock:
    """A settable UTC clock for the digest scheduler."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def make_guild() -> FakeGuild:
    return FakeGuild(
        GUILD_ID,
        "Newsroom",
        channels=[FakeChannel(GENERAL, "general"), FakeChannel(NEWS_CHANNEL, "news", position=1)],
        roles=[FakeRole(MOD_ROLE, "News mods")],
    )


# The database make_config gives a test, by default a SQLite file in its tmp_path; a module's
# ``backend`` fixture (see tests/test_bot.py) swaps in PostgreSQL to run its tests on both.
def database_for(tmp_path: Path) -> Path | str:
    return tmp_path / "newsbot.sqlite3"


def make_config(tmp_path: Path, **changes: Any) -> Config:
    seeds = tmp_path / "seeds"
    if not seeds.exists():
        # The tests' own copy of the shipped seeds: the live seeds/ may hold more.
        shutil.copytree(SHIPPED_SEEDS, seeds)
    config = Config(
        seeds_dir=seeds,
        database=database_for(tmp_path),
        search=SearchConfig(cooldown_seconds=0),
        digest=DigestConfig(check_seconds=0.05),
        discord=DiscordConfig(guild_ids=(GUILD_ID,), moderator_role_ids=(MOD_ROLE,)),
        # Tests change seed files and then reload by hand; those of live sources watch.
        watch_folders=False,
    )
    return dataclasses.replace(config, **changes)


class BotHarness:
    def __init__(self, fake: FakeDiscord, config: Config, clock: Clock) -> None:
        self.fake = fake
        self.config = config
        self.clock = clock
        self.bot: NewsBot | ShardedNewsBot | None = None
        self.library: Library | None = None
        self._stack: AsyncExitStack | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> NewsBot | ShardedNewsBot:
        """What ``newsbot run`` does: open the library, load seeds, then connect."""
        stack = AsyncExitStack()
        self._stack = stack
        self.library = await stack.enter_async_context(Library.open(self.config, clock=self.clock))
        await self.library.reload()
        bot = make_bot(self.library, self.config, clock=self.clock, guild_ready_timeout=0.05)
        self.bot = bot
        connections = len(self.fake.gateway_connections)
        await bot.login(TOKEN)
        self._task = asyncio.create_task(bot.connect(reconnect=True))
        await self.fake.wait_until_connected(timeout=10)
        await asyncio.wait_for(bot.wait_until_ready(), 10)
        assert len(self.fake.gateway_connections) > connections
        return bot

    async def stop(self) -> None:
        if self.bot is not None:
            await self.bot.close()
        if self._task is not None:
            await asyncio.wait_for(self._task, 10)
        if self._stack is not None:
            await self._stack.aclose()
        self.bot = self.library = self._task = self._stack = None

    async def restart(self) -> NewsBot | ShardedNewsBot:
        await self.stop()
        return await self.start()

    # --- driving ------------------------------------------------------------------------------

    async def news(self, query: str, *, user: FakeUser = ALICE, **options: Any) -> dict[str, Any]:
        """Run /news and return the callback's JSON body."""
        iid = await self.fake.slash("news", {"query": query, **options}, user=user)
        return (await self.fake.wait_for_callback(iid)).json

    async def ticks(self, count: int = 2) -> None:
        """Wait until the digest scheduler has run ``count`` more times."""
        assert self.bot is not None
        loop = self.bot.get_cog("DigestCog").scheduler  # type: ignore[union-attr]
        target = loop.current_loop + count
        async with asyncio.timeout(10):
            while loop.current_loop < target:
                await asyncio.sleep(0.01)

    async def command(
        self,
        name: str,
        subcommand: str | None = None,
        options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        iid = await self.fake.slash(name, options or {}, subcommand=subcommand, **kwargs)
        return (await self.fake.wait_for_callback(iid)).json


@asynccontextmanager
async def running_bot(
    tmp_path: Path,
    *,
    clock: Clock | None = None,
    guilds: list[FakeGuild] | None = None,
    shard_count: int = 1,
    **config_changes: Any,
) -> AsyncIterator[BotHarness]:
    fake_discord = FakeDiscord(
        guilds=guilds or [make_guild()], token=TOKEN, shard_count=shard_count
    )
    async with fake_discord as fake:
        with fake.patch_discord():
            harness = BotHarness(fake, make_config(tmp_path, **config_changes), clock or Clock())
            await harness.start()
            try:
                yield harness
            finally:
                await harness.stop()
        assert fake.errors == []

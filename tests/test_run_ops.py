"""`newsbot run` as an operator runs it: the log in log_file, metrics on, a port in use."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.botharness import REPO, TOKEN, make_guild
from tests.fakediscord import FakeDiscord
from tests.test_run import write_config


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NEWSBOT_CONFIG"}
    return env | {"DISCORD_TOKEN": TOKEN, "PYTHONPATH": str(REPO)}


async def test_run_logs_to_the_log_file_and_serves_metrics_where_it_says(tmp_path: Path) -> None:
    async with FakeDiscord(guilds=[make_guild()], token=TOKEN) as fake:
        config = write_config(tmp_path, fake)
        with config.open("a", encoding="utf-8") as file:
            file.write("log_file: newsbot.log\nmetrics:\n  enabled: true\n  port: 0\n")
        log_file = tmp_path / "newsbot.log"
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "--config", str(config), "run",
            cwd=tmp_path, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            await fake.wait_until_connected(timeout=30)
            async with asyncio.timeout(30):
                while "connected as" not in (log := log_file.read_text(encoding="utf-8")):
                    await asyncio.sleep(0.05)
            found = re.search(r"metrics at http://127\.0\.0\.1:(\d+)/metrics", log)
            assert found, log
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{found.group(1)}/healthz") as response,
            ):
                assert (response.status, await response.text()) == (200, "ready\n")
        finally:
            process.send_signal(signal.SIGTERM)
            output, _ = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, output.decode()
        assert output.decode() == ""  # everything went to the file
        assert "serving 5 articles" in log_file.read_text(encoding="utf-8")


async def test_run_with_the_metrics_port_taken_says_so_in_one_line(tmp_path: Path) -> None:
    async with FakeDiscord(guilds=[make_guild()], token=TOKEN) as fake:
        config = write_config(tmp_path, fake)
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        with config.open("a", encoding="utf-8") as file:
            file.write(f"metrics:\n  enabled: true\n  port: {port}\n")
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "--config", str(config), "run",
                cwd=tmp_path, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            _, err = await asyncio.wait_for(process.communicate(), 30)
        finally:
            server.close()
        assert process.returncode == 2
        last = err.decode().splitlines()[-1]
        assert last.startswith(f"newsbot: error: cannot serve metrics on 127.0.0.1:{port}")
        assert "(metrics.host, metrics.port)" in last
        assert "Traceback" not in err.decode()

"""``newsbot --help`` and each command's help: defaults, environment, exit codes, an example;
and ``-v`` that shows newsbot's own log without the libraries' debug flood."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.test_cli import SHIPPED_SEEDS, newsbot

COMMANDS = ("load", "check", "search", "digest", "run", "sync", "backup")


def test_the_main_help_names_defaults_environment_exit_codes_and_an_example(
    tmp_path: Path,
) -> None:
    run = newsbot("--help", cwd=tmp_path)
    assert run.status == 0, run
    for needle in (
        "NEWSBOT_CONFIG",
        "DISCORD_TOKEN",
        ".env",
        "./newsbot.sqlite3",
        "./seeds",
        "130  interrupted (Ctrl-C)",
        "2    a usage or setup error",
        'example:\n  newsbot search "facial recognition"',
        "-vv",
    ):
        assert needle in run.out, needle


@pytest.mark.parametrize("command", COMMANDS)
def test_each_commands_help_has_its_own_example_and_the_shared_facts(
    tmp_path: Path, command: str
) -> None:
    run = newsbot(command, "--help", cwd=tmp_path)
    assert run.status == 0, run
    example = run.out.split("example:\n  ", 1)[1].splitlines()[0]
    assert example.split()[0] in ("newsbot", "DISCORD_TOKEN=...")
    assert command in example.split()
    for needle in ("NEWSBOT_CONFIG", "DISCORD_TOKEN", ".env", "130", "default"):
        assert needle in run.out, (command, needle)


def test_verbose_shows_our_log_but_not_the_sql_debug_lines_unless_twice(tmp_path: Path) -> None:
    home = tmp_path.resolve()
    shutil.copytree(SHIPPED_SEEDS, home / "seeds")
    once = newsbot("-v", "load", cwd=home)
    twice = newsbot("-vv", "load", cwd=home)
    assert once.status == twice.status == 0
    assert "INFO bot.loader" in once.err
    assert "aiosqlite" not in once.err
    assert "DEBUG aiosqlite" in twice.err

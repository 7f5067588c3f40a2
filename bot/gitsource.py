"""Git sources: keep a local clone of a repository of seed files up to date with ``git``.

:func:`sync_repository` clones a repository into a folder, or, when the folder already holds a
clone of it, fetches the newest commit and checks it out; the loader then reads the folder like
any other. Rules:

* Only the newest commit matters: clones and fetches are shallow (``--depth 1``) and fetch no
  tags, so a big history costs nothing.
* A clone is made in a hidden sibling folder and renamed into place, so the folder is always
  either the previous tree or a whole new one (a loader running meanwhile may find it missing
  for an instant, which removes nothing), never half a clone.
* An update is ``fetch`` + ``reset --hard FETCH_HEAD`` + ``clean -ffdx``: the folder mirrors the
  remote, and a local edit, a stray file or a local commit never blocks an update.
* Git never waits for anyone: no terminal prompt, no askpass program, ssh in batch mode. A
  remote that wants a password fails at once instead of hanging until the timeout.
* Every git call is bounded by ``timeout``; on expiry its whole process group (git, its
  transport helpers, ssh) is killed.
* Everything that goes wrong is a :class:`GitError` with one line for an operator, credentials
  in URLs hidden. Cancelling the task kills git too and leaves no temporary folder.

One sync per folder at a time: calls in one process are serialised here; several processes
sharing a folder must claim the sync elsewhere (a lock row in the database).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["GitError", "GitSync", "redact_url", "sync_repository"]

DEFAULT_TIMEOUT = 120.0
# How much of a git call's stdout/stderr is kept (its end): git's error is the last line, and a
# remote cannot fill memory with "remote: ..." chatter.
_OUTPUT_LIMIT = 64 * 1024
# Longest stretch of git's own words quoted in a GitError.
_DETAIL_LIMIT = 200
# After git exits, how long a helper that inherited its pipes may keep them open.
_PIPE_GRACE = 5.0

# scheme://userinfo@ in a URL, anywhere in a text (git quotes URLs in its messages). The
# userinfo is greedy up to the last "@" before the path, so a raw "@" in a password is hidden too.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")
# Git's words for "that branch (or tag) is not on the remote": clone, then fetch (LC_ALL=C).
_MISSING_REF = re.compile(r"Remote branch .* not found|couldn't find remote ref", re.IGNORECASE)
# What git says after any failure to talk to a remote, whatever the reason was.
_CATCH_ALL = "fatal: Could not read from remote repository."
# Characters that have no place in a branch name and would make it an option or a refspec.
_BAD_BRANCH = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|^[-+/.]|[/.]$|\.lock$")

# Variables that point git at a repository other than the one it is run in: set by a git hook
# or a wrapper that started newsbot, they would make every command here act on that repository.
_REPOSITORY_ENV = frozenset(
    {
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_COMMON_DIR",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_NAMESPACE",
        "GIT_PREFIX",
        "GIT_SHALLOW_FILE",
        "GIT_GRAFT_FILE",
        "GIT_REPLACE_REF_BASE",
        "GIT_NO_REPLACE_OBJECTS",
        "GIT_IMPLICIT_WORK_TREE",
        "GIT_QUARANTINE_PATH",
    }
)
# An askpass program that answers nothing: git and ssh get an empty answer and fail at once.
_NO_ANSWER = shutil.which("true") or "/bin/true"


class GitError(Exception):
    """Why a git source could not be synced: one printable line, for an operator.

    Credentials in URLs (``user:password@``) are hidden in every message, whoever builds it.
    """

    def __init__(self, message: str) -> None:
        super().__init__(_one_line(redact_url(message)))


@dataclass(frozen=True, slots=True)
class GitSync:
    """What :func:`sync_repository` left in the folder."""

    commit: str  # the checked-out commit (full sha)
    changed: bool  # False when the commit is the one checked out before this sync
    cloned: bool  # True when the folder was (re)cloned rather than updated


def redact_url(url: str) -> str:
    """``url`` (or any text holding URLs) with each URL's user and password replaced by ``***``.

    The user goes too: a token is often given as the user name (``https://TOKEN@host/...``).
    """
    return _USERINFO.sub(r"\g<scheme>***@", url)


async def sync_repository(
    url: str,
    dest: Path,
    *,
    branch: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    git_command: str = "git",
) -> GitSync:
    """Make ``dest`` a checkout of the newest commit of ``branch`` (default: the remote's HEAD)
    of the repository at ``url`` (any URL git takes, or a local path).

    ``dest`` is cloned when it is missing, an empty folder, or a git clone of another URL or a
    broken one (replaced); a folder holding anything else is refused, never deleted. Raises
    :class:`GitError` (or :class:`asyncio.CancelledError`), nothing else.
    """
    _check_arguments(url, branch, timeout)
    url = _absolute_if_local(url)
    try:
        dest = Path(os.path.abspath(dest))
        real = dest.resolve()
    except (OSError, ValueError) as exc:
        raise GitError(f"git source folder {dest} is unusable: {exc}") from None
    git = _Git(git_command, timeout, ceiling=real.parent)
    async with _lock_for(real):
        try:
            before = await _checked_out(git, url, dest, real)
            if before is None:
                return await _clone(git, url, dest, branch)
            return await _update(git, url, dest, branch, before)
        except (GitError, asyncio.CancelledError):
            raise
        except OSError as exc:  # creating, renaming or removing folders
            detail = exc.strerror or str(exc)
            where = f": {exc.filename}" if exc.filename else ""
            raise GitError(f"git sync of {url} into {dest} failed: {detail}{where}") from None
        except Exception as exc:  # a bug here must still reach the operator as one line
            log.exception("git sync of %s failed unexpectedly", redact_url(url))
            raise GitError(f"git sync of {url} failed unexpectedly: {exc!r}") from exc


# --- the two paths -----------------------------------------------------------------------------


async def _checked_out(git: _Git, url: str, dest: Path, real: Path) -> str | None:
    """The commit checked out in ``dest`` if it is a working clone of ``url``, else None."""
    # A .git folder of its own: without it, git would find an enclosing repository (newsbot's
    # own checkout, say), and reset and clean *that*. GIT_CEILING_DIRECTORIES is the second lock.
    if not (dest / ".git").is_dir():
        return None
    top = await git.output("-C", str(dest), "rev-parse", "--show-toplevel")
    if top is None or Path(top) != real:
        return None
    if await git.output("-C", str(dest), "config", "--get", "remote.origin.url") != url:
        return None
    return await git.output("-C", str(dest), "rev-parse", "--verify", "--quiet", "HEAD^{commit}")


async def _clone(git: _Git, url: str, dest: Path, branch: str | None) -> GitSync:
    await asyncio.to_thread(dest.parent.mkdir, parents=True, exist_ok=True)
    if not await asyncio.to_thread(_replaceable, dest):
        raise GitError(
            f"git source folder {dest} exists and is not a git clone: not replacing it "
            "(empty it or choose another folder)"
        )
    await asyncio.to_thread(_remove_leftovers, dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.clone-", dir=dest.parent))
    what = f"git clone of {url}"
    try:
        # --no-local: a local path gets the same shallow transfer as a remote, and no hard links
        # into another repository's object store.
        args = ["clone", "--quiet", "--no-local", "--depth", "1", "--single-branch", "--no-tags"]
        if branch is not None:
            args += ["--branch", branch]
        result = await git.run(*args, "--", url, str(tmp), what=what)
        if result.returncode != 0:
            raise _failure(what, result, url, branch)
        commit = await git.output("-C", str(tmp), "rev-parse", "--verify", "--quiet", "HEAD")
        if commit is None:
            raise GitError(f"{url} has no commits to check out")
        await asyncio.to_thread(_move_into_place, tmp, dest)
    finally:  # tmp is gone after a successful move; after anything else, remove it
        await asyncio.to_thread(_remove_tree, tmp)
    log.info("git source %s cloned into %s at %s", redact_url(url), dest, commit[:12])
    return GitSync(commit=commit, changed=True, cloned=True)


async def _update(git: _Git, url: str, dest: Path, branch: str | None, before: str) -> GitSync:
    where = str(dest)
    what = f"git fetch of {url}"
    # The fetched commit lands in FETCH_HEAD whatever branch the clone was made with, so a
    # changed branch needs no new clone.
    result = await git.run(
        "-C", where, "fetch", "--quiet", "--depth", "1", "--no-tags", "--no-recurse-submodules",
        "origin", branch or "HEAD", what=what, repo=dest,
    )  # fmt: skip
    if result.returncode != 0:
        raise _failure(what, result, url, branch)
    await git.check("-C", where, "reset", "--quiet", "--hard", "FETCH_HEAD", repo=dest)
    await git.check("-C", where, "clean", "-ffdxq", repo=dest)
    commit = await git.output("-C", where, "rev-parse", "--verify", "--quiet", "HEAD")
    if commit is None:
        raise GitError(f"git reset in {dest} left no commit checked out")
    if commit != before:
        log.info("git source %s updated: %s -> %s", redact_url(url), before[:12], commit[:12])
    return GitSync(commit=commit, changed=commit != before, cloned=False)


def _failure(what: str, result: _Result, url: str, branch: str | None) -> GitError:
    stderr = result.stderr.decode("utf-8", "replace")
    if branch is not None and _MISSING_REF.search(stderr):
        return GitError(f'branch "{branch}" not found in {url}')
    return GitError(f"{what} failed: {_detail(stderr, result.returncode)}")


# --- running git -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Result:
    returncode: int
    stdout: bytes
    stderr: bytes


@dataclass(slots=True)
class _Git:
    command: str
    timeout: float
    ceiling: Path  # git never looks for a repository at or above this folder
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        env = {key: value for key, value in os.environ.items() if key not in _REPOSITORY_ENV}
        env.pop("LANGUAGE", None)  # it would override LC_ALL for git's messages
        env.update(
            GIT_TERMINAL_PROMPT="0",
            GIT_ASKPASS=_NO_ANSWER,
            SSH_ASKPASS=_NO_ANSWER,
            SSH_ASKPASS_REQUIRE="never",
            GCM_INTERACTIVE="never",  # Git Credential Manager, where installed
            GIT_CEILING_DIRECTORIES=str(self.ceiling),
            LC_ALL="C",  # English messages: _MISSING_REF can read them
        )
        if "GIT_SSH_COMMAND" not in env and "GIT_SSH" not in env:
            env["GIT_SSH_COMMAND"] = "ssh -oBatchMode=yes"
        self.env = env

    async def output(self, *args: str) -> str | None:
        """git's stdout, stripped, or None if it failed (a question, not an action)."""
        result = await self.run(*args, what=f"git {_verb(args)}")
        return result.stdout.decode("utf-8", "replace").strip() if result.returncode == 0 else None

    async def check(self, *args: str, repo: Path) -> None:
        what = f"git {_verb(args)} in {repo}"
        result = await self.run(*args, what=what, repo=repo)
        if result.returncode != 0:
            raise GitError(f"{what} failed: {_detail(result.stderr, result.returncode)}")

    async def run(self, *args: str, what: str, repo: Path | None = None) -> _Result:
        """Run git with ``args``; GitError if it cannot start or outlives the timeout.

        ``repo``: the clone it works in, whose lock files a killed git leaves behind.
        """
        try:
            process = await asyncio.create_subprocess_exec(
                self.command,
                *args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
                # Its own process group, so a timeout kills ssh and the transport helpers too.
                process_group=0,
            )
        except FileNotFoundError:
            raise GitError(
                f"the git command is not installed (needed by git sources): {self.command} "
                "not found"
            ) from None
        except OSError as exc:
            raise GitError(f"cannot run the git command {self.command}: {exc.strerror}") from None
        assert process.stdout is not None and process.stderr is not None
        stdout, stderr = bytearray(), bytearray()
        drains = {
            asyncio.create_task(_drain(process.stdout, stdout)),
            asyncio.create_task(_drain(process.stderr, stderr)),
        }
        try:
            async with asyncio.timeout(self.timeout):
                returncode = await process.wait()
            # A helper git left running may hold the pipes open: its output is not worth waiting.
            await asyncio.wait(drains, timeout=_PIPE_GRACE)
        except TimeoutError:
            raise GitError(f"{what} timed out after {self.timeout:g} s") from None
        finally:
            for task in drains:
                task.cancel()
            if process.returncode is None:  # timed out or cancelled
                _kill_group(process)
                await process.wait()
                if repo is not None:
                    await asyncio.to_thread(_remove_locks, repo)
        return _Result(returncode, bytes(stdout), bytes(stderr))


async def _drain(stream: asyncio.StreamReader, into: bytearray) -> None:
    """Read ``stream`` to its end, keeping its last :data:`_OUTPUT_LIMIT` bytes in ``into``."""
    while chunk := await stream.read(65536):
        into += chunk
        if len(into) > _OUTPUT_LIMIT:
            del into[: len(into) - _OUTPUT_LIMIT]


def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _verb(args: tuple[str, ...]) -> str:
    """The git subcommand in ``args`` (after ``-C folder``)."""
    return args[2] if len(args) > 2 and args[0] == "-C" else args[0]


def _detail(stderr: bytes | str, returncode: int) -> str:
    """Git's most telling stderr line, on one printable line of at most ~200 characters.

    The last ``fatal:`` line, else the last ``error:`` line, else the last line but hints; git's
    catch-all "Could not read from remote repository." only when nothing says more (a missing
    repository reads "fatal: '/x' does not appear to be a git repository" first, a host's own
    "ERROR: Repository not found." comes before it).
    """
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", "replace")
    lines = [line.strip() for line in re.split(r"[\r\n]+", stderr)]
    lines = [line for line in lines if line]
    telling = [line for line in lines if line.lower().startswith(("fatal:", "error:"))]
    if any(line != _CATCH_ALL for line in telling):
        lines = [line for line in lines if line != _CATCH_ALL]
    line = (
        _last(lines, "fatal:")
        or _last(lines, "error:")
        or _last([line for line in lines if not line.startswith("hint:")], "")
        or _last(lines, "")
    )
    if line is None:
        return f"killed by signal {-returncode}" if returncode < 0 else f"exit status {returncode}"
    line = _one_line(line)
    return line if len(line) <= _DETAIL_LIMIT else line[: _DETAIL_LIMIT - 1] + "…"


def _last(lines: list[str], prefix: str) -> str | None:
    """The last of ``lines`` starting with ``prefix`` (in any case)."""
    return next((line for line in reversed(lines) if line.lower().startswith(prefix)), None)


def _one_line(text: str) -> str:
    """``text`` with control and other unprintable characters escaped, so it stays one line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


# --- arguments ---------------------------------------------------------------------------------


def _check_arguments(url: str, branch: str | None, timeout: float) -> None:
    if not url or url.startswith("-") or not url.isprintable():
        raise GitError(f"git source URL {url!r} is not a URL or path git can use")
    if branch is not None and (not branch or _BAD_BRANCH.search(branch)):
        raise GitError(f"git source branch {branch!r} is not a valid branch name")
    if not (timeout > 0 and math.isfinite(timeout)):
        raise GitError(f"git timeout must be a positive number of seconds, not {timeout!r}")


def _absolute_if_local(url: str) -> str:
    """A local path made absolute and normal, as git would record it, so a later sync with the
    same path finds the clone's remote URL equal; any other URL as given.

    Git's rule: a path has no ``://``, and no ``:`` unless a ``/`` comes before it (otherwise
    ``host:path`` is scp-like ssh).
    """
    if "://" in url:
        return url
    colon, slash = url.find(":"), url.find("/")
    if colon != -1 and (slash == -1 or colon < slash):
        return url
    return os.path.abspath(url)


# --- folders -----------------------------------------------------------------------------------

_locks: weakref.WeakValueDictionary[Path, asyncio.Lock] = weakref.WeakValueDictionary()


def _lock_for(path: Path) -> asyncio.Lock:
    lock = _locks.get(path)
    if lock is None:
        lock = _locks[path] = asyncio.Lock()
    return lock


def _replaceable(dest: Path) -> bool:
    """Whether a clone may take ``dest``'s place: nothing there, an empty folder, or a clone
    (of something else, or broken). Anything else may be someone's files: never deleted."""
    if not os.path.lexists(dest):
        return True
    if not dest.is_dir():
        return False
    return (dest / ".git").is_dir() or not any(dest.iterdir())


def _move_into_place(tmp: Path, dest: Path) -> None:
    if not os.path.lexists(dest):
        os.rename(tmp, dest)
        return
    old = dest.with_name(f".{dest.name}.old-{secrets.token_hex(4)}")
    os.rename(dest, old)
    try:
        os.rename(tmp, dest)
    except OSError:
        os.rename(old, dest)
        raise
    _remove_tree(old)


def _remove_leftovers(dest: Path) -> None:
    """Temporary siblings of ``dest`` left by a process killed in the middle of a clone."""
    for pattern in (f".{dest.name}.clone-*", f".{dest.name}.old-*"):
        for path in dest.parent.glob(pattern):
            _remove_tree(path)


def _remove_tree(path: Path) -> None:
    if path.is_symlink():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _remove_locks(repo: Path) -> None:
    """Lock files a killed git left in ``repo``: each would fail every later sync ("Unable to
    create '.../index.lock': File exists"). Safe: the folder's syncs are serialised."""
    git_dir = repo / ".git"
    for lock in (*git_dir.glob("*.lock"), *git_dir.glob("refs/**/*.lock")):
        with contextlib.suppress(OSError):
            lock.unlink()

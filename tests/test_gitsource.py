"""bot.gitsource: clone and update a git source with the real git, against local repositories.

Remotes are repositories made in tmp_path, reached by file:// URL or plain path. Misbehaving
gits (hanging, chatty, absent) are small shell scripts given as ``git_command``.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from bot.gitsource import GitError, GitSync, redact_url, sync_repository

GIT = shutil.which("git")
# Passed with -c, so the environment sync_repository sees is the operator's.
IDENTITY = ("-c", "user.name=Newsbot Tests", "-c", "user.email=tests@example.invalid")
IDENTITY += ("-c", "commit.gpgsign=false")
needs_git = pytest.mark.skipif(GIT is None, reason="the git command is not installed")


class Origin:
    """A repository to sync from, committed to with a fixed identity."""

    def __init__(self, path: Path, *, init: bool = True) -> None:
        self.path = path
        if init:
            path.mkdir(parents=True)
            self.git("init", "-q", "-b", "main")

    @property
    def url(self) -> str:
        return self.path.as_uri()

    def git(self, *args: str) -> str:
        assert GIT is not None
        done = subprocess.run(
            [GIT, "-C", str(self.path), *IDENTITY, *args],
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout.strip()

    def commit(self, files: dict[str, str | None], message: str = "update") -> str:
        """Write (or, for None, delete) ``files``, commit them, and return the new sha."""
        for name, text in files.items():
            path = self.path / name
            if text is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")


def seed(title: str) -> str:
    slug = title.lower().replace(" ", "-")
    return f"---\ntitle: {title}\nurl: https://example.com/{slug}\n---\n{title} in full.\n"


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    if GIT is None:
        pytest.skip("the git command is not installed")
    repo = Origin(tmp_path / "origin")
    repo.commit({"a.md": seed("Alpha"), "b.md": seed("Beta")}, "first seeds")
    return repo


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    """Where the clone goes; its parent does not exist yet."""
    return tmp_path / "sources" / "news"


def fake_git(tmp_path: Path, body: str) -> str:
    """A shell script standing in for git."""
    path = tmp_path / "fake-git"
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(0o755)
    return str(path)


def siblings(dest: Path) -> list[str]:
    """Everything beside ``dest`` (temporary clones would show up here)."""
    return sorted(p.name for p in dest.parent.iterdir()) if dest.parent.exists() else []


def read(dest: Path) -> dict[str, str]:
    return {
        str(p.relative_to(dest)): p.read_text(encoding="utf-8")
        for p in sorted(dest.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(dest).parts
    }


async def wait_until_gone(pid: int) -> bool:
    for _ in range(200):
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        await asyncio.sleep(0.025)
    return False


# --- cloning and updating ----------------------------------------------------------------------


async def test_first_sync_clones_the_newest_commit(origin: Origin, dest: Path) -> None:
    result = await sync_repository(origin.url, dest)

    assert result == GitSync(commit=origin.git("rev-parse", "HEAD"), changed=True, cloned=True)
    assert read(dest) == {"a.md": seed("Alpha"), "b.md": seed("Beta")}
    assert (dest / ".git").is_dir()
    assert siblings(dest) == ["news"]  # no temporary clone left beside it
    # Shallow: one commit of history, whatever the remote holds.
    origin.commit({"c.md": seed("Gamma")})
    again = await sync_repository(origin.url, dest)
    log = subprocess.run(
        [str(GIT), "-C", str(dest), "rev-list", "--count", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert again.changed and log.stdout.strip() == "1"


async def test_a_second_sync_without_a_new_commit_changes_nothing(
    origin: Origin, dest: Path
) -> None:
    first = await sync_repository(origin.url, dest)
    inode = dest.stat().st_ino

    second = await sync_repository(origin.url, dest)

    assert second == GitSync(commit=first.commit, changed=False, cloned=False)
    assert dest.stat().st_ino == inode  # updated in place, not cloned again


async def test_a_plain_relative_path_is_recognised_as_the_same_remote_next_time(
    origin: Origin, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(origin.path.parent)

    first = await sync_repository("./origin/", dest)
    second = await sync_repository("origin", dest)

    assert first.cloned and read(dest) == {"a.md": seed("Alpha"), "b.md": seed("Beta")}
    assert second == GitSync(commit=first.commit, changed=False, cloned=False)


async def test_a_new_commit_is_pulled(origin: Origin, dest: Path) -> None:
    first = await sync_repository(origin.url, dest)
    head = origin.commit({"a.md": None, "b.md": seed("Beta, revised"), "c/d.md": seed("Delta")})

    result = await sync_repository(origin.url, dest)

    assert result == GitSync(commit=head, changed=True, cloned=False)
    assert head != first.commit
    assert read(dest) == {"b.md": seed("Beta, revised"), "c/d.md": seed("Delta")}
    assert not (dest / "a.md").exists()


async def test_local_edits_never_block_an_update(origin: Origin, dest: Path) -> None:
    await sync_repository(origin.url, dest)
    (dest / "b.md").write_text("edited by hand", encoding="utf-8")
    (dest / "a.md").unlink()
    (dest / "stray.md").write_text(seed("Stray"), encoding="utf-8")
    (dest / "junk").mkdir()
    (dest / "junk" / "x.md").write_text("x", encoding="utf-8")
    (dest / ".gitignore").write_text("*.tmp\n", encoding="utf-8")
    (dest / "ignored.tmp").write_text("x", encoding="utf-8")
    head = origin.commit({"b.md": seed("Beta, revised")})

    result = await sync_repository(origin.url, dest)

    assert result.commit == head and result.changed
    assert read(dest) == {"a.md": seed("Alpha"), "b.md": seed("Beta, revised")}


async def test_a_sync_restores_a_tree_edited_since_even_without_a_new_commit(
    origin: Origin, dest: Path
) -> None:
    first = await sync_repository(origin.url, dest)
    (dest / "a.md").write_text("edited by hand", encoding="utf-8")
    (dest / "stray.md").write_text(seed("Stray"), encoding="utf-8")

    result = await sync_repository(origin.url, dest)

    assert result == GitSync(commit=first.commit, changed=False, cloned=False)
    assert read(dest) == {"a.md": seed("Alpha"), "b.md": seed("Beta")}


async def test_a_local_commit_is_replaced_by_the_remote_one(origin: Origin, dest: Path) -> None:
    first = await sync_repository(origin.url, dest)
    Origin(dest, init=False).commit({"local.md": seed("Local")})

    result = await sync_repository(origin.url, dest)

    assert result == GitSync(commit=first.commit, changed=True, cloned=False)
    assert "local.md" not in read(dest)


async def test_a_branch_is_cloned_and_followed_and_can_be_changed(
    origin: Origin, dest: Path
) -> None:
    main_head = origin.git("rev-parse", "HEAD")
    origin.git("checkout", "-q", "-b", "dev")
    dev_head = origin.commit({"dev.md": seed("Dev")})
    origin.git("checkout", "-q", "main")

    cloned = await sync_repository(origin.url, dest, branch="dev")
    assert cloned == GitSync(commit=dev_head, changed=True, cloned=True)
    assert "dev.md" in read(dest)

    origin.git("checkout", "-q", "dev")
    dev_next = origin.commit({"dev2.md": seed("Dev two")})
    origin.git("checkout", "-q", "main")
    pulled = await sync_repository(origin.url, dest, branch="dev")
    assert pulled == GitSync(commit=dev_next, changed=True, cloned=False)
    assert "dev2.md" in read(dest)

    # The same clone follows another branch (here: the remote's HEAD) without a new clone.
    back = await sync_repository(origin.url, dest)
    assert back == GitSync(commit=main_head, changed=True, cloned=False)
    assert read(dest) == {"a.md": seed("Alpha"), "b.md": seed("Beta")}
    again = await sync_repository(origin.url, dest, branch="dev")
    assert again == GitSync(commit=dev_next, changed=True, cloned=False)


async def test_another_repository_s_clone_is_replaced(
    origin: Origin, dest: Path, tmp_path: Path
) -> None:
    other = Origin(tmp_path / "other")
    other_head = other.commit({"other.md": seed("Other")})
    await sync_repository(origin.url, dest)

    result = await sync_repository(other.url, dest)

    assert result == GitSync(commit=other_head, changed=True, cloned=True)
    assert read(dest) == {"other.md": seed("Other")}
    assert siblings(dest) == ["news"]  # the old clone is gone, not parked beside it


async def test_an_empty_folder_is_cloned_into(origin: Origin, dest: Path) -> None:
    dest.mkdir(parents=True)

    result = await sync_repository(origin.url, dest)

    assert result.cloned and read(dest) == {"a.md": seed("Alpha"), "b.md": seed("Beta")}


async def test_a_folder_that_is_not_a_clone_is_never_replaced(origin: Origin, dest: Path) -> None:
    dest.mkdir(parents=True)
    (dest / "notes.txt").write_text("mine", encoding="utf-8")

    with pytest.raises(GitError, match="not a git clone"):
        await sync_repository(origin.url, dest)

    assert read(dest) == {"notes.txt": "mine"}
    assert siblings(dest) == ["news"]


async def test_a_folder_inside_another_repository_is_never_mistaken_for_it(
    origin: Origin, tmp_path: Path
) -> None:
    outer = Origin(tmp_path / "outer")
    outer_head = outer.commit({"README.md": "outer"})
    (outer.path / "keep.txt").write_text("untracked, must survive", encoding="utf-8")
    dest = outer.path / "sources" / "news"
    (dest / ".git").mkdir(parents=True)  # a broken clone: git must not climb to "outer"
    (dest / "leftover.md").write_text("x", encoding="utf-8")

    result = await sync_repository(origin.url, dest)

    assert result.cloned and read(dest) == {"a.md": seed("Alpha"), "b.md": seed("Beta")}
    assert (outer.path / "keep.txt").read_text(encoding="utf-8") == "untracked, must survive"
    assert outer.git("rev-parse", "HEAD") == outer_head
    assert "[remote" not in (outer.path / ".git" / "config").read_text(encoding="utf-8")


async def test_concurrent_syncs_of_one_folder_take_turns(origin: Origin, dest: Path) -> None:
    results = await asyncio.gather(*(sync_repository(origin.url, dest) for _ in range(3)))

    assert sorted(r.cloned for r in results) == [False, False, True]
    assert len({r.commit for r in results}) == 1
    assert siblings(dest) == ["news"]


# --- failures ----------------------------------------------------------------------------------


async def test_a_missing_branch_fails_naming_it_and_clones_nothing(
    origin: Origin, dest: Path
) -> None:
    with pytest.raises(GitError) as caught:
        await sync_repository(origin.url, dest, branch="nope")

    assert str(caught.value) == f'branch "nope" not found in {origin.url}'
    assert not dest.exists()
    assert siblings(dest) == []


async def test_a_missing_branch_on_an_existing_clone_keeps_the_tree(
    origin: Origin, dest: Path
) -> None:
    first = await sync_repository(origin.url, dest)

    with pytest.raises(GitError, match='branch "nope" not found in'):
        await sync_repository(origin.url, dest, branch="nope")

    assert read(dest) == {"a.md": seed("Alpha"), "b.md": seed("Beta")}
    assert (await sync_repository(origin.url, dest)).commit == first.commit


@needs_git
@pytest.mark.parametrize("as_url", [False, True], ids=["path", "file-url"])
async def test_an_unreachable_remote_fails_with_git_s_reason_and_leaves_no_folder(
    tmp_path: Path, dest: Path, as_url: bool
) -> None:
    missing = tmp_path / "no-such-repository"
    url = missing.as_uri() if as_url else str(missing)

    with pytest.raises(GitError) as caught:
        await sync_repository(url, dest)

    message = str(caught.value)
    assert message.startswith(f"git clone of {url} failed: fatal: ")
    assert "no-such-repository" in message.removeprefix(f"git clone of {url} failed")
    assert "\n" not in message
    assert not dest.exists()
    assert siblings(dest) == []  # the temporary clone is gone too


async def test_a_failed_clone_keeps_the_previous_clone(
    origin: Origin, dest: Path, tmp_path: Path
) -> None:
    await sync_repository(origin.url, dest)

    with pytest.raises(GitError, match=r"git clone of .* failed"):
        await sync_repository(str(tmp_path / "no-such-repository"), dest)

    assert read(dest) == {"a.md": seed("Alpha"), "b.md": seed("Beta")}
    assert siblings(dest) == ["news"]


async def test_a_remote_without_commits_is_an_error(tmp_path: Path, dest: Path) -> None:
    if GIT is None:
        pytest.skip("the git command is not installed")
    empty = Origin(tmp_path / "empty")

    with pytest.raises(GitError, match="has no commits"):
        await sync_repository(empty.url, dest)

    assert not dest.exists() and siblings(dest) == []


async def test_a_missing_git_command_is_reported_as_not_installed(
    tmp_path: Path, dest: Path
) -> None:
    with pytest.raises(GitError) as caught:
        await sync_repository(
            str(tmp_path / "origin"), dest, git_command=str(tmp_path / "nonexistent" / "git")
        )

    assert str(caught.value).startswith("the git command is not installed (needed by git sources)")
    assert not dest.exists() and siblings(dest) == []


async def test_a_git_command_that_cannot_run_is_reported(tmp_path: Path, dest: Path) -> None:
    not_executable = tmp_path / "git"
    not_executable.write_text("#!/bin/sh\n", encoding="utf-8")

    with pytest.raises(GitError, match=r"cannot run the git command .*git: Permission denied"):
        await sync_repository(str(tmp_path / "origin"), dest, git_command=str(not_executable))


@needs_git
async def test_the_ext_transport_stays_refused(tmp_path: Path, dest: Path) -> None:
    marker = tmp_path / "ran"

    with pytest.raises(GitError, match="transport 'ext' not allowed"):
        await sync_repository(f"ext::sh -c touch% {marker}", dest)

    assert not marker.exists()


@pytest.mark.parametrize(
    ("url", "branch", "timeout", "complaint"),
    [
        ("", None, 120.0, "not a URL or path"),
        ("--upload-pack=touch /tmp/x", None, 120.0, "not a URL or path"),
        ("https://host/r.git\nfatal: forged", None, 120.0, "not a URL or path"),
        ("https://host/r.git", "-f", 120.0, "not a valid branch name"),
        ("https://host/r.git", "main:refs/heads/x", 120.0, "not a valid branch name"),
        ("https://host/r.git", "+main", 120.0, "not a valid branch name"),
        ("https://host/r.git", "", 120.0, "not a valid branch name"),
        ("https://host/r.git", "a b", 120.0, "not a valid branch name"),
        ("https://host/r.git", None, 0.0, "positive number"),
        ("https://host/r.git", None, float("nan"), "positive number"),
    ],
)
async def test_bad_arguments_are_refused_before_git_runs(
    tmp_path: Path, dest: Path, url: str, branch: str | None, timeout: float, complaint: str
) -> None:
    # A git that would fail differently ("not installed") proves git never ran.
    with pytest.raises(GitError, match=complaint) as caught:
        await sync_repository(
            url, dest, branch=branch, timeout=timeout, git_command=str(tmp_path / "no-git")
        )

    assert "\n" not in str(caught.value)


# --- what an operator reads --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:secret@host/r.git", "https://***@host/r.git"),
        ("https://ghp_TOKEN@github.com/o/r.git", "https://***@github.com/o/r.git"),
        ("https://user:p@ss@host:8443/r.git", "https://***@host:8443/r.git"),
        ("ssh://git@host:22/r.git", "ssh://***@host:22/r.git"),
        ("https://host/r.git", "https://host/r.git"),
        ("https://host/r@v1", "https://host/r@v1"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("/srv/repos/news", "/srv/repos/news"),
        (
            "from 'https://a:b@x/1' and http://c:d@y/2.",
            "from 'https://***@x/1' and http://***@y/2.",
        ),
    ],
)
def test_redact_url_hides_user_and_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_git_error_hides_credentials_and_stays_on_one_line() -> None:
    error = GitError("git clone of https://u:secret@h/r.git failed:\nfatal: \x1b[31mno")

    assert str(error) == "git clone of https://***@h/r.git failed:\\nfatal: \\x1b[31mno"


async def test_credentials_are_redacted_in_a_real_git_failure(
    tmp_path: Path, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if GIT is None:
        pytest.skip("the git command is not installed")
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(GitError) as caught:
        await sync_repository(f"http://alice:s3cret@127.0.0.1:{port}/r.git", dest, timeout=30)

    message = str(caught.value)
    assert message.startswith(f"git clone of http://***@127.0.0.1:{port}/r.git failed: fatal:")
    assert "s3cret" not in message and "alice" not in message


async def test_credentials_git_prints_itself_are_redacted(tmp_path: Path, dest: Path) -> None:
    git = fake_git(tmp_path, "echo \"fatal: could not read from '$*'\" >&2\nexit 128\n")

    with pytest.raises(GitError) as caught:
        await sync_repository("https://alice:s3cret@host/r.git", dest, git_command=git)

    message = str(caught.value)
    assert "fatal: could not read from" in message
    assert "https://***@host/r.git" in message
    assert "s3cret" not in message and "alice" not in message


async def test_git_s_most_telling_line_is_quoted_printable_and_short(
    tmp_path: Path, dest: Path
) -> None:
    chatter = (
        "Cloning into 'x'...\n"
        "error: something minor\n"
        "fatal: \x1b[31mthe real reason\x1b[0m " + "z" * 500 + "\n"
        "hint: try something else\n"
        "\n"
    )
    (tmp_path / "stderr.txt").write_text(chatter, encoding="utf-8")
    git = fake_git(tmp_path, f"cat '{tmp_path / 'stderr.txt'}' >&2\nexit 128\n")

    with pytest.raises(GitError) as caught:
        await sync_repository("https://host/r.git", dest, git_command=git)

    message = str(caught.value)
    detail = message.removeprefix("git clone of https://host/r.git failed: ")
    assert detail.startswith("fatal: \\x1b[31mthe real reason\\x1b[0m zzz")
    assert detail.endswith("…") and len(detail) <= 200
    assert message.isprintable()


@pytest.mark.parametrize(
    ("stderr", "detail"),
    [
        (  # an ssh host's own words come before git's catch-all
            "ERROR: Repository not found.\nfatal: Could not read from remote repository.\n\n"
            "Please make sure you have the correct access rights\nand the repository exists.\n",
            "ERROR: Repository not found.",
        ),
        (
            "fatal: Could not read from remote repository.\n\nPlease make sure you have\n",
            "fatal: Could not read from remote repository.",
        ),
        ("warning: redirecting\r\nremote: gone\n", "remote: gone"),
        ("hint: only a hint\n", "hint: only a hint"),
        ("", "exit status 128"),
    ],
)
async def test_the_quoted_line_is_the_one_that_explains(
    tmp_path: Path, dest: Path, stderr: str, detail: str
) -> None:
    (tmp_path / "stderr.txt").write_text(stderr, encoding="utf-8")
    git = fake_git(tmp_path, f"cat '{tmp_path / 'stderr.txt'}' >&2\nexit 128\n")

    with pytest.raises(GitError) as caught:
        await sync_repository("https://host/r.git", dest, git_command=git)

    assert str(caught.value) == f"git clone of https://host/r.git failed: {detail}"


async def test_git_killed_without_a_word_is_reported_by_signal(tmp_path: Path, dest: Path) -> None:
    git = fake_git(tmp_path, "kill -9 $$\n")

    with pytest.raises(GitError, match=r"failed: killed by signal 9$"):
        await sync_repository("https://host/r.git", dest, git_command=git)


# --- hanging git -------------------------------------------------------------------------------


def hanging_git(tmp_path: Path) -> tuple[str, Path]:
    """A git that starts a helper (like ssh) and waits for it; the helper's pid file."""
    pid_file = tmp_path / "helper.pid"
    body = f"sleep 60 &\necho $! > '{pid_file}'\nwait\n"
    return fake_git(tmp_path, body), pid_file


async def test_a_hanging_git_is_killed_with_its_helpers_at_the_timeout(
    tmp_path: Path, dest: Path
) -> None:
    git, pid_file = hanging_git(tmp_path)
    started = time.monotonic()

    with pytest.raises(GitError) as caught:
        await sync_repository("https://host/r.git", dest, timeout=0.5, git_command=git)

    assert time.monotonic() - started < 10
    assert str(caught.value) == "git clone of https://host/r.git timed out after 0.5 s"
    assert await wait_until_gone(int(pid_file.read_text()))
    assert not dest.exists() and siblings(dest) == []


async def test_cancelling_a_sync_kills_git_and_cleans_up(tmp_path: Path, dest: Path) -> None:
    git, pid_file = hanging_git(tmp_path)
    task = asyncio.create_task(sync_repository("https://host/r.git", dest, git_command=git))
    for _ in range(400):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        await asyncio.sleep(0.025)
    else:
        pytest.fail("the fake git never started")

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await wait_until_gone(int(pid_file.read_text()))
    assert not dest.exists() and siblings(dest) == []


async def test_a_fetch_killed_at_the_timeout_leaves_no_lock_behind(
    origin: Origin, dest: Path, tmp_path: Path
) -> None:
    await sync_repository(origin.url, dest)
    # A git that, when fetching, takes a lock as real git would and then hangs.
    git = fake_git(
        tmp_path,
        f'case " $* " in *" fetch "*) touch "$2/.git/shallow.lock"; sleep 60;; esac\n'
        f'exec {GIT} "$@"\n',
    )

    with pytest.raises(GitError, match=r"^git fetch of .* timed out after 1 s$"):
        await sync_repository(origin.url, dest, timeout=1, git_command=git)

    assert not (dest / ".git" / "shallow.lock").exists()
    head = origin.commit({"c.md": seed("Gamma")})
    assert (await sync_repository(origin.url, dest)).commit == head

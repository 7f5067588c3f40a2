"""Live sources end to end below Discord: the poller, a real database (SQLite and PostgreSQL),
feeds served by a loopback HTTP server, git repositories made here, folders on disk.

Nothing reaches the internet: every feed is tests/feedserver.py on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config, SourceConfig
from bot.library import Library
from bot.sources import BACKOFF_CAP_SECONDS, JITTER, SourcePoller, next_delay
from tests.feedserver import FeedServer, rss

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
NOW = datetime.now(UTC).replace(microsecond=0)


def entry(n: int, *, days_ago: float = 1.0, **extra: Any) -> dict[str, Any]:
    return {
        "title": f"Glacier observatory {WORDS[n % len(WORDS)]} report number {n}",
        "link": f"https://news.example.org/story/{n}",
        "id": f"urn:story:{n}",
        "summary": f"<p>Field notes <b>{n}</b> from the observatory.</p>",
        "published": NOW - timedelta(days=days_ago),
        "categories": ["Climate"],
        **extra,
    }


WORDS = ("zephyrine", "quillwort", "bramblefinch", "marrowlight", "tidewrack", "fennelgate")


def feed(name: str, server: FeedServer, path: str, **options: Any) -> SourceConfig:
    return SourceConfig(
        name=name, kind="feed", location=server.url(path), every=options.pop("every", 900.0),
        **options,
    )  # fmt: skip


def config_for(database: Path | str, tmp_path: Path, *sources: SourceConfig, **kw: Any) -> Config:
    seeds = tmp_path / "seeds"
    if not seeds.exists():
        seeds.mkdir()
    return Config(
        seeds_dir=seeds,
        database=database,
        sources=sources,
        git_dir=tmp_path / "git",
        **kw,
    )


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    async with FeedServer() as running:
        yield running


async def poll(config: Config, *names: str) -> dict[str, Any]:
    """Poll in a fresh process's worth of objects (a library, a poller), as the CLI does."""
    async with Library.open(config) as library, SourcePoller(library, config) as poller:
        await library.start_index()
        results = await poller.poll_many(names)
        states = {s.name: st for s, st in await poller.states()}
        stored = await library.store.all_articles()
        return {
            "results": {r.name: r for r in results},
            "states": states,
            "stored": {a.url: a for a in stored},
            "hits": [h.url for h in library.index.search("bramblefinch")],
        }


# --- the schedule: pure ----------------------------------------------------------------------


def test_next_delay_doubles_per_failure_up_to_the_cap_and_honours_retry_after() -> None:
    mid = lambda: 0.5  # noqa: E731 - no jitter
    assert next_delay(900, 0, rand=mid) == 900
    assert next_delay(900, 1, rand=mid) == 900
    assert next_delay(900, 2, rand=mid) == 1800
    assert next_delay(900, 3, rand=mid) == 3600
    assert next_delay(900, 40, rand=mid) == BACKOFF_CAP_SECONDS
    # An interval longer than the cap is never shortened by failing.
    assert next_delay(86400, 5, rand=mid) == 86400
    # The server's Retry-After wins when longer, not when shorter.
    assert next_delay(60, 1, retry_after=7200, rand=mid) == 7200
    assert next_delay(900, 1, retry_after=5, rand=mid) == 900
    # Jitter spreads by at most +-JITTER.
    assert next_delay(1000, 0, rand=lambda: 0.0) == pytest.approx(1000 * (1 - JITTER))
    assert next_delay(1000, 0, rand=lambda: 1.0) == pytest.approx(1000 * (1 + JITTER))


# --- feeds -------------------------------------------------------------------------------


async def test_a_feed_is_stored_served_and_then_asked_conditionally(
    database: Path | str, tmp_path: Path, server: FeedServer
) -> None:
    server.set_feed("/world.xml", rss([entry(1), entry(2)], title="World Desk"))
    config = config_for(database, tmp_path, feed("world", server, "/world.xml", topics=("World",)))

    first = await poll(config, "world")
    result = first["results"]["world"]
    assert (result.added, result.updated, result.failed) == (2, 0, False)
    story = first["stored"]["https://news.example.org/story/2"]
    assert story.provider == "World Desk"
    assert story.provider_domain == "news.example.org"
    assert story.excerpt == "Field notes 2 from the observatory."
    assert story.topics == ("Climate", "World")
    assert first["hits"][:1] == ["https://news.example.org/story/2"]  # served by the index
    state = first["states"]["world"]
    assert state.etag is not None and state.last_success is not None and state.failures == 0
    assert state.next_poll is not None and state.next_poll > datetime.now(UTC)

    # A restart polls with the saved validators: a 304, nothing read, nothing written.
    second = await poll(config, "world")
    assert second["results"]["world"].not_modified
    assert server.conditional["/world.xml"] == 1 and server.not_modified["/world.xml"] == 1
    assert second["stored"].keys() == first["stored"].keys()

    # One new entry: one added, the rest unchanged.
    server.set_feed("/world.xml", rss([entry(3), entry(1), entry(2)], title="World Desk"))
    third = (await poll(config, "world"))["results"]["world"]
    assert (third.added, third.updated, third.unchanged) == (1, 0, 2)


async def test_articles_stay_after_leaving_the_feed_until_feeds_keep_days(
    database: Path | str, tmp_path: Path, server: FeedServer
) -> None:
    server.set_feed("/f.xml", rss([entry(1, days_ago=1), entry(2, days_ago=20)]))
    config = config_for(database, tmp_path, feed("f", server, "/f.xml"), feeds_keep_days=30)
    await poll(config)
    server.set_feed("/f.xml", rss([entry(3, days_ago=0.5)]))
    after = await poll(config)
    assert set(after["stored"]) == {f"https://news.example.org/story/{n}" for n in (1, 2, 3)}

    shorter = dataclasses.replace(config, feeds_keep_days=10)
    server.set_feed("/f.xml", rss([entry(4, days_ago=0.2)]))
    pruned = await poll(shorter)
    assert pruned["results"]["f"].removed == 1
    assert "https://news.example.org/story/2" not in pruned["stored"]
    assert "https://news.example.org/story/1" in pruned["stored"]


async def test_a_failing_feed_is_recorded_backs_off_and_touches_nothing_else(
    database: Path | str, tmp_path: Path, server: FeedServer
) -> None:
    server.set_feed("/good.xml", rss([entry(1)]))
    server.set_feed("/flaky.xml", rss([entry(2)]))
    config = config_for(
        database, tmp_path, feed("good", server, "/good.xml"), feed("flaky", server, "/flaky.xml")
    )
    await poll(config)
    server.set_status("/flaky.xml", 404)
    server.set_feed("/good.xml", rss([entry(3), entry(1)]))
    before = datetime.now(UTC)
    outcome = await poll(config)
    flaky = outcome["results"]["flaky"]
    assert flaky.failed and "404" in (flaky.error or "")
    assert outcome["results"]["good"].added == 1
    # The flaky feed's article is still there; its state says what happened.
    assert "https://news.example.org/story/2" in outcome["stored"]
    state = outcome["states"]["flaky"]
    assert state.failures == 1 and "404" in (state.last_error or "")
    assert state.last_success is not None and state.last_success < before
    again = await poll(config, "flaky")
    assert again["states"]["flaky"].failures == 2
    wait = (again["states"]["flaky"].next_poll - datetime.now(UTC)).total_seconds()
    assert wait > 900 * 2 * (1 - JITTER) - 60  # doubled

    # It recovers: the count resets, the error clears.
    server.set_feed("/flaky.xml", rss([entry(2)]))
    healed = await poll(config, "flaky")
    assert healed["states"]["flaky"].failures == 0
    assert healed["states"]["flaky"].last_error is None


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        ("html", "HTML"),
        ("empty", "empty"),
        ("invalid", "not a feed"),
        ("huge", "MiB"),
        ("gone", "410"),
        ("loop", "redirect"),
        ("nolinks", "link"),
        ("busy", "429"),
    ],
)
async def test_bad_feeds_are_a_clear_status_and_change_nothing_else(
    tmp_path: Path, server: FeedServer, behaviour: str, expected: str
) -> None:
    server.set_feed("/good.xml", rss([entry(1)]))
    path = "/bad"
    if behaviour == "html":
        server.set_feed(path, "<!doctype html><html><body><h1>Hi</h1></body></html>",
                        content_type="text/html")  # fmt: skip
    elif behaviour == "empty":
        server.set_feed(path, b"")
    elif behaviour == "invalid":
        server.set_feed(path, b"<<<>>>garbage")
    elif behaviour == "huge":
        server.set_feed(path, b"<rss>" + b" " * (3 * 1024 * 1024) + b"</rss>")
    elif behaviour == "gone":
        server.set_status(path, 410)
    elif behaviour == "loop":
        server.redirect(path, "/bad2")
        server.redirect("/bad2", path)
    elif behaviour == "nolinks":
        server.set_feed(path, rss([{"title": "No link here", "summary": "x"}]))
    elif behaviour == "busy":
        server.set_status(path, 429, headers={"Retry-After": "7200"})
    config = config_for(
        tmp_path / "news.sqlite3",
        tmp_path,
        feed("good", server, "/good.xml"),
        feed("bad", server, path),
        feed_max_bytes=2 * 1024 * 1024,
    )
    outcome = await poll(config)
    bad = outcome["results"]["bad"]
    assert bad.failed and expected in (bad.error or ""), bad
    assert outcome["results"]["good"].added == 1
    assert set(outcome["stored"]) == {"https://news.example.org/story/1"}
    state = outcome["states"]["bad"]
    assert expected in (state.last_error or "")
    if behaviour == "gone":
        assert state.disabled is not None and "410" in state.disabled
    if behaviour == "busy":
        wait = (state.next_poll - datetime.now(UTC)).total_seconds()
        assert wait >= 7200 * (1 - JITTER) - 60  # Retry-After beats the 15 min interval


async def test_a_permanent_redirect_moves_the_feed_and_a_temporary_one_does_not(
    tmp_path: Path, server: FeedServer
) -> None:
    server.set_feed("/new.xml", rss([entry(1)]))
    server.set_feed("/other.xml", rss([entry(2)]))
    server.redirect("/old.xml", "/new.xml", status=301)
    server.redirect("/tmp.xml", "/other.xml", status=302)
    config = config_for(
        tmp_path / "news.sqlite3",
        tmp_path,
        feed("moved", server, "/old.xml"),
        feed("borrowed", server, "/tmp.xml"),
    )
    first = await poll(config)
    assert first["states"]["moved"].fetch_url == server.url("/new.xml")
    assert first["states"]["borrowed"].fetch_url == server.url("/tmp.xml")
    await poll(config)
    assert server.requests["/old.xml"] == 1  # the second poll went straight to the new URL
    assert server.requests["/tmp.xml"] == 2


async def test_a_seed_file_keeps_its_url_and_a_seed_reload_keeps_feed_articles(
    tmp_path: Path, server: FeedServer
) -> None:
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    config = config_for(tmp_path / "news.sqlite3", tmp_path, feed("f", server, "/f.xml"))
    async with Library.open(config) as library:
        await library.reload()
        seeded = {a.url: a for a in await library.store.all_articles()}
    taken = next(iter(seeded))
    server.set_feed("/f.xml", rss([entry(1), {**entry(2), "link": taken, "title": "Feed copy"}]))
    outcome = await poll(config)
    assert outcome["results"]["f"].added == 1
    assert outcome["stored"][taken].title == seeded[taken].title  # the seed file's, not the feed's
    async with Library.open(config) as library:
        report = await library.reload()  # a seed reload: feed articles are not its to remove
        assert report.removed == [] and report.summary().startswith("added 0, updated 0")
        assert await library.store.get_article("https://news.example.org/story/1") is not None


async def test_an_entry_whose_link_changes_moves_its_article(
    database: Path | str, tmp_path: Path, server: FeedServer
) -> None:
    server.set_feed("/f.xml", rss([entry(1)]))
    config = config_for(database, tmp_path, feed("f", server, "/f.xml"))
    await poll(config)
    server.set_feed("/f.xml", rss([{**entry(1), "link": "https://news.example.org/story/1-fixed"}]))
    outcome = await poll(config)
    assert outcome["results"]["f"].updated == 1 and outcome["results"]["f"].added == 0
    assert set(outcome["stored"]) == {"https://news.example.org/story/1-fixed"}


async def test_two_processes_never_poll_one_source_at_once(
    database: Path | str, tmp_path: Path, server: FeedServer
) -> None:
    server.trickle("/slow.xml", rss([entry(1)]).encode(), bytes_per_second=2000)
    config = config_for(database, tmp_path, feed("slow", server, "/slow.xml"))
    import asyncio

    async with (
        Library.open(config) as one,
        Library.open(config) as two,
        SourcePoller(one, config) as first,
        SourcePoller(two, config) as second,
    ):
        # Both see it due (never polled); the lease lets one of them fetch.
        results = await asyncio.gather(first.poll("slow"), second.poll("slow"))
    skipped = [r for r in results if r.skipped]
    assert len(skipped) == 1 and "being polled by" in (skipped[0].skipped or "")
    assert server.requests["/slow.xml"] == 1


# --- folders and git ---------------------------------------------------------------------


async def test_a_folder_source_adds_its_topics_and_a_topic_change_reaches_old_files(
    tmp_path: Path,
) -> None:
    extra = tmp_path / "extra"
    shutil.copytree(SEEDS, extra)
    source = SourceConfig("desk", "folder", str(extra), 300.0, topics=("Desk",))
    config = config_for(tmp_path / "news.sqlite3", tmp_path, source)
    outcome = await poll(config, "desk")
    assert outcome["results"]["desk"].added == 5
    assert all("Desk" in a.topics for a in outcome["stored"].values())
    changed = dataclasses.replace(source, topics=("Newsroom",))
    again = await poll(dataclasses.replace(config, sources=(changed,)), "desk")
    assert again["results"]["desk"].updated == 5
    assert all("Newsroom" in a.topics and "Desk" not in a.topics for a in again["stored"].values())


async def test_a_missing_folder_is_a_failed_poll_that_removes_nothing(tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    shutil.copytree(SEEDS, extra)
    source = SourceConfig("desk", "folder", str(extra), 300.0)
    config = config_for(tmp_path / "news.sqlite3", tmp_path, source)
    await poll(config, "desk")
    shutil.rmtree(extra)
    outcome = await poll(config, "desk")
    assert outcome["results"]["desk"].failed
    assert len(outcome["stored"]) == 5
    assert outcome["states"]["desk"].failures == 1


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=T", "-c", "user.email=t@example.org", *args],
        cwd=cwd, check=True, capture_output=True,
    )  # fmt: skip


@pytest.mark.skipif(shutil.which("git") is None, reason="the git command is not installed")
async def test_a_git_source_is_cloned_pulled_and_loaded(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "news").mkdir(parents=True)
    seeds = sorted(SEEDS.glob("*.md"))
    for seed in seeds[:3]:
        shutil.copy(seed, repo / "news" / seed.name)
    _git("init", "-q", "-b", "main", cwd=repo)
    _git("add", ".", cwd=repo)
    _git("commit", "-q", "-m", "first", cwd=repo)
    source = SourceConfig("repo", "git", str(repo), 900.0, path="news", branch="main")
    config = config_for(tmp_path / "news.sqlite3", tmp_path, source)
    first = await poll(config, "repo")
    assert first["results"]["repo"].added == 3, first["results"]
    assert (tmp_path / "git" / "repo" / "news").is_dir()

    shutil.copy(seeds[3], repo / "news" / seeds[3].name)
    (repo / "news" / seeds[0].name).unlink()
    _git("add", "-A", ".", cwd=repo)
    _git("commit", "-q", "-m", "second", cwd=repo)
    second = (await poll(config, "repo"))["results"]["repo"]
    assert (second.added, second.removed) == (1, 1)


async def test_git_unreachable_or_missing_is_a_status_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = SourceConfig("repo", "git", str(tmp_path / "nowhere"), 900.0)
    config = config_for(tmp_path / "news.sqlite3", tmp_path, source)
    unreachable = await poll(config, "repo")
    assert unreachable["results"]["repo"].failed
    assert unreachable["states"]["repo"].last_error
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    missing = await poll(config, "repo")
    assert "not installed" in (missing["results"]["repo"].error or "")


async def test_the_same_entry_under_changing_ids_stays_one_article(
    tmp_path: Path, server: FeedServer
) -> None:
    config = config_for(tmp_path / "news.sqlite3", tmp_path, feed("f", server, "/f.xml"))
    for poll_number in range(3):
        server.set_feed("/f.xml", rss([{**entry(1), "id": f"volatile-{poll_number}"}]))
        outcome = await poll(config)
    assert list(outcome["stored"]) == ["https://news.example.org/story/1"]
    assert outcome["results"]["f"].unchanged == 1


async def test_dates_in_the_future_or_unreadable_are_dated_when_fetched_and_noted(
    tmp_path: Path, server: FeedServer
) -> None:
    future = {**entry(1), "published": datetime.now(UTC) + timedelta(days=30)}
    undated = {**entry(2), "published": None}
    server.set_feed("/f.xml", rss([future, undated]))
    config = config_for(tmp_path / "news.sqlite3", tmp_path, feed("f", server, "/f.xml"))
    before = datetime.now(UTC) - timedelta(seconds=1)
    outcome = await poll(config)
    for url in ("https://news.example.org/story/1", "https://news.example.org/story/2"):
        assert before <= outcome["stored"][url].published <= datetime.now(UTC)
    notes = outcome["states"]["f"].notes or ""
    assert "future" in notes and "date" in notes
    # The feed changes (a new entry): the undated ones keep the date they were first given,
    # rather than rising to the top again at every poll.
    server.set_feed("/f.xml", rss([entry(3), future, undated]))
    again = await poll(config)
    assert (again["results"]["f"].added, again["results"]["f"].unchanged) == (1, 2)
    for url in ("https://news.example.org/story/1", "https://news.example.org/story/2"):
        assert again["stored"][url].published == outcome["stored"][url].published


async def test_a_server_sending_a_byte_a_second_and_an_unknown_host_fail_alone(
    tmp_path: Path, server: FeedServer
) -> None:
    server.set_feed("/good.xml", rss([entry(1)]))
    server.trickle("/slow.xml", rss([entry(2)]).encode(), bytes_per_second=1)
    unknown = SourceConfig("nowhere", "feed", "http://feeds.nowhere.invalid/rss", 900.0)
    config = config_for(
        tmp_path / "news.sqlite3",
        tmp_path,
        feed("good", server, "/good.xml"),
        feed("slow", server, "/slow.xml"),
        unknown,
        feed_timeout_seconds=1.5,
    )
    outcome = await poll(config)
    assert "timed out" in (outcome["results"]["slow"].error or "")
    assert "nowhere.invalid" in (outcome["results"]["nowhere"].error or "")
    assert outcome["results"]["good"].added == 1


async def test_the_digest_sees_feed_stories_as_new(
    database: Path | str, tmp_path: Path, server: FeedServer
) -> None:
    config = config_for(database, tmp_path, feed("f", server, "/f.xml"))
    server.set_feed("/f.xml", rss([entry(1)]))
    await poll(config)
    last_digest = datetime.now(UTC)
    server.set_feed("/f.xml", rss([entry(2), entry(1)]))
    await poll(config)
    async with Library.open(config) as library:
        new = await library.store.articles_first_seen_after(last_digest)
    assert [a.url for a in new] == ["https://news.example.org/story/2"]

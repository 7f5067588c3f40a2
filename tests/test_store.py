"""bot.store against both backends: a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from bot.articles import Article, RelatedLink
from bot.loader import SeedFileRecord
from bot.store import (
    SEARCH_RETENTION,
    CorpusChanges,
    ReloadChanges,
    StaleReloadError,
    Store,
    StoreError,
    new_search_id,
)
from bot.store import base as store_base
from bot.store.sqlite import MIGRATIONS, SCHEMA_VERSION
from tests.botharness import write_lock_held_elsewhere

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store(database: Path | str) -> AsyncIterator[Store]:
    async with await Store.open(database) as opened:
        yield opened


def article(n: int, **overrides: object) -> Article:
    fields: dict[str, object] = {
        "url": f"https://example.com/{n}",
        "title": f"Title {n}",
        "excerpt": f"Excerpt {n}\nsecond line",
        "published": datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=n),
        "provider": "Example",
        "provider_domain": "example.com",
        "topics": ("AI", f"topic {n % 3}"),
    }
    fields.update(overrides)
    return Article(**fields)  # type: ignore[arg-type]


async def put(store: Store, *articles: Article, now: datetime = NOW) -> None:
    """Write articles the way a reload does (the only write path for articles)."""
    state = await store.reload_state()
    changes = ReloadChanges(upsert_articles=[(a, f"/seeds/{a.url[-8:]}.md") for a in articles])
    await store.apply_reload(changes, state=state, now=now)


async def delete(store: Store, *urls: str) -> None:
    state = await store.reload_state()
    await store.apply_reload(ReloadChanges(delete_articles=urls), state=state, now=NOW)


# --- articles -----------------------------------------------------------------------------------


async def test_articles_round_trip_with_every_field(store: Store) -> None:
    full = Article(
        url="https://example.com/full",
        title="Émoji 🚀 “quotes” and العربية",
        excerpt="line one\nline two",
        published=datetime(2020, 6, 11, 12, 30, 15, 123456, tzinfo=UTC),
        provider="مزود",
        provider_domain="example.com",
        provider_icon="https://example.com/icon.png",
        image_url="https://example.com/image.jpg",
        quality=0.875,
        kind="video",
        topics=("Facial recognition", "AI", "Policy"),
        related=(
            RelatedLink(
                title="Second",
                url="https://other.example/2",
                provider="Other",
                provider_domain="other.example",
                published=datetime(2020, 6, 10, tzinfo=UTC),
                excerpt="rel excerpt",
                image_url="https://other.example/2.jpg",
            ),
            RelatedLink(title="First", url="https://other.example/1"),  # no date, no image
        ),
        warnings=("not stored: compare=False",),
    )
    bare = article(1, topics=(), quality=None, provider="", provider_domain="")
    await put(store, full, bare)

    assert await store.all_articles() == [bare, full]  # newest first
    assert await store.get_article(full.url) == full
    assert await store.get_article("https://nowhere.example/") is None
    assert await store.count_articles() == 2
    back = await store.get_article(full.url)
    assert back is not None
    assert back.related[0].url == "https://other.example/2"  # order kept
    assert back.published.tzinfo is not None and back.published.utcoffset() == timedelta(0)


async def test_dates_in_other_zones_come_back_as_the_same_instant_in_utc(store: Store) -> None:
    paris = timezone(timedelta(hours=2))
    await put(store, article(1, published=datetime(2024, 1, 1, 14, 0, tzinfo=paris)))
    back = await store.get_article("https://example.com/1")
    assert back is not None
    assert back.published == datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    assert back.published.utcoffset() == timedelta(0)


async def test_naive_dates_are_refused_and_nothing_is_written(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"):
        await put(store, article(1), article(2, published=datetime(2024, 1, 1)))
    assert await store.count_articles() == 0


async def test_update_keeps_first_seen_and_replaces_topics_and_links(store: Store) -> None:
    await put(store, article(1, related=(RelatedLink("a", "https://a.example/"),)), now=NOW)
    later = NOW + timedelta(days=3)
    changed = article(1, title="New title", topics=("Only",), related=())
    await put(store, changed, article(2), now=later)

    assert await store.get_article(changed.url) == changed
    assert await store.first_seen(changed.url) == NOW
    assert await store.first_seen("https://example.com/2") == later
    assert [a.url for a in await store.articles_first_seen_after(NOW)] == ["https://example.com/2"]
    assert len(await store.articles_first_seen_after(None)) == 2


async def test_deleting_an_article_cascades_to_its_topics_and_links(store: Store) -> None:
    await put(store, article(1, related=(RelatedLink("a", "https://a.example/"),)))
    await delete(store, "https://example.com/1")
    assert await store.topics() == []
    async with store.session("counting") as db:
        assert await db.fetchval("SELECT count(*) FROM related_links") == 0


async def test_topics_are_counted_most_used_first(store: Store) -> None:
    await put(store, *(article(n) for n in range(5)))
    assert await store.topics() == [
        ("AI", 5),
        ("topic 0", 2),
        ("topic 1", 2),
        ("topic 2", 1),
    ]


async def test_all_articles_hydrates_ten_thousand_articles_in_order(store: Store) -> None:
    related = tuple(
        RelatedLink(f"link {i}", f"https://other.example/{i}", published=NOW) for i in range(3)
    )
    articles = [article(n, related=related) for n in range(10_000)]
    await put(store, *articles)

    # (Its speed is measured by bench/load.py and bench/interactions.py, not asserted here.)
    loaded = await store.all_articles()

    assert len(loaded) == 10_000
    assert loaded[-1] == articles[0]
    assert loaded[0] == articles[-1]


# --- opening and migrations ----------------------------------------------------------------------


async def test_open_creates_the_folder_and_a_wal_database(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "news.sqlite3"
    async with await Store.open(path) as store:
        assert await store.schema_version() == SCHEMA_VERSION
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


async def test_a_version_1_database_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[0])
        db.execute(
            "INSERT INTO articles (url, title, excerpt, published, provider, provider_domain,"
            " quality, kind, first_seen, source_file) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                "https://example.com/old",
                "Old",
                "",
                "2020-01-01T00:00:00.000000+00:00",
                "P",
                "p.example",
                0.5,
                "article",
                "2020-01-02T00:00:00.000000+00:00",
                "/seeds/old.md",
            ),
        )
        db.execute("INSERT INTO article_topics VALUES ('https://example.com/old', 0, 'History')")
        db.execute("PRAGMA user_version = 1")
    db.close()

    async with await Store.open(path) as store:
        assert await store.schema_version() == SCHEMA_VERSION
        old = await store.get_article("https://example.com/old")
        assert old is not None and old.topics == ("History",) and old.quality == 0.5
        # The version 2 tables exist and work.
        assert await store.get_guild_settings(1) is None
        # The change log starts now: an index from before it is rebuilt, a current one kept.
        generation = await store.corpus_generation()
        assert await store.corpus_changes(generation - 1) is None
        assert await store.corpus_changes(generation) == CorpusChanges(generation, [], [])
        assert await store.claim_digest(1, "2024-05-01", NOW)


async def test_two_processes_creating_the_same_database_migrate_it_once(
    database: Path | str,
) -> None:
    stores = await asyncio.gather(*(Store.open(database) for _ in range(3)))
    try:
        versions = {await s.schema_version() for s in stores}
        assert len(versions) == 1 and versions.pop() >= 1
        assert {await s.corpus_generation() for s in stores} == {1}
    finally:
        for opened in stores:
            await opened.close()


async def test_a_database_newer_than_the_code_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE from_the_future (x)")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    newer, known = SCHEMA_VERSION + 1, SCHEMA_VERSION
    expected = rf"version {newer} is newer than this newsbot knows \({known}\)"
    with pytest.raises(StoreError, match=expected):
        await Store.open(path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION + 1,)
    db.close()


async def test_a_text_file_is_not_a_newsbot_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite3"
    path.write_text("these are my notes, not a database\n" * 10)
    with pytest.raises(StoreError, match=r"notes\.sqlite3: not a newsbot database \(.*"):
        await Store.open(path)
    assert path.read_text().startswith("these are my notes")


async def test_someone_elses_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE invoices (id INTEGER)")
    db.close()
    with pytest.raises(StoreError, match=r"not a newsbot database.*invoices"):
        await Store.open(path)


async def test_a_failing_migration_rolls_back_to_the_previous_version(tmp_path: Path) -> None:
    path = tmp_path / "half.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[0])
        db.execute("CREATE TABLE guild_settings (x)")  # migration 2 will collide with this
        db.execute("PRAGMA user_version = 1")
    db.close()
    with pytest.raises(StoreError, match=r"nothing was changed.*guild_settings"):
        await Store.open(path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (1,)
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "digest_log" not in tables
    db.close()


# --- reload snapshots -----------------------------------------------------------------------------


async def test_a_reload_planned_before_another_reload_is_refused(store: Store) -> None:
    first = await store.reload_state()
    second = await store.reload_state()
    await store.apply_reload(
        ReloadChanges(upsert_articles=[(article(1), "/a")]), state=first, now=NOW
    )
    with pytest.raises(StaleReloadError):
        await store.apply_reload(
            ReloadChanges(upsert_articles=[(article(2), "/b")]), state=second, now=NOW
        )
    assert [a.url for a in await store.all_articles()] == ["https://example.com/1"]


async def test_a_reload_planned_before_another_process_changed_the_corpus_is_refused(
    database: Path | str,
) -> None:
    async with await Store.open(database) as store, await Store.open(database) as other:
        state = await store.reload_state()
        await put(other, article(2))
        with pytest.raises(StaleReloadError):
            await store.apply_reload(
                ReloadChanges(upsert_articles=[(article(1), "/a")]), state=state, now=NOW
            )


async def test_the_bots_own_writes_never_make_a_reload_stale(database: Path | str) -> None:
    async with await Store.open(database) as store, await Store.open(database) as bot:
        state = await store.reload_state()
        # Everything a running bot writes while a load is planned elsewhere:
        await bot.set_guild_settings(1, now=NOW, digest_enabled=True)
        await bot.save_search(7, "query", ["https://a"], NOW)
        assert await bot.claim_digest(1, "2024-05-01", NOW)
        await bot.mark_digest_posted(1, "2024-05-01", 5, NOW)
        await bot.heartbeat()
        generation = await store.apply_reload(
            ReloadChanges(upsert_articles=[(article(1), "/a")]), state=state, now=NOW
        )
        assert generation == state.generation + 1
        assert await bot.corpus_generation() == generation


async def test_only_a_change_of_articles_bumps_the_generation(store: Store) -> None:
    start = await store.corpus_generation()
    await put(store, article(1))
    assert await store.corpus_generation() == start + 1
    # A reload that records a rejected file but changes no article leaves it alone.
    state = await store.reload_state()
    record = SeedFileRecord("/seeds/bad.md", "/seeds", 3, 4, None, None, "bad.md: no title")
    assert (
        await store.apply_reload(ReloadChanges(upsert_files=[record]), state=state, now=NOW) is None
    )
    assert await store.corpus_generation() == start + 1


async def test_the_change_log_names_what_changed_after_a_generation(store: Store) -> None:
    await put(store, article(1), article(2), article(3))
    start = await store.corpus_generation()
    assert await store.corpus_changes(start) == CorpusChanges(start, [], [])
    await put(store, article(2, title="Two, retitled"), article(4))
    await delete(store, "https://example.com/3")
    changes = await store.corpus_changes(start)
    assert changes is not None and changes.generation == start + 2
    assert {d.url: d.title for d in changes.upserts} == {
        "https://example.com/2": "Two, retitled",
        "https://example.com/4": "Title 4",
    }
    assert changes.removed == ["https://example.com/3"]
    four = next(d for d in changes.upserts if d.url.endswith("/4"))
    assert four.topics == ("AI", "topic 1") and four.provider == "Example"
    assert four.published == article(4).published.timestamp()
    # Only what came after the generation asked for.
    later = await store.corpus_changes(start + 1)
    assert later is not None and later.upserts == [] and later.removed == ["https://example.com/3"]
    # A generation this database never had, or one from before the log: rebuild.
    assert await store.corpus_changes(start + 5) is None
    assert await store.corpus_changes(0) is None


async def test_the_change_log_keeps_a_bounded_number_of_generations(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_base, "LOG_GENERATIONS", 3)
    await put(store, article(1))
    first = await store.corpus_generation()
    for n in range(2, 7):
        await put(store, article(n))
    now = await store.corpus_generation()
    assert await store.corpus_changes(first) is None  # pruned: more than 3 generations back
    kept = await store.corpus_changes(now - 3)
    assert kept is not None and len(kept.upserts) == 3
    async with store.session("counting the log", atomic=False) as db:
        assert await db.fetchval("SELECT count(*) FROM corpus_changes") == 3


async def test_a_change_of_most_of_the_corpus_is_not_logged(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_base, "LOG_FLOOR", 2)
    await put(store, *(article(n) for n in range(10)))
    start = await store.corpus_generation()
    await put(store, article(1, title="changed"))  # one of ten: logged
    assert await store.corpus_changes(start) is not None
    await put(store, *(article(n, title="all changed") for n in range(10)))
    # Reading every article back costs no more than applying them: processes rebuild.
    assert await store.corpus_changes(start + 1) is None
    assert await store.corpus_changes(start + 2) == CorpusChanges(start + 2, [], [])


# --- guild settings -----------------------------------------------------------------------------


async def test_guild_settings_are_created_then_changed_key_by_key(store: Store) -> None:
    assert await store.get_guild_settings(42) is None
    created = await store.set_guild_settings(
        42, now=NOW, digest_channel_id=1234, digest_time="08:30", digest_timezone="Europe/Paris"
    )
    assert created.digest_enabled is False
    assert created.updated_at == NOW
    later = NOW + timedelta(hours=1)
    changed = await store.set_guild_settings(42, now=later, digest_enabled=True)
    assert changed == created.__class__(
        guild_id=42,
        digest_channel_id=1234,
        digest_time="08:30",
        digest_timezone="Europe/Paris",
        digest_enabled=True,
        updated_at=later,
    )
    assert await store.get_guild_settings(42) == changed
    cleared = await store.set_guild_settings(42, now=later, digest_channel_id=None)
    assert cleared.digest_channel_id is None and cleared.digest_time == "08:30"


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"digest_colour": "red"}, TypeError),
        ({"digest_time": "8:30"}, ValueError),
        ({"digest_time": "24:00"}, ValueError),
        ({"digest_timezone": "Mars/Olympus_Mons"}, ValueError),
        ({"digest_enabled": 1}, ValueError),
        ({"digest_channel_id": "1234"}, ValueError),
    ],
)
async def test_bad_guild_settings_are_refused(
    store: Store, changes: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        await store.set_guild_settings(7, now=NOW, **changes)
    assert await store.get_guild_settings(7) is None


# --- digest claims ------------------------------------------------------------------------------


async def test_a_day_is_claimed_once(store: Store) -> None:
    assert await store.claim_digest(1, date(2024, 5, 1), NOW) is True
    assert await store.claim_digest(1, "2024-05-01", NOW + timedelta(minutes=1)) is False
    # Another day and another guild are independent.
    assert await store.claim_digest(1, "2024-05-02", NOW) is True
    assert await store.claim_digest(2, "2024-05-01", NOW) is True


async def test_a_claim_of_a_live_process_holds_and_a_dead_ones_is_taken_over_once(
    database: Path | str,
) -> None:
    async with await Store.open(database) as poster, await Store.open(database) as other:
        await poster.heartbeat()
        assert await poster.claim_digest(1, "2024-05-01", NOW)
        # The poster is alive (it beats): nobody else may post that day, however late.
        await other.heartbeat()
        assert not await other.claim_digest(1, "2024-05-01", NOW + timedelta(minutes=5))
        # The poster dies mid-post: its heartbeat goes silent for longer than the timeout.
        other.holder_timeout = timedelta(seconds=0)
        later = NOW + timedelta(minutes=6)
        assert await other.claim_digest(1, "2024-05-01", later)
        # Exactly one caller takes it over: the new holder beats now.
        other.holder_timeout = timedelta(seconds=45)
        await other.heartbeat()
        assert not await other.claim_digest(1, "2024-05-01", later)
        record = await other.last_digest(1)
        assert record is not None
        assert (record.status, record.attempts, record.claimed_at) == ("claimed", 2, later)


async def test_a_stopped_process_gives_up_its_claims_at_once(database: Path | str) -> None:
    async with await Store.open(database) as poster, await Store.open(database) as other:
        await poster.heartbeat()
        assert await poster.claim_digest(1, "2024-05-01", NOW)
        await poster.retire()
        assert await other.claim_digest(1, "2024-05-01", NOW)


async def test_a_claim_with_no_live_holder_still_waits_for_stale_after(store: Store) -> None:
    # A holder that beats but stays silent past stale_after (stuck): taken over then.
    await store.heartbeat()
    assert await store.claim_digest(1, "2024-05-01", NOW)
    assert not await store.claim_digest(1, "2024-05-01", NOW + timedelta(minutes=14))
    assert await store.claim_digest(1, "2024-05-01", NOW + timedelta(minutes=16))


async def test_the_reload_lease_has_one_holder_until_released_or_silent(
    database: Path | str,
) -> None:
    async with await Store.open(database) as a, await Store.open(database) as b:
        assert await a.take_lease("reload", now=NOW) is None
        assert await b.take_lease("reload", now=NOW) == a.holder
        assert await a.take_lease("reload", now=NOW) is None  # its own: taken again
        await a.release_lease("reload")
        assert await b.take_lease("reload", now=NOW) is None
        a.holder_timeout = timedelta(seconds=0)  # b looks dead to a
        assert await a.take_lease("reload", now=NOW) is None


async def test_a_posted_day_is_never_claimed_again(store: Store) -> None:
    assert await store.claim_digest(1, "2024-05-01", NOW)
    await store.mark_digest_posted(1, "2024-05-01", 987654321, NOW + timedelta(seconds=2))
    for later in (NOW, NOW + timedelta(hours=1), NOW + timedelta(days=30)):
        assert not await store.claim_digest(1, "2024-05-01", later)
    record = await store.last_digest(1)
    assert record is not None
    assert (record.status, record.message_id, record.posted_at, record.attempts) == (
        "posted",
        987654321,
        NOW + timedelta(seconds=2),
        1,
    )


async def test_a_failed_day_may_be_retried_up_to_max_attempts(store: Store) -> None:
    for attempt in range(1, 4):
        assert await store.claim_digest(1, "2024-05-01", NOW, max_attempts=3)
        await store.mark_digest_failed(1, "2024-05-01", f"Forbidden #{attempt}", NOW)
    assert not await store.claim_digest(1, "2024-05-01", NOW, max_attempts=3)
    record = await store.last_digest(1)
    assert record is not None
    assert (record.status, record.attempts, record.error) == ("failed", 3, "Forbidden #3")
    assert record.failed_at == NOW


async def test_concurrent_claims_from_two_connections_have_one_winner(
    database: Path | str,
) -> None:
    async with await Store.open(database) as a, await Store.open(database) as b:
        await a.heartbeat()
        await b.heartbeat()
        results = await asyncio.gather(
            *(s.claim_digest(9, "2024-05-01", NOW) for s in (a, b, a, b, a, b))
        )
    assert sorted(results) == [False] * 5 + [True]


async def test_only_the_claims_holder_records_its_outcome(database: Path | str) -> None:
    async with await Store.open(database) as first, await Store.open(database) as second:
        assert not await first.mark_digest_posted(1, "2024-05-01", 1, NOW)  # nothing claimed
        assert await first.claim_digest(1, "2024-05-01", NOW)
        second.holder_timeout = timedelta(0)  # the first looks dead: its claim is taken over
        assert await second.claim_digest(1, "2024-05-01", NOW)
        # The first wakes up: neither its post nor its failure overwrites the new claim.
        assert not await first.mark_digest_failed(1, "2024-05-01", "late", NOW, give_up=True)
        assert not await first.mark_digest_posted(1, "2024-05-01", 5, NOW)
        record = await second.last_digest(1)
        assert record is not None and (record.status, record.final) == ("claimed", False)
        assert await second.mark_digest_posted(1, "2024-05-01", 6, NOW)
        record = await second.last_digest(1)
        assert record is not None and (record.status, record.message_id) == ("posted", 6)


async def test_last_digest_is_the_latest_day_optionally_posted_only(store: Store) -> None:
    assert await store.last_digest(1) is None
    assert await store.claim_digest(1, "2024-04-30", NOW)
    await store.mark_digest_posted(1, "2024-04-30", 5, NOW)
    assert await store.claim_digest(1, "2024-05-01", NOW)
    await store.mark_digest_failed(1, "2024-05-01", "boom", NOW)
    latest = await store.last_digest(1)
    posted = await store.last_digest(1, posted_only=True)
    assert latest is not None and latest.local_date == "2024-05-01"
    assert posted is not None and posted.local_date == "2024-04-30"


async def test_saved_searches_round_trip_and_expire(database: Path | str) -> None:
    async with await Store.open(database) as store:
        first = await store.save_search(7, "facial recognition", ["https://a", "https://b"], NOW)
        saved = await store.load_search(first)
        assert saved is not None
        assert (saved.user_id, saved.query, saved.urls) == (
            7,
            "facial recognition",
            ("https://a", "https://b"),
        )
        assert await store.load_search(first + 1000) is None
        # A save a retention period later prunes the old one: its buttons say "expired".
        later = NOW + SEARCH_RETENTION + timedelta(seconds=1)
        second = await store.save_search(8, "x", ["https://c"], later)
        assert second != first
        assert await store.load_search(first) is None
        assert await store.load_search(second) is not None


async def test_sqlite_reads_do_not_queue_behind_a_write_waiting_for_another_process(
    tmp_path: Path,
) -> None:
    # A /news saves its search after answering; the next /news reads its articles. While
    # another process holds the write lock, the save waits for it: the read must not.
    path = tmp_path / "news.sqlite3"
    async with await Store.open(path) as store:
        await put(store, article(1))
        with write_lock_held_elsewhere(path):
            saving = asyncio.create_task(store.save_search(7, "q", ["https://example.com/1"], NOW))
            await asyncio.sleep(0.3)
            assert not saving.done(), "the save did not wait for the other process's lock"
            found = await asyncio.wait_for(store.articles_by_url(["https://example.com/1"]), 2)
            assert found["https://example.com/1"].title == "Title 1"
            assert await asyncio.wait_for(store.corpus_generation(), 2) >= 1
            assert not saving.done()
        saved = await store.load_search(await asyncio.wait_for(saving, 10))
        assert saved is not None and saved.urls == ("https://example.com/1",)


async def test_sqlite_a_write_through_a_read_session_is_refused(tmp_path: Path) -> None:
    # Reads and writes go through different connections: a write sent through a read session
    # would escape the write lock, so the read connection refuses it.
    async with await Store.open(tmp_path / "news.sqlite3") as store:
        for atomic in (True, False):
            with pytest.raises(StoreError, match="readonly"):
                async with store.session("writing where it reads", atomic=atomic) as db:
                    await db.execute("DELETE FROM searches")


async def test_a_search_saved_under_a_chosen_id_never_takes_over_another(
    database: Path | str,
) -> None:
    # /news answers first with the buttons of an id it chose, and saves after.
    async with await Store.open(database) as store:
        chosen = new_search_id()
        assert await store.save_search(7, "q", ["https://a"], NOW, search_id=chosen) == chosen
        with pytest.raises(StoreError, match="taken"):
            await store.save_search(8, "other", ["https://b"], NOW, search_id=chosen)
        saved = await store.load_search(chosen)
        assert saved is not None and (saved.user_id, saved.urls) == (7, ("https://a",))

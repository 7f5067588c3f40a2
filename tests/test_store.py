"""bot.store against real SQLite files in tmp_path."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from bot.articles import Article, RelatedLink
from bot.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    SEARCH_RETENTION,
    ReloadChanges,
    StaleReloadError,
    Store,
    StoreError,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "data" / "news.sqlite3") as opened:
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


async def test_deleting_an_article_cascades_to_its_topics_and_links(tmp_path: Path) -> None:
    path = tmp_path / "news.sqlite3"
    async with await Store.open(path) as store:
        await put(store, article(1, related=(RelatedLink("a", "https://a.example/"),)))
        await delete(store, "https://example.com/1")
        assert await store.topics() == []
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM related_links").fetchone() == (0,)


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
        assert await store.claim_digest(1, "2024-05-01", NOW)


async def test_two_processes_creating_the_same_database_migrate_it_once(tmp_path: Path) -> None:
    path = tmp_path / "news.sqlite3"
    stores = await asyncio.gather(*(Store.open(path) for _ in range(3)))
    try:
        assert [await s.schema_version() for s in stores] == [SCHEMA_VERSION] * 3
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


async def test_a_reload_planned_before_another_process_wrote_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "news.sqlite3"
    async with await Store.open(path) as store, await Store.open(path) as other:
        state = await store.reload_state()
        await other.set_guild_settings(1, now=NOW, digest_enabled=True)
        with pytest.raises(StaleReloadError):
            await store.apply_reload(
                ReloadChanges(upsert_articles=[(article(1), "/a")]), state=state, now=NOW
            )


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


async def test_a_claim_left_by_a_crash_is_taken_over_once_after_it_goes_stale(
    tmp_path: Path,
) -> None:
    path = tmp_path / "news.sqlite3"
    async with await Store.open(path) as store:
        assert await store.claim_digest(1, "2024-05-01", NOW)
    # The process died before posting. After a restart, the claim is still fresh at first...
    async with await Store.open(path) as store:
        assert not await store.claim_digest(1, "2024-05-01", NOW + timedelta(minutes=5))
        # ...then stale: exactly one caller may take it over.
        later = NOW + timedelta(minutes=16)
        assert await store.claim_digest(1, "2024-05-01", later)
        assert not await store.claim_digest(1, "2024-05-01", later)
        record = await store.last_digest(1)
        assert record is not None
        assert (record.status, record.attempts, record.claimed_at) == ("claimed", 2, later)


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


async def test_concurrent_claims_from_two_connections_have_one_winner(tmp_path: Path) -> None:
    path = tmp_path / "news.sqlite3"
    async with await Store.open(path) as a, await Store.open(path) as b:
        results = await asyncio.gather(
            *(s.claim_digest(9, "2024-05-01", NOW) for s in (a, b, a, b, a, b))
        )
    assert sorted(results) == [False] * 5 + [True]


async def test_marking_an_unclaimed_day_is_an_error(store: Store) -> None:
    with pytest.raises(StoreError, match="no claimed digest for guild 1 on 2024-05-01"):
        await store.mark_digest_posted(1, "2024-05-01", 1, NOW)


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


async def test_saved_searches_round_trip_and_expire(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "s.sqlite3") as store:
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

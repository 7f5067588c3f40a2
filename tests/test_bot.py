"""The bot as it runs: the real discord.py client against the loopback fake Discord.

Every test starts the real bot (library, seeds, database, cogs, command sync) and drives it
with interactions over sockets; the assertions are on the JSON the bot sends.
"""

from __future__ import annotations

import asyncio
import importlib
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.client import EXTENSIONS
from bot.store import Store
from tests.botharness import (
    ALICE,
    BOB,
    GENERAL,
    GUILD_ID,
    MOD_ROLE,
    MODERATOR,
    SHARED,
    BotHarness,
    Clock,
    buttons_of,
    embed_of,
    running_bot,
)
from tests.fakediscord import EPHEMERAL, MANAGE_GUILD, PLAIN_MEMBER

# Every test here runs against SQLite and against PostgreSQL.
pytestmark = pytest.mark.usefixtures("backend")

LIMITS = {"title": 256, "description": 4096, "field_name": 256, "field_value": 1024}


def assert_within_discord_limits(embed: dict[str, Any]) -> None:
    assert len(embed.get("title", "")) <= LIMITS["title"]
    assert len(embed.get("description", "")) <= LIMITS["description"]
    fields = embed.get("fields", [])
    assert len(fields) <= 25
    for field in fields:
        assert len(field["name"]) <= LIMITS["field_name"]
        assert len(field["value"]) <= LIMITS["field_value"]
    total = len(embed.get("title", "")) + len(embed.get("description", ""))
    total += sum(len(f["name"]) + len(f["value"]) for f in fields)
    total += len(embed.get("footer", {}).get("text", ""))
    total += len(embed.get("author", {}).get("name", ""))
    assert total <= 6000


def test_every_extension_has_a_setup_function() -> None:
    for name in EXTENSIONS:
        module = importlib.import_module(name)
        assert callable(module.setup), name


async def test_start_up_logs_in_syncs_to_the_configured_guild_and_serves_the_seeds(
    tmp_path: Path,
) -> None:
    async with running_bot(tmp_path) as harness:
        fake = harness.fake
        paths = [(r.method, r.path) for r in fake.requests]
        assert ("GET", "/users/@me") in paths
        put = await fake.wait_for_request(
            lambda r: r.method == "PUT" and r.path.endswith(f"/guilds/{GUILD_ID}/commands")
        )
        assert {c["name"] for c in put.json} == {
            "news",
            "digest",
            "seeds",
            "sources",
            "follow",
            "following",
            "unfollow",
        }
        seeds = next(c for c in put.json if c["name"] == "seeds")
        assert int(seeds["default_member_permissions"]) == MANAGE_GUILD
        # No global sync on start: that is `newsbot sync --global`, on demand.
        assert not any(
            r.method == "PUT" and r.path.endswith("/commands") and "/guilds/" not in r.path
            for r in fake.requests
        )
        # Intents: guilds only.
        identify = next(m for m in fake.gateway_received if m.get("op") == 2)
        assert identify["d"]["intents"] == 1
        assert harness.library is not None and len(harness.library.index) == 5


async def test_news_answers_with_the_shipped_article_its_source_and_related_links(
    tmp_path: Path,
) -> None:
    async with running_bot(tmp_path) as harness:
        body = await harness.news("facial recognition")
        assert body["type"] == 4
        assert body["data"].get("flags", 0) & EPHEMERAL == 0
        embed = embed_of(body)
        assert "facial recognition" in embed["title"].lower()
        assert embed["url"].startswith("https://")
        assert embed["author"]["name"]  # the provider
        assert embed["timestamp"].startswith("2020-06-")
        related = next(f for f in embed["fields"] if f["name"].startswith("Related"))
        assert related["value"].count("](https://") >= 3
        assert "of 5" in embed["footer"]["text"]
        labels = [b["label"] for b in buttons_of(body)]
        assert labels == ["◀ Previous", "Next ▶", "Related"]
        assert body["data"]["allowed_mentions"] == {"parse": []}
        assert_within_discord_limits(embed)


async def test_paging_related_and_both_after_a_restart(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as harness:
        fake = harness.fake
        first = await harness.news("facial recognition")
        prev, nxt, related = buttons_of(first)
        assert prev["disabled"] is True
        page2 = (await fake.wait_for_callback(await fake.click(nxt["custom_id"], user=ALICE))).json
        assert page2["type"] == 7  # the message is edited in place
        assert "2 of 5" in embed_of(page2)["footer"]["text"]
        assert embed_of(page2)["title"] != embed_of(first)["title"]

        # Somebody else may not page through Alice's results.
        iid = await fake.click(nxt["custom_id"], user=BOB)
        refused = (await fake.wait_for_callback(iid)).json
        assert refused["data"]["flags"] & EPHEMERAL
        assert "Only the person who ran this search" in refused["data"]["content"]

        await harness.restart()
        # The same buttons work on the old message after the restart.
        next_after = buttons_of(page2)[1]["custom_id"]
        body = (await fake.wait_for_callback(await fake.click(next_after, user=ALICE))).json
        assert "3 of 5" in embed_of(body)["footer"]["text"]
        iid = await fake.click(related["custom_id"], user=BOB)
        shown = (await fake.wait_for_callback(iid)).json
        assert shown["data"]["flags"] & EPHEMERAL
        assert embed_of(shown)["title"].startswith("Related to:")
        assert embed_of(shown)["description"].count("](https://") >= 3


async def test_no_hit_gets_an_ephemeral_reply_with_suggestions(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as harness:
        # Two typos in one word: no hit, but a title with a word spelt much like it.
        body = await harness.news("recgnitoin")
        assert body["data"]["flags"] & EPHEMERAL
        content = body["data"]["content"]
        assert "recgnitoin" in content
        assert "Closest titles" in content
        assert "Recognition" in content
        # Nothing looks like these words: no unrelated titles dressed up as "closest".
        body = await harness.news("quantum zebra marmalade")
        assert body["data"]["flags"] & EPHEMERAL
        content = body["data"]["content"]
        assert "quantum zebra marmalade" in content
        assert "Closest titles" not in content


async def test_autocomplete_offers_titles_and_topics(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as harness:
        fake = harness.fake
        iid = await fake.autocomplete("news", {"query": "facial reco"}, focused="query")
        choices = (await fake.wait_for_callback(iid)).json["data"]["choices"]
        assert 1 <= len(choices) <= 25
        assert all(1 <= len(c["name"]) <= 100 and 1 <= len(c["value"]) <= 100 for c in choices)
        assert any(
            "Facial Recognition" in c["name"] or "facial recognition" in c["name"] for c in choices
        )
        iid = await fake.autocomplete("news", {"query": "x", "topic": "comp"}, focused="topic")
        topics = (await fake.wait_for_callback(iid)).json["data"]["choices"]
        assert {"name": "Computer Vision", "value": "Computer Vision"} in topics
        iid = await fake.autocomplete("news", {"query": "x", "source": "wir"}, focused="source")
        sources = (await fake.wait_for_callback(iid)).json["data"]["choices"]
        assert sources == [{"name": "Wired", "value": "Wired"}]


async def test_a_query_over_the_length_cap_is_refused_ephemerally(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as harness:
        body = await harness.news("x" * 201)
        assert body["data"]["flags"] & EPHEMERAL
        assert "201 characters" in body["data"]["content"]


async def test_seed_reload_is_refused_for_a_plain_member_and_done_for_moderators(
    tmp_path: Path,
) -> None:
    async with running_bot(tmp_path) as harness:
        body = await harness.command("seeds", "reload", user=BOB, permissions=PLAIN_MEMBER)
        assert body["data"]["flags"] & EPHEMERAL
        assert "Manage Server" in body["data"]["content"]

        # A new seed, then a reload by a member with the moderator role, a query in flight.
        source = sorted((Path(harness.config.seeds_dir)).glob("*.md"))[0]
        text = source.read_text(encoding="utf-8")
        (Path(harness.config.seeds_dir) / "2020-07-01-new.md").write_text(
            text.replace("https://qz.com/1867967/", "https://example.com/new-story/").replace(
                "Amazon and Microsoft pause", "Zebras pause"
            ),
            encoding="utf-8",
        )
        (Path(harness.config.seeds_dir) / "broken.md").write_text("no front matter\n")
        fake = harness.fake
        reload_id = await fake.slash(
            "seeds", {}, subcommand="reload", user=MODERATOR, roles=[MOD_ROLE]
        )
        query = asyncio.create_task(harness.news("facial recognition"))
        deferred = (await fake.wait_for_callback(reload_id)).json
        assert deferred["type"] == 5
        followup = await fake.wait_for_request(
            lambda r: r.method == "POST" and r.path.startswith("/webhooks/")
        )
        embed = followup.json["embeds"][0]
        assert "added 1" in embed["description"]
        assert "rejected 1" in embed["description"]
        assert "broken.md" in embed["fields"][0]["value"]
        assert (await query)["type"] == 4
        zebra = await harness.news("zebras pause police")
        assert embed_of(zebra)["title"].startswith("Zebras pause")


async def test_a_reload_while_another_process_reloads_is_told_so_and_changes_nothing(
    tmp_path: Path,
) -> None:
    async with running_bot(tmp_path) as harness:
        assert harness.library is not None
        other = await Store.open(harness.config.database)  # another bot process
        try:
            assert await other.take_lease("reload", now=datetime.now(UTC)) is None
            generation = await other.corpus_generation()
            followup = await _seeds_reload(harness)
            assert followup.json["flags"] & EPHEMERAL
            assert followup.json["content"].startswith("A reload is running right now")
            assert await other.corpus_generation() == generation
            await other.release_lease("reload")
            done = await _seeds_reload(harness)
            assert "unchanged 5" in done.json["embeds"][0]["description"]
        finally:
            await other.close()


async def _seeds_reload(harness: BotHarness) -> Any:
    """/seeds reload by a moderator; the follow-up that carries its answer."""
    before = len(harness.fake.requests)
    iid = await harness.fake.slash(
        "seeds", {}, subcommand="reload", user=MODERATOR, roles=[MOD_ROLE]
    )
    assert (await harness.fake.wait_for_callback(iid)).json["type"] == 5
    return await harness.fake.wait_for_request(
        lambda r: r.index >= before and r.method == "POST" and r.path.startswith("/webhooks/")
    )


async def test_moderator_commands_are_refused_in_direct_messages(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as harness:
        body = await harness.command("seeds", "status", user=ALICE, guild_id=None)
        assert body["data"]["flags"] & EPHEMERAL
        assert "in a server" in body["data"]["content"]


@pytest.mark.skipif(
    not (SHARED / "corpora" / "diablo4").is_dir(), reason="../shared/corpora is not beside the repo"
)
async def test_the_largest_related_lists_respect_every_limit(tmp_path: Path) -> None:
    biggest = sorted(
        (SHARED / "corpora" / "diablo4" / "_news").glob("*.md"),
        key=lambda p: p.read_text(encoding="utf-8").count("\n  - title:"),
    )[-3:]
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for path in biggest:
        shutil.copy(path, seeds / path.name)
    async with running_bot(tmp_path) as harness:
        for path in biggest:
            title = path.read_text(encoding="utf-8").split("title: ", 1)[1].split("\n", 1)[0]
            body = await harness.news(title.strip('"')[:150])
            embed = embed_of(body)
            assert_within_discord_limits(embed)
            related = buttons_of(body)[-1]
            iid = await harness.fake.click(related["custom_id"], user=ALICE)
            assert_within_discord_limits(embed_of((await harness.fake.wait_for_callback(iid)).json))


async def test_commands_after_a_gateway_drop_are_still_answered(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as harness:
        await harness.fake.close_gateway()
        body = await harness.news("facial recognition")
        assert body["type"] == 4
        assert harness.fake.resume_count >= 1


def _now(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, 2, hour, minute, tzinfo=UTC)


async def _digest_posts(harness: BotHarness, channel: int = GENERAL) -> list[dict[str, Any]]:
    return [m for m in harness.fake.messages_in(channel) if m["embeds"]]


async def test_digest_settings_are_validated(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as harness:
        mod = {"user": MODERATOR, "permissions": PLAIN_MEMBER | MANAGE_GUILD}
        body = await harness.command("digest", "time", {"time": "25:00"}, **mod)
        assert body["data"]["flags"] & EPHEMERAL
        assert "'25:00' is not a time" in body["data"]["content"]
        body = await harness.command(
            "digest", "time", {"time": "09:30", "timezone": "Mars/Olympus"}, **mod
        )
        assert "not an IANA time zone" in body["data"]["content"]
        body = await harness.command(
            "digest", "time", {"time": "09:30", "timezone": "Asia/Tokyo"}, user=BOB
        )
        assert "Manage Server" in body["data"]["content"]


TOKYO = {"time": "09:00", "timezone": "Asia/Tokyo"}  # 09:00 in Tokyo is 00:00 UTC


def digest_config(**changes: Any) -> Any:
    from bot.config import DigestConfig

    return DigestConfig(check_seconds=0.02, channels={GUILD_ID: GENERAL}, **{**TOKYO, **changes})


async def test_digest_is_posted_at_its_local_time_once_across_a_restart(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 3, 1, 23, 59, tzinfo=UTC))  # 08:59 in Tokyo
    async with running_bot(tmp_path, clock=clock, digest=digest_config()) as harness:
        await harness.ticks()
        assert await _digest_posts(harness) == []
        clock.now = datetime(2026, 3, 2, 0, 0, 30, tzinfo=UTC)  # 09:00:30 in Tokyo
        post = await harness.fake.wait_for_request(
            lambda r: r.method == "POST" and r.path == f"/channels/{GENERAL}/messages"
        )
        embed = post.json["embeds"][0]
        assert embed["title"] == "News digest — Mon 2 Mar"
        assert embed["description"].count("](https://") == 5
        assert post.json["allowed_mentions"] == {"parse": []}
        assert post.json["nonce"] and post.json["enforce_nonce"] is True
        # A restart in the same minute does not post it again.
        await harness.restart()
        await harness.ticks(3)
        assert len(await _digest_posts(harness)) == 1


async def test_a_digest_missed_while_down_is_caught_up_within_the_grace_window(
    tmp_path: Path,
) -> None:
    clock = Clock(datetime(2026, 3, 2, 5, 0, tzinfo=UTC))  # 14:00 Tokyo: 5 h late
    async with running_bot(tmp_path, clock=clock, digest=digest_config()) as harness:
        await harness.fake.wait_for_request(
            lambda r: r.method == "POST" and r.path == f"/channels/{GENERAL}/messages"
        )
        assert len(await _digest_posts(harness)) == 1


async def test_a_digest_missed_beyond_the_grace_window_is_not_posted(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 3, 2, 7, 0, tzinfo=UTC))  # 16:00 Tokyo: 7 h late
    async with running_bot(tmp_path, clock=clock, digest=digest_config()) as harness:
        await harness.ticks(3)
        assert await _digest_posts(harness) == []
        status = await harness.command("digest", "status", user=ALICE)
        fields = {f["name"]: f["value"] for f in embed_of(status)["fields"]}
        assert fields["Last digest"] == "none yet"
        assert fields["Time"] == "09:00 (Asia/Tokyo)"


async def test_no_digest_when_nothing_is_new(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 3, 2, 0, 1, tzinfo=UTC))
    async with running_bot(tmp_path, clock=clock, digest=digest_config()) as harness:
        await harness.fake.wait_for_request(
            lambda r: r.method == "POST" and r.path == f"/channels/{GENERAL}/messages"
        )
        clock.now = datetime(2026, 3, 3, 0, 1, tzinfo=UTC)  # the next day: nothing new
        await harness.ticks(3)
        assert len(await _digest_posts(harness)) == 1
        status = await harness.command("digest", "status", user=ALICE)
        fields = {f["name"]: f["value"] for f in embed_of(status)["fields"]}
        assert fields["Last digest"] == "2026-03-03: posted (nothing new, nothing posted)"


async def test_digest_now_posts_a_day_whose_automatic_attempts_all_failed(
    tmp_path: Path,
) -> None:
    clock = Clock(datetime(2026, 3, 1, 23, 0, tzinfo=UTC))  # 08:00 on Mar 2 in Tokyo
    async with running_bot(tmp_path, clock=clock, digest=digest_config()) as harness:
        assert harness.library is not None
        store = harness.library.store
        day = "2026-03-02"
        for _ in range(3):  # three claims, three failures: the scheduler's limit for a day
            assert await store.claim_digest(GUILD_ID, day, clock.now)
            await store.mark_digest_failed(GUILD_ID, day, "Discord answered 500", clock.now)
        await harness.ticks(3)
        assert await _digest_posts(harness) == []  # the scheduler gave up on the day...
        mod = {"user": MODERATOR, "permissions": PLAIN_MEMBER | MANAGE_GUILD}
        body = await harness.command("digest", "now", **mod)
        assert body["type"] == 5  # deferred
        followup = await harness.fake.wait_for_request(
            lambda r: r.method == "POST" and r.path.startswith("/webhooks/")
        )
        # ...but a moderator who asks gets it posted, once.
        assert followup.json["content"].startswith("Posted: https://discord.com/channels/")
        assert len(await _digest_posts(harness)) == 1
        await harness.ticks(2)
        assert len(await _digest_posts(harness)) == 1


async def test_a_filter_that_leaves_nothing_says_so_and_shows_what_is_outside_it(
    tmp_path: Path,
) -> None:
    async with running_bot(tmp_path) as harness:
        body = await harness.news("facial recognition police", source="nytimes")
        content = body["data"]["content"]
        assert body["data"]["flags"] & EPHEMERAL
        assert content.startswith("No stories from nytimes match “facial recognition police”.")
        assert "Without that filter:" in content


async def test_a_long_topic_cut_by_autocomplete_still_filters(tmp_path: Path) -> None:
    long_topic = "Artificial intelligence and machine learning in public-sector surveillance " * 2
    seeds = tmp_path / "seeds"
    shutil.copytree(Path(__file__).resolve().parents[1] / "seeds", seeds)
    first = sorted(seeds.glob("*.md"))[0]
    first.write_text(
        first.read_text(encoding="utf-8").replace("  - AI\n", f"  - {long_topic.strip()}\n", 1),
        encoding="utf-8",
    )
    async with running_bot(tmp_path) as harness:
        fake = harness.fake
        iid = await fake.autocomplete("news", {"query": "x", "topic": "surveil"}, focused="topic")
        (choice,) = (await fake.wait_for_callback(iid)).json["data"]["choices"]
        assert len(choice["value"]) == 100
        body = await harness.news("facial recognition", topic=choice["value"])
        assert body["type"] == 4
        assert "Amazon and Microsoft pause" in embed_of(body)["title"]


async def test_autocomplete_of_a_pasted_essay_is_cut_to_the_query_cap(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as harness:
        essay = "facial recognition " + " ".join(f"word{i}" for i in range(2000))
        iid = await harness.fake.autocomplete("news", {"query": essay}, focused="query")
        choices = (await harness.fake.wait_for_callback(iid)).json["data"]["choices"]
        assert any(
            "Facial Recognition" in c["name"] or "facial recognition" in c["name"] for c in choices
        )


async def test_timezone_autocomplete_offers_only_zones_the_command_accepts(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as harness:
        fake = harness.fake
        mod = {"user": MODERATOR, "permissions": PLAIN_MEMBER | MANAGE_GUILD}
        for typed in ("local", "paris"):
            iid = await fake.autocomplete(
                "digest", {"time": "09:00", "timezone": typed}, focused="timezone",
                subcommand="time", **mod,
            )  # fmt: skip
            names = [
                c["value"] for c in (await fake.wait_for_callback(iid)).json["data"]["choices"]
            ]
            assert "localtime" not in names
            if typed == "paris":
                assert names == ["Europe/Paris"]


async def test_changing_the_time_leaves_a_digest_that_is_off_off(tmp_path: Path) -> None:
    async with running_bot(tmp_path, digest=digest_config()) as harness:
        mod = {"user": MODERATOR, "permissions": PLAIN_MEMBER | MANAGE_GUILD}
        await harness.command("digest", "off", **mod)
        body = await harness.command("digest", "time", {"time": "10:15"}, **mod)
        assert body["data"]["content"].endswith(
            "It is off until a channel is set with `/digest channel`."
        )
        status = await harness.command("digest", "status", user=ALICE)
        fields = {f["name"]: f["value"] for f in embed_of(status)["fields"]}
        assert fields["State"] == "off"
        assert fields["Time"] == "10:15 (Asia/Tokyo)"

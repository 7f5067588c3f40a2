"""Embeds stay within Discord's limits and render hostile feed text safely."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import discord
import pytest

from bot.articles import Article, RelatedLink, SeedError, parse_seed
from bot.embeds import (
    AUTHOR_NAME_LIMIT,
    CONTENT_LIMIT,
    DESCRIPTION_LIMIT,
    EMBED_TOTAL_LIMIT,
    FIELD_COUNT_LIMIT,
    FIELD_NAME_LIMIT,
    FIELD_VALUE_LIMIT,
    FOOTER_LIMIT,
    MIN_RELATED_BUDGET,
    TITLE_LIMIT,
    article_embed,
    digest_embed,
    embed_as_text,
    embed_size,
    escape_link_text,
    follows_embed,
    no_hits_text,
    related_embed,
    safe_url,
    sources_embed,
    story_list_embed,
    truncate,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
PUBLISHED = datetime(2022, 11, 20, 23, 30, tzinfo=UTC)


# --- helpers --------------------------------------------------------------------------------


def make_article(**changes: object) -> Article:
    article = Article(
        url="https://example.com/story",
        title="Diablo 4 open beta dates announced",
        excerpt="Blizzard has announced the dates of two beta weekends.",
        published=PUBLISHED,
        provider="Example News",
        provider_domain="example.com",
        provider_icon="https://example.com/icon.png",
        image_url="https://example.com/image.jpg",
        quality=80.0,
        topics=("Diablo 4", "Games"),
    )
    return replace(article, **changes)  # type: ignore[arg-type]


def make_related(count: int, *, title: str = "Related story", url_len: int = 0) -> tuple:
    return tuple(
        RelatedLink(
            title=f"{title} {i}",
            url=f"https://news{i}.example.org/{'p' * url_len}{i}",
            provider=f"Source {i}",
            published=PUBLISHED - timedelta(days=i),
        )
        for i in range(count)
    )


def assert_within_limits(*embeds: discord.Embed) -> None:
    """Every per-part limit, and the 6000 total across all embeds of one message."""
    for embed in embeds:
        assert len(embed.title or "") <= TITLE_LIMIT
        assert len(embed.description or "") <= DESCRIPTION_LIMIT
        assert len(embed.fields) <= FIELD_COUNT_LIMIT
        for field in embed.fields:
            assert 1 <= len(field.name or "") <= FIELD_NAME_LIMIT
            assert 1 <= len(field.value or "") <= FIELD_VALUE_LIMIT
        assert len(embed.footer.text or "") <= FOOTER_LIMIT
        assert len(embed.author.name or "") <= AUTHOR_NAME_LIMIT
        assert embed_size(embed) == len(embed)  # counted exactly as discord.py counts
    assert sum(embed_size(e) for e in embeds) <= EMBED_TOTAL_LIMIT


# A model of Discord's (simple-markdown's) inline rules that matter for links: escapes, masked
# links (matched on the raw source, as simple-markdown does), <autolinks> and bare URLs.
_LINK_INSIDE = r"(?:\[[^\]]*\]|[^\[\]]|\](?=[^\[]*\]))*"
_LINK_HREF = r"\s*<?((?:\([^)]*\)|[^\s\\]|\\.)*?)>?(?:\s+['\"]([\s\S]*?)['\"])?\s*"
_MASKED = re.compile(r"\[(" + _LINK_INSIDE + r")\]\(" + _LINK_HREF + r"\)")
_ESCAPE = re.compile(r"\\([^0-9A-Za-z\s])")
_AUTOLINK = re.compile(r"<([^: >]+:/[^ >]+)>")
_BARE_URL = re.compile(r"https?://[^\s<]+[^<.,:;\"')\]\s]")


def discord_links(text: str) -> list[tuple[str, str]]:
    """(text, href) of every link Discord would render in ``text``, nested ones included."""
    links: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        if m := _ESCAPE.match(text, i):
            i = m.end()
        elif m := _MASKED.match(text, i):
            links.append((m[1], m[2]))
            links += discord_links(m[1])
            i = m.end()
        elif m := _AUTOLINK.match(text, i):
            links.append((m[1], m[1]))
            i = m.end()
        elif m := _BARE_URL.match(text, i):
            links.append((m[0], m[0]))
            i = m.end()
        else:
            i += 1
    return links


def related_lines(
    embed: discord.Embed, *, with_description: bool = True
) -> tuple[list[str], int | None]:
    """The link lines of the description and every field, and N from a "…and N more" line.

    ``with_description=False`` for an article embed, whose description is the excerpt."""
    parts = [embed.description or ""] if with_description else []
    text = "\n".join(parts + [f.value or "" for f in embed.fields])
    lines = [line for line in text.splitlines() if line]
    more = None
    if lines and (m := re.fullmatch(r"…and (\d+) more.*", lines[-1])):
        more = int(m[1])
        lines.pop()
    return lines, more


WHOLE_LINK_LINE = re.compile(r"\[[^\[\]\n]+\]\([^\s()<>]+\)( — .+)?")


# --- truncate -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("exactly ten", 11, "exactly ten"),
        ("hello world foo", 12, "hello world…"),  # the cut falls on a space: keep the word
        ("hello world foo", 10, "hello…"),  # the cut falls inside "world": back up
        ("word, next word", 7, "word…"),  # no dangling separator before the ellipsis
        ("a" * 50, 10, "a" * 9 + "…"),  # one very long word is cut, not dropped
        ("ab cdefghijklmnop", 10, "ab cdefgh…"),  # a boundary losing over half the room: hard cut
        ("xy", 1, "…"),
        ("xy", 0, ""),
        ("", 0, ""),
    ],
)
def test_truncate_cuts_on_word_boundaries(text: str, limit: int, expected: str) -> None:
    assert truncate(text, limit) == expected


@pytest.mark.parametrize("limit", range(0, 80, 3))
@pytest.mark.parametrize(
    "text",
    [
        "The quick brown fox jumps over the lazy dog, again and again and again.",
        "Supercalifragilisticexpialidocious" * 3,
        "line one\nline two\nline three\nline four",
    ],
)
def test_truncate_is_never_over_the_limit_and_is_a_prefix(text: str, limit: int) -> None:
    result = truncate(text, limit)
    assert len(result) <= limit
    if result != text and result:
        assert result.endswith("…")
        assert text.startswith(result[:-1])


# --- escaping and URLs ----------------------------------------------------------------------

HOSTILE_TITLES = [
    "Foo](http://evil.example)",
    "](http://evil.example) [x",  # defeats plain backslash escaping in Discord's link rule
    "[click](http://evil.example) and [again](http://evil2.example)",
    "Unclosed [bracket",
    "**bold** __underline__ ~~strike~~ ||spoiler|| `code`",
    "# Heading\n> quote\n- list",
    "Back\\slash\\](http://evil.example)",
    "Read https://evil.example/now or <https://evil.example/x>",
    "@everyone @here <@123456789012345678> free nitro",
]


@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_a_hostile_related_title_renders_as_exactly_our_link(title: str) -> None:
    url = "https://good.example/a_(b)"
    article = make_article(related=(RelatedLink(title=title, url=url, provider="Src"),))
    value = article_embed(article).fields[0].value
    assert discord_links(value) == [(escape_link_text(title), safe_url(url))]


@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_hostile_title_and_excerpt_cannot_create_masked_links(title: str) -> None:
    embed = article_embed(make_article(title=title, excerpt=title))
    for text in (embed.title or "", embed.description or ""):
        # Visible URLs may autolink (the text *is* the address); a masked link may not exist.
        assert all(link_text == href for link_text, href in discord_links(text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain title", "plain title"),
        ("a_b*c", "a\\_b\\*c"),
        ("[Video] Trailer", "(Video) Trailer"),
        ("Foo](http://evil)", "Foo)(http\\://evil)"),
        ("two\nlines", "two lines"),  # a newline would end the link
        ("@everyone", "@everyone"),  # embeds never ping; allowed_mentions is none anyway
    ],
)
def test_escape_link_text(text: str, expected: str) -> None:
    assert escape_link_text(text) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/a/b?c=d", "https://example.com/a/b?c=d"),
        (
            "https://en.wikipedia.org/wiki/Diablo_(series)",
            "https://en.wikipedia.org/wiki/Diablo_%28series%29",
        ),
        ("https://example.com/a b", "https://example.com/a%20b"),
        ("https://example.com/<x>", "https://example.com/%3Cx%3E"),
        ("https://example.com/already%28ok%29", "https://example.com/already%28ok%29"),
        ("  https://example.com/trim  ", "https://example.com/trim"),
    ],
)
def test_safe_url(url: str, expected: str) -> None:
    assert safe_url(url) == expected


@pytest.mark.parametrize(
    ("embed", "expected"),
    [
        (discord.Embed(), 0),
        (discord.Embed(title="abc", description="de"), 5),
        (discord.Embed().add_field(name="n", value="vv").add_field(name="x", value="y"), 5),
        (discord.Embed().set_footer(text="foot").set_author(name="auth"), 8),
        (discord.Embed(title="t", url="https://not.counted").set_image(url="https://x.y"), 1),
    ],
)
def test_embed_size_counts_like_discord(embed: discord.Embed, expected: int) -> None:
    assert embed_size(embed) == expected == len(embed)


# --- article_embed --------------------------------------------------------------------------


def test_article_embed_shows_the_article() -> None:
    article = make_article(related=make_related(2))
    embed = article_embed(article, position=2, total=7)
    assert embed.title == article.title
    assert embed.url == article.url
    assert embed.description == article.excerpt
    assert embed.author.name == "Example News"
    assert embed.author.url == "https://example.com"
    assert embed.author.icon_url == "https://example.com/icon.png"
    assert embed.image.url == "https://example.com/image.jpg"
    assert embed.timestamp == PUBLISHED
    assert embed.footer.text == "example.com · Diablo 4, Games · 2 of 7"
    assert [f.name for f in embed.fields] == ["Related"]
    assert embed.fields[0].value.splitlines() == [
        "[Related story 0](https://news0.example.org/0) — Source 0",
        "[Related story 1](https://news1.example.org/1) — Source 1",
    ]


@pytest.mark.parametrize(
    ("changes", "position", "total", "footer"),
    [
        ({}, None, None, "example.com · Diablo 4, Games"),
        ({"topics": ()}, 1, 1, "example.com · 1 of 1"),
        ({"provider_domain": ""}, None, None, "example.com · Diablo 4, Games"),  # from the URL
        ({"topics": tuple(f"topic {i:04}" for i in range(400))}, 3, 9, None),  # footer overflow
    ],
)
def test_article_embed_footer(
    changes: dict, position: int | None, total: int | None, footer: str | None
) -> None:
    embed = article_embed(make_article(**changes), position=position, total=total)
    if footer is not None:
        assert embed.footer.text == footer
    else:  # topics give way, the page number survives
        assert len(embed.footer.text) <= FOOTER_LIMIT
        assert embed.footer.text.endswith("… · 3 of 9")


@pytest.mark.parametrize(
    ("changes", "author"),
    [
        ({"provider": "", "provider_domain": ""}, None),
        ({"provider": "", "provider_domain": "ign.com"}, "ign.com"),
        ({"provider": "P" * 300}, "P" * 255 + "…"),
    ],
)
def test_article_embed_author(changes: dict, author: str | None) -> None:
    assert article_embed(make_article(**changes)).author.name == author


@pytest.mark.parametrize(
    ("domain", "url"),
    [
        ("qz.com", "https://qz.com"),
        ("www.theverge.com", "https://www.theverge.com"),
        ("Quartz News", None),  # not a host: Discord would refuse the whole embed
        ("localhost", None),
        ("evil.com/path?x=1", None),
        ("", None),
    ],
)
def test_the_author_links_to_the_source_only_when_its_domain_is_a_host(
    domain: str, url: str | None
) -> None:
    assert article_embed(make_article(provider_domain=domain)).author.url == url


def test_article_embed_without_optional_parts() -> None:
    embed = article_embed(make_article(excerpt="", image_url=None, related=()))
    assert embed.description is None
    assert not embed.fields
    assert embed.image.url is None


def test_video_titles_are_marked() -> None:
    assert article_embed(make_article(kind="video")).title.startswith("▶ ")


@pytest.mark.parametrize(
    ("title_len", "excerpt_len", "related", "related_title_len", "url_len"),
    [
        (300, 5000, 0, 0, 0),  # a 300-char title and a 5000-char excerpt
        (300, 5000, 39, 300, 200),  # ... plus 39 long related items
        (10, 10, 39, 20, 1500),  # related URLs so long that not even one line fits
        (256, 4096, 25, 124, 179),  # the corpus maxima, at the limits
    ],
)
def test_article_embed_holds_every_limit(
    title_len: int, excerpt_len: int, related: int, related_title_len: int, url_len: int
) -> None:
    article = make_article(
        title=("Title word " * 50)[:title_len],
        excerpt=("Excerpt *word* " * 500)[:excerpt_len],
        provider="Provider " * 40,
        topics=tuple(f"topic {i}" for i in range(300)),
        related=make_related(related, title="R" * related_title_len, url_len=url_len),
    )
    embed = article_embed(article, position=10, total=10)
    assert_within_limits(embed)
    room = EMBED_TOTAL_LIMIT - len(embed)
    if room >= MIN_RELATED_BUDGET:  # both in one message
        assert_within_limits(embed, related_embed(article, budget=room))
    else:  # the caller must send the related list as a message of its own
        with pytest.raises(ValueError, match="budget"):
            related_embed(article, budget=room)
    if title_len > TITLE_LIMIT:
        assert embed.title.endswith("…")
    if excerpt_len > DESCRIPTION_LIMIT:
        assert embed.description.endswith("…")
    if related:
        lines, more = related_lines(embed, with_description=False)
        assert all(WHOLE_LINK_LINE.fullmatch(line) for line in lines)  # never cut mid-link
        assert len(lines) + (more or 0) == related


@pytest.mark.parametrize("count", [1, 5, 6, 20, 39])
def test_related_field_fits_as_many_whole_links_as_possible(count: int) -> None:
    article = make_article(related=make_related(count, title="T" * 100, url_len=60))
    value = article_embed(article).fields[0].value
    lines, more = related_lines(article_embed(article), with_description=False)
    assert len(value) <= FIELD_VALUE_LIMIT
    assert all(WHOLE_LINK_LINE.fullmatch(line) for line in lines)
    assert len(lines) + (more or 0) == count
    if more:  # "as many as fit": one more whole line (and the summary) would overflow
        shown = len(lines)
        next_line = f"[{'T' * 100} {shown}](https://news{shown}.example.org/{'p' * 60}{shown})"
        longer = [*lines, f"{next_line} — Source {shown}"]
        if count > shown + 1:
            longer.append(f"…and {count - shown - 1} more related stories")
        assert len("\n".join(longer)) > FIELD_VALUE_LIMIT


# --- related_embed --------------------------------------------------------------------------


def test_related_embed_lists_source_and_date() -> None:
    embed = related_embed(make_article(related=make_related(2)))
    assert embed.title == "Related to: Diablo 4 open beta dates announced"
    assert embed.description.splitlines() == [
        "[Related story 0](https://news0.example.org/0) — Source 0 · 20 Nov 2022",
        "[Related story 1](https://news1.example.org/1) — Source 1 · 19 Nov 2022",
    ]
    assert embed.footer.text == "2 related stories"


def test_related_embed_without_related() -> None:
    embed = related_embed(make_article(related=()))
    assert embed.description == "No related stories."


@pytest.mark.parametrize(
    ("count", "title_len", "url_len", "budget"),
    [
        (39, 150, 180, 6000),  # spills from the description into fields, then drops
        (200, 10, 10, 6000),  # many short lines
        (39, 150, 180, 1000),  # sharing a message with a large article embed
        (5, 10, 3000, 6000),  # no line fits a field; the description still takes some
    ],
)
def test_related_embed_holds_limits_and_accounts_for_every_link(
    count: int, title_len: int, url_len: int, budget: int
) -> None:
    article = make_article(
        title="T" * 300, related=make_related(count, title="R" * title_len, url_len=url_len)
    )
    embed = related_embed(article, budget=budget)
    assert_within_limits(embed)
    assert embed_size(embed) <= budget
    lines, more = related_lines(embed)
    assert all(WHOLE_LINK_LINE.fullmatch(line) for line in lines)
    assert len(lines) + (more or 0) == count


def test_related_embed_refuses_a_budget_too_small_to_say_anything() -> None:
    with pytest.raises(ValueError, match="budget"):
        related_embed(make_article(related=make_related(3)), budget=100)


# --- digest_embed ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "title"),
    [
        (date(2022, 11, 21), "News digest — Mon 21 Nov"),
        (date(2024, 2, 29), "News digest — Thu 29 Feb"),
        (date(2023, 1, 1), "News digest — Sun 1 Jan"),
    ],
)
def test_digest_title(day: date, title: str) -> None:
    assert digest_embed([make_article()], 0, day, tz_name="UTC").title == title


@pytest.mark.parametrize(
    ("tz_name", "day", "suffix"),
    [
        ("Asia/Tokyo", date(2022, 11, 21), "· 08:30"),  # 23:30 UTC is next morning in Tokyo
        ("UTC", date(2022, 11, 21), "· 20 Nov 2022"),  # an older story shows its date
        ("UTC", date(2022, 11, 20), "· 23:30"),
        ("America/New_York", date(2022, 11, 20), "· 18:30"),
    ],
)
def test_digest_lines_use_the_guild_time_zone(tz_name: str, day: date, suffix: str) -> None:
    embed = digest_embed([make_article()], 0, day, tz_name=tz_name)
    assert embed.description == (
        f"[Diablo 4 open beta dates announced](https://example.com/story) — Example News {suffix}"
    )
    assert embed.footer.text == f"Times in {tz_name}"


@pytest.mark.parametrize(
    ("count", "rest", "more_line"),
    [
        (3, 0, None),
        (3, 1, "…and 1 more new story"),
        (3, 12, "…and 12 more new stories"),
        (0, 4, "…and 4 more new stories"),
    ],
)
def test_digest_reports_the_rest(count: int, rest: int, more_line: str | None) -> None:
    articles = [make_article(url=f"https://example.com/{i}") for i in range(count)]
    embed = digest_embed(articles, rest, date(2022, 11, 21), tz_name="UTC")
    lines = embed.description.splitlines()
    if more_line is None:
        assert len(lines) == count
    else:
        assert len(lines) == count + 1
        assert lines[-1] == more_line


def test_an_empty_digest_says_so() -> None:
    embed = digest_embed([], 0, date(2022, 11, 21), tz_name="UTC")
    assert embed.description == "No new stories today."


@pytest.mark.parametrize("count", [10, 60])
def test_digest_holds_limits_with_huge_titles(count: int) -> None:
    articles = [
        make_article(url=f"https://example.com/{'x' * 150}/{i}", title="*T* [x] " * 60)
        for i in range(count)
    ]
    embed = digest_embed(articles, 5, date(2022, 11, 21), tz_name="Europe/Paris")
    assert_within_limits(embed)
    lines, more = related_lines(embed)
    assert all(WHOLE_LINK_LINE.fullmatch(line) for line in lines)
    assert len(lines) + (more or 0) == count + 5


@pytest.mark.parametrize("count", [3, 6, 80])
def test_a_follows_list_of_stories_holds_limits_and_counts_the_rest(count: int) -> None:
    articles = [
        make_article(url=f"https://example.com/{'y' * 150}/{i}", title="@everyone *T* " * 40)
        for i in range(count)
    ]
    embed = story_list_embed("8 new stories for “" + "q" * 300 + "”", articles, footer="f")
    assert_within_limits(embed)
    lines, more = related_lines(embed)
    assert len(lines) + (more or 0) == count


def test_following_lists_every_follow_within_limits() -> None:
    from bot.store import Follow

    now = datetime(2026, 11, 1, tzinfo=UTC)
    follows = [
        Follow(i, 1, 100 + i, "ferry strike " * 20, "Topic " * 20, "Source " * 20, 9, 7, now,
               now, last_post_at=now if i % 2 else None,
               paused="the channel is gone " * 20 if i % 3 == 0 else None)
        for i in range(1, 1001)
    ]  # fmt: skip
    embed = follows_embed(follows, channel_names={})
    assert_within_limits(embed)
    text = embed_as_text(embed)
    assert "`1` “ferry strike" in text and "paused" in text and "more" in text
    assert follows_embed([], channel_names={}).description.startswith("None yet")


def test_sources_status_holds_limits_with_many_long_sources() -> None:
    from bot.config import SourceConfig
    from bot.store import SourceState

    rows = [
        (
            SourceConfig(f"s{i}", "feed", "https://example.org/" + "f" * 300, 900.0),
            SourceState(f"s{i}", "feed", "x", last_error="HTTP 404 " * 80, failures=3,
                        next_poll=PUBLISHED),
        )
        for i in range(60)
    ]  # fmt: skip
    embed = sources_embed(rows)
    assert_within_limits(embed)
    assert "60 sources, 60 failing" in (embed.description or "")
    assert "more" in embed_as_text(embed)


def test_digest_rejects_an_unknown_time_zone() -> None:
    with pytest.raises(ValueError, match="IANA"):
        digest_embed([], 0, date(2022, 11, 21), tz_name="Mars/Olympus")


# --- no_hits_text ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "suggestions", "expected"),
    [
        ("zzz", [], "No stories match “zzz”. Try fewer or different words."),
        (
            "diablo  beta",
            ["Diablo 4 beta", "Diablo 4 beta", "Open *beta*"],
            "No stories match “diablo beta”.\nClosest titles:\n• Diablo 4 beta\n• Open \\*beta\\*",
        ),
        ("@everyone", [], "No stories match “@\u200beveryone”. Try fewer or different words."),
    ],
)
def test_no_hits_text(query: str, suggestions: list[str], expected: str) -> None:
    assert no_hits_text(query, suggestions) == expected


def test_no_hits_text_neutralises_mentions_and_stays_under_2000() -> None:
    text = no_hits_text(
        "@here " + "q" * 5000, [f"@everyone <@{10**17}> {i} " * 40 for i in range(50)]
    )
    assert len(text) <= CONTENT_LIMIT
    assert not re.search(r"@(everyone|here)|<@\d", text)


# --- embed_as_text --------------------------------------------------------------------------


def test_embed_as_text_reads_like_the_embed_without_markdown_noise() -> None:
    article = make_article(
        title="**Big** news_today [v2]",
        excerpt="Line one.\nLine *two*.",
        related=(
            RelatedLink(
                title="Patch_notes (1.2)", url="https://example.org/a_(b)", provider="Blizzard"
            ),
        ),
    )
    text = embed_as_text(article_embed(article, position=1, total=3))
    assert text.splitlines() == [
        "**Big** news_today [v2]",
        "https://example.com/story",
        "Example News · 2022-11-20 23:30 UTC",
        "",
        "Line one.",
        "Line *two*.",
        "",
        "Related:",
        "  Patch_notes (1.2) <https://example.org/a_%28b%29> — Blizzard",
        "",
        "Image: https://example.com/image.jpg",
        "",
        "example.com · Diablo 4, Games · 1 of 3",
    ]


def test_embed_as_text_of_a_spilled_related_embed_is_one_list() -> None:
    embed = related_embed(make_article(related=make_related(60, title="R" * 100)))
    assert len(embed.fields) > 0  # the list did spill into continuation fields
    lines = embed_as_text(embed).splitlines()
    links = [line for line in lines if "<https://" in line]
    assert all(not line.startswith(" ") for line in links)
    assert "\u200b" not in "".join(lines)


# --- the real corpus ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus() -> list[Article]:
    paths = sorted((SHARED / "corpora").glob("*/_news/*.md")) + sorted(SHARED.glob("seeds/*.txt"))
    if not paths:
        pytest.skip(f"no shared corpus at {SHARED}")
    articles = []
    for path in paths:
        try:
            articles.append(parse_seed(path.read_bytes(), str(path)))
        except SeedError:
            continue  # a broken file is the parser's business, not the embeds'
    return articles


def test_largest_related_lists_in_the_corpus_stay_within_limits(corpus: list[Article]) -> None:
    most = max(len(a.related) for a in corpus)
    largest = [a for a in corpus if len(a.related) == most]
    # The diablo4 corpus has files with 39 related items (32 after the parser drops bad ones).
    assert most >= 30
    for article in largest:
        embed = article_embed(article, position=10, total=10)
        related = related_embed(article)
        assert_within_limits(embed)
        assert_within_limits(related)
        for each, with_description in ((embed, False), (related, True)):
            lines, more = related_lines(each, with_description=with_description)
            assert all(WHOLE_LINK_LINE.fullmatch(line) for line in lines)
            assert len(lines) + (more or 0) == len(article.related)


def test_every_corpus_article_renders_within_limits(corpus: list[Article]) -> None:
    for article in corpus:
        embed = article_embed(article, position=1, total=25)
        assert_within_limits(embed)
        assert_within_limits(related_embed(article))
        assert article.url in embed_as_text(embed).splitlines()
    assert_within_limits(
        digest_embed(corpus[:50], len(corpus) - 50, date(2023, 2, 18), tz_name="UTC")
    )

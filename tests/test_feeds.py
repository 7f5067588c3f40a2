"""Live sources, the feed side: parse_feed on every format and fault, fetch through a loopback
server (tests/feedserver.py) on every HTTP behaviour a careful feed reader must handle."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.feeds import FUTURE_SLACK, MAX_EXCERPT, FeedError, ParsedFeed, parse_feed, strip_html
from bot.fetch import (
    Fetched,
    FetchError,
    FetchPolicy,
    fetch,
    open_session,
    parse_retry_after,
)
from tests.feedserver import FeedServer, atom, json_feed, rss

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FEED_URL = "https://news.example.com/feeds/main.xml"
DAY = timedelta(days=1)


def parse(
    body: bytes | str,
    *,
    content_type: str = "",
    feed_url: str = FEED_URL,
    topics: tuple[str, ...] = (),
    oldest: datetime | None = None,
) -> ParsedFeed:
    data = body.encode("utf-8") if isinstance(body, str) else body
    return parse_feed(
        data,
        feed_url=feed_url,
        source_name="Example Source",
        now=NOW,
        content_type=content_type,
        topics=topics,
        oldest=oldest,
    )


def feed_error(body: bytes | str, *, content_type: str = "") -> str:
    with pytest.raises(FeedError) as caught:
        parse(body, content_type=content_type)
    message = str(caught.value)
    assert message.isprintable()
    return message


ENTRY = {
    "title": "Robots &amp; <b>people</b>",
    "link": "https://www.example.org/news/1",
    "id": "tag:example.org,2026:1",
    "summary": "<p>First <em>paragraph</em>.</p><script>alert(1)</script><p>Second.</p>",
    "published": NOW - DAY,
    "categories": ["AI", "Robots"],
    "image": "https://img.example.org/1.jpg",
}


# --- the formats -----------------------------------------------------------------------------


@pytest.mark.parametrize("build", [rss, atom, json_feed], ids=["rss2", "atom", "jsonfeed"])
def test_each_format_maps_an_entry_to_an_article(build) -> None:
    parsed = parse(build([ENTRY], title="Example News"))
    assert parsed.title == "Example News"
    assert parsed.problems == ()
    [item] = parsed.items
    article = item.article
    assert item.key == "tag:example.org,2026:1"
    assert article.url == "https://www.example.org/news/1"
    assert article.excerpt == "First paragraph. Second."
    assert "alert" not in article.excerpt
    assert article.published == NOW - DAY
    assert article.published.tzinfo is UTC
    assert article.provider == "Example News"
    assert article.provider_domain == "example.org"
    assert article.image_url == "https://img.example.org/1.jpg"
    assert article.topics == ("AI", "Robots")
    assert article.kind == "article"
    assert article.related == ()


def test_rss_title_html_is_stripped_and_unescaped() -> None:
    [item] = parse(rss([ENTRY])).items
    assert item.article.title == "Robots & people"


def test_json_feed_title_is_plain_text_so_angle_brackets_stay() -> None:
    [item] = parse(json_feed([{**ENTRY, "title": "Why a < b and <b> is a tag"}])).items
    assert item.article.title == "Why a < b and <b> is a tag"


def test_atom_text_title_keeps_its_angle_brackets_and_html_title_loses_its_tags() -> None:
    body = """<feed xmlns="http://www.w3.org/2005/Atom"><title>F</title>
      <entry><title type="text">Use &lt;div&gt; wisely</title><link href="https://e.org/1"/>
        <id>1</id><updated>2026-02-01T00:00:00Z</updated></entry>
      <entry><title type="html">&lt;i&gt;Slanted&lt;/i&gt; news</title>
        <link href="https://e.org/2"/><id>2</id><updated>2026-02-01T00:00:00Z</updated></entry>
    </feed>"""
    titles = [item.article.title for item in parse(body).items]
    assert titles == ["Use <div> wisely", "Slanted news"]


RSS_1_0 = """<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
         xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel rdf:about="https://example.net/"><title>RDF Site</title>
    <link>https://example.net/</link><description>d</description></channel>
  <item rdf:about="https://example.net/a">
    <title>An RDF item</title><link>https://example.net/a</link>
    <description>About &lt;b&gt;RDF&lt;/b&gt;</description>
    <dc:date>2026-02-27T08:30:00+01:00</dc:date><dc:subject>Semantic Web</dc:subject>
  </item>
</rdf:RDF>"""

RSS_0_91 = """<?xml version="1.0"?>
<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"
  "http://my.netscape.com/publish/formats/rss-0.91.dtd">
<rss version="0.91"><channel><title>Old School</title><link>http://old.example/</link>
  <description>d</description><language>en</language>
  <item><title>Still here</title><link>http://old.example/still</link>
    <description>Since 1999.</description></item>
</channel></rss>"""


def test_rss_1_0_rdf_with_a_dublin_core_date() -> None:
    parsed = parse(RSS_1_0, content_type="application/rdf+xml")
    [item] = parsed.items
    assert parsed.title == "RDF Site"
    assert item.key == "https://example.net/a"
    assert item.article.title == "An RDF item"
    assert item.article.excerpt == "About RDF"
    assert item.article.published == datetime(2026, 2, 27, 7, 30, tzinfo=UTC)
    assert item.article.topics == ("Semantic Web",)
    assert parsed.problems == ()


def test_rss_0_91_netscape() -> None:
    parsed = parse(RSS_0_91, content_type="text/xml")
    [item] = parsed.items
    assert parsed.title == "Old School"
    assert item.article.url == "http://old.example/still"
    assert item.key == "http://old.example/still"  # no guid: the link is the key
    assert item.article.excerpt == "Since 1999."
    assert item.article.published == NOW
    assert parsed.problems == ("1 entry without a date: dated when fetched",)


def test_json_feed_fields_each_format_version_allows() -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1",
        "title": "JSON &amp; Co",
        "items": [
            {
                "id": 42,  # 1.0 feeds sometimes use numbers
                "external_url": "https://elsewhere.example/story",
                "title": "Linked",
                "content_text": "Plain\n\ntext   body",
                "date_modified": "2026-02-28T10:00:00-05:00",
                "banner_image": "https://img.example/banner.png",
                "tags": ["News", "news", " Tech "],
            },
            {
                "id": "b",
                "url": "/relative/b",
                "summary": "Only a summary, no title",
                "content_html": "<p>Ignored: the summary wins</p>",
                "date_published": "2026-02-28T10:00:00Z",
                "attachments": [
                    {"url": "https://cdn.example/a.mp3", "mime_type": "audio/mpeg"},
                    {"url": "https://cdn.example/b.webp", "mime_type": "image/webp"},
                ],
            },
        ],
    }
    parsed = parse(json.dumps(doc), content_type="application/feed+json")
    first, second = (item.article for item in parsed.items)
    assert parsed.title == "JSON & Co"
    assert [item.key for item in parsed.items] == ["42", "b"]
    assert first.url == "https://elsewhere.example/story"
    assert first.excerpt == "Plain text body"
    assert first.published == datetime(2026, 2, 28, 15, 0, tzinfo=UTC)
    assert first.image_url == "https://img.example/banner.png"
    assert first.topics == ("News", "Tech")
    assert second.url == "https://news.example.com/relative/b"
    assert second.title == "Only a summary, no title"
    assert second.excerpt == "Only a summary, no title"
    assert second.image_url == "https://cdn.example/b.webp"


def test_json_is_recognised_by_content_type_or_by_its_first_brace() -> None:
    body = json_feed([ENTRY])
    assert len(parse(body).items) == 1
    assert len(parse("\n  " + body, content_type="application/json").items) == 1


def test_content_type_charset_decides_the_encoding() -> None:
    body = (
        '<rss version="2.0"><channel><title>Caf\xe9</title><item><title>Cr\xe8me br\xfbl\xe9e'
        "</title><link>https://e.org/1</link></item></channel></rss>"
    ).encode("iso-8859-1")
    parsed = parse(body, content_type="application/rss+xml; charset=iso-8859-1")
    assert parsed.title == "Café"
    assert parsed.items[0].article.title == "Crème brûlée"


def test_a_feed_served_as_html_is_still_a_feed() -> None:
    parsed = parse(rss([ENTRY]), content_type="text/html; charset=utf-8")
    assert [i.article.title for i in parsed.items] == ["Robots & people"]
    assert parsed.problems == ()


def test_a_feed_without_title_takes_the_source_name_as_provider() -> None:
    parsed = parse(rss([ENTRY], title=None))
    assert parsed.title == ""
    assert parsed.items[0].article.provider == "Example Source"


def test_a_feed_with_no_entries_is_valid_and_empty() -> None:
    for body in (rss([]), atom([]), json_feed([])):
        parsed = parse(body)
        assert parsed.items == ()
        assert parsed.problems == ()
        assert parsed.title == "Test Feed"


# --- text ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("<p>one</p><p>two</p>", "one two"),
        ("one<br>two<br/>three", "one two three"),
        ("<b>bold</b>face", "boldface"),
        ("<style>p {color: red}</style>Text<script>var x = '<p>';</script>!", "Text!"),
        ("Fish &amp; chips &lt;3 &eacute;&#233;", "Fish & chips <3 éé"),
        ("a < b and c > d", "a < b and c > d"),
        ("  lots \n\t of\u00a0\u2028 space  ", "lots of space"),
        ("control\x07chars\x1b[31m", "control chars [31m"),
        ("<![unknown[marked]]>section", "section"),  # html.parser asserts on this one
        ("<!-- a comment -->visible", "visible"),
        ("<ul><li>one</li><li>two</li></ul>", "one two"),
        ("", ""),
    ],
)
def test_strip_html(markup: str, text: str) -> None:
    assert strip_html(markup) == text


def test_a_long_summary_is_cut_at_a_word_boundary_with_an_ellipsis() -> None:
    words = " ".join(f"word{n}" for n in range(500))
    [item] = parse(rss([{**ENTRY, "summary": f"<p>{words}</p>"}])).items
    excerpt = item.article.excerpt
    assert len(excerpt) <= MAX_EXCERPT
    assert excerpt.endswith("…")
    kept = excerpt.removesuffix("…")
    assert words.startswith(kept + " ")  # ends on a whole word
    assert len(kept) > MAX_EXCERPT - 20


def test_a_summary_of_one_enormous_word_is_cut_inside_it() -> None:
    [item] = parse(rss([{**ENTRY, "summary": "x" * 5000}])).items
    assert item.article.excerpt == "x" * (MAX_EXCERPT - 1) + "…"


def test_excerpt_falls_back_to_the_content() -> None:
    body = """<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
      <channel><title>F</title><item><title>T</title><link>https://e.org/1</link>
      <content:encoded><![CDATA[<div><p>From the <a href="/x">content</a>.</p></div>]]>
      </content:encoded></item></channel></rss>"""
    [item] = parse(body).items
    assert item.article.excerpt == "From the content."


# --- links, keys, duplicates -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("link", "url"),
    [
        ("/a/1", "https://news.example.com/a/1"),
        ("b/2", "https://news.example.com/feeds/b/2"),
        ("//cdn.example.com/c", "https://cdn.example.com/c"),
        ("https://x.example/with space", "https://x.example/with%20space"),
        ("https://x.example/caf\xe9", "https://x.example/caf%C3%A9"),
    ],
)
def test_links_are_resolved_against_the_feed_url(link: str, url: str) -> None:
    [item] = parse(json_feed([{"title": "T", "link": link}])).items
    assert item.article.url == url
    assert item.key == url  # no id: the link is the key


def test_xml_links_resolve_against_xml_base_else_the_feed_url() -> None:
    rss_body = (
        '<rss version="2.0"><channel><item><title>t</title><link>x/y</link></item></channel></rss>'
    )
    atom_body = """<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://other.example/b/">
      <entry><title>t</title><link href="x"/><id>urn:1</id></entry></feed>"""
    assert parse(rss_body).items[0].article.url == "https://news.example.com/feeds/x/y"
    [item] = parse(atom_body).items
    assert item.article.url == "https://other.example/b/x"
    assert item.key == "urn:1"


def test_a_relative_atom_id_is_kept_as_written() -> None:
    # The key must not depend on where the feed was fetched from: feeds move.
    entry = {"title": "t", "link": "https://e.org/1", "id": "42"}
    keys = {
        parse(atom([entry]), feed_url=url).items[0].key for url in (FEED_URL, "http://b.example/")
    }
    assert keys == {"42"}


def test_provider_domain_is_the_link_host_without_www() -> None:
    entries = [
        {"title": "a", "link": "https://www.bbc.co.uk/news/1"},
        {"title": "b", "link": "https://WWW.Example.COM:8443/2"},
        {"title": "c", "link": "https://wwwfoo.example/3"},
    ]
    domains = [i.article.provider_domain for i in parse(rss(entries)).items]
    assert domains == ["bbc.co.uk", "example.com", "wwwfoo.example"]


def test_duplicates_by_link_and_by_key_are_dropped_first_wins() -> None:
    entries = [
        {"title": "first", "link": "https://e.org/1", "id": "one"},
        {"title": "same link", "link": "https://e.org/1", "id": "two"},
        {"title": "same id", "link": "https://e.org/2", "id": "one"},
        {"title": "fresh", "link": "https://e.org/3", "id": "three"},
    ]
    for build in (rss, atom, json_feed):
        parsed = parse(build(entries))
        assert [i.article.title for i in parsed.items] == ["first", "fresh"]
        assert [i.key for i in parsed.items] == ["one", "three"]
        assert "2 duplicate entries dropped (same link or id)" in parsed.problems


def test_entries_without_a_usable_link_or_text_are_skipped_and_counted() -> None:
    entries = [
        {"title": "no link"},
        {"title": "no link either", "id": "x"},
        {"title": "script", "link": "javascript:alert(1)"},
        {"link": "https://e.org/untitled"},  # neither title nor summary
        {"title": "good", "link": "https://e.org/good"},
    ]
    parsed = parse(json_feed(entries))
    assert [i.article.title for i in parsed.items] == ["good"]
    assert parsed.problems[:3] == (
        "2 entries without a link skipped",
        "1 entry with a link that is not http(s) skipped",
        "1 entry without a title or summary skipped",
    )


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"title": "a"}, {"title": "b"}, {"title": "c", "link": "mailto:x@y"}], "usable link"),
        ([{"title": "a"}], "the only entry has no usable link"),
        ([{"link": "https://e.org/1"}, {"link": "https://e.org/2"}], "title or summary"),
        ([{"title": "a"}, {"link": "https://e.org/2"}], "is usable: 1 without a usable link"),
    ],
)
def test_a_feed_whose_every_entry_is_unusable_is_an_error(entries, message) -> None:
    error = feed_error(rss(entries))
    assert message in error
    if len(entries) == 3:
        assert error == "none of the 3 entries has a usable link"


# --- images and topics -----------------------------------------------------------------------

MEDIA = 'xmlns:media="http://search.yahoo.com/mrss/"'


@pytest.mark.parametrize(
    ("extra", "image"),
    [
        ('<media:content url="https://i.example/mc.jpg" medium="image"/>', "mc.jpg"),
        ('<media:content url="https://i.example/t.png" type="image/png"/>', "t.png"),
        ('<media:thumbnail url="https://i.example/th.jpg"/>', "th.jpg"),
        ('<enclosure url="https://i.example/e.jpg" type="image/jpeg" length="1"/>', "e.jpg"),
        ('<enclosure url="https://i.example/e.mp3" type="audio/mpeg" length="1"/>', None),
        ('<media:content url="https://i.example/v.mp4" medium="video"/>', None),
        ('<media:content url="javascript:x" medium="image"/>', None),
        (
            '<media:content url="https://i.example/v.mp4" medium="video"/>'
            '<media:thumbnail url="/thumbs/v.jpg"/>',
            "https://news.example.com/thumbs/v.jpg",
        ),
    ],
)
def test_images_from_each_place(extra: str, image: str | None) -> None:
    body = (
        f'<rss version="2.0" {MEDIA}><channel><title>F</title><item><title>T</title>'
        f"<link>https://e.org/1</link>{extra}</item></channel></rss>"
    )
    [item] = parse(body).items
    if image is None:
        assert item.article.image_url is None
    elif image.startswith("https://"):
        assert item.article.image_url == image
    else:
        assert item.article.image_url == f"https://i.example/{image}"


def test_topics_are_the_entry_categories_then_the_sources_deduplicated_and_capped() -> None:
    entry = {**ENTRY, "categories": ["AI", "ai", " Space  Race ", "&amp;", "Robots"]}
    [item] = parse(rss([entry]), topics=("robots", "Science")).items
    assert item.article.topics == ("AI", "Space Race", "&", "Robots", "Science")
    many = {**ENTRY, "categories": [f"topic {n}" for n in range(15)]}
    [item] = parse(atom([many]), topics=("extra",)).items
    assert len(item.article.topics) == 10
    assert item.article.topics[-1] == "topic 9"


# --- dates -----------------------------------------------------------------------------------


def test_dates_in_the_future_beyond_the_slack_are_dated_now() -> None:
    entries = [
        {"title": "soon", "link": "https://e.org/1", "published": NOW + FUTURE_SLACK / 2},
        {"title": "next year", "link": "https://e.org/2", "published": NOW + 365 * DAY},
        {"title": "tomorrow", "link": "https://e.org/3", "published": NOW + DAY},
    ]
    parsed = parse(atom(entries))
    assert [i.article.published for i in parsed.items] == [NOW + FUTURE_SLACK / 2, NOW, NOW]
    [line] = parsed.problems
    assert line.startswith("2 entries dated in the future (")
    assert line.endswith("): dated when fetched")


def test_unparseable_and_missing_dates_are_dated_now_with_a_problem_each() -> None:
    body = """<rss version="2.0"><channel><title>F</title>
      <item><title>a</title><link>https://e.org/a</link><pubDate>next Tuesday-ish</pubDate></item>
      <item><title>b</title><link>https://e.org/b</link></item>
      <item><title>c</title><link>https://e.org/c</link>
        <pubDate>Sat, 28 Feb 2026 09:00:00 GMT</pubDate></item>
    </channel></rss>"""
    parsed = parse(body)
    assert [i.article.published for i in parsed.items] == [
        NOW,
        NOW,
        datetime(2026, 2, 28, 9, tzinfo=UTC),
    ]
    assert set(parsed.problems) == {
        "1 entry with an unparseable date ('next Tuesday-ish'): dated when fetched",
        "1 entry without a date: dated when fetched",
    }


def test_json_dates_are_rfc3339_and_bad_ones_are_reported() -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "items": [
            {"id": "1", "url": "https://e.org/1", "title": "a", "date_published": "2026-02-01"},
            {"id": "2", "url": "https://e.org/2", "title": "b", "date_published": "yesterday"},
            {"id": "3", "url": "https://e.org/3", "title": "c", "date_published": 1700000000},
            {"id": "4", "url": "https://e.org/4", "title": "d", "date_published": "1066-10-14"},
        ],
    }
    parsed = parse(json.dumps(doc))
    dates = [i.article.published for i in parsed.items]
    assert dates == [datetime(2026, 2, 1, tzinfo=UTC), NOW, NOW, NOW]
    assert "2 entries with an unparseable date ('yesterday'): dated when fetched" in (
        parsed.problems
    )
    assert any("outside the years" in p for p in parsed.problems)


def test_updated_is_used_when_there_is_no_published_date() -> None:
    body = """<feed xmlns="http://www.w3.org/2005/Atom"><title>F</title><entry><title>t</title>
      <link href="https://e.org/1"/><id>1</id><updated>2026-02-20T10:00:00+02:00</updated>
      </entry></feed>"""
    [item] = parse(body).items
    assert item.article.published == datetime(2026, 2, 20, 8, tzinfo=UTC)


def test_entries_older_than_oldest_are_left_out() -> None:
    entries = [
        {"title": "new", "link": "https://e.org/1", "published": NOW - DAY},
        {"title": "old", "link": "https://e.org/2", "published": NOW - 30 * DAY},
        {"title": "undated", "link": "https://e.org/3"},  # dated now: kept
    ]
    parsed = parse(rss(entries), oldest=NOW - 7 * DAY)
    assert [i.article.title for i in parsed.items] == ["new", "undated"]
    assert "1 entry older than 2026-02-22 12:00 UTC skipped" in parsed.problems
    # Only old entries: a quiet feed, not a broken one.
    assert parse(rss(entries[1:2]), oldest=NOW - 7 * DAY).items == ()


def test_problem_lines_quote_the_feed_printably() -> None:
    body = json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "items": [{"url": "https://e.org/1", "title": "t", "date_published": "\x1b[2J\u2028"}],
        }
    )
    [line] = parse(body).problems
    assert line.isprintable()
    assert "\\x1b" in line


# --- refusals --------------------------------------------------------------------------------

HTML_PAGE = """<!DOCTYPE html>
<html lang="en"><head><title>Example News - Home</title>
<link rel="alternate" type="application/rss+xml" href="/feed.xml"></head>
<body><h1>Welcome</h1></body></html>"""


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (HTML_PAGE, "text/html; charset=utf-8"),
        (HTML_PAGE, "application/rss+xml"),  # a misconfigured server: the body still tells
        ("\ufeff<!-- cached --><html><body>hi</body></html>", ""),
        ("<p>A fragment</p>", "text/html"),
    ],
)
def test_an_html_page_is_refused_with_a_hint(body: str, content_type: str) -> None:
    assert feed_error(body, content_type=content_type) == (
        "answered HTML, not a feed (is the URL the feed's address?)"
    )


@pytest.mark.parametrize("body", [b"", b"   \r\n\t ", b"\xef\xbb\xbf\n"])
def test_an_empty_body_is_refused(body: bytes) -> None:
    assert feed_error(body) == "empty response"


@pytest.mark.parametrize(
    ("body", "starts"),
    [
        ("just some text", "not a feed: syntax error at line 1"),
        ("<rss version='2.0'><channel><title>x</title>\n<oops", "not a feed: "),
        ('<?xml version="1.0"?><catalog><book/></catalog>', "not a feed: the XML is neither"),
        ("{not json", "not a feed: invalid JSON"),
        ('{"hello": "world"}', "not a feed: JSON without a JSON Feed"),
        ('{"version": "https://jsonfeed.org/version/1.1"}', "not a feed: JSON Feed without"),
        ("[1, 2]", "not a feed: "),
        ('{"items": [1, "x"]}', "not a feed: none of the 2 JSON Feed items"),
        ("{" * 100_000, "not a feed: "),
    ],
)
def test_bodies_that_are_not_feeds_are_refused(body: str, starts: str) -> None:
    error = feed_error(body)
    assert error.startswith(starts)
    assert len(error) < 160


def test_malformed_xml_with_recoverable_entries_is_kept_with_a_problem() -> None:
    body = (
        '<rss version="2.0"><channel><title>Loose & Easy</title>'
        "<item><title>Fish & chips</title><link>https://e.org/1</link></item>"
        "<item><title>Second</title><link>https://e.org/2</link></item>"
        "</channel></rss>"
    )
    parsed = parse(body)
    assert [i.article.title for i in parsed.items] == ["Fish & chips", "Second"]
    assert parsed.title == "Loose & Easy"
    assert parsed.problems[0].startswith("malformed feed: not well-formed")
    assert parsed.problems[1:] == ("2 entries without a date: dated when fetched",)


def test_a_truncated_feed_keeps_the_entries_before_the_cut() -> None:
    whole = rss([{**ENTRY, "id": str(n), "link": f"https://e.org/{n}"} for n in range(3)])
    cut = whole[: whole.rindex("<item>") + 20]
    parsed = parse(cut)
    assert len(parsed.items) == 2
    assert parsed.problems[0].startswith("malformed feed: ")


# --- robustness ------------------------------------------------------------------------------

_FRAGMENTS = st.sampled_from(
    [
        b"<?xml version='1.0' encoding='utf-8'?>",
        b"<rss version='2.0'>",
        b"<channel>",
        b"<item>",
        b"</item>",
        b"<title>",
        b"</title>",
        b"<link>",
        b"</link>",
        b"http://e.org/",
        b"javascript:",
        b"<pubDate>",
        b"</pubDate>",
        b"Mon, 99 Foo 2026",
        b"<feed xmlns='http://www.w3.org/2005/Atom'>",
        b"<entry>",
        b"<id>",
        b"<description>&lt;![x",
        b"<!DOCTYPE r [<!ENTITY a 'bbbb'>]>",
        b"&a;",
        b"<![CDATA[",
        b"]]>",
        b"\x00",
        b"\xff\xfe",
        b"{",
        b'"items":[',
        b"<html>",
    ]
)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    data=st.one_of(
        st.binary(max_size=400),
        st.lists(st.one_of(_FRAGMENTS, st.binary(max_size=4)), max_size=40).map(b"".join),
    ),
    content_type=st.sampled_from(
        ["", "text/html", "application/json", "application/rss+xml; charset=utf-16", "x; c=?"]
    ),
)
def test_arbitrary_bytes_raise_only_feed_error(data: bytes, content_type: str) -> None:
    try:
        parsed = parse(data, content_type=content_type)
    except FeedError as exc:
        assert str(exc).isprintable()
        return
    assert all(line.isprintable() for line in parsed.problems)
    for item in parsed.items:
        assert item.article.url.startswith(("http://", "https://"))
        assert len(item.article.excerpt) <= MAX_EXCERPT


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
_JSON_ITEM = st.fixed_dictionaries(
    {},
    optional={
        key: _JSON | st.text(max_size=30)
        for key in (
            "id",
            "url",
            "external_url",
            "title",
            "summary",
            "content_html",
            "date_published",
            "image",
            "tags",
            "attachments",
        )
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    title=_JSON,
    items=st.one_of(_JSON, st.lists(st.one_of(_JSON_ITEM, _JSON), max_size=5)),
)
def test_arbitrary_json_feeds_raise_only_feed_error(title, items) -> None:
    body = json.dumps(
        {"version": "https://jsonfeed.org/version/1.1", "title": title, "items": items}
    )
    try:
        parse(body)
    except FeedError as exc:
        assert str(exc).isprintable()


# --- fetch: the loopback server --------------------------------------------------------------

FEED = rss([ENTRY], title="Served")
FAST = FetchPolicy(total_timeout=10.0, connect_timeout=5.0)


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    async with FeedServer() as running:
        yield running


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with open_session(FAST) as opened:
        yield opened


async def get(session, url: str, policy: FetchPolicy = FAST, **validators) -> Fetched:
    validators.setdefault("etag", None)
    validators.setdefault("last_modified", None)
    return await fetch(session, url, policy=policy, **validators)


async def fetch_error(session, url: str, policy: FetchPolicy = FAST, **kwargs) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await get(session, url, policy, **kwargs)
    assert str(caught.value).isprintable()
    return caught.value


async def test_fetch_200_then_304_with_the_validators(server, session) -> None:
    server.set_feed("/feed.xml", FEED)
    first = await get(session, server.url("/feed.xml"))
    assert first.status == 200
    assert first.body == FEED.encode()
    assert first.content_type == "application/rss+xml"
    assert first.etag == server.etag("/feed.xml") is not None
    assert first.last_modified == "Wed, 21 Oct 2026 07:28:00 GMT"
    assert first.url == server.url("/feed.xml")
    assert first.moved_to is None
    assert server.conditional["/feed.xml"] == 0

    second = await get(session, first.url, etag=first.etag, last_modified=first.last_modified)
    assert second.status == 304
    assert second.body == b""
    assert (second.etag, second.last_modified) == (first.etag, first.last_modified)
    assert server.requests["/feed.xml"] == 2
    assert server.conditional["/feed.xml"] == 1
    assert server.not_modified["/feed.xml"] == 1

    # A new body is a new ETag: the same validators now get the whole feed.
    server.set_feed("/feed.xml", rss([ENTRY], title="Changed"))
    third = await get(session, first.url, etag=first.etag, last_modified=first.last_modified)
    assert third.status == 200
    assert third.etag != first.etag
    assert b"Changed" in third.body
    assert server.conditional["/feed.xml"] == 2
    assert server.not_modified["/feed.xml"] == 1


async def test_a_304_without_validators_keeps_the_old_ones(server, session) -> None:
    server.set_feed("/lm.xml", FEED, etag=False)
    first = await get(session, server.url("/lm.xml"))
    assert first.etag is None
    second = await get(session, first.url, etag='"old"', last_modified=first.last_modified)
    # If-None-Match does not match (the server has no ETag), so: 200.
    assert second.status == 200
    third = await get(session, first.url, etag=None, last_modified=first.last_modified)
    assert third.status == 304
    assert third.last_modified == first.last_modified
    server.set_status("/bare304", 304)
    bare = await get(session, server.url("/bare304"), etag='"e1"', last_modified="lm1")
    assert (bare.status, bare.etag, bare.last_modified) == (304, '"e1"', "lm1")


async def test_validators_that_cannot_be_headers_are_not_sent(server, session) -> None:
    server.set_feed("/feed.xml", FEED)
    got = await get(session, server.url("/feed.xml"), etag='"a"\r\nX-Evil: 1', last_modified="é")
    assert got.status == 200
    assert server.conditional["/feed.xml"] == 0
    assert "X-Evil" not in server.headers["/feed.xml"][0]


async def test_gzip_is_asked_for_and_undone(server, session) -> None:
    server.set_feed("/gz.xml", FEED, gzip=True)
    got = await get(session, server.url("/gz.xml"))
    assert got.body == FEED.encode()
    assert server.gzipped["/gz.xml"] == 1
    assert "gzip" in server.headers["/gz.xml"][0]["Accept-Encoding"]


async def test_the_user_agent_and_accept_headers_are_sent(server, session) -> None:
    server.set_feed("/feed.xml", FEED)
    await get(session, server.url("/feed.xml"))
    assert server.user_agents == [FAST.user_agent]
    assert FAST.user_agent.startswith("newsbot/")
    assert "application/rss+xml" in server.headers["/feed.xml"][0]["Accept"]


async def test_a_chain_of_permanent_redirects_sets_moved_to(server, session) -> None:
    server.set_feed("/new.xml", FEED)
    server.redirect("/old.xml", "/mid.xml", status=301)
    server.redirect("/mid.xml", server.url("/new.xml"), status=308)
    got = await get(session, server.url("/old.xml"), etag='"x"')
    assert got.status == 200
    assert got.url == server.url("/new.xml")
    assert got.moved_to == server.url("/new.xml")
    assert server.conditional["/new.xml"] == 1  # the validators follow the hops


async def test_one_temporary_hop_leaves_moved_to_unset(server, session) -> None:
    server.set_feed("/new.xml", FEED)
    for status in (302, 303, 307):
        server.redirect("/old.xml", "/mid.xml", status=301)
        server.redirect("/mid.xml", "/new.xml", status=status)
        got = await get(session, server.url("/old.xml"))
        assert got.status == 200
        assert got.url == server.url("/new.xml")
        assert got.moved_to is None


async def test_a_relative_location_is_resolved(server, session) -> None:
    server.set_feed("/feeds/v2/all.xml", FEED)
    server.redirect("/feeds/all.xml", "v2/all.xml", status=301)
    got = await get(session, server.url("/feeds/all.xml"))
    assert got.url == server.url("/feeds/v2/all.xml")


async def test_a_redirect_loop_is_refused(server, session) -> None:
    server.redirect("/a", "/b", status=302)
    server.redirect("/b", "/a", status=302)
    error = await fetch_error(session, server.url("/a"))
    assert str(error).startswith("redirect loop")
    assert server.requests["/a"] == 1


async def test_redirects_beyond_the_limit_are_refused(server, session) -> None:
    for n in range(7):
        server.redirect(f"/r{n}", f"/r{n + 1}", status=301)
    server.set_feed("/r7", FEED)
    policy = FetchPolicy(max_redirects=5, total_timeout=10.0)
    error = await fetch_error(session, server.url("/r0"), policy)
    assert str(error) == "too many redirects (more than 5)"
    assert server.requests["/r6"] == 0  # the sixth hop is never requested
    # Exactly the limit is fine.
    got = await get(session, server.url("/r2"), policy)
    assert got.moved_to == server.url("/r7")


async def test_a_redirect_to_another_scheme_is_refused(server, session) -> None:
    server.redirect("/ftp", "ftp://files.example/feed.xml", status=301)
    server.set_status("/nowhere", 302)
    assert "not http(s)" in str(await fetch_error(session, server.url("/ftp")))
    assert "without a Location" in str(await fetch_error(session, server.url("/nowhere")))


@pytest.mark.parametrize(
    ("status", "message", "gone"),
    [
        (404, "HTTP 404 Not Found", False),
        (410, "HTTP 410 Gone", True),
        (500, "HTTP 500 Internal Server Error", False),
        (403, "HTTP 403 Forbidden", False),
    ],
)
async def test_error_statuses(server, session, status: int, message: str, gone: bool) -> None:
    server.set_status("/x", status, body="<html>nope</html>")
    error = await fetch_error(session, server.url("/x"))
    assert str(error) == message
    assert error.status == status
    assert error.gone is gone
    assert error.retry_after is None


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_in_seconds_and_as_a_date(server, session, status: int) -> None:
    server.set_status("/busy", status, headers={"Retry-After": "120"})
    error = await fetch_error(session, server.url("/busy"))
    assert error.retry_after == 120.0
    assert error.status == status
    assert "(retry after 120 s)" in str(error)

    when = format_datetime(NOW + timedelta(minutes=5), usegmt=True)
    server.set_status("/busy", status, headers={"Retry-After": when})
    error = await fetch_error(session, server.url("/busy"), now=NOW)
    assert error.retry_after == 300.0

    server.set_status("/busy", status)
    error = await fetch_error(session, server.url("/busy"))
    assert error.retry_after is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Sun, 01 Mar 2026 12:01:30 GMT", 90.0),
        ("Sun, 01 Mar 2026 11:00:00 GMT", 0.0),  # in the past: retry now
        ("Sunday, 01-Mar-26 12:02:00 GMT", 120.0),  # RFC 850, still allowed by HTTP
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


TEN_MB = b"<rss>" + b" " * (10 * 1024 * 1024)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_body_over_the_cap_is_refused(server, session, chunked: bool) -> None:
    server.set_feed("/big.xml", TEN_MB, chunked=chunked)
    error = await fetch_error(session, server.url("/big.xml"))
    assert str(error).startswith("more than 5 MiB")
    assert ("Content-Length" in str(error)) is not chunked


async def test_a_gzip_bomb_is_measured_after_decompression(server, session) -> None:
    server.set_feed("/bomb.xml", TEN_MB, gzip=True)
    error = await fetch_error(session, server.url("/bomb.xml"))
    assert str(error) == "more than 5 MiB"
    assert len(gzip.compress(TEN_MB)) < 100_000  # what Content-Length said


async def test_a_trickling_server_is_stopped_by_the_total_timeout(server) -> None:
    server.trickle("/slow.xml", FEED, bytes_per_second=1)
    policy = FetchPolicy(total_timeout=1.5, connect_timeout=1.0)
    started = time.monotonic()
    async with open_session(policy) as session:
        error = await fetch_error(session, server.url("/slow.xml"), policy)
    elapsed = time.monotonic() - started
    assert str(error) == "timed out after 1.5 s"
    assert 1.4 <= elapsed < 3.0


async def test_cancelling_a_fetch_is_not_swallowed(server, session) -> None:
    server.trickle("/slow.xml", FEED, bytes_per_second=1)
    task = asyncio.create_task(get(session, server.url("/slow.xml")))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_unknown_host_is_named(session) -> None:
    error = await fetch_error(session, "http://feeds.example.invalid/rss")
    assert str(error) == "cannot resolve host feeds.example.invalid"
    assert error.status is None


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_refused_connection_is_named(session) -> None:
    port = _closed_port()
    error = await fetch_error(session, f"http://127.0.0.1:{port}/feed.xml")
    assert str(error).startswith("connection refused")


async def test_tls_to_a_plain_http_server_is_a_tls_error(server, session) -> None:
    server.set_feed("/feed.xml", FEED)
    error = await fetch_error(session, server.url("/feed.xml").replace("http:", "https:"))
    assert str(error).startswith("TLS error: ")


@pytest.mark.parametrize("url", ["ftp://example.org/feed", "file:///etc/passwd", "not a url"])
async def test_only_http_urls_are_fetched(session, url: str) -> None:
    error = await fetch_error(session, url)
    assert str(error).startswith("not an http(s) URL")


async def _raw_server(answer: bytes) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    raw = await asyncio.start_server(handle, "127.0.0.1", 0)
    return raw, int(raw.sockets[0].getsockname()[1])


@pytest.mark.parametrize(
    ("answer", "starts"),
    [
        (b"garbage\r\n\r\n", "bad HTTP answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b", "broken body"),
        (b"", "the server closed the connection"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!",
            "broken body",
        ),
    ],
)
async def test_broken_http_answers_are_fetch_errors(session, answer: bytes, starts: str) -> None:
    raw, port = await _raw_server(answer)
    async with raw:
        error = await fetch_error(session, f"http://127.0.0.1:{port}/")
    assert str(error).startswith(starts), str(error)


async def test_a_fetched_feed_parses_end_to_end(server, session) -> None:
    body = '<?xml version="1.0" encoding="iso-8859-1"?>' + rss([ENTRY]).split("?>", 1)[1]
    server.set_feed("/latin.xml", body.encode("iso-8859-1"), content_type="text/xml")
    got = await get(session, server.url("/latin.xml"))
    parsed = parse_feed(
        got.body, feed_url=got.url, source_name="s", now=NOW, content_type=got.content_type
    )
    assert parsed.items[0].article.title == "Robots & people"

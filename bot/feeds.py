"""Feeds: a fetched body (RSS, Atom or JSON Feed) -> articles.

Pure: bytes in, a :class:`ParsedFeed` (or a :class:`FeedError`) out; no network, no clock (the
caller passes ``now``). Fetching lives in :mod:`bot.fetch`.

The rules, in the order they apply:

* Format. RSS 0.9x/1.0/2.0 and Atom go through feedparser, with the response's content type
  handed over as a header so it picks the right encoding. JSON Feed 1.0/1.1, which feedparser
  6.0 does not read, is mapped here: a body is JSON when it starts with ``{`` or when the
  content type says JSON and the body does not start with ``<``.
* Refusals (:class:`FeedError`, one short line): an empty body; an HTML page (no feed version
  and the body or the content type looks like HTML: usually the site's address was given
  instead of its feed's); a body that is neither (``not a feed: <the parser's reason>``); a feed
  whose entries are all unusable. A feed with no entries at all is valid. XML that is broken
  but from which entries could still be recovered is kept, with a ``malformed feed`` problem.
* Entries. The link is resolved against ``feed_url`` and must be http(s); the title and the
  summary lose their HTML (script and style contents dropped, block tags become spaces) and
  their entities; the excerpt is the summary (else the content) cut at a word boundary to
  :data:`MAX_EXCERPT` characters. An entry with no title takes the start of its excerpt as
  title. Fields a format declares plain text (Atom ``type="text"``, JSON Feed's ``title``,
  ``summary`` and ``content_text``) keep their angle brackets: "a <b> c" there is text.
* Skipped and counted in :attr:`ParsedFeed.problems`: no usable link, neither a title nor a
  summary. Dropped and counted: duplicates by link or by key (the first wins). Skipped and
  counted: entries older than ``oldest``, when given (an old entry is not a fault of the feed).
* Dates: published, else updated, as aware UTC. Missing, unparseable, outside the years
  :data:`~bot.articles.MIN_YEAR`-:data:`~bot.articles.MAX_YEAR`, or more than
  :data:`FUTURE_SLACK` ahead of ``now``: dated ``now`` (when we saw it), with a problem line.
  A feed cannot push an article to the top of every "newest" list by dating it next year.

Everything taken from the feed that reaches a message goes through
:func:`~bot.articles.printable`, so a feed cannot split or forge a report line. Whatever the
bytes, :func:`parse_feed` raises nothing but :class:`FeedError` (a hypothesis test pins this).
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser

from bot.articles import (
    MAX_TOPICS,
    MAX_YEAR,
    MIN_YEAR,
    Article,
    clean_text,
    http_url,
    printable,
)

log = logging.getLogger(__name__)

MAX_EXCERPT = 600
# A title is a line in an embed (256 characters there); a feed's title can be a whole post.
MAX_TITLE = 300
# Clocks drift and feeds round; an entry a few minutes ahead is honest, one a day ahead is not.
FUTURE_SLACK = timedelta(minutes=10)
# Messages quote at most this much of what a feed says.
_QUOTE = 80


class FeedError(Exception):
    """The body is not a usable feed; ``str()`` is one printable line.

    For example ``answered HTML, not a feed (is the URL the feed's address?)``,
    ``empty response``, ``not a feed: syntax error at line 1``,
    ``none of the 3 entries has a usable link``.
    """

    def __init__(self, reason: str) -> None:
        self.reason = printable(reason)
        super().__init__(self.reason)


@dataclass(frozen=True, slots=True)
class FeedItem:
    # The entry's identity across polls: guid / atom:id / JSON id; the link when it has none.
    key: str
    article: Article
    # The entry had no usable date and is dated ``now``: a later poll must keep the date it
    # was first stored with, or the story would move to the top at every poll.
    dated_when_fetched: bool = False


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    title: str  # the feed's own title ('' if none)
    items: tuple[FeedItem, ...]  # feed order, de-duplicated by link and by key (first wins)
    problems: tuple[str, ...]  # one printable line each, counted


def parse_feed(
    data: bytes,
    *,
    feed_url: str,
    source_name: str,
    now: datetime,
    content_type: str = "",
    topics: Sequence[str] = (),
    oldest: datetime | None = None,
) -> ParsedFeed:
    """Turn a fetched body into articles; raise :class:`FeedError` when it is not a feed.

    ``feed_url`` resolves relative links; ``source_name`` is the provider when the feed has no
    title; ``now`` dates entries without a usable date; ``topics`` are added to every
    article's own; entries published before ``oldest`` are left out.
    """
    now = _utc(now)
    oldest = _utc(oldest) if oldest is not None else None
    body = data.lstrip(b" \t\r\n\x0c")
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:].lstrip(b" \t\r\n\x0c")
    if not body.strip():
        raise FeedError("empty response")
    media_type = content_type.partition(";")[0].strip().lower()
    if body.startswith(b"{") or (_is_json_type(media_type) and not body.startswith(b"<")):
        title, entries, problems = _read_json_feed(data)
    else:
        looks_html = media_type in _HTML_TYPES or bool(_HTML_START.match(body[:4096]))
        title, entries, problems = _read_xml_feed(data, content_type, feed_url, looks_html)
    builder = _Builder(
        feed_url=feed_url,
        provider=title or clean_text(source_name),
        now=now,
        oldest=oldest,
        topics=topics,
    )
    return builder.build(title, entries, problems)


# --- one shape for every format --------------------------------------------------------------


@dataclass(slots=True)
class _Entry:
    """An entry as every format reads: raw text, plus how each text field is marked up."""

    key: str = ""
    link: str = ""
    title: str = ""
    title_is_html: bool = True
    summary: str = ""
    summary_is_html: bool = True
    # (raw date text, parsed date); the text only says that a date was there.
    published: tuple[str, datetime | None] = ("", None)
    updated: tuple[str, datetime | None] = ("", None)
    images: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(slots=True)
class _Builder:
    feed_url: str
    provider: str
    now: datetime
    oldest: datetime | None
    topics: Sequence[str]

    def build(self, title: str, entries: list[_Entry], problems: list[str]) -> ParsedFeed:
        skipped: Counter[str] = Counter()  # reason -> entries skipped for it (unusable)
        dates: Counter[str] = Counter()  # date problem -> entries dated `now` for it
        examples: dict[str, str] = {}  # date problem -> the first offending text
        duplicates = old = 0
        items: list[FeedItem] = []
        seen_links: set[str] = set()
        seen_keys: set[str] = set()
        for entry in entries:
            url = self._url(entry.link)
            if url is None:
                skipped["link" if entry.link.strip() else "no link"] += 1
                continue
            headline = _text(entry.title, html=entry.title_is_html)
            excerpt = _cut(_text(entry.summary, html=entry.summary_is_html), MAX_EXCERPT)
            if not headline and not excerpt:
                skipped["title"] += 1
                continue
            key = entry.key.strip() or url
            if url in seen_links or key in seen_keys:
                duplicates += 1
                continue
            published, date_problem, example = self._date(entry)
            if date_problem:
                dates[date_problem] += 1
                examples.setdefault(date_problem, example)
            elif self.oldest is not None and published < self.oldest:
                old += 1
                continue
            seen_links.add(url)
            seen_keys.add(key)
            article = Article(
                url=url,
                title=_cut(headline or excerpt, MAX_TITLE),
                excerpt=excerpt,
                published=published,
                provider=self.provider,
                provider_domain=_domain(url),
                image_url=self._image(entry.images),
                kind="article",
                topics=_topics((*entry.tags, *self.topics)),
                related=(),
            )
            items.append(FeedItem(key=key, article=article, dated_when_fetched=bool(date_problem)))

        unusable = sum(skipped.values())
        if entries and unusable == len(entries):
            raise FeedError(_nothing_usable(skipped, len(entries)))
        lines = list(problems)
        if skipped["no link"]:
            lines.append(f"{_entries(skipped['no link'])} without a link skipped")
        if skipped["link"]:
            lines.append(f"{_entries(skipped['link'])} with a link that is not http(s) skipped")
        if skipped["title"]:
            lines.append(f"{_entries(skipped['title'])} without a title or summary skipped")
        if duplicates:
            lines.append(f"{_entries(duplicates, 'duplicate entry')} dropped (same link or id)")
        for problem, count in dates.items():
            example = f" ({_quote(examples[problem])})" if examples[problem] else ""
            lines.append(f"{_entries(count)} {problem}{example}: dated when fetched")
        if old:
            lines.append(f"{_entries(old)} older than {self.oldest:%Y-%m-%d %H:%M} UTC skipped")
        return ParsedFeed(
            title=title,
            items=tuple(items),
            problems=tuple(printable(line) for line in lines),
        )

    def _url(self, link: str) -> str | None:
        link = link.strip()
        if not link:
            return None
        try:
            return http_url(urljoin(self.feed_url, link))
        except ValueError:  # urljoin too: an unbalanced "[" in the host
            return None

    def _image(self, candidates: Iterable[str]) -> str | None:
        for candidate in candidates:
            url = self._url(candidate)
            if url is not None:
                return url
        return None

    def _date(self, entry: _Entry) -> tuple[datetime, str, str]:
        """The entry's date, or ``now`` with the reason and the text that caused it."""
        for raw, parsed in (entry.published, entry.updated):
            if parsed is not None:
                if not MIN_YEAR <= parsed.year <= MAX_YEAR:
                    return self.now, f"dated outside the years {MIN_YEAR}-{MAX_YEAR}", raw
                if parsed > self.now + FUTURE_SLACK:
                    return self.now, "dated in the future", raw
                return parsed, "", ""
        raw = entry.published[0] or entry.updated[0]
        if raw.strip():
            return self.now, "with an unparseable date", raw
        return self.now, "without a date", ""


def _nothing_usable(skipped: Mapping[str, int], total: int) -> str:
    link = skipped.get("no link", 0) + skipped.get("link", 0)
    title = skipped.get("title", 0)
    if link == total:
        return (
            "the only entry has no usable link"
            if total == 1
            else (f"none of the {total} entries has a usable link")
        )
    if title == total:
        return (
            "the only entry has no title or summary"
            if total == 1
            else (f"none of the {total} entries has a title or summary")
        )
    return (
        f"none of the {total} entries is usable: {link} without a usable link, "
        f"{title} without a title or summary"
    )


def _entries(count: int, noun: str = "entry") -> str:
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{count} {noun if count == 1 else plural}"


def _quote(value: str) -> str:
    value = " ".join(value.split())
    return repr(value if len(value) <= _QUOTE else value[: _QUOTE - 1] + "…")


# --- XML: RSS and Atom through feedparser ------------------------------------------------------

# feedparser's "nobody cares" exceptions: an encoding declared one way and read another, a feed
# served as text/plain. They say nothing about whether the entries are right.
_BENIGN = (feedparser.ThingsNobodyCaresAboutButMe,)
_HTML_START = re.compile(
    rb"(?:<!--.*?-->\s*|<\?.*?\?>\s*)*<(?:!doctype\s+html|html[\s>])", re.I | re.S
)
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


def _read_xml_feed(
    data: bytes, content_type: str, feed_url: str, looks_html: bool
) -> tuple[str, list[_Entry], list[str]]:
    # No content-location: feedparser would resolve a relative atom:id against it, and an
    # entry's key must not change when its feed moves. Links are resolved in _Builder._url.
    headers = {"content-type": content_type} if content_type else {}
    try:
        # A BytesIO, never the bytes: feedparser opens a bytes value that names a file.
        parsed = feedparser.parse(io.BytesIO(data), response_headers=headers)
    except Exception as exc:  # feedparser's loose parser has corners that raise
        log.debug("feedparser failed on %s", feed_url, exc_info=True)
        raise FeedError(f"not a feed: the parser failed ({type(exc).__name__})") from None

    version = parsed.get("version") or ""
    raw_entries = parsed.get("entries") or []
    error = parsed.get("bozo_exception") if parsed.get("bozo") else None
    if isinstance(error, _BENIGN):
        error = None
    if not version and not raw_entries:
        if looks_html:
            raise FeedError("answered HTML, not a feed (is the URL the feed's address?)")
        if error is not None:
            raise FeedError(f"not a feed: {_xml_reason(error, data)}")
        raise FeedError("not a feed: the XML is neither RSS nor Atom")
    if error is not None and not raw_entries:
        raise FeedError(f"not a feed: {_xml_reason(error, data)}")
    problems = [f"malformed feed: {_xml_reason(error, data)}"] if error is not None else []

    feed = parsed.get("feed") or {}
    title = _text(_str(feed.get("title")), html=_is_html(feed.get("title_detail")))
    entries = [_from_feedparser(raw) for raw in raw_entries if isinstance(raw, dict)]
    return _cut(title, MAX_TITLE), entries, problems


def _xml_reason(error: BaseException, data: bytes) -> str:
    message = getattr(error, "getMessage", None)
    line = getattr(error, "getLineNumber", None)
    if callable(message) and callable(line):  # a SAXParseException
        # feedparser puts an XML declaration line in front of a document without one.
        shift = 0 if data.removeprefix(b"\xef\xbb\xbf").startswith(b"<?xml") else 1
        try:
            reason = f"{message()} at line {max(1, line() - shift)}"
        except Exception:  # its locator can be gone
            reason = str(error)
    else:
        reason = str(error) or type(error).__name__
    return _cut(" ".join(reason.split()), _QUOTE)


def _from_feedparser(raw: dict[str, Any]) -> _Entry:
    summary, summary_detail = _str(raw.get("summary")), raw.get("summary_detail")
    if not summary.strip():
        for content in _list(raw.get("content")):
            if isinstance(content, Mapping) and _str(content.get("value")).strip():
                summary, summary_detail = _str(content.get("value")), content
                break
    return _Entry(
        key=_str(raw.get("id")),
        link=_feedparser_link(raw),
        title=_str(raw.get("title")),
        title_is_html=_is_html(raw.get("title_detail")),
        summary=summary,
        summary_is_html=_is_html(summary_detail),
        published=(_str(raw.get("published")), _struct_time(raw.get("published_parsed"))),
        # dict.get: feedparser's own get() answers "updated" with the published date (and a
        # DeprecationWarning) when an entry has no updated date.
        updated=(_str(dict.get(raw, "updated")), _struct_time(dict.get(raw, "updated_parsed"))),
        images=tuple(_feedparser_images(raw)),
        tags=tuple(
            _str(tag.get("term")) or _str(tag.get("label"))
            for tag in _list(raw.get("tags"))
            if isinstance(tag, Mapping)
        ),
    )


def _feedparser_link(raw: Mapping[str, Any]) -> str:
    link = _str(raw.get("link"))
    if link.strip():
        return link
    for candidate in _list(raw.get("links")):
        if isinstance(candidate, Mapping) and candidate.get("rel", "alternate") == "alternate":
            href = _str(candidate.get("href"))
            if href.strip():
                return href
    return ""


def _feedparser_images(raw: Mapping[str, Any]) -> Iterable[str]:
    for media in _list(raw.get("media_content")):
        if not isinstance(media, Mapping):
            continue
        medium, kind = _str(media.get("medium")), _str(media.get("type"))
        if medium == "image" or kind.startswith("image/") or not (medium or kind):
            yield _str(media.get("url"))
    for thumbnail in _list(raw.get("media_thumbnail")):
        if isinstance(thumbnail, Mapping):
            yield _str(thumbnail.get("url"))
    for enclosure in _list(raw.get("enclosures")):
        if isinstance(enclosure, Mapping) and _str(enclosure.get("type")).startswith("image/"):
            yield _str(enclosure.get("href")) or _str(enclosure.get("url"))


def _is_html(detail: Any) -> bool:
    # feedparser marks RSS text as HTML (it usually is); Atom says which.
    if not isinstance(detail, Mapping):
        return True
    return _str(detail.get("type")) != "text/plain"


def _struct_time(value: Any) -> datetime | None:
    """feedparser's parsed date (a UTC ``time.struct_time``) as an aware datetime."""
    if not isinstance(value, time.struct_time):
        return None
    try:
        return datetime(*value[:5], min(value.tm_sec, 59), tzinfo=UTC)  # leap second 60
    except (ValueError, OverflowError):
        return None


# --- JSON Feed -------------------------------------------------------------------------------

_JSON_TYPES = frozenset({"application/feed+json", "application/json"})


def _is_json_type(media_type: str) -> bool:
    return media_type in _JSON_TYPES


def _read_json_feed(data: bytes) -> tuple[str, list[_Entry], list[str]]:
    try:
        doc = json.loads(data)
    except RecursionError:
        raise FeedError("not a feed: JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, bad UTF-8, an integer too long to read
        reason = (
            f"{exc.msg} at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else "bad"
        )
        raise FeedError(f"not a feed: invalid JSON ({reason})") from None
    if not isinstance(doc, dict):
        raise FeedError("not a feed: JSON that is not an object")
    version = doc.get("version")
    items = doc.get("items")
    if not (isinstance(version, str) and "jsonfeed.org" in version) and items is None:
        raise FeedError("not a feed: JSON without a JSON Feed 'version' or 'items'")
    if not isinstance(items, list):
        raise FeedError("not a feed: JSON Feed without an 'items' list")
    title = _cut(clean_text(_str(doc.get("title"))), MAX_TITLE)
    entries: list[_Entry] = []
    not_objects = 0
    for item in items:
        if isinstance(item, dict):
            entries.append(_from_json_item(item))
        else:
            not_objects += 1
    if not_objects and not entries:
        raise FeedError(f"not a feed: none of the {not_objects} JSON Feed items is an object")
    problems = []
    if not_objects:
        problems.append(f"{_entries(not_objects, 'item')} that is not an object skipped")
    return title, entries, problems


def _from_json_item(item: Mapping[str, Any]) -> _Entry:
    raw_id = item.get("id")
    key = str(raw_id) if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) else ""
    summary, is_html = _str(item.get("summary")), False
    if not summary.strip():
        summary = _str(item.get("content_text"))
    if not summary.strip():
        summary, is_html = _str(item.get("content_html")), True
    images = [_str(item.get("image")), _str(item.get("banner_image"))]
    for attachment in _list(item.get("attachments")):
        if isinstance(attachment, Mapping) and _str(attachment.get("mime_type")).startswith(
            "image/"
        ):
            images.append(_str(attachment.get("url")))
    return _Entry(
        key=key,
        link=_str(item.get("url")) or _str(item.get("external_url")),
        title=_str(item.get("title")),
        title_is_html=False,  # JSON Feed: "title (optional, string) is plain text"
        summary=summary,
        summary_is_html=is_html,
        published=_iso_date(item.get("date_published")),
        updated=_iso_date(item.get("date_modified")),
        images=tuple(image for image in images if image),
        tags=tuple(_str(tag) for tag in _list(item.get("tags"))),
    )


def _iso_date(value: Any) -> tuple[str, datetime | None]:
    """An RFC 3339 date (JSON Feed's format) -> (the text, an aware UTC datetime or None)."""
    if value is None:
        return "", None
    text = value.strip() if isinstance(value, str) else repr(value)
    if not isinstance(value, str) or not text:
        return text, None
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return value, None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return value, parsed.astimezone(UTC)
    except (OverflowError, ValueError):  # year 1 with a positive offset
        return value, None


# --- text ------------------------------------------------------------------------------------

# Tags after which a browser starts a new line or box: they become a space, so
# "<p>one</p><p>two</p>" reads "one two", not "onetwo".
# fmt: off
_BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
    "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav",
    "ol", "p", "pre", "section", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
})
# fmt: on
# Their contents are code or markup, never text.
_HIDDEN_TAGS = frozenset({"script", "style", "template", "noscript", "svg", "math"})
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ANY_TAG = re.compile(r"<[^>]*>")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN_TAGS:
            self.hidden += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:  # <br/>; a self-closed <script/> hides nothing
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def strip_html(markup: str) -> str:
    """The text of an HTML fragment: tags gone, entities decoded, whitespace collapsed."""
    if "<" not in markup and "&" not in markup:
        return _collapse(markup)
    extractor = _TextExtractor()
    try:
        extractor.feed(markup)
        extractor.close()
        text = "".join(extractor.parts)
    except Exception:  # html.parser still asserts on some broken declarations ("<![x")
        text = clean_text(_ANY_TAG.sub(" ", markup))
    return _collapse(text)


def _text(value: str, *, html: bool) -> str:
    return strip_html(value) if html else _collapse(clean_text(value))


def _collapse(text: str) -> str:
    # str.split() also splits on NBSP, U+2028 and the other Unicode spaces.
    return " ".join(_CONTROLS.sub(" ", text).split())


def _cut(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, cut after a whole word with an ellipsis."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    if space >= limit // 2:  # else one enormous word (a URL): cut inside it
        head = head[:space]
    return head.rstrip(" ,;:-–—") + "…"


def _topics(raw: Iterable[str]) -> tuple[str, ...]:
    topics: dict[str, str] = {}  # casefolded -> as first written
    for value in raw:
        topic = _cut(_collapse(clean_text(value)), 100) if isinstance(value, str) else ""
        if topic and topic.casefold() not in topics:
            topics[topic.casefold()] = topic
            if len(topics) == MAX_TOPICS:
                break
    return tuple(topics.values())


def _domain(url: str) -> str:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return host.removeprefix("www.")


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []

"""Articles and the seed-file parser.

A seed file is markdown whose YAML front matter is one article in the Smartable news format.
Parsing is pure: bytes in, an :class:`Article` (or a :class:`SeedError`) out. Everything the
rest of the bot needs is normalised here once, so no other module has to know about the
irregularities of real files (CRLF, ``None`` topics, datetimes that YAML already parsed,
videos that only have ``originalUrl``, HTML entities in titles...).
"""

from __future__ import annotations

import dataclasses
import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any
from urllib.parse import quote, urlsplit

import yaml

# libyaml's loader is ~10x faster; both are *safe* loaders: no arbitrary Python objects.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # type: ignore[assignment]

DEFAULT_MAX_BYTES = 1024 * 1024
# Dates outside these years are refused, and the message says so. Python's datetime stops at
# 9999-12-31, so a late date overflows as soon as a digest shifts it into a time zone or adds a
# day; and a news article dated centuries ahead would top every "newest" list for good.
MIN_YEAR, MAX_YEAR = 1900, 2200
# Real files never use anchors; a handful is harmless, hundreds is an alias bomb.
MAX_YAML_ALIASES = 50
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"[ \t\u00a0]+")


class SeedError(Exception):
    """A seed file that cannot be loaded; ``str()`` is one line naming the file.

    One line whatever the file is called: a name holding a newline (legal on Linux) would
    otherwise split the report line and could forge others, so control characters are escaped
    (see :func:`printable`). ``source`` and ``reason`` keep the raw text.
    """

    def __init__(self, source: str, reason: str, line: int | None = None) -> None:
        self.source = source
        self.reason = reason
        self.line = line
        where = f"{source}:{line}" if line is not None else source
        super().__init__(printable(f"{where}: {reason}"))


@dataclass(frozen=True, slots=True)
class RelatedLink:
    title: str
    url: str
    provider: str = ""
    provider_domain: str = ""
    published: datetime | None = None
    excerpt: str = ""
    image_url: str | None = None


@dataclass(frozen=True, slots=True)
class Article:
    url: str
    title: str
    excerpt: str
    published: datetime
    provider: str = ""
    provider_domain: str = ""
    provider_icon: str | None = None
    image_url: str | None = None
    quality: float | None = None
    kind: str = "article"
    topics: tuple[str, ...] = ()
    related: tuple[RelatedLink, ...] = ()
    # Problems that did not stop the article from loading (a bad related item, say).
    warnings: tuple[str, ...] = field(default=(), compare=False)


def parse_seed(data: bytes, source: str) -> Article:
    """Parse one seed file's bytes; raise :class:`SeedError` naming ``source`` on bad input."""
    text = _decode(data, source)
    front, first_line = _front_matter(text, source)
    doc = _load_yaml(front, source, first_line)
    return _article_from(doc, source)


# --- decoding and front matter -------------------------------------------------------------


def _decode(data: bytes, source: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SeedError(source, "file is UTF-16; save it as UTF-8")
    if b"\x00" in data:
        raise SeedError(source, "binary content (NUL bytes); a seed file is UTF-8 text")
    try:
        text = data.decode("utf-8-sig")  # a UTF-8 byte order mark is accepted and dropped
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SeedError(source, f"invalid UTF-8 at byte {exc.start}", line) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _front_matter(text: str, source: str) -> tuple[str, int]:
    """Return the YAML between the opening and closing ``---`` lines, and its first line."""
    lines = text.split("\n")
    if not lines or lines[0].rstrip() != "---":
        raise SeedError(source, "no YAML front matter: the file must start with a '---' line", 1)
    for index in range(1, len(lines)):
        if lines[index].rstrip() in ("---", "..."):
            return "\n".join(lines[1:index]), 2
    raise SeedError(source, "front matter is never closed: no '---' line after the first")


def _load_yaml(front: str, source: str, first_line: int) -> Any:
    if "*" in front and "&" in front:
        _refuse_alias_bombs(front, source, first_line)
    try:
        return _load_needed(front)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + first_line if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise SeedError(source, f"YAML error: {problem}", line) from None
    except (ValueError, OverflowError) as exc:
        # PyYAML's constructor raises these for values its resolver accepted: a timestamp such
        # as 2020-02-30 or hour 25, an integer too large for a float...
        raise SeedError(source, f"YAML error: {exc}") from None
    except yaml.reader.ReaderError as exc:
        # libyaml refuses some characters outright (C1 controls such as U+0097 in real files).
        line = front[: exc.position].count("\n") + first_line
        char = f"U+{exc.character:04X}" if isinstance(exc.character, int) else repr(exc.character)
        raise SeedError(source, f"YAML error: {exc.reason} ({char})", line) from None
    except yaml.YAMLError as exc:
        raise SeedError(source, f"YAML error: {' '.join(str(exc).split())}") from None


# The keys we read, at each level. Real files carry as many again that we ignore (AMP URLs,
# image sizes, an opaque signature...); building Python objects for them is most of the cost
# of parsing, so they are dropped from the parsed node tree before it is constructed.
_ARTICLE_KEYS = frozenset(
    {
        "title",
        "excerpt",
        "publishedDateTime",
        "webUrl",
        "originalUrl",
        "type",
        "provider",
        "topics",
        "images",
        "related",
        "quality",
    }
)
_RELATED_KEYS = frozenset(
    {"title", "excerpt", "publishedDateTime", "webUrl", "originalUrl", "provider", "images"}
)
_PROVIDER_KEYS = frozenset({"name", "domain", "images"})
_IMAGE_KEYS = frozenset({"url"})
_STR_TAG = "tag:yaml.org,2002:str"


def _load_needed(front: str) -> Any:
    """``yaml.load`` with the safe loader, minus the keys no code reads.

    The pruning works on the composed node tree, not on the text, so YAML's semantics (tags,
    anchors, merge keys, timestamps) are untouched for every key that is kept.
    """
    loader = _Loader(front)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if isinstance(node, yaml.MappingNode):
            _prune(node, _ARTICLE_KEYS)
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else None
                if name == "provider":
                    _prune_provider(value)
                elif name == "images":
                    _prune_each(value, _IMAGE_KEYS)
                elif name == "related" and isinstance(value, yaml.SequenceNode):
                    for item in value.value:
                        if not isinstance(item, yaml.MappingNode):
                            continue
                        _prune(item, _RELATED_KEYS)
                        for sub_key, sub_value in item.value:
                            if not isinstance(sub_key, yaml.ScalarNode):
                                continue
                            if sub_key.value == "provider":
                                _prune_provider(sub_value)
                            elif sub_key.value == "images":
                                _prune_each(sub_value, _IMAGE_KEYS)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _prune(node: yaml.Node, keep: frozenset[str]) -> None:
    if isinstance(node, yaml.MappingNode):
        node.value = [
            (k, v)
            for k, v in node.value
            if not (isinstance(k, yaml.ScalarNode) and k.tag == _STR_TAG and k.value not in keep)
        ]


def _prune_each(node: yaml.Node, keep: frozenset[str]) -> None:
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _prune(item, keep)


def _prune_provider(node: yaml.Node) -> None:
    _prune(node, _PROVIDER_KEYS)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == "images":
                _prune_each(value, _IMAGE_KEYS)


def _refuse_alias_bombs(front: str, source: str, first_line: int) -> None:
    aliases = 0
    try:
        for event in yaml.parse(front, Loader=_Loader):
            if isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_YAML_ALIASES:
                    line = event.start_mark.line + first_line if event.start_mark else None
                    raise SeedError(
                        source,
                        f"more than {MAX_YAML_ALIASES} YAML aliases; "
                        "refusing a possible alias bomb",
                        line,
                    )
    except yaml.YAMLError:
        return  # the real load reports the syntax error with its line


# --- fields ---------------------------------------------------------------------------------


def _article_from(doc: Any, source: str) -> Article:
    if not isinstance(doc, dict):
        kind = "empty" if doc is None else f"a {_type_name(doc)}"
        raise SeedError(source, f"front matter is {kind}, not a mapping of keys")
    warnings: list[str] = []

    title = doc.get("title")
    if title is None:
        raise SeedError(source, "missing key 'title'")
    if not isinstance(title, str):
        raise SeedError(source, f"'title' must be a string, not {_type_name(title)}")
    title = clean_text(title)
    if not title:
        raise SeedError(source, "'title' is empty")

    excerpt = doc.get("excerpt")
    if excerpt is None:
        excerpt = ""
    elif not isinstance(excerpt, str):
        raise SeedError(source, f"'excerpt' must be a string, not {_type_name(excerpt)}")

    raw_date = doc.get("publishedDateTime")
    if raw_date is None:
        raise SeedError(source, "missing key 'publishedDateTime'")
    published = _read_date(raw_date)
    if isinstance(published, str):
        raise SeedError(source, f"'publishedDateTime' {published}")

    url = _article_url(doc, source)
    provider, domain, icon = _provider(doc.get("provider"))

    topics: tuple[str, ...] = ()
    raw_topics = doc.get("topics")
    if isinstance(raw_topics, list):
        cleaned = (clean_text(t) for t in raw_topics if isinstance(t, str))
        topics = tuple(dict.fromkeys(t for t in cleaned if t))  # "&nbsp;" cleans to nothing
    elif raw_topics is not None:
        warnings.append(f"'topics' must be a list, not {_type_name(raw_topics)}; ignored")

    quality = _number(doc.get("quality"))
    if quality is None and doc.get("quality") is not None:
        warnings.append(f"'quality' must be a number, not {_short(doc.get('quality'))}; ignored")

    related = _related(doc.get("related"), warnings)
    raw_kind = doc.get("type")
    kind = raw_kind if isinstance(raw_kind, str) else "article"

    return Article(
        url=url,
        title=title,
        excerpt=clean_text(excerpt, keep_newlines=True),
        published=published,
        provider=provider,
        provider_domain=domain,
        provider_icon=icon,
        image_url=_first_image(doc.get("images")),
        quality=quality,
        kind=kind,
        topics=topics,
        related=related,
        warnings=tuple(printable(f"{source}: {w}") for w in warnings),
    )


def _article_url(doc: dict[str, Any], source: str) -> str:
    # Videos carry only originalUrl; webUrl wins where both exist.
    for key in ("webUrl", "originalUrl"):
        value = doc.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise SeedError(source, f"'{key}' is not an http(s) URL: {_short(value)}")
        try:
            return http_url(value)
        except ValueError as exc:
            reason = f"'{key}' is not an http(s) URL ({exc}): {_short(value)}"
            raise SeedError(source, reason) from None
    raise SeedError(source, "no URL: neither 'webUrl' nor 'originalUrl' is set")


def _provider(raw: Any) -> tuple[str, str, str | None]:
    if isinstance(raw, str):
        return clean_text(raw), "", None
    if not isinstance(raw, dict):
        return "", "", None
    name = raw.get("name")
    domain = raw.get("domain")
    return (
        clean_text(name) if isinstance(name, str) else "",
        domain.strip() if isinstance(domain, str) else "",
        _first_image(raw.get("images")),
    )


def _related(raw: Any, warnings: list[str]) -> tuple[RelatedLink, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        warnings.append(f"'related' must be a list, not {_type_name(raw)}; ignored")
        return ()
    links: list[RelatedLink] = []
    seen: set[str] = set()
    for position, item in enumerate(raw, start=1):
        if not isinstance(item, dict):
            warnings.append(f"related item {position} is not a mapping; dropped")
            continue
        url = next(
            (
                found
                for v in (item.get("webUrl"), item.get("originalUrl"))
                if (found := _http_url_or_none(v)) is not None
            ),
            None,
        )
        if url is None:
            warnings.append(f"related item {position} has no http(s) URL; dropped")
            continue
        title = item.get("title")
        title = clean_text(title) if isinstance(title, str) else ""
        if not title:
            warnings.append(f"related item {position} has no title; dropped")
            continue
        if url in seen:
            continue
        seen.add(url)
        provider, domain, _icon = _provider(item.get("provider"))
        excerpt = item.get("excerpt")
        links.append(
            RelatedLink(
                title=title,
                url=url,
                provider=provider,
                provider_domain=domain,
                published=_parse_date(item.get("publishedDateTime")),
                excerpt=clean_text(excerpt) if isinstance(excerpt, str) else "",
                image_url=_first_image(item.get("images")),
            )
        )
    return tuple(links)


def _first_image(raw: Any) -> str | None:
    if not isinstance(raw, list):
        return None
    for image in raw:
        url = _http_url_or_none(image.get("url") if isinstance(image, dict) else None)
        if url is not None:
            return url
    return None


def _number(raw: Any) -> float | None:
    """A finite number as a float; None for anything else (booleans, text, NaN, 10**400)."""
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    try:
        value = float(raw)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def _parse_date(raw: Any) -> datetime | None:
    """A YAML datetime, date or ISO string -> an aware UTC datetime; None when unusable."""
    value = _read_date(raw)
    return None if isinstance(value, str) else value


def _read_date(raw: Any) -> datetime | str:
    """:func:`_parse_date`, but why not when it cannot: "is not a date: ..." or the range."""
    if isinstance(raw, datetime):
        value = raw
    elif isinstance(raw, date):
        value = datetime.combine(raw, time())
    elif isinstance(raw, str) and raw.strip():
        text = raw.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            return f"is not a date: {_short(raw)}"
    else:
        return f"is not a date: {_short(raw)}"
    written = value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # 0001-01-01 with a positive offset lands before year 1
        return _out_of_range(written)
    # Every later computation (local dates, ISO text, timestamps) must stay within range.
    return value if MIN_YEAR <= value.year <= MAX_YEAR else _out_of_range(written)


def _out_of_range(written: datetime) -> str:
    # The date as the file gives it (its own offset), and what would have been accepted.
    shown = _short(written.isoformat())
    return f"is {shown}, outside the accepted years {MIN_YEAR} to {MAX_YEAR}"


# --- small helpers shared with the rest of the bot ------------------------------------------


#: The most topics an article keeps (its own first, then its source's).
MAX_TOPICS = 10


def with_topics(article: Article, extra: Sequence[str]) -> Article:
    """``article`` with ``extra`` topics after its own, without repeats (case aside)."""
    seen = {t.casefold() for t in article.topics}
    topics = list(article.topics)
    for topic in extra:
        if topic.casefold() not in seen and len(topics) < MAX_TOPICS:
            seen.add(topic.casefold())
            topics.append(topic)
    return dataclasses.replace(article, topics=tuple(topics))


def clean_text(text: str, *, keep_newlines: bool = False) -> str:
    """Unescape HTML entities, drop control characters, collapse runs of spaces, strip."""
    text = html.unescape(text)
    if keep_newlines:
        lines = (
            _SPACES.sub(" ", _CONTROL_CHARS.sub("", line)).strip() for line in text.split("\n")
        )
        return "\n".join(lines).strip()
    return _SPACES.sub(" ", _CONTROL_CHARS.sub(" ", text.replace("\n", " "))).strip()


def printable(text: str) -> str:
    """``text`` on one line: control characters, line and paragraph separators and other
    unprintable characters escaped as ``repr()`` writes them (``\\n``, ``\\x1b``, ``\\u2028``).

    For anything that writes a file name (or other outside text) into a report line or a log.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


# What a browser percent-encodes in each part of an http(s) URL (the WHATWG URL standard's
# path, special-query and fragment percent-encode sets), besides every non-ASCII character,
# which it writes as UTF-8 bytes. "#" and "?" do not appear: they end the path and the query.
_PATH_ESCAPES = frozenset(' "<>`{}')
_QUERY_ESCAPES = frozenset(" \"<>'")
_FRAGMENT_ESCAPES = frozenset(' "<>`')
_URL_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Characters a browser refuses in a host name (WHATWG's forbidden domain code points, bar the
# controls, refused already).
_FORBIDDEN_HOST = frozenset(' #%/:<>?@[\\]^|"')


def http_url(value: str) -> str:
    """``value`` as the http(s) URL a browser would request; ValueError(reason) if none would.

    Surrounding spaces are dropped and what a browser would percent-encode is (a space in the
    path is ``%20``, ``é`` is ``%C3%A9``); an international host name becomes punycode. A URL
    that needs none of that is returned exactly as given, so identities never shift. Refused:
    schemes other than http and https (``javascript:``, ``data:``...), no host, a control
    character anywhere, a host a browser would not resolve (a space in it, say), a bad port.
    """
    value = value.strip()
    if _URL_CONTROLS.search(value):
        raise ValueError("a control character")
    try:
        parts = urlsplit(value)
    except ValueError as exc:  # an unbalanced "[" in the host, for one
        raise ValueError(str(exc)) from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"scheme {parts.scheme!r}" if parts.scheme else "no scheme")
    if not parts.netloc:
        raise ValueError("no host")
    netloc = _netloc(parts.netloc)
    path = _escaped(parts.path, _PATH_ESCAPES)
    query = _escaped(parts.query, _QUERY_ESCAPES)
    fragment = _escaped(parts.fragment, _FRAGMENT_ESCAPES)
    if (netloc, path, query, fragment) == (parts.netloc, parts.path, parts.query, parts.fragment):
        return value
    # Rebuilt by hand, not with urlunsplit, which drops an empty "?" or "#" and lower-cases
    # the scheme: only the parts that had to change may differ from what the file says.
    head = value[: len(parts.scheme)]  # the scheme as written
    text = f"{head}://{netloc}{path}"
    before_fragment = value.partition("#")[0]
    if "?" in before_fragment[len(head) + 3 + len(parts.netloc) :]:
        text += f"?{query}"
    if "#" in value:
        text += f"#{fragment}"
    return text


def is_http_url(value: str) -> bool:
    """Whether a browser would open ``value`` as an http(s) URL (see :func:`http_url`)."""
    return _http_url_or_none(value) is not None


def _http_url_or_none(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return http_url(value)
    except ValueError:
        return None


def _netloc(netloc: str) -> str:
    userinfo, at, hostport = netloc.rpartition("@")
    if hostport.startswith("["):  # an IPv6 literal: urlsplit has checked its brackets
        host, _, port = hostport[1:].partition("]")
        host, port = f"[{host}]", port.removeprefix(":")
    else:
        host, _, port = hostport.partition(":")
    if not host:
        raise ValueError("no host")
    if port and not (port.isascii() and port.isdigit() and int(port) <= 65535):
        raise ValueError(f"port {port!r}")
    if not host.startswith("["):
        bad = sorted(_FORBIDDEN_HOST.intersection(host))
        if bad:
            raise ValueError(f"{bad[0]!r} in the host")
        if not host.isascii():
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                raise ValueError("a host name that is not a valid domain name") from None
    userinfo = _escaped(userinfo, _PATH_ESCAPES)
    return f"{userinfo}{at}{host}{':' if port or hostport.endswith(':') else ''}{port}"


def _escaped(part: str, escapes: frozenset[str]) -> str:
    if part.isascii() and escapes.isdisjoint(part):
        return part
    try:
        return "".join(
            ch if ch.isascii() and ch not in escapes else quote(ch, safe="") for ch in part
        )
    except UnicodeEncodeError:  # a lone surrogate has no UTF-8 form
        raise ValueError("a character with no UTF-8 form") from None


def _type_name(value: Any) -> str:
    return {dict: "mapping", list: "list", str: "string", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class IndexDoc:
    """What the index needs of one article (what a reply shows is read from the database)."""

    url: str
    title: str
    excerpt: str
    published: float  # seconds since the epoch
    quality: float | None
    provider: str
    provider_domain: str
    topics: tuple[str, ...]

    @classmethod
    def of(cls, article: Article) -> IndexDoc:
        return cls(
            url=article.url,
            title=article.title,
            excerpt=article.excerpt,
            published=article.published.timestamp(),
            quality=article.quality,
            provider=article.provider,
            provider_domain=article.provider_domain,
            topics=tuple(article.topics),
        )

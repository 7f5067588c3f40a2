"""A loopback feed server for tests: real HTTP on 127.0.0.1, no internet.

Each path is given one behaviour, replaced by the next call for that path::

    async with FeedServer() as server:
        server.set_feed("/feed.xml", rss([{"title": "One", "link": "https://example.org/1"}]))
        server.redirect("/old", "/feed.xml", status=301)
        server.set_status("/busy", 503, headers={"Retry-After": "120"})
        server.trickle("/slow", b"<rss/>", bytes_per_second=1)
        ...
        assert server.requests["/feed.xml"] == 1   # Counters: an unseen path counts 0

``set_feed`` answers like a well-behaved feed host: an ETag derived from the body (so changing
the body changes it) and a Last-Modified, 304 to a request whose If-None-Match matches (or,
without If-None-Match, whose If-Modified-Since equals Last-Modified), gzip when asked for and
the client accepts it. A path nobody set answers 404.

The builders :func:`rss`, :func:`atom` and :func:`json_feed` write feed bodies from entry dicts
with any of the keys ``title``, ``link``, ``id``, ``summary`` (HTML, escaped as the format
wants), ``published`` (an aware datetime), ``categories`` (a list of str) and ``image`` (a URL);
a key that is missing or None is left out of the entry, so broken entries are easy to write.
"""

from __future__ import annotations

import asyncio
import gzip as gzip_module
import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from types import TracebackType
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

DEFAULT_LAST_MODIFIED = "Wed, 21 Oct 2026 07:28:00 GMT"


@dataclass(slots=True)
class _Feed:
    body: bytes
    content_type: str
    etag: str | None
    last_modified: str | None
    gzip: bool
    chunked: bool


@dataclass(slots=True)
class _Status:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class _Redirect:
    location: str
    status: int


@dataclass(slots=True)
class _Trickle:
    body: bytes
    bytes_per_second: float
    content_type: str


class FeedServer:
    """An aiohttp server on 127.0.0.1 (a free port) with per-path behaviours and counters.

    Counters (``collections.Counter``, so ``server.requests["/never"] == 0``):

    * ``requests``: requests received, per path;
    * ``conditional``: requests that carried If-None-Match or If-Modified-Since;
    * ``not_modified``: 304s sent;
    * ``gzipped``: bodies sent gzip-compressed.

    ``user_agents`` lists every request's User-Agent in order; ``headers[path]`` every
    request's headers (a plain dict each) for anything else a test wants to check.
    """

    def __init__(self) -> None:
        self._routes: dict[str, _Feed | _Status | _Redirect | _Trickle] = {}
        self._runner: web.AppRunner | None = None
        self._port = 0
        self.requests: Counter[str] = Counter()
        self.conditional: Counter[str] = Counter()
        self.not_modified: Counter[str] = Counter()
        self.gzipped: Counter[str] = Counter()
        self.user_agents: list[str] = []
        self.headers: dict[str, list[dict[str, str]]] = {}

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a client that gives up stops a trickle at once, and the
        # short shutdown_timeout keeps close() from waiting on one.
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host_port = self._runner.addresses[0]
        self._port = int(host_port[1])

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FeedServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def port(self) -> int:
        return self._port

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` on this server (``path`` starts with "/")."""
        return f"http://127.0.0.1:{self._port}{path}"

    # --- behaviours ---------------------------------------------------------------------------

    def set_feed(
        self,
        path: str,
        body: bytes | str,
        *,
        content_type: str = "application/rss+xml",
        etag: bool = True,
        last_modified: str | None = DEFAULT_LAST_MODIFIED,
        gzip: bool = False,
        chunked: bool = False,
    ) -> None:
        """Serve ``body`` at ``path`` with validators; ``chunked`` sends no Content-Length."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        tag = f'"{hashlib.sha256(data).hexdigest()[:16]}"' if etag else None
        self._routes[path] = _Feed(data, content_type, tag, last_modified, gzip, chunked)

    def set_status(
        self,
        path: str,
        status: int,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | str = b"",
    ) -> None:
        """Answer every request for ``path`` with ``status``, ``headers`` and ``body``."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        self._routes[path] = _Status(status, dict(headers or {}), data)

    def redirect(self, path: str, to_path: str, *, status: int = 301) -> None:
        """Redirect ``path`` to ``to_path``, sent as written: a path is a relative Location
        (the client must resolve it), a full URL is absolute."""
        self._routes[path] = _Redirect(to_path, status)

    def trickle(
        self,
        path: str,
        body: bytes | str,
        bytes_per_second: float = 1,
        *,
        content_type: str = "application/rss+xml",
    ) -> None:
        """Send the headers at once, then ``body`` a byte at a time at this rate."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        self._routes[path] = _Trickle(data, bytes_per_second, content_type)

    def etag(self, path: str) -> str | None:
        """The ETag ``path`` currently sends (None unless it was set with set_feed)."""
        route = self._routes.get(path)
        return route.etag if isinstance(route, _Feed) else None

    # --- the handler --------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.requests[path] += 1
        self.user_agents.append(request.headers.get("User-Agent", ""))
        self.headers.setdefault(path, []).append(dict(request.headers))
        if "If-None-Match" in request.headers or "If-Modified-Since" in request.headers:
            self.conditional[path] += 1
        route = self._routes.get(path)
        if isinstance(route, _Feed):
            return await self._feed(request, path, route)
        if isinstance(route, _Status):
            return web.Response(status=route.status, headers=route.headers, body=route.body)
        if isinstance(route, _Redirect):
            return web.Response(status=route.status, headers={"Location": route.location})
        if isinstance(route, _Trickle):
            return await self._trickle(request, route)
        return web.Response(status=404, text="no such feed")

    async def _feed(self, request: web.Request, path: str, feed: _Feed) -> web.StreamResponse:
        validators = {}
        if feed.etag:
            validators["ETag"] = feed.etag
        if feed.last_modified:
            validators["Last-Modified"] = feed.last_modified
        if _unchanged(request, feed):
            self.not_modified[path] += 1
            return web.Response(status=304, headers=validators)
        body = feed.body
        headers = {"Content-Type": feed.content_type, **validators}
        if feed.gzip and "gzip" in request.headers.get("Accept-Encoding", ""):
            body = gzip_module.compress(body)
            headers["Content-Encoding"] = "gzip"
            self.gzipped[path] += 1
        if not feed.chunked:
            return web.Response(body=body, headers=headers)
        response = web.StreamResponse(headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(body), 64 * 1024):
            await response.write(body[start : start + 64 * 1024])
        await response.write_eof()
        return response

    async def _trickle(self, request: web.Request, trickle: _Trickle) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": trickle.content_type})
        response.content_length = len(trickle.body)
        await response.prepare(request)
        try:
            for index in range(len(trickle.body)):
                await response.write(trickle.body[index : index + 1])
                await asyncio.sleep(1 / trickle.bytes_per_second)
            await response.write_eof()
        except (ConnectionError, RuntimeError):  # the client hung up: what a trickle is for
            pass
        return response


def _unchanged(request: web.Request, feed: _Feed) -> bool:
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:  # RFC 9110: If-None-Match wins over If-Modified-Since
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return feed.etag is not None and ("*" in tags or feed.etag in tags)
    if_modified_since = request.headers.get("If-Modified-Since")
    return if_modified_since is not None and if_modified_since == feed.last_modified


# --- feed bodies ---------------------------------------------------------------------------


def rss(
    entries: Sequence[Mapping[str, Any]],
    *,
    title: str | None = "Test Feed",
    link: str = "https://example.org/",
) -> str:
    """An RSS 2.0 document (with the media namespace, for images)."""
    items = "".join(_rss_item(entry) for entry in entries)
    head = f"<title>{escape(title)}</title>" if title is not None else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/">'
        f"<channel>{head}<link>{escape(link)}</link><description>tests</description>"
        f"{items}</channel></rss>\n"
    )


def _rss_item(entry: Mapping[str, Any]) -> str:
    parts = []
    if entry.get("title") is not None:
        parts.append(f"<title>{escape(entry['title'])}</title>")
    if entry.get("link") is not None:
        parts.append(f"<link>{escape(entry['link'])}</link>")
    if entry.get("id") is not None:
        parts.append(f'<guid isPermaLink="false">{escape(entry["id"])}</guid>')
    if entry.get("summary") is not None:
        parts.append(f"<description>{escape(entry['summary'])}</description>")
    if entry.get("published") is not None:
        parts.append(f"<pubDate>{_rfc822(entry['published'])}</pubDate>")
    parts.extend(f"<category>{escape(c)}</category>" for c in entry.get("categories") or ())
    if entry.get("image") is not None:
        parts.append(f'<media:content url={quoteattr(entry["image"])} medium="image"/>')
    return f"<item>{''.join(parts)}</item>"


def atom(
    entries: Sequence[Mapping[str, Any]],
    *,
    title: str | None = "Test Feed",
    feed_id: str = "urn:test:feed",
) -> str:
    """An Atom 1.0 document; summaries are ``type="html"``, images enclosure links."""
    head = f"<title>{escape(title)}</title>" if title is not None else ""
    items = "".join(_atom_entry(entry) for entry in entries)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<feed xmlns="http://www.w3.org/2005/Atom">{head}<id>{escape(feed_id)}</id>'
        f"<updated>2026-01-01T00:00:00Z</updated>{items}</feed>\n"
    )


def _atom_entry(entry: Mapping[str, Any]) -> str:
    parts = []
    if entry.get("title") is not None:
        parts.append(f"<title>{escape(entry['title'])}</title>")
    if entry.get("link") is not None:
        parts.append(f'<link rel="alternate" href={quoteattr(entry["link"])}/>')
    if entry.get("id") is not None:
        parts.append(f"<id>{escape(entry['id'])}</id>")
    if entry.get("summary") is not None:
        parts.append(f'<summary type="html">{escape(entry["summary"])}</summary>')
    if entry.get("published") is not None:
        parts.append(f"<published>{_iso(entry['published'])}</published>")
    parts.extend(f"<category term={quoteattr(c)}/>" for c in entry.get("categories") or ())
    if entry.get("image") is not None:
        href = quoteattr(entry["image"])
        parts.append(f'<link rel="enclosure" type="image/jpeg" href={href}/>')
    return f"<entry>{''.join(parts)}</entry>"


def json_feed(
    entries: Sequence[Mapping[str, Any]],
    *,
    title: str | None = "Test Feed",
    version: str = "https://jsonfeed.org/version/1.1",
) -> str:
    """A JSON Feed document; summaries go to ``content_html``, images to ``image``."""
    doc: dict[str, Any] = {"version": version, "items": [_json_item(e) for e in entries]}
    if title is not None:
        doc["title"] = title
    return json.dumps(doc)


def _json_item(entry: Mapping[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for key, name in (("id", "id"), ("link", "url"), ("title", "title"), ("image", "image")):
        if entry.get(key) is not None:
            item[name] = entry[key]
    if entry.get("summary") is not None:
        item["content_html"] = entry["summary"]
    if entry.get("published") is not None:
        item["date_published"] = _iso(entry["published"])
    if entry.get("categories"):
        item["tags"] = list(entry["categories"])
    return item


def _rfc822(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")

"""Fetching feeds over HTTP, as a careful feed reader does.

One :func:`fetch` is one poll of one feed. What makes it careful:

* It says who it is (a descriptive User-Agent) and what it wants (an Accept header for feeds),
  and takes gzip and deflate (brotli too when the package is installed).
* It asks only for what changed: the validators from the last answer go out as
  If-None-Match / If-Modified-Since, and a 304 comes back as ``status=304`` with no body. A
  304 without validators keeps the old ones, so the next poll is conditional too.
* It follows redirects itself (at most :attr:`FetchPolicy.max_redirects`, http(s) only, a
  repeated URL is a loop) so that it knows whether every hop was permanent (301/308): then
  :attr:`Fetched.moved_to` says where to poll from now on. One temporary hop (302, 303, 307)
  and the feed keeps its address.
* It bounds everything: the connection (``connect_timeout``), the whole poll including every
  hop and the last byte of the body (``total_timeout``: a server that trickles a byte a second
  cannot hold a poller), and the size of the body after decompression (``max_bytes``, refused
  early when Content-Length already says so; a gzip bomb is refused at the cap too).
* Every failure is one :class:`FetchError` whose ``str()`` is one line naming what failed
  (``HTTP 404 Not Found``, ``timed out after 30 s``, ``cannot resolve host example.invalid``...),
  with ``retry_after`` from a 429/503's Retry-After and ``gone`` for a 410. Nothing else
  escapes but :class:`asyncio.CancelledError`.

Parsing the body is :mod:`bot.feeds`' business.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from importlib import metadata
from urllib.parse import urljoin, urlsplit

import aiohttp

from bot.articles import http_url, printable

log = logging.getLogger(__name__)


def _version() -> str:
    try:
        return metadata.version("newsbot")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "0"


VERSION = _version()
USER_AGENT = f"newsbot/{VERSION} (Discord news bot; feed reader; +https://github.com/newsbot)"
# Feeds first; generic XML and JSON next (many feeds are served as text/xml); then anything,
# since some servers answer 406 to an Accept they cannot meet.
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, application/json;q=0.8, */*;q=0.1"
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    user_agent: str = USER_AGENT
    connect_timeout: float = 10.0  # seconds to open the connection (DNS, TCP, TLS)
    total_timeout: float = 30.0  # seconds for the whole poll: every hop and the whole body
    max_bytes: int = 5 * 1024 * 1024  # of body, after decompression
    max_redirects: int = 5


@dataclass(frozen=True, slots=True)
class Fetched:
    status: int  # 2xx (usually 200), or 304 (not modified: body b"")
    body: bytes
    content_type: str  # the Content-Type header as sent, charset included ('' on 304)
    etag: str | None  # validators to send next time (on 304, the old ones if none came)
    last_modified: str | None
    url: str  # where the body finally came from
    moved_to: str | None  # every redirect hop was permanent (301/308): poll this URL from now on


class FetchError(Exception):
    """A poll that failed; ``str()`` is one printable line naming what failed.

    ``status`` is the HTTP status when there was an answer; ``retry_after`` the seconds a 429 or
    503 asked us to wait (None when it did not say); ``gone`` is True for a 410, after which the
    source should be disabled rather than polled again.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        gone: bool = False,
    ) -> None:
        self.message = printable(" ".join(message.split()))
        self.status = status
        self.retry_after = retry_after
        self.gone = gone
        super().__init__(self.message)


def open_session(policy: FetchPolicy | None = None) -> aiohttp.ClientSession:
    """A session for :func:`fetch`: our User-Agent and Accept, the policy's timeouts, and
    transparent decompression. The caller closes it (``async with open_session(...)``)."""
    policy = policy or FetchPolicy()
    return aiohttp.ClientSession(
        headers={"User-Agent": policy.user_agent, "Accept": ACCEPT},
        timeout=_timeout(policy),
        auto_decompress=True,  # aiohttp asks for gzip and deflate, and br with Brotli installed
        cookie_jar=aiohttp.DummyCookieJar(),  # a feed poll is not a browsing session
        raise_for_status=False,
    )


async def fetch(
    session: aiohttp.ClientSession,
    url: str,
    *,
    etag: str | None,
    last_modified: str | None,
    policy: FetchPolicy | None = None,
    now: datetime | None = None,
) -> Fetched:
    """Poll ``url`` once; :class:`Fetched` on 2xx or 304, else :class:`FetchError`.

    ``now`` turns a Retry-After date into seconds (the clock when not given).
    """
    policy = policy or FetchPolicy()
    try:
        start = http_url(url)
    except ValueError as exc:
        raise FetchError(f"not an http(s) URL ({exc}): {_short(url)}") from None
    try:
        async with asyncio.timeout(policy.total_timeout):
            return await _follow(session, start, etag, last_modified, policy, now)
    except FetchError:
        raise
    except TimeoutError as exc:
        # Ours (asyncio.timeout) or aiohttp's: the same limit, the same words. aiohttp says
        # when it was still connecting (connect_timeout, or the total running out first).
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            raise FetchError(f"timed out connecting to {_host(start)}") from None
        raise FetchError(f"timed out after {policy.total_timeout:g} s") from None
    except aiohttp.ClientError as exc:
        raise FetchError(_client_error(exc)) from None
    except ssl.SSLError as exc:
        raise FetchError(f"TLS error: {exc.reason or exc}") from None
    except OSError as exc:
        raise FetchError(_os_error(exc)) from None
    except Exception as exc:  # a bug here or in aiohttp must not kill the poller
        log.warning("unexpected error fetching %s", printable(url), exc_info=True)
        raise FetchError(f"unexpected error: {type(exc).__name__}: {exc}") from None


async def _follow(
    session: aiohttp.ClientSession,
    url: str,
    etag: str | None,
    last_modified: str | None,
    policy: FetchPolicy,
    now: datetime | None,
) -> Fetched:
    headers = {}
    # Validators are the server's own words, stored and sent back; one that could not be a
    # header value (a newline, non-ASCII) is dropped: the poll is then unconditional.
    if etag and _header_safe(etag):
        headers["If-None-Match"] = etag
    if last_modified and _header_safe(last_modified):
        headers["If-Modified-Since"] = last_modified
    visited = [url]
    permanent = True
    while True:
        async with session.get(
            url,
            headers=headers,
            allow_redirects=False,
            timeout=_timeout(policy),
        ) as response:
            status = response.status
            if status in _REDIRECTS:
                url = _next_hop(response, url, visited, policy)
                permanent = permanent and status in _PERMANENT
                visited.append(url)
                continue
            moved_to = url if permanent and len(visited) > 1 else None
            if status == 304:
                return Fetched(
                    status=304,
                    body=b"",
                    content_type="",
                    etag=response.headers.get("ETag") or etag,
                    last_modified=response.headers.get("Last-Modified") or last_modified,
                    url=url,
                    moved_to=moved_to,
                )
            if not 200 <= status < 300:
                raise _status_error(response, now)
            body = await _read_body(response, policy.max_bytes)
            return Fetched(
                status=status,
                body=body,
                content_type=response.headers.get("Content-Type", ""),
                etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"),
                url=url,
                moved_to=moved_to,
            )


def _next_hop(
    response: aiohttp.ClientResponse, url: str, visited: list[str], policy: FetchPolicy
) -> str:
    status = response.status
    location = response.headers.get("Location", "").strip()
    if not location:
        raise FetchError(f"HTTP {status} redirect without a Location", status=status)
    try:
        target = http_url(urljoin(url, location))
    except ValueError:
        raise FetchError(f"redirect to a URL that is not http(s): {_short(location)}") from None
    # Hop N+1 is refused before it is requested: max_redirects hops are followed, no more.
    if target in visited:
        raise FetchError(f"redirect loop ({_short(target)} again)", status=status)
    if len(visited) > policy.max_redirects:
        raise FetchError(f"too many redirects (more than {policy.max_redirects})", status=status)
    return target


async def _read_body(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    too_big = f"more than {_size(max_bytes)}"
    length = response.content_length
    # Compressed bytes said up front; the decompressed count is checked while reading.
    if length is not None and length > max_bytes:
        response.close()  # do not drain megabytes just to reuse the connection
        raise FetchError(f"{too_big} (Content-Length {length})", status=response.status)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            response.close()
            raise FetchError(too_big, status=response.status)
        chunks.append(chunk)
    return b"".join(chunks)


def _status_error(response: aiohttp.ClientResponse, now: datetime | None) -> FetchError:
    status = response.status
    reason = response.reason or _phrase(status)
    message = f"HTTP {status} {reason}".strip()
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now or _now())
        if retry_after is not None:
            message += f" (retry after {retry_after:g} s)"
    return FetchError(message, status=status, retry_after=retry_after, gone=status == 410)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds from ``now``: delta-seconds or an HTTP-date; None if unusable.

    A date in the past is 0 (retry now); a negative or garbled value is None (the header is
    ignored, the caller's own back-off applies).
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return float(int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": the RFC's "UTC, but we do not know the local zone"
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


# --- one line per failure --------------------------------------------------------------------


def _client_error(exc: aiohttp.ClientError) -> str:
    # Most specific first: DNS and certificate errors are also connector errors.
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve host {exc.host}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"TLS error: certificate: {_ssl_reason(exc.certificate_error)}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS error: {_ssl_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"{_os_error(exc.os_error)} ({exc.host}:{exc.port})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without an answer"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"broken body: {_first_line(exc)}"
    if isinstance(exc, aiohttp.ClientResponseError):
        # aiohttp could not read the answer: bad status line, oversized headers...
        return f"bad HTTP answer: {exc.message or exc.status}"
    if isinstance(exc, aiohttp.InvalidURL):
        return f"invalid URL: {_short(str(exc.url))}"
    if isinstance(exc, aiohttp.ClientOSError):
        return _os_error(exc)
    return f"{type(exc).__name__}: {_first_line(exc)}"


def _os_error(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {_ssl_reason(exc)}"
    return f"network error: {exc.strerror or _first_line(exc) or type(exc).__name__}"


def _ssl_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return exc.verify_message
    reason = getattr(exc, "reason", None)
    return str(reason) if reason else _first_line(exc) or type(exc).__name__


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _size(count: int) -> str:
    for unit, factor in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if count >= factor and count % factor == 0:
            return f"{count // factor} {unit}"
    return f"{count} bytes"


def _timeout(policy: FetchPolicy) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(
        total=policy.total_timeout,
        sock_connect=policy.connect_timeout,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _short(text: str, limit: int = 80) -> str:
    text = printable(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _header_safe(value: str) -> bool:
    return value.isascii() and value.isprintable()


def _host(url: str) -> str:
    return printable(urlsplit(url).hostname or url)


def _now() -> datetime:
    return datetime.now(UTC)

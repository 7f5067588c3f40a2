"""A loopback fake Discord for testing the bot with the real discord.py client.

The fake is an aiohttp server on 127.0.0.1 (a free port) serving the REST API under ``/api/v10``
and the gateway as a websocket under ``/gateway``. discord.py talks to it over real sockets after
``FakeDiscord.patch_discord()`` repoints ``Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY``.
Tests then assert on the JSON the bot sent (``fake.requests``), not on mocks of discord.py.

Payload shapes were read from discord.py 2.7.1 (``http.py``, ``gateway.py``, ``state.py``,
``interactions.py``, ``webhook/async_.py``). The traps that shaped this module:

* discord.py parses a body only when ``Content-Type`` is exactly ``application/json``. aiohttp adds
  ``; charset=utf-8`` whenever a response is built from ``text=`` (``json_response`` included), so
  every response here is built from ``body=`` bytes.
* A 429 is retried only if the response has a ``Via`` header (without one discord.py assumes a
  Cloudflare ban and raises ``HTTPException``), and it sleeps the body's ``retry_after``.
* 500/502/504 are retried after ``1 + 2 * tries`` seconds, so a 500 fault costs a test a second.
* ``Client.before_identify_hook`` sleeps 5 s before every non-initial IDENTIFY (every shard after
  the first, and a re-IDENTIFY after an invalidated session); RESUME does not sleep.
* A persistent ``DynamicItem`` only fires if the clicked message's ``components`` contain a
  component with that ``custom_id`` (``View.from_message``); ``click`` sends one.

Threads and forums (``FakeChannel.thread``/``FakeChannel.forum``; Discord's docs, topics/threads):

* GUILD_CREATE lists threads under ``threads``, not ``channels``, and only active ones the bot
  may see. discord.py keeps no object for the others (``get_channel`` is None; ``fetch_channel``
  works), and drops a thread from its cache when THREAD_UPDATE says it was archived.
* A thread has its parent's permissions; SEND_MESSAGES does not count there,
  SEND_MESSAGES_IN_THREADS does. A post to an archived thread unarchives it (THREAD_UPDATE);
  to a locked one it is refused (50083 if also archived, else 160005) without MANAGE_THREADS.
* ``ForumChannel.create_thread`` is ``POST /channels/{forum}/threads?use_nested_fields=1`` with
  ``{name, auto_archive_duration, rate_limit_per_user: null, type: 11, message: {...}}``; the
  answer must hold ``message``, and the thread's id is its starter message's. discord.py does not
  cache the new thread: THREAD_CREATE (sent here before the answer) does.
* A message keeps the ``allowed_mentions`` it was sent with (not a Discord field), and its
  ``mentions``/``mention_roles``/``mention_everyone`` are worked out as Discord would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import EllipsisType
from typing import Any, TypeVar

import discord
import yarl
from aiohttp import BodyPartReader, WSMsgType, web

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Permission bits (https://discord.com/developers/docs/topics/permissions).
ADMINISTRATOR = 1 << 3
MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
MENTION_EVERYONE = 1 << 17
USE_APPLICATION_COMMANDS = 1 << 31
MANAGE_THREADS = 1 << 34
CREATE_PUBLIC_THREADS = 1 << 35
CREATE_PRIVATE_THREADS = 1 << 36
SEND_MESSAGES_IN_THREADS = 1 << 38
ALL_PERMISSIONS = discord.Permissions.all().value
#: What an ordinary member has: can read, talk (in threads too) and use commands, cannot manage
#: the guild. Like Discord's default @everyone, it may start threads but not ping @everyone.
PLAIN_MEMBER = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | SEND_MESSAGES_IN_THREADS
    | CREATE_PUBLIC_THREADS
    | CREATE_PRIVATE_THREADS
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | ADD_REACTIONS
    | USE_APPLICATION_COMMANDS
)
MODERATOR = PLAIN_MEMBER | MANAGE_GUILD | MANAGE_MESSAGES
DEFAULT_BOT_PERMISSIONS = PLAIN_MEMBER

DISCORD_EPOCH_MS = 1_420_070_400_000
EPHEMERAL = 1 << 6
LOADING = 1 << 7  # the "Bot is thinking..." placeholder of a deferred response
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024

# Callback types: 4 message, 5 deferred message, 6 deferred update, 7 update, 8 autocomplete.
_MESSAGE_CALLBACKS = (4, 5)

# Channel types (https://discord.com/developers/docs/resources/channel#channel-object-channel-types).
GUILD_TEXT = 0
GUILD_VOICE = 2
GUILD_CATEGORY = 4
GUILD_ANNOUNCEMENT = 5
ANNOUNCEMENT_THREAD = 10
PUBLIC_THREAD = 11
PRIVATE_THREAD = 12
GUILD_FORUM = 15
GUILD_MEDIA = 16
THREAD_TYPES = frozenset({ANNOUNCEMENT_THREAD, PUBLIC_THREAD, PRIVATE_THREAD})
FORUM_TYPES = frozenset({GUILD_FORUM, GUILD_MEDIA})
#: Channel flag of a forum whose posts need a tag; thread flag of a post pinned in its forum.
REQUIRE_TAG = 1 << 4
PINNED = 1 << 1
ARCHIVE_DURATIONS = (60, 1440, 4320, 10080)  # minutes, what auto_archive_duration accepts
HAS_THREAD = 1 << 5  # message flag: a thread was started from this message
MAX_CONTENT = 2000


@dataclass
class FakeUser:
    id: int
    username: str
    global_name: str | None = None
    bot: bool = False

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
        }


@dataclass
class FakeChannel:
    """A guild channel, or a thread (type 10/11/12, ``parent_id`` its text or forum channel).

    Threads live in ``FakeGuild.channels`` too; the GUILD_CREATE payload lists the active ones
    the bot may see under ``threads``, as Discord does. ``FakeChannel.thread(...)`` and
    ``FakeChannel.forum(...)`` build the usual cases.
    """

    id: int
    name: str
    #: 0 text, 2 voice, 4 category, 5 announcement, 10/11/12 announcement/public/private
    #: thread, 15 forum, 16 media.
    type: int = GUILD_TEXT
    position: int = 0
    topic: str | None = None
    #: The category of a channel; the text, announcement or forum channel of a thread.
    parent_id: int | None = None
    #: Raw Discord overwrites: {"id": role/user id, "type": 0 role | 1 member, "allow", "deny"}.
    #: A thread has none: Discord computes its permissions on the parent channel.
    permission_overwrites: list[dict[str, Any]] = field(default_factory=list)
    #: Channel flags; REQUIRE_TAG on a forum, PINNED on a forum post.
    flags: int = 0
    #: A thread's auto_archive_duration; a text or forum channel's default for new threads.
    auto_archive_duration: int = 1440
    # -- threads only --
    archived: bool = False
    locked: bool = False
    #: Who started the thread; None: DEFAULT_USER (a thread the bot starts has the bot's id).
    owner_id: int | None = None
    #: Whether the bot is a member of the thread (a private thread needs it, or MANAGE_THREADS).
    bot_joined: bool = True
    #: ISO time of the last archive state change; None: the thread's creation (from its id).
    archive_timestamp: str | None = None
    #: Forum tag ids applied to a forum post.
    applied_tags: list[int] = field(default_factory=list)
    # -- forums only --
    #: Raw forum tags: {"id", "name"} and optionally "moderated", "emoji_id", "emoji_name".
    available_tags: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def thread(
        cls, id: int, name: str, parent_id: int, *, private: bool = False, **kwargs: Any
    ) -> FakeChannel:
        """A public (or private) thread of the text or forum channel ``parent_id``."""
        kind = PRIVATE_THREAD if private else PUBLIC_THREAD
        return cls(id, name, type=kind, parent_id=parent_id, **kwargs)

    @classmethod
    def forum(cls, id: int, name: str, **kwargs: Any) -> FakeChannel:
        return cls(id, name, type=GUILD_FORUM, **kwargs)

    @property
    def is_thread(self) -> bool:
        return self.type in THREAD_TYPES


@dataclass
class FakeRole:
    id: int
    name: str
    permissions: int = PLAIN_MEMBER
    position: int = 0
    #: "Allow anyone to @mention this role"; else only a bot with MENTION_EVERYONE pings it.
    mentionable: bool = False


@dataclass
class FakeGuild:
    id: int
    name: str
    channels: list[FakeChannel] = field(default_factory=list)
    #: An @everyone role (id == guild id, PLAIN_MEMBER) is added if missing.
    roles: list[FakeRole] = field(default_factory=list)
    #: The permissions of the bot's managed role, on top of @everyone's.
    bot_permissions: int = DEFAULT_BOT_PERMISSIONS

    def __post_init__(self) -> None:
        if not any(role.id == self.id for role in self.roles):
            self.roles.insert(0, FakeRole(self.id, "@everyone", PLAIN_MEMBER, 0))

    def channel(self, channel_id: int) -> FakeChannel | None:
        return next((c for c in self.channels if c.id == channel_id), None)


DEFAULT_USER = FakeUser(id=200_000_000_000_000_001, username="tester")


@dataclass
class RecordedFile:
    name: str  # the form field, e.g. "files[0]"
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class RecordedRequest:
    index: int
    method: str
    path: str  # without the /api/v10 prefix
    query: dict[str, str]
    json: Any  # parsed body; for multipart the payload_json part; None without a body
    headers: dict[str, str]
    files: list[RecordedFile] = field(default_factory=list)
    status: int = 0
    response: Any = None
    handled: bool = True  # False when no route matched (served as a 404)
    at: float = 0.0  # time.monotonic() when it arrived, e.g. to check a rate-limit wait


@dataclass
class RecordedDispatch:
    session_id: str
    shard: tuple[int, int] | None
    seq: int
    event: str
    data: dict[str, Any]


@dataclass
class _Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    body: Any
    headers: dict[str, str]
    times: int
    process: bool


@dataclass
class Hold:
    """A request whose answer is held back; see :meth:`FakeDiscord.hold_next`."""

    method: str
    pattern: re.Pattern[str]
    path: str | None = None  # the request held, once it came
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Session:
    session_id: str
    shard: tuple[int, int] | None
    ws: web.WebSocketResponse | None = None
    connected: bool = False  # READY or RESUMED sent on the attached socket
    seq: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)  # every dispatch, for RESUME replay
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class _Interaction:
    id: str
    token: str
    type: int
    guild_id: int | None
    channel_id: int
    created: float
    message: dict[str, Any] | None = None  # the clicked message of a component interaction
    response_type: int | None = None
    original: dict[str, Any] | None = None
    followups: list[dict[str, Any]] = field(default_factory=list)


_Reply = tuple[int, Any]


def _error(status: int, code: int, message: str) -> _Reply:
    return status, {"code": code, "message": message}


def _form_error(path: str, code: str, message: str) -> _Reply:
    """Discord's 50035 Invalid Form Body, the error nested under ``path`` ("message.content")."""
    errors: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(path.split(".")):
        errors = {key: errors}
    return 400, {"code": 50035, "errors": errors, "message": "Invalid Form Body"}


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _snowflake_iso(snowflake: int) -> str:
    return datetime.fromtimestamp(((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000, UTC).isoformat()


class FakeDiscord:
    """A fake Discord for one bot application; see the module docstring."""

    def __init__(
        self,
        *,
        guilds: list[FakeGuild] | None = None,
        application_id: int = 100_000_000_000_000_001,
        bot_user_id: int = 100_000_000_000_000_002,
        token: str = "fake-token",
        shard_count: int = 1,
        heartbeat_interval_ms: int = 41_250,
        interaction_timeout: float | None = None,
    ) -> None:
        self.guilds: list[FakeGuild] = list(guilds or [])
        self.application_id = application_id
        self.bot_user = FakeUser(bot_user_id, "FakeBot", bot=True)
        self.token = token
        self.shard_count = shard_count  # what GET /gateway/bot recommends
        self.heartbeat_interval_ms = heartbeat_interval_ms
        #: Seconds after which a callback gets 10062 Unknown interaction (Discord: 3); None: never.
        self.interaction_timeout = interaction_timeout
        #: How long a create with the same nonce returns the first message (Discord: minutes).
        self.nonce_window = 300.0

        self.requests: list[RecordedRequest] = []
        self.dispatches: list[RecordedDispatch] = []
        self.gateway_received: list[dict[str, Any]] = []  # every frame the bot sent
        self.gateway_connections: list[str] = []  # path and query of every websocket
        self.errors: list[BaseException] = []  # bugs in the fake itself, answered with a 400
        self.identify_count = 0
        self.resume_count = 0

        self._last_id = 0
        self._bot_role_ids: dict[int, int] = {}  # the bot's managed role in each guild
        self._faults: list[_Fault] = []
        self._holds: list[Hold] = []  # waiting for their request
        self._every_hold: list[Hold] = []  # released when the fake stops
        self._commands: dict[int | None, list[dict[str, Any]]] = {}
        self._messages: dict[int, dict[str, Any]] = {}  # every message, by id
        self._posts: dict[int, list[dict[str, Any]]] = {}  # POST /channels/{id}/messages
        self._nonces: dict[tuple[int, str], tuple[float, dict[str, Any]]] = {}
        self._dm_channels: dict[int, dict[str, Any]] = {}  # by recipient id
        self._threads_started: dict[int, list[int]] = {}  # thread ids, by parent channel
        self._thread_sent: dict[int, int] = {}  # total_message_sent of each thread
        #: Gateway events a REST handler caused, sent before its answer (guild id, event, data).
        self._pending_dispatches: list[tuple[int | None, str, dict[str, Any]]] = []
        self._interactions: dict[str, _Interaction] = {}
        self._sessions: dict[str, _Session] = {}
        self._current: dict[int, _Session] = {}  # the live session of each shard (0 unsharded)
        self._sockets: set[web.WebSocketResponse] = set()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., _Reply]]] = [
            (m, re.compile(p), h)
            for m, p, h in [
                ("GET", r"/users/@me", self._get_me),
                ("GET", r"/oauth2/applications/@me", self._get_application),
                ("GET", r"/gateway", self._get_gateway),
                ("GET", r"/gateway/bot", self._get_gateway),
                ("GET", r"/applications/(\d+)(?:/guilds/(\d+))?/commands", self._get_commands),
                ("PUT", r"/applications/(\d+)(?:/guilds/(\d+))?/commands", self._put_commands),
                ("POST", r"/interactions/(\d+)/([^/]+)/callback", self._callback),
                ("POST", r"/webhooks/(\d+)/([^/]+)", self._webhook_create),
                ("GET", r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)", self._webhook_get),
                ("PATCH", r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)", self._webhook_edit),
                ("DELETE", r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)", self._webhook_del),
                ("POST", r"/users/@me/channels", self._create_dm),
                ("GET", r"/channels/(\d+)", self._get_channel),
                ("PATCH", r"/channels/(\d+)", self._edit_channel),
                ("POST", r"/channels/(\d+)/threads", self._start_thread),
                ("POST", r"/channels/(\d+)/messages/(\d+)/threads", self._start_thread_on),
                ("PUT", r"/channels/(\d+)/thread-members/@me", self._join_thread),
                ("POST", r"/channels/(\d+)/messages", self._create_message),
                ("GET", r"/channels/(\d+)/messages", self._list_messages),
                ("GET", r"/channels/(\d+)/messages/(\d+)", self._get_message),
                ("PATCH", r"/channels/(\d+)/messages/(\d+)", self._edit_message),
                ("DELETE", r"/channels/(\d+)/messages/(\d+)", self._delete_message),
            ]
        ]

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/gateway/{tail:.*}", self._gateway)
        app.router.add_route("*", "/{tail:.*}", self._rest)
        # Short shutdown timeout: a stuck handler must not hang a test's teardown for a minute.
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        # Bind the socket ourselves: port 0 picks a free port, and we can read it back publicly.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        for hold in self._every_hold:
            hold.release.set()
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def http_base(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeDiscord is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_base(self) -> str:
        return f"{self.http_base}/api/v10"

    @property
    def gateway_url(self) -> str:
        return self.http_base.replace("http://", "ws://", 1) + "/gateway"

    @contextlib.contextmanager
    def patch_discord(self) -> Iterator[FakeDiscord]:
        """Point discord.py (process-wide) at this fake; restores the old values on exit."""
        route, ws_cls = discord.http.Route, discord.gateway.DiscordWebSocket
        old_base, old_gateway = route.BASE, ws_cls.DEFAULT_GATEWAY
        route.BASE = self.api_base
        ws_cls.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield self
        finally:
            route.BASE, ws_cls.DEFAULT_GATEWAY = old_base, old_gateway

    # -- waiting ---------------------------------------------------------------------------

    def _notify(self) -> None:
        # Wake every waiter by setting the current event and starting a new generation.
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_until(self, check: Callable[[], _T | None], timeout: float, what: str) -> _T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = self._changed  # take it before checking, so no change is missed
            result = check()
            if result is not None:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                seen = [(r.method, r.path, r.status) for r in self.requests[-15:]]
                raise TimeoutError(
                    f"fakediscord: timed out waiting for {what}; last requests {seen}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    async def wait_for_request(
        self, predicate: Callable[[RecordedRequest], bool], timeout: float = 5.0, *, after: int = 0
    ) -> RecordedRequest:
        """The first request in ``requests[after:]`` matching ``predicate``, waiting for it."""

        def check() -> RecordedRequest | None:
            return next((r for r in self.requests[after:] if predicate(r)), None)

        return await self._wait_until(check, timeout, "a matching request")

    async def wait_for_callback(self, interaction_id: str, timeout: float = 5.0) -> RecordedRequest:
        itx = self._interactions[interaction_id]
        path = f"/interactions/{itx.id}/{itx.token}/callback"
        return await self.wait_for_request(lambda r: r.method == "POST" and r.path == path, timeout)

    async def wait_until_connected(self, timeout: float = 10.0) -> None:
        """Until every shard has a session whose READY (+ GUILD_CREATEs) or RESUMED was sent."""

        def check() -> bool | None:
            if not self._current:
                return None
            shards = next(iter(self._current.values())).shard
            count = shards[1] if shards else 1
            ok = all(i in self._current and self._current[i].connected for i in range(count))
            return True if ok else None

        await self._wait_until(check, timeout, "the bot to connect to the gateway")

    # -- faults ----------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        body: dict[str, Any] | None = None,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        process: bool = False,
    ) -> None:
        """Answer the next ``times`` requests whose path fully matches ``path_regex`` with an error.

        ``method`` may be ``"*"``. With ``process=True`` the request still takes effect and only
        its answer is lost, like a timeout after Discord committed it (what a nonce protects).
        A 429 gets Discord's body and rate-limit headers (and ``Via``) unless given.
        """
        out_headers: dict[str, str] = {}
        if status == 429:
            body = dict(body or {"message": "You are being rate limited.", "retry_after": 0.05})
            body.setdefault("global", False)
            retry_after = float(body.get("retry_after", 0.05))
            out_headers = {
                "Retry-After": str(math.ceil(retry_after)),
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
                "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                "X-RateLimit-Bucket": "fakediscord-bucket",
                "X-RateLimit-Scope": "global" if body["global"] else "user",
                # discord.py raises instead of retrying a 429 without Via (a Cloudflare ban).
                "Via": "1.1 google",
            }
            if body["global"]:
                out_headers["X-RateLimit-Global"] = "true"
        elif body is None:
            body = {"code": 0, "message": f"{status}: fakediscord fault"}
        out_headers.update(headers or {})
        self._faults.append(
            _Fault(
                method.upper(), re.compile(path_regex), status, body, out_headers, times, process
            )
        )

    def hold_next(self, method: str, path_regex: str) -> Hold:
        """Carry out the next matching request, then keep its answer until ``release`` is set.

        ``reached`` is set once the request has taken effect: a test can kill the client there,
        between Discord committing a post and the client hearing of it.
        """
        hold = Hold(method.upper(), re.compile(path_regex))
        self._holds.append(hold)
        self._every_hold.append(hold)
        return hold

    def _take_hold(self, method: str, path: str) -> Hold | None:
        for hold in self._holds:
            if hold.method in ("*", method) and hold.pattern.fullmatch(path):
                self._holds.remove(hold)
                return hold
        return None

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.method in ("*", method) and fault.pattern.fullmatch(path):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    # -- REST plumbing ---------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith("/api/v10/"):
            path = path[len("/api/v10") :]
        body: Any = None
        files: list[RecordedFile] = []
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader):
                    continue
                if part.name == "payload_json":
                    body = json.loads(await part.text())
                else:
                    data = bytes(await part.read(decode=False))
                    ctype = part.headers.get("Content-Type")
                    files.append(RecordedFile(part.name or "", part.filename, ctype, data))
        elif request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
        rec = RecordedRequest(
            index=len(self.requests),
            method=request.method,
            path=path,
            query=dict(request.query),
            json=body,
            headers=dict(request.headers),
            files=files,
            at=time.monotonic(),
        )
        status, payload, headers = self._handle(rec)
        rec.status, rec.response = status, payload
        self.requests.append(rec)
        # Events the request caused (THREAD_CREATE...) go out before its answer, as Discord's
        # usually do; a client must not rely on the order, so tests still wait for them.
        pending, self._pending_dispatches = self._pending_dispatches, []
        for guild_id, event, data in pending:
            with contextlib.suppress(RuntimeError):  # no gateway session: nobody to tell
                await self.dispatch(event, data, guild_id=guild_id)
        self._notify()
        hold = self._take_hold(rec.method, rec.path)
        if hold is not None:
            # Done on Discord's side; the answer waits (a client killed meanwhile never gets it).
            hold.path = rec.path
            hold.reached.set()
            await hold.release.wait()
        if payload is None:
            return web.Response(status=status, headers=headers)
        # body=, not text=: aiohttp appends "; charset=utf-8" to text responses (see the TRAP).
        return web.Response(
            status=status,
            body=json.dumps(payload).encode(),
            content_type="application/json",
            headers=headers,
        )

    def _handle(self, rec: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        fault = self._take_fault(rec.method, rec.path)
        if fault is not None and not fault.process:
            return fault.status, fault.body, fault.headers
        try:
            status, payload = self._route(rec)
        except Exception as exc:  # a bug in the fake: 400 so discord.py raises at once, no retries
            log.exception("fakediscord failed on %s %s", rec.method, rec.path)
            self.errors.append(exc)
            status, payload = _error(400, 0, f"fakediscord internal error: {exc!r}")
        if fault is not None:
            return fault.status, fault.body, fault.headers
        return status, payload, {}

    def _route(self, rec: RecordedRequest) -> _Reply:
        path_matched = False
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(rec.path)
            if match is None:
                continue
            path_matched = True
            if method != rec.method:
                continue
            token_route = rec.path.startswith(("/webhooks/", "/interactions/"))
            auth = next((v for k, v in rec.headers.items() if k.lower() == "authorization"), "")
            if not token_route and auth != f"Bot {self.token}":
                return _error(401, 0, "401: Unauthorized")
            return handler(rec, *match.groups())
        rec.handled = False
        if path_matched:
            return _error(405, 0, "405: Method Not Allowed")
        return _error(404, 0, "404: Not Found")

    # -- ids and payload builders ----------------------------------------------------------

    def _next_id(self) -> int:
        # Real-looking snowflakes (created_at works) that always increase.
        now = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last_id = max(self._last_id + 1, now)
        return self._last_id

    def _guild(self, guild_id: int | None) -> FakeGuild | None:
        return next((g for g in self.guilds if g.id == guild_id), None)

    def _find_channel(self, channel_id: int) -> tuple[FakeGuild | None, FakeChannel | None]:
        for guild in self.guilds:
            channel = guild.channel(channel_id)
            if channel is not None:
                return guild, channel
        return None, None

    def _channel_payload(self, guild: FakeGuild, channel: FakeChannel) -> dict[str, Any]:
        if channel.is_thread:
            return self._thread_payload(guild, channel)
        data: dict[str, Any] = {
            "id": str(channel.id),
            "type": channel.type,
            "guild_id": str(guild.id),
            "name": channel.name,
            "position": channel.position,
            "parent_id": str(channel.parent_id) if channel.parent_id else None,
            "topic": channel.topic,
            "nsfw": False,
            "rate_limit_per_user": 0,
            "last_message_id": None,
            "flags": 0,
            "permission_overwrites": [
                {k: str(v) if k in ("id", "allow", "deny") else v for k, v in ow.items()}
                for ow in channel.permission_overwrites
            ],
        }
        if channel.type in (2, 13):  # voice and stage channels require these keys
            data.update(bitrate=64000, user_limit=0, rtc_region=None)
        if channel.type in (GUILD_TEXT, GUILD_ANNOUNCEMENT, *FORUM_TYPES):
            data["default_auto_archive_duration"] = channel.auto_archive_duration
            data["default_thread_rate_limit_per_user"] = 0
        if channel.type in FORUM_TYPES:  # what discord.py's ForumChannel reads
            data |= {
                "available_tags": [
                    {"moderated": False, "emoji_id": None, "emoji_name": None}
                    | tag
                    | {"id": str(tag["id"])}
                    for tag in channel.available_tags
                ],
                "default_reaction_emoji": None,
                "default_sort_order": None,
                "default_forum_layout": 0,
                "flags": channel.flags,
            }
        return data

    def _thread_payload(
        self, guild: FakeGuild, thread: FakeChannel, *, with_member: bool = True
    ) -> dict[str, Any]:
        """A thread channel object; ``member`` (the bot's thread member) if it joined."""
        in_thread = [
            m
            for m in self._messages.values()
            if m["channel_id"] == str(thread.id) and not int(m.get("flags") or 0) & EPHEMERAL
        ]
        # message_count leaves out a forum post's starter message (its id is the thread's).
        counted = [m for m in in_thread if m["id"] != str(thread.id)]
        metadata: dict[str, Any] = {
            "archived": thread.archived,
            "auto_archive_duration": thread.auto_archive_duration,
            "archive_timestamp": thread.archive_timestamp or _snowflake_iso(thread.id),
            "locked": thread.locked,
            "create_timestamp": _snowflake_iso(thread.id),
        }
        if thread.type == PRIVATE_THREAD:
            metadata["invitable"] = True
        data: dict[str, Any] = {
            "id": str(thread.id),
            "type": thread.type,
            "guild_id": str(guild.id),
            "name": thread.name,
            "parent_id": str(thread.parent_id) if thread.parent_id else None,
            "owner_id": str(thread.owner_id or DEFAULT_USER.id),
            "last_message_id": max((m["id"] for m in in_thread), key=int, default=None),
            "rate_limit_per_user": 0,
            "flags": thread.flags,
            "message_count": len(counted),
            "member_count": 1 if thread.bot_joined else 0,
            "total_message_sent": self._thread_sent.get(thread.id, len(counted)),
            "thread_metadata": metadata,
        }
        if thread.applied_tags or self._parent_type(guild, thread) in FORUM_TYPES:
            data["applied_tags"] = [str(t) for t in thread.applied_tags]
        if thread.bot_joined and with_member:
            data["member"] = {
                "id": str(thread.id),
                "user_id": str(self.bot_user.id),
                "join_timestamp": _snowflake_iso(thread.id),
                "flags": 0,
            }
        return data

    @staticmethod
    def _parent_type(guild: FakeGuild, thread: FakeChannel) -> int | None:
        parent = guild.channel(thread.parent_id) if thread.parent_id else None
        return parent.type if parent else None

    def _bot_sees_thread(self, thread: FakeChannel) -> bool:
        """Discord shows a thread to whoever views its parent; a private one to members only."""
        perms = self._bot_permissions(thread.id)
        if not perms & VIEW_CHANNEL:
            return False
        return thread.type != PRIVATE_THREAD or thread.bot_joined or bool(perms & MANAGE_THREADS)

    def _bot_role_id(self, guild: FakeGuild) -> int:
        if guild.id not in self._bot_role_ids:
            self._bot_role_ids[guild.id] = self._next_id()
        return self._bot_role_ids[guild.id]

    def _bot_member(self, guild: FakeGuild) -> dict[str, Any]:
        return {
            "user": self.bot_user.payload(),
            "roles": [str(self._bot_role_id(guild))],
            "joined_at": _now_iso(),
            "flags": 0,
            "deaf": False,
            "mute": False,
        }

    def guild_payload(self, guild: FakeGuild) -> dict[str, Any]:
        """A full GUILD_CREATE payload (e.g. ``dispatch("GUILD_CREATE", ...)`` for a new guild)."""
        # The bot has a managed role carrying FakeGuild.bot_permissions, as an invited bot does.
        bot_role = FakeRole(self._bot_role_id(guild), self.bot_user.username)
        bot_role.permissions, bot_role.position = guild.bot_permissions, 1
        roles = [
            {"id": str(r.id), "name": r.name, "permissions": str(r.permissions)}
            | {"position": r.position, "color": 0, "hoist": False, "mentionable": r.mentionable}
            | {"managed": r is bot_role, "flags": 0}
            for r in [*guild.roles, bot_role]
        ]
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "owner_id": None,
            "unavailable": False,
            "large": False,
            "member_count": 1,
            "joined_at": _now_iso(),
            "features": [],
            "preferred_locale": "en-US",
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "system_channel_id": None,
            "roles": roles,
            "channels": [
                {k: v for k, v in self._channel_payload(guild, c).items() if k != "guild_id"}
                for c in guild.channels
                if not c.is_thread
            ],
            "members": [self._bot_member(guild)],
            # Only active threads the bot can see; a thread member here has no id nor user_id.
            "threads": [
                self._guild_create_thread(guild, c)
                for c in guild.channels
                if c.is_thread and not c.archived and self._bot_sees_thread(c)
            ],
            "voice_states": [],
            "presences": [],
            "emojis": [],
            "stickers": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def _guild_create_thread(self, guild: FakeGuild, thread: FakeChannel) -> dict[str, Any]:
        data = self._thread_payload(guild, thread)
        if "member" in data:
            data["member"] = {k: data["member"][k] for k in ("join_timestamp", "flags")}
        return data

    def _bot_permissions(self, channel_id: int) -> int:
        """The bot's permissions in a channel, by Discord's algorithm (roles, then overwrites).

        A thread has its parent channel's permissions.
        """
        guild, channel = self._find_channel(channel_id)
        if guild is not None and channel is not None and channel.is_thread:
            channel = guild.channel(channel.parent_id) if channel.parent_id else None
        if guild is None or channel is None:
            return ALL_PERMISSIONS
        everyone = next(r for r in guild.roles if r.id == guild.id)
        perms = everyone.permissions | guild.bot_permissions
        if perms & ADMINISTRATOR:
            return ALL_PERMISSIONS
        bot_ids = {str(guild.id)}, {str(self._bot_role_id(guild))}, {str(self.bot_user.id)}
        for ids in bot_ids:  # @everyone, then the bot's roles, then the bot member
            allow = deny = 0
            for ow in channel.permission_overwrites:
                if str(ow["id"]) in ids:
                    allow, deny = allow | int(ow.get("allow", 0)), deny | int(ow.get("deny", 0))
            perms = (perms & ~deny) | allow
        return perms

    def _dm_channel(self, user: FakeUser) -> dict[str, Any]:
        if user.id not in self._dm_channels:
            self._dm_channels[user.id] = {
                "id": str(self._next_id()),
                "type": 1,
                "recipients": [user.payload()],
                "last_message_id": None,
                "flags": 0,
            }
        return self._dm_channels[user.id]

    def _attachments(self, channel_id: int, body: dict[str, Any], files: list[RecordedFile]) -> Any:
        by_field = {f.name: f for f in files}
        out = []
        for index, meta in enumerate(body.get("attachments") or [{} for _ in files]):
            upload = by_field.get(f"files[{meta.get('id', index)}]")
            if upload is None:  # an existing attachment kept by an edit
                known = [a for m in self._messages.values() for a in m.get("attachments", [])]
                out += [a for a in known if a["id"] == str(meta.get("id"))]
                continue
            attachment_id = self._next_id()
            filename = meta.get("filename") or upload.filename or "file"
            url = f"{self.http_base}/attachments/{channel_id}/{attachment_id}/{filename}"
            out.append(
                {"id": str(attachment_id), "filename": filename, "size": len(upload.data)}
                | {"url": url, "proxy_url": url, "content_type": upload.content_type}
            )
        return out

    def _new_message(
        self, channel_id: int, body: dict[str, Any], files: list[RecordedFile], **extra: Any
    ) -> dict[str, Any]:
        message = {
            "id": str(self._next_id()),
            "channel_id": str(channel_id),
            "author": self.bot_user.payload(),
            "content": body.get("content") or "",
            "embeds": body.get("embeds") or [],
            "components": body.get("components") or [],
            "attachments": self._attachments(channel_id, body, files),
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "type": 0,
            "tts": bool(body.get("tts", False)),
            "pinned": False,
            "flags": int(body.get("flags") or 0),
        }
        # Not in Discord's message object: kept as sent, so tests can assert who may be pinged.
        for key in ("nonce", "message_reference", "poll", "allowed_mentions"):
            if body.get(key) is not None:
                message[key] = body[key]
        message.update(self._mentions(channel_id, message))
        message.update(extra)
        self._messages[int(message["id"])] = message
        return message

    def _mentions(self, channel_id: int, message: dict[str, Any]) -> dict[str, Any]:
        """Who a message pings, as Discord works it out from its content and allowed_mentions.

        Without ``allowed_mentions`` everything in the content may ping. A role pings if it
        is mentionable or the bot has MENTION_EVERYONE; @everyone/@here needs that permission.
        """
        content = message.get("content") or ""
        allowed = message.get("allowed_mentions")
        if allowed is None:
            parse, users, roles = {"users", "roles", "everyone"}, set(), set()
        else:
            parse = set(allowed.get("parse") or [])
            users = {str(u) for u in allowed.get("users") or []}
            roles = {str(r) for r in allowed.get("roles") or []}
        guild, _ = self._find_channel(channel_id)
        everyone = bool(guild and self._bot_permissions(channel_id) & MENTION_EVERYONE)
        known = {u.id: u for u in (self.bot_user, DEFAULT_USER)}
        mentions = []
        for uid in dict.fromkeys(re.findall(r"<@!?(\d+)>", content)):
            if "users" in parse or uid in users:
                user = known.get(int(uid)) or FakeUser(int(uid), f"user{uid}")
                mentions.append(user.payload())
        mention_roles = []
        for rid in dict.fromkeys(re.findall(r"<@&(\d+)>", content)):
            role = next((r for r in guild.roles if r.id == int(rid)), None) if guild else None
            if role is None or not ("roles" in parse or rid in roles):
                continue
            if role.mentionable or everyone:
                mention_roles.append(rid)
        pings_all = (
            "everyone" in parse and everyone and bool(re.search(r"@(everyone|here)", content))
        )
        return {"mentions": mentions, "mention_roles": mention_roles, "mention_everyone": pings_all}

    def _edit(
        self, message: dict[str, Any], body: dict[str, Any], files: list[RecordedFile]
    ) -> Any:
        for key in ("content", "embeds", "components", "flags", "poll", "allowed_mentions"):
            if key in body:
                message[key] = body[key] if body[key] is not None else message.get(key)
        if "content" in body or "allowed_mentions" in body:
            message.update(self._mentions(int(message["channel_id"]), message))
        if "attachments" in body or files:
            message["attachments"] = self._attachments(int(message["channel_id"]), body, files)
        message["flags"] = int(message.get("flags") or 0) & ~LOADING
        message["edited_timestamp"] = _now_iso()
        return message

    # -- REST: login, gateway, commands ----------------------------------------------------

    def _get_me(self, rec: RecordedRequest) -> _Reply:
        return 200, self.bot_user.payload() | {"verified": True, "mfa_enabled": False, "flags": 0}

    def _get_application(self, rec: RecordedRequest) -> _Reply:
        owner = FakeUser(self.application_id + 7, "owner").payload()
        return 200, {
            "id": str(self.application_id),
            "name": self.bot_user.username,
            "description": "",
            "icon": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": owner,
            "verify_key": "0" * 64,
            "flags": 0,
            "team": None,
            "summary": "",
            "bot": self.bot_user.payload(),
        }

    def _get_gateway(self, rec: RecordedRequest) -> _Reply:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        reply = {"url": self.gateway_url}
        if rec.path.endswith("/bot"):
            reply |= {"shards": self.shard_count, "session_start_limit": limit}
        return 200, reply

    def commands(self, guild_id: int | None = None) -> list[dict[str, Any]]:
        """The synced commands of a guild (None: global), as Discord echoed them."""
        return list(self._commands.get(guild_id, []))

    def _get_commands(self, rec: RecordedRequest, app: str, guild: str | None) -> _Reply:
        if int(app) != self.application_id:
            return _error(404, 10002, "Unknown Application")
        return 200, self.commands(int(guild) if guild else None)

    def _put_commands(self, rec: RecordedRequest, app: str, guild: str | None) -> _Reply:
        if int(app) != self.application_id:
            return _error(404, 10002, "Unknown Application")
        scope = int(guild) if guild else None
        old = {(c["name"], c.get("type", 1)): c["id"] for c in self._commands.get(scope, [])}
        echoed = []
        for cmd in rec.json or []:
            kind = cmd.get("type", 1)
            out = {
                "type": kind,
                "description": "",
                "default_member_permissions": None,
                "name_localizations": None,
                "description_localizations": None,
                "nsfw": False,
                "integration_types": [0],
                "contexts": None,
            }
            if scope is None:
                out["dm_permission"] = True
            out |= cmd
            # Like Discord, a command keeps its id across syncs; the version changes.
            out["id"] = old.get((cmd["name"], kind)) or str(self._next_id())
            out |= {"application_id": str(self.application_id), "version": str(self._next_id())}
            if scope is not None:
                out["guild_id"] = str(scope)
            echoed.append(out)
        self._commands[scope] = echoed
        return 200, echoed

    # -- REST: interactions and webhooks ---------------------------------------------------

    def _callback(self, rec: RecordedRequest, interaction_id: str, token: str) -> _Reply:
        itx = self._interactions.get(interaction_id)
        if itx is None or itx.token != token:
            return _error(404, 10062, "Unknown interaction")
        timeout = self.interaction_timeout
        if timeout is not None and time.monotonic() - itx.created > timeout:
            return _error(404, 10062, "Unknown interaction")
        if itx.response_type is not None:
            return _error(400, 40060, "Interaction has already been acknowledged.")
        body = rec.json or {}
        kind, data = int(body["type"]), body.get("data") or {}
        itx.response_type = kind
        info: dict[str, Any] = {"id": itx.id, "type": itx.type}
        resource: dict[str, Any] | None = None
        if kind in _MESSAGE_CALLBACKS:
            flags = int(data.get("flags") or 0) | (LOADING if kind == 5 else 0)
            msg_type = 20 if itx.type == 2 else 0  # 20: CHAT_INPUT_COMMAND
            extra = {"type": msg_type, "flags": flags, "webhook_id": str(self.application_id)}
            message = self._new_message(itx.channel_id, data, rec.files, **extra)
            message["application_id"] = str(self.application_id)
            itx.original = message
            info |= {
                "response_message_id": message["id"],
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(flags & EPHEMERAL),
            }
            resource = {"type": kind, "message": message}
        elif kind in (6, 7) and itx.message is not None:
            stored = self._messages.get(int(itx.message["id"]), itx.message)
            itx.original = stored
            info["response_message_id"] = stored["id"]
            if kind == 7:
                resource = {"type": kind, "message": self._edit(stored, data, rec.files)}
        if rec.query.get("with_response", "").lower() not in ("1", "true"):
            return 204, None
        return 200, {"interaction": info} | ({"resource": resource} if resource else {})

    def _token_interaction(self, app: str, token: str) -> _Interaction | None:
        if int(app) != self.application_id:
            return None
        return next((i for i in self._interactions.values() if i.token == token), None)

    def _webhook_message(self, itx: _Interaction, message_id: str) -> dict[str, Any] | None:
        if message_id == "@original":
            return itx.original
        return next((m for m in itx.followups if m["id"] == message_id), None)

    def _webhook_create(self, rec: RecordedRequest, app: str, token: str) -> _Reply:
        itx = self._token_interaction(app, token)
        if itx is None or itx.response_type is None:  # no follow-up before the response
            return _error(404, 10015, "Unknown Webhook")
        extra = {"webhook_id": str(self.application_id), "application_id": str(app)}
        message = self._new_message(itx.channel_id, rec.json or {}, rec.files, **extra)
        itx.followups.append(message)
        return (200, message) if rec.query.get("wait", "").lower() in ("1", "true") else (204, None)

    def _webhook_get(self, rec: RecordedRequest, app: str, token: str, message_id: str) -> _Reply:
        itx = self._token_interaction(app, token)
        if itx is None:
            return _error(404, 10015, "Unknown Webhook")
        message = self._webhook_message(itx, message_id)
        return (200, message) if message else _error(404, 10008, "Unknown Message")

    def _webhook_edit(self, rec: RecordedRequest, app: str, token: str, message_id: str) -> _Reply:
        itx = self._token_interaction(app, token)
        if itx is None:
            return _error(404, 10015, "Unknown Webhook")
        message = self._webhook_message(itx, message_id)
        if message is None:
            return _error(404, 10008, "Unknown Message")
        return 200, self._edit(message, rec.json or {}, rec.files)

    def _webhook_del(self, rec: RecordedRequest, app: str, token: str, message_id: str) -> _Reply:
        itx = self._token_interaction(app, token)
        message = self._webhook_message(itx, message_id) if itx else None
        if itx is None or message is None:
            return _error(404, 10008, "Unknown Message")
        self._messages.pop(int(message["id"]), None)
        if message is itx.original:
            itx.original = None
        else:
            itx.followups.remove(message)
        return 204, None

    def interaction_messages(self, interaction_id: str) -> list[dict[str, Any]]:
        """The response message (if any) and follow-ups of an interaction, oldest first."""
        itx = self._interactions[interaction_id]
        return ([itx.original] if itx.original else []) + list(itx.followups)

    # -- REST: channels and messages -------------------------------------------------------

    def _create_dm(self, rec: RecordedRequest) -> _Reply:
        recipient = int((rec.json or {})["recipient_id"])
        return 200, self._dm_channel(FakeUser(recipient, f"user{recipient}"))

    def _known_channel(self, channel_id: int) -> dict[str, Any] | None:
        guild, channel = self._find_channel(channel_id)
        if guild is not None and channel is not None:
            return self._channel_payload(guild, channel)
        return next((c for c in self._dm_channels.values() if int(c["id"]) == channel_id), None)

    def _get_channel(self, rec: RecordedRequest, channel_id: str) -> _Reply:
        channel = self._known_channel(int(channel_id))
        if channel is None:
            return _error(404, 10003, "Unknown Channel")
        _, fake_channel = self._find_channel(int(channel_id))
        if fake_channel is not None and not self._bot_sees(fake_channel):
            return _error(403, 50001, "Missing Access")
        return 200, channel

    def _bot_sees(self, channel: FakeChannel) -> bool:
        if channel.is_thread:
            return self._bot_sees_thread(channel)
        return bool(self._bot_permissions(channel.id) & VIEW_CHANNEL)

    @staticmethod
    def _invalid_message(
        body: dict[str, Any], files: list[RecordedFile], prefix: str = ""
    ) -> _Reply | None:
        """Discord's checks of a message body: 2,000 characters, 10 embeds, not empty."""
        content = body.get("content") or ""
        if len(content) > MAX_CONTENT:
            message = f"Must be {MAX_CONTENT} or fewer in length."
            return _form_error(prefix + "content", "BASE_TYPE_MAX_LENGTH", message)
        if len(body.get("embeds") or []) > 10:
            return _form_error(
                prefix + "embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length."
            )
        forward = (body.get("message_reference") or {}).get("type") == 1
        parts = ("embeds", "components", "sticker_ids", "poll")
        if not (content.strip() or files or forward or any(body.get(k) for k in parts)):
            return _error(400, 50006, "Cannot send an empty message")
        return None

    @staticmethod
    def _refuse_in_thread(
        thread: FakeChannel, perms: int, *, editing: bool = False
    ) -> _Reply | None:
        """Why the bot may not post (or edit) in a thread, else None.

        SEND_MESSAGES has no effect in threads: SEND_MESSAGES_IN_THREADS (on the parent) does.
        A post to an archived thread unarchives it unless the thread is locked; an edit there
        is refused. A locked thread is for MANAGE_THREADS only.
        """
        moderator = bool(perms & MANAGE_THREADS)
        if thread.type == PRIVATE_THREAD and not (thread.bot_joined or moderator):
            return _error(403, 50001, "Missing Access")
        if not perms & SEND_MESSAGES_IN_THREADS:
            return _error(403, 50013, "Missing Permissions")
        if thread.archived and (editing or (thread.locked and not moderator)):
            return _error(400, 50083, "Thread is archived")
        if thread.locked and not moderator:
            return _error(400, 160005, "Thread is locked")
        return None

    def _thread_activity(self, guild: FakeGuild, thread: FakeChannel) -> None:
        """A message was posted in a thread: count it, and unarchive the thread."""
        self._thread_sent[thread.id] = self._thread_sent.get(thread.id, 0) + 1
        if thread.archived:
            thread.archived, thread.archive_timestamp = False, _now_iso()
            data = self._thread_payload(guild, thread, with_member=False)
            self._pending_dispatches.append((guild.id, "THREAD_UPDATE", data))

    def _create_message(self, rec: RecordedRequest, channel_id: str) -> _Reply:
        cid = int(channel_id)
        if self._known_channel(cid) is None:
            return _error(404, 10003, "Unknown Channel")
        guild, channel = self._find_channel(cid)
        if channel is not None and channel.type in (GUILD_CATEGORY, *FORUM_TYPES):
            return _error(400, 50008, "Cannot send messages in a non-text channel")
        perms = self._bot_permissions(cid)
        if not perms & VIEW_CHANNEL:
            return _error(403, 50001, "Missing Access")
        if channel is not None and channel.is_thread:
            refusal = self._refuse_in_thread(channel, perms)
            if refusal is not None:
                return refusal
        elif not perms & SEND_MESSAGES:
            return _error(403, 50013, "Missing Permissions")
        body = rec.json or {}
        invalid = self._invalid_message(body, rec.files)
        if invalid is not None:
            return invalid
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            # Discord returns the first message for a repeated nonce (same author and channel).
            seen = self._nonces.get((cid, str(nonce)))
            if seen is not None and time.monotonic() - seen[0] < self.nonce_window:
                return 200, seen[1]
        message = self._new_message(cid, body, rec.files)
        if nonce is not None:
            self._nonces[(cid, str(nonce))] = (time.monotonic(), message)
        self._posts.setdefault(cid, []).append(message)
        if guild is not None and channel is not None and channel.is_thread:
            self._thread_activity(guild, channel)
        return 200, message

    # -- REST: threads and forum posts -----------------------------------------------------

    @staticmethod
    def _invalid_thread(body: dict[str, Any]) -> _Reply | None:
        name = body.get("name")
        if name is None:
            return _form_error("name", "BASE_TYPE_REQUIRED", "This field is required")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            return _form_error(
                "name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
            )
        return FakeDiscord._invalid_duration(body.get("auto_archive_duration"))

    @staticmethod
    def _invalid_duration(duration: Any) -> _Reply | None:
        if duration is None or duration in ARCHIVE_DURATIONS:
            return None
        message = f"Value must be one of {{{', '.join(map(str, ARCHIVE_DURATIONS))}}}."
        return _form_error("auto_archive_duration", "BASE_TYPE_CHOICES", message)

    def _add_thread(
        self, guild: FakeGuild, parent: FakeChannel, body: dict[str, Any], kind: int, thread_id: int
    ) -> FakeChannel:
        thread = FakeChannel(
            thread_id,
            body["name"],
            type=kind,
            parent_id=parent.id,
            auto_archive_duration=body.get("auto_archive_duration") or parent.auto_archive_duration,
            owner_id=self.bot_user.id,
            applied_tags=[int(t) for t in body.get("applied_tags") or []],
        )
        guild.channels.append(thread)
        self._threads_started.setdefault(parent.id, []).append(thread_id)
        self._thread_sent.setdefault(thread_id, 0)
        return thread

    def _thread_created(self, guild: FakeGuild, thread: FakeChannel) -> dict[str, Any]:
        """The answer to a thread creation, after queueing THREAD_CREATE for the gateway."""
        event = self._thread_payload(guild, thread, with_member=False) | {"newly_created": True}
        self._pending_dispatches.append((guild.id, "THREAD_CREATE", event))
        return self._thread_payload(guild, thread)

    def _start_thread(self, rec: RecordedRequest, channel_id: str) -> _Reply:
        """POST /channels/{id}/threads: a forum post, or a thread without a starter message."""
        guild, parent = self._find_channel(int(channel_id))
        if guild is None or parent is None:
            return _error(404, 10003, "Unknown Channel")
        body = rec.json or {}
        perms = self._bot_permissions(parent.id)
        if not perms & VIEW_CHANNEL:
            return _error(403, 50001, "Missing Access")
        if parent.type in FORUM_TYPES:
            return self._forum_post(rec, guild, parent, perms)
        if parent.type not in (GUILD_TEXT, GUILD_ANNOUNCEMENT):
            return _error(400, 50024, "Cannot execute action on this channel type")
        kind = int(body.get("type") or PRIVATE_THREAD)  # Discord's default when it is null
        kinds = (
            (ANNOUNCEMENT_THREAD,)
            if parent.type == GUILD_ANNOUNCEMENT
            else (PUBLIC_THREAD, PRIVATE_THREAD)
        )
        if kind not in kinds:
            message = f"Value must be one of {{{', '.join(map(str, kinds))}}}."
            return _form_error("type", "BASE_TYPE_CHOICES", message)
        needed = CREATE_PRIVATE_THREADS if kind == PRIVATE_THREAD else CREATE_PUBLIC_THREADS
        if not perms & needed:
            return _error(403, 50013, "Missing Permissions")
        invalid = self._invalid_thread(body)
        if invalid is not None:
            return invalid
        thread = self._add_thread(guild, parent, body, kind, self._next_id())
        return 201, self._thread_created(guild, thread)

    def _start_thread_on(self, rec: RecordedRequest, channel_id: str, message_id: str) -> _Reply:
        """POST /channels/{id}/messages/{id}/threads: the thread shares the message's id."""
        guild, parent = self._find_channel(int(channel_id))
        if guild is None or parent is None:
            return _error(404, 10003, "Unknown Channel")
        perms = self._bot_permissions(parent.id)
        if not perms & VIEW_CHANNEL:
            return _error(403, 50001, "Missing Access")
        if parent.type not in (GUILD_TEXT, GUILD_ANNOUNCEMENT):
            return _error(400, 50024, "Cannot execute action on this channel type")
        message = self._channel_message(channel_id, message_id)
        if message is None:
            return _error(404, 10008, "Unknown Message")
        if guild.channel(int(message_id)) is not None:
            return _error(400, 160004, "A thread has already been created for this message")
        if not perms & CREATE_PUBLIC_THREADS:
            return _error(403, 50013, "Missing Permissions")
        body = rec.json or {}
        invalid = self._invalid_thread(body)
        if invalid is not None:
            return invalid
        kind = ANNOUNCEMENT_THREAD if parent.type == GUILD_ANNOUNCEMENT else PUBLIC_THREAD
        thread = self._add_thread(guild, parent, body, kind, int(message_id))
        message["flags"] = int(message.get("flags") or 0) | HAS_THREAD
        return 201, self._thread_created(guild, thread)

    def _forum_post(
        self, rec: RecordedRequest, guild: FakeGuild, forum: FakeChannel, perms: int
    ) -> _Reply:
        """A forum post: a public thread whose starter message has the thread's id."""
        if not perms & SEND_MESSAGES:
            return _error(403, 50013, "Missing Permissions")
        body = rec.json or {}
        invalid = self._invalid_thread(body)
        if invalid is not None:
            return invalid
        message_body = body.get("message")
        if not isinstance(message_body, dict):
            return _form_error("message", "BASE_TYPE_REQUIRED", "This field is required")
        invalid = self._invalid_message(message_body, rec.files, "message.")
        if invalid is not None:
            return invalid
        tags = [str(t) for t in body.get("applied_tags") or []]
        if len(tags) > 5:
            return _form_error(
                "applied_tags", "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length."
            )
        known_tags = {str(t["id"]) for t in forum.available_tags}
        if any(t not in known_tags for t in tags):
            return _form_error("applied_tags", "INVALID_TAG", "Unknown forum tag.")
        if forum.flags & REQUIRE_TAG and not tags:
            return _error(400, 40067, "A tag is required to create a forum post in this channel")
        thread = self._add_thread(guild, forum, body, PUBLIC_THREAD, self._next_id())
        message = self._new_message(thread.id, message_body, rec.files, id=str(thread.id))
        self._posts[thread.id] = [message]
        return 201, self._thread_created(guild, thread) | {"message": message}

    def _edit_channel(self, rec: RecordedRequest, channel_id: str) -> _Reply:
        """PATCH /channels/{id}: a thread's name, archived, locked, auto_archive_duration, tags;
        a channel's name and topic (with MANAGE_CHANNELS).

        As Discord: unarchiving needs thread membership (and, if locked, being its creator or
        MANAGE_THREADS); a name or archive change MANAGE_THREADS or being the creator; a lock
        change MANAGE_THREADS. A change of a thread is sent as THREAD_UPDATE.
        """
        guild, channel = self._find_channel(int(channel_id))
        if guild is None or channel is None:
            return _error(404, 10003, "Unknown Channel")
        if not self._bot_sees(channel):
            return _error(403, 50001, "Missing Access")
        perms, body = self._bot_permissions(channel.id), rec.json or {}
        if not channel.is_thread:
            if not perms & MANAGE_CHANNELS:
                return _error(403, 50013, "Missing Permissions")
            channel.name = body.get("name", channel.name)
            channel.topic = body.get("topic", channel.topic)
            return 200, self._channel_payload(guild, channel)
        moderator = bool(perms & MANAGE_THREADS)
        owner = channel.owner_id == self.bot_user.id
        if "locked" in body and bool(body["locked"]) != channel.locked and not moderator:
            return _error(403, 50013, "Missing Permissions")
        if body.get("archived") is False and channel.archived:
            if not (channel.bot_joined or moderator) or (
                channel.locked and not (owner or moderator)
            ):
                return _error(403, 50013, "Missing Permissions")
        elif channel.archived and not moderator:  # only unarchiving happens in an archived one
            return _error(400, 50083, "Thread is archived")
        owners_only = "name" in body or "auto_archive_duration" in body or body.get("archived")
        if owners_only and not (owner or moderator):
            return _error(403, 50013, "Missing Permissions")
        if "name" in body:
            invalid = self._invalid_thread({"name": body["name"]})
            if invalid is not None:
                return invalid
            channel.name = body["name"]
        invalid = self._invalid_duration(body.get("auto_archive_duration"))
        if invalid is not None:
            return invalid
        if body.get("auto_archive_duration") is not None:
            channel.auto_archive_duration = body["auto_archive_duration"]
        if "archived" in body and bool(body["archived"]) != channel.archived:
            channel.archived, channel.archive_timestamp = bool(body["archived"]), _now_iso()
        if "locked" in body:
            channel.locked = bool(body["locked"])
        if "applied_tags" in body:
            channel.applied_tags = [int(t) for t in body["applied_tags"] or []]
        data = self._thread_payload(guild, channel, with_member=False)
        self._pending_dispatches.append((guild.id, "THREAD_UPDATE", data))
        return 200, self._thread_payload(guild, channel)

    def _join_thread(self, rec: RecordedRequest, channel_id: str) -> _Reply:
        guild, thread = self._find_channel(int(channel_id))
        if guild is None or thread is None:
            return _error(404, 10003, "Unknown Channel")
        if not thread.is_thread:
            return _error(400, 50024, "Cannot execute action on this channel type")
        if not self._bot_sees_thread(thread):
            return _error(403, 50001, "Missing Access")
        if thread.archived:
            return _error(400, 50083, "Thread is archived")
        thread.bot_joined = True
        return 204, None

    def threads_in(self, channel_id: int) -> list[dict[str, Any]]:
        """Threads started through the API under a channel (forum posts...), oldest first.

        Each is the thread as Discord would answer it now; its messages are
        ``messages_in(int(thread["id"]))`` (a forum post's first is its starter message).
        """
        out = []
        for thread_id in self._threads_started.get(channel_id, []):
            guild, thread = self._find_channel(thread_id)
            if guild is not None and thread is not None:
                out.append(self._thread_payload(guild, thread))
        return out

    def thread(self, thread_id: int) -> FakeChannel:
        """The FakeChannel of a thread (given, or started by the bot), to read or change."""
        _, thread = self._find_channel(thread_id)
        if thread is None or not thread.is_thread:
            raise KeyError(f"fakediscord: no thread {thread_id}")
        return thread

    async def update_thread(
        self,
        thread_id: int,
        *,
        archived: bool | None = None,
        locked: bool | None = None,
        name: str | None = None,
    ) -> None:
        """Change a thread as a moderator would, and tell the bot (THREAD_UPDATE)."""
        guild, thread = self._find_channel(thread_id)
        if guild is None or thread is None or not thread.is_thread:
            raise KeyError(f"fakediscord: no thread {thread_id}")
        if archived is not None and archived != thread.archived:
            thread.archived, thread.archive_timestamp = archived, _now_iso()
        if locked is not None:
            thread.locked = locked
        if name is not None:
            thread.name = name
        data = self._thread_payload(guild, thread, with_member=False)
        with contextlib.suppress(RuntimeError):  # no gateway session: nobody to tell
            await self.dispatch("THREAD_UPDATE", data, guild_id=guild.id)

    def _list_messages(self, rec: RecordedRequest, channel_id: str) -> _Reply:
        cid = int(channel_id)
        if self._known_channel(cid) is None:
            return _error(404, 10003, "Unknown Channel")
        limit = max(1, min(int(rec.query.get("limit", 50)), 100))
        before, after = int(rec.query.get("before", 0)), int(rec.query.get("after", 0))
        visible = [
            m
            for m in self._messages.values()
            if m["channel_id"] == channel_id and not int(m.get("flags") or 0) & EPHEMERAL
        ]
        visible.sort(key=lambda m: int(m["id"]), reverse=True)  # newest first, like Discord
        if before:
            visible = [m for m in visible if int(m["id"]) < before]
        if after:
            visible = [m for m in visible if int(m["id"]) > after]
        return 200, visible[:limit]

    def _channel_message(self, channel_id: str, message_id: str) -> dict[str, Any] | None:
        message = self._messages.get(int(message_id))
        return message if message and message["channel_id"] == channel_id else None

    def _get_message(self, rec: RecordedRequest, channel_id: str, message_id: str) -> _Reply:
        message = self._channel_message(channel_id, message_id)
        return (200, message) if message else _error(404, 10008, "Unknown Message")

    def _edit_message(self, rec: RecordedRequest, channel_id: str, message_id: str) -> _Reply:
        message = self._channel_message(channel_id, message_id)
        if message is None:
            return _error(404, 10008, "Unknown Message")
        _, channel = self._find_channel(int(channel_id))
        if channel is not None and channel.is_thread:
            perms = self._bot_permissions(channel.id)
            refusal = self._refuse_in_thread(channel, perms, editing=True)
            if refusal is not None:
                return refusal
        body = rec.json or {}
        if len(body.get("content") or "") > MAX_CONTENT:
            message = f"Must be {MAX_CONTENT} or fewer in length."
            return _form_error("content", "BASE_TYPE_MAX_LENGTH", message)
        return 200, self._edit(message, body, rec.files)

    def _delete_message(self, rec: RecordedRequest, channel_id: str, message_id: str) -> _Reply:
        message = self._channel_message(channel_id, message_id)
        if message is None:
            return _error(404, 10008, "Unknown Message")
        del self._messages[int(message_id)]
        posts = self._posts.get(int(channel_id), [])
        self._posts[int(channel_id)] = [m for m in posts if m is not message]
        return 204, None

    def messages_in(self, channel_id: int) -> list[dict[str, Any]]:
        """Messages made by POST /channels/{id}/messages (nonce repeats excluded), oldest first.

        For a forum post (a thread), the first is the starter message it was created with.
        """
        return list(self._posts.get(channel_id, []))

    def message(self, message_id: int | str) -> dict[str, Any] | None:
        """Any message the fake knows (posts, interaction responses, follow-ups)."""
        return self._messages.get(int(message_id))

    # -- gateway ---------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        # timeout bounds how long close() waits for the client's close frame.
        ws = web.WebSocketResponse(timeout=2.0, max_msg_size=0)
        await ws.prepare(request)
        self.gateway_connections.append(request.path_qs)
        self._sockets.add(ws)
        session: _Session | None = None
        try:
            hello = {"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}}
            await ws.send_str(json.dumps(hello | {"s": None, "t": None}))
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                try:
                    session = await self._gateway_frame(ws, session, json.loads(msg.data))
                except Exception as exc:  # a bug in the fake: keep the socket, keep the evidence
                    log.exception("fakediscord failed on gateway frame %s", msg.data)
                    self.errors.append(exc)
                self._notify()
        finally:
            self._sockets.discard(ws)
            if session is not None and session.ws is ws:
                session.ws, session.connected = None, False
            self._notify()
        return ws

    async def _gateway_frame(
        self, ws: web.WebSocketResponse, session: _Session | None, frame: dict[str, Any]
    ) -> _Session | None:
        self.gateway_received.append(frame)
        op, data = frame.get("op"), frame.get("d")
        if op == 1:
            await ws.send_str(json.dumps({"op": 11, "d": None, "s": None, "t": None}))
        elif op == 2:
            return await self._identify(ws, data)
        elif op == 6:
            return await self._resume(ws, data)
        elif op == 8 and session is not None:  # member chunks, so a members-intent bot won't stall
            chunk = {"guild_id": str(data["guild_id"]), "chunk_index": 0, "chunk_count": 1}
            guild = self._guild(int(data["guild_id"]))
            chunk["members"] = [self._bot_member(guild)] if guild else []
            if data.get("nonce"):
                chunk["nonce"] = data["nonce"]
            await self._send_dispatch(session, "GUILD_MEMBERS_CHUNK", chunk)
        return session  # op 3 (presence) and others need no answer

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> _Session | None:
        if data.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return None
        raw_shard = data.get("shard")
        shard = (int(raw_shard[0]), int(raw_shard[1])) if raw_shard else None
        session = _Session(session_id=secrets.token_hex(16), shard=shard)
        self.identify_count += 1
        self._sessions[session.session_id] = session
        guilds = [g for g in self.guilds if self._shard_of(g.id, shard) == (shard or (0, 1))[0]]
        async with session.lock:
            session.ws = ws
            ready = {
                "v": 10,
                "user": self.bot_user.payload() | {"verified": True, "mfa_enabled": False},
                "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
                "session_id": session.session_id,
                "session_type": "normal",
                # A distinct path, so tests can see the bot resumed where READY told it to.
                "resume_gateway_url": f"{self.gateway_url}/resume",
                "application": {"id": str(self.application_id), "flags": 0},
                "private_channels": [],
                "relationships": [],
                "_trace": ["fakediscord"],
            }
            if shard is not None:
                ready["shard"] = list(shard)
            await self._send_locked(session, "READY", ready)
            for guild in guilds:
                await self._send_locked(session, "GUILD_CREATE", self.guild_payload(guild))
            session.connected = True
        self._current[shard[0] if shard else 0] = session
        return session

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> _Session | None:
        session = self._sessions.get(data.get("session_id", ""))
        if session is None or data.get("token") != self.token:
            await ws.send_str(json.dumps({"op": 9, "d": False, "s": None, "t": None}))
            return None
        self.resume_count += 1
        last_seen = data.get("seq") or 0
        async with session.lock:
            session.ws = ws
            for frame in session.sent:  # replay what the bot missed, then RESUMED
                if frame["s"] > last_seen:
                    await ws.send_str(json.dumps(frame))
            await self._send_locked(session, "RESUMED", {"_trace": ["fakediscord"]})
            session.connected = True
        return session

    async def _send_locked(self, session: _Session, event: str, data: dict[str, Any]) -> None:
        # Sequence numbers, the replay log and the socket write stay in one order under the lock.
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.sent.append(frame)
        self.dispatches.append(
            RecordedDispatch(session.session_id, session.shard, session.seq, event, data)
        )
        if session.ws is not None and not session.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await session.ws.send_str(json.dumps(frame))

    async def _send_dispatch(self, session: _Session, event: str, data: dict[str, Any]) -> None:
        async with session.lock:
            await self._send_locked(session, event, data)

    @staticmethod
    def _shard_of(guild_id: int | None, shard: tuple[int, int] | None) -> int:
        return (guild_id >> 22) % shard[1] if guild_id and shard else 0

    def _session_for(self, guild_id: int | None) -> _Session:
        if not self._current:
            raise RuntimeError("fakediscord: no gateway session; await wait_until_connected()")
        shards = next(iter(self._current.values())).shard
        session = self._current.get(self._shard_of(guild_id, shards))
        if session is None:
            raise RuntimeError(f"fakediscord: no session for the shard of guild {guild_id}")
        return session

    async def dispatch(
        self, event: str, data: dict[str, Any], *, guild_id: int | None = None
    ) -> None:
        """Send any gateway event to the session of ``guild_id``'s shard.

        If the session's socket is down the event is kept and replayed when the bot RESUMEs.
        """
        await self._send_dispatch(self._session_for(guild_id), event, data)

    async def close_gateway(
        self, code: int = 4000, *, shard_id: int | None = None, invalidate: bool = False
    ) -> None:
        """Drop the socket of the current session (of one shard, or all): the bot RESUMEs.

        With ``invalidate`` the session is forgotten, so the RESUME gets op 9 and the bot
        IDENTIFYs again (after discord.py's 5 s ``before_identify_hook`` sleep).
        """
        for index, session in list(self._current.items()):
            if shard_id is not None and index != shard_id:
                continue
            ws, session.ws, session.connected = session.ws, None, False
            if invalidate:
                self._sessions.pop(session.session_id, None)
            if ws is not None:
                await ws.close(code=code)
        self._notify()

    # -- interactions ----------------------------------------------------------------------

    def _resolve_guild_id(self, guild_id: int | EllipsisType | None) -> int | None:
        if guild_id is ...:
            if not self.guilds:
                raise ValueError("fakediscord: no guilds; pass guild_id=None for a DM")
            return self.guilds[0].id
        return guild_id

    def _base_interaction(
        self,
        kind: int,
        *,
        user: FakeUser | None,
        guild_id: int | EllipsisType | None,
        channel_id: int | None,
        permissions: int,
        roles: Sequence[int],
    ) -> tuple[dict[str, Any], _Interaction]:
        user = user or DEFAULT_USER
        gid = self._resolve_guild_id(guild_id)
        payload: dict[str, Any] = {
            "id": str(self._next_id()),
            "application_id": str(self.application_id),
            "type": kind,
            "token": "fake-itx-" + secrets.token_urlsafe(24),
            "version": 1,
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        }
        if gid is None:  # a DM: `user` instead of `member`
            channel = self._dm_channel(user)
            payload |= {"user": user.payload(), "context": 1, "app_permissions": str(PLAIN_MEMBER)}
        else:
            guild = self._guild(gid)
            if guild is None:
                raise ValueError(f"fakediscord: unknown guild {gid}")
            if channel_id is None:
                text = [c for c in guild.channels if c.type in (0, 5)]
                if not text:
                    raise ValueError(f"fakediscord: guild {gid} has no text channel")
                channel_id = text[0].id
            fake_channel = guild.channel(channel_id) or FakeChannel(channel_id, "unknown")
            channel = self._channel_payload(guild, fake_channel) | {"permissions": str(permissions)}
            payload |= {
                "guild_id": str(gid),
                "guild": {"id": str(gid), "locale": "en-US", "features": []},
                "guild_locale": "en-US",
                "context": 0,
                "authorizing_integration_owners": {"0": str(gid)},
                "app_permissions": str(self._bot_permissions(channel_id)),
                "member": {
                    "user": user.payload(),
                    "roles": [str(r) for r in roles],
                    "flags": 0,
                    "joined_at": _now_iso(),
                    "permissions": str(permissions),
                    "nick": None,
                    "avatar": None,
                    "deaf": False,
                    "mute": False,
                    "pending": False,
                    "premium_since": None,
                    "communication_disabled_until": None,
                },
            }
        payload |= {"channel": channel, "channel_id": channel["id"]}
        itx = _Interaction(
            payload["id"], payload["token"], kind, gid, int(channel["id"]), time.monotonic()
        )
        self._interactions[itx.id] = itx
        return payload, itx

    def _find_command(
        self, name: str, guild_id: int | None
    ) -> tuple[dict[str, Any] | None, int | None]:
        for scope in (guild_id, None) if guild_id is not None else (None,):
            for cmd in self._commands.get(scope, []):
                if cmd["name"] == name and cmd.get("type", 1) == 1:
                    return cmd, scope
        return None, None

    def _options(
        self,
        command: dict[str, Any] | None,
        subcommand: str | None,
        values: Mapping[str, Any],
        focused: str | None,
        guild_id: int | None,
        resolved: dict[str, dict[str, Any]],
    ) -> list[dict[str, Any]]:
        """Build ``data.options``, typed from the synced command where it is known."""
        defs: list[dict[str, Any]] = (command or {}).get("options", [])
        wrappers: list[tuple[str, int]] = []
        parts = subcommand.split() if subcommand else []
        for depth, part in enumerate(parts):  # "group sub" -> type 2 wrapping type 1
            spec = next((d for d in defs if d["name"] == part), None)
            wrappers.append((part, spec["type"] if spec else (1 if depth == len(parts) - 1 else 2)))
            defs = spec.get("options", []) if spec else []
        values = dict(values)
        if focused is not None:
            values.setdefault(focused, "")
        options = []
        for name, value in values.items():
            if value is None:
                continue
            spec = next((d for d in defs if d["name"] == name), None)
            option = self._option(name, value, spec, name == focused, guild_id, resolved)
            options.append(option)
        for name, kind in reversed(wrappers):
            options = [{"name": name, "type": kind, "options": options}]
        return options

    def _option(
        self,
        name: str,
        value: Any,
        spec: dict[str, Any] | None,
        focused: bool,
        guild_id: int | None,
        resolved: dict[str, dict[str, Any]],
    ) -> dict[str, Any]:
        if isinstance(value, FakeUser):
            kind = 6
        elif spec is not None:
            kind = spec["type"]
        else:  # bool before int: bool is an int subclass
            kind = (
                5
                if isinstance(value, bool)
                else 4
                if isinstance(value, int)
                else 10
                if (isinstance(value, float))
                else 3
            )
        option: dict[str, Any] = {"name": name, "type": kind, "value": value}
        if focused:  # Discord sends what the user has typed so far, untyped
            option["focused"] = True
            return option
        with contextlib.suppress(TypeError, ValueError):
            cast: dict[int, Callable[[Any], Any]] = {3: str, 4: int, 5: bool, 10: float}
            option["value"] = cast.get(kind, str)(
                value.id if isinstance(value, FakeUser) else value
            )
        guild = self._guild(guild_id)
        if kind == 6 and isinstance(value, FakeUser):
            resolved.setdefault("users", {})[str(value.id)] = value.payload()
            member = {"roles": [], "joined_at": _now_iso(), "flags": 0, "permissions": "0"}
            resolved.setdefault("members", {})[str(value.id)] = member
        elif kind == 7 and guild is not None:
            channel = guild.channel(int(option["value"]))
            if channel is not None:
                data = self._channel_payload(guild, channel) | {"permissions": str(ALL_PERMISSIONS)}
                resolved.setdefault("channels", {})[str(channel.id)] = data
        elif kind == 8 and guild is not None:
            role = next((r for r in guild.roles if r.id == int(option["value"])), None)
            if role is not None:
                data = {"id": str(role.id), "name": role.name, "permissions": str(role.permissions)}
                resolved.setdefault("roles", {})[str(role.id)] = data
        return option

    async def _command_interaction(
        self,
        kind: int,
        name: str,
        options: Mapping[str, Any] | None,
        focused: str | None,
        subcommand: str | None,
        who: dict[str, Any],
    ) -> str:
        payload, itx = self._base_interaction(kind, **who)
        command, scope = self._find_command(name, itx.guild_id)
        resolved: dict[str, dict[str, Any]] = {}
        values = options or {}
        data: dict[str, Any] = {
            # An unsynced command gets a made-up id and is looked up among global commands.
            "id": command["id"] if command else str(self._next_id()),
            "name": name,
            "type": 1,
            "options": self._options(command, subcommand, values, focused, itx.guild_id, resolved),
        }
        if scope is not None:
            data["guild_id"] = str(scope)  # discord.py needs it to find a guild command
        if resolved:
            data["resolved"] = resolved
        payload["data"] = data
        await self.dispatch("INTERACTION_CREATE", payload, guild_id=itx.guild_id)
        return itx.id

    async def slash(
        self,
        name: str,
        options: Mapping[str, str | int | bool | float | FakeUser] | None = None,
        *,
        user: FakeUser | None = None,
        guild_id: int | EllipsisType | None = ...,
        channel_id: int | None = None,
        subcommand: str | None = None,
        permissions: int = PLAIN_MEMBER,
        roles: Sequence[int] = (),
    ) -> str:
        """Invoke ``/name`` (``subcommand`` may be ``"sub"`` or ``"group sub"``).

        ``guild_id=...`` is the first guild, ``None`` a DM. ``permissions`` is the member's
        computed permission value, as Discord sends it. Option types come from the synced
        command (a channel/role/FakeUser option also gets ``resolved`` data), else from the
        Python type. Returns the interaction id.
        """
        who = {"user": user, "guild_id": guild_id, "channel_id": channel_id}
        who |= {"permissions": permissions, "roles": roles}
        return await self._command_interaction(2, name, options, None, subcommand, who)

    async def autocomplete(
        self,
        name: str,
        options: Mapping[str, str | int | bool | float] | None,
        focused: str,
        *,
        subcommand: str | None = None,
        user: FakeUser | None = None,
        guild_id: int | EllipsisType | None = ...,
        channel_id: int | None = None,
        permissions: int = PLAIN_MEMBER,
        roles: Sequence[int] = (),
    ) -> str:
        """Ask for choices for option ``focused`` (its partial value in ``options``)."""
        who = {"user": user, "guild_id": guild_id, "channel_id": channel_id}
        who |= {"permissions": permissions, "roles": roles}
        return await self._command_interaction(4, name, options, focused, subcommand, who)

    def _message_with(self, custom_id: str) -> dict[str, Any] | None:
        def walk(components: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
            for component in components:
                yield component
                yield from walk(component.get("components", []))
                if isinstance(component.get("accessory"), dict):
                    yield component["accessory"]

        for message in sorted(self._messages.values(), key=lambda m: -int(m["id"])):
            if any(c.get("custom_id") == custom_id for c in walk(message["components"])):
                return message
        return None

    async def click(
        self,
        custom_id: str,
        *,
        message_id: int | None = None,
        user: FakeUser | None = None,
        guild_id: int | EllipsisType | None = ...,
        channel_id: int | None = None,
        permissions: int = PLAIN_MEMBER,
        roles: Sequence[int] = (),
        component_type: int = 2,
        values: Sequence[str] | None = None,
    ) -> str:
        """Click a button (or choose ``values`` of a select with ``component_type=3``).

        The interaction carries the known message with ``message_id``, else the newest known
        message with that ``custom_id``, else a made-up message holding just that component
        (a persistent component on a message from before a restart).
        """
        message = self.message(message_id) if message_id is not None else None
        if message is None and message_id is None:
            message = self._message_with(custom_id)
        if channel_id is None and message is not None:
            channel_id = int(message["channel_id"])
        payload, itx = self._base_interaction(
            3,
            user=user,
            guild_id=guild_id,
            channel_id=channel_id,
            permissions=permissions,
            roles=roles,
        )
        if message is None:
            component: dict[str, Any] = {"type": component_type, "custom_id": custom_id}
            if component_type == 2:
                component |= {"style": 1, "label": custom_id[:80]}
            else:
                component["options"] = [{"label": v, "value": v} for v in values or ["x"]]
            message = self._new_message(
                itx.channel_id, {"components": [{"type": 1, "components": [component]}]}, []
            )
            if message_id is not None:
                del self._messages[int(message["id"])]
                message["id"] = str(message_id)
                self._messages[message_id] = message
        itx.message = message
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = list(values)
        payload |= {"data": data, "message": message}
        await self.dispatch("INTERACTION_CREATE", payload, guild_id=itx.guild_id)
        return itx.id

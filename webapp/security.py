"""The web server's guards: who may name which upload, sessions that expire, login throttling,
origins, cookies and the ASGI middleware that enforces them in front of every route, Gradio's
included.

Gradio 6.31 needs four work-arounds, each marked "Gradio 6.31" below:
- its upload step accepts a FileData whose ``path`` names any server file and copies it into its
  cache before app code runs (a mounted app never sets ``has_launched``, which is what turns on
  its own check), so `guard_file_inputs` refuses, before Gradio touches anything, every path that
  did not come from this user's own upload (`UploadLedger`);
- its CORS middleware echoes any Origin with credentials when Host is not localhost, and its
  login cookie is ``SameSite=None``: the parent app configures CORS itself (Gradio then adds
  none) and `WebGuard` rewrites the cookies to ``SameSite=Lax`` and refuses cross-site writes;
- its event results and queue sessions are bound only to unguessable ids: `WebGuard` binds each
  to the user who created it;
- its login runs the password check inside the event loop and never forgets a session: the
  check runs in a worker thread (`async_authenticator`), failures are throttled and logged
  (`LoginLimiter`), and sessions expire (`SessionTokens`).
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("ragchat.webapp.security")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_GUARDED_BODY = 1 << 20  # bodies read by the guard (login, queue joins): 1 MB at most
UPLOAD_TTL_S = 3600.0  # an upload not submitted within an hour is forgotten (and cleaned)
BINDING_TTL_S = 6 * 3600.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# -- uploads ----------------------------------------------------------------------------------------


class UploadLedger:
    """Which user uploaded which file through Gradio's upload route (path -> users, time).

    The same bytes under the same name share one cached file, so a path may have several
    uploaders; each may use it. Entries expire after `ttl_s`.
    """

    def __init__(self, ttl_s: float = UPLOAD_TTL_S, limit: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.limit = limit
        self._entries: OrderedDict[str, tuple[set[str], float]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(path: str | Path) -> str:
        return str(Path(path).absolute())

    def record(self, user: str, paths: Iterable[str]) -> None:
        now = time.monotonic()
        with self._lock:
            for path in paths:
                key = self._key(path)
                users, _ = self._entries.pop(key, (set(), now))
                users.add(user)
                self._entries[key] = (users, now)
            while len(self._entries) > self.limit:
                self._entries.popitem(last=False)

    def owned_by(self, path: str | Path, user: str) -> bool:
        """True if `user` uploaded `path` within the last `ttl_s` seconds."""
        key = self._key(path)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False
            users, at = entry
            if time.monotonic() - at > self.ttl_s:
                del self._entries[key]
                return False
            return user in users

    def discard(self, path: str | Path) -> None:
        with self._lock:
            self._entries.pop(self._key(path), None)


def file_paths(value: Any) -> list[str]:
    """Every ``path`` of a FileData-shaped dict anywhere inside an event's input data."""
    found: list[str] = []

    def walk(item: Any, depth: int) -> None:
        if depth > 32:
            return
        if isinstance(item, Mapping):
            path = item.get("path")
            if isinstance(path, str):
                found.append(path)
            for v in item.values():
                walk(v, depth + 1)
        elif isinstance(item, list | tuple):
            for v in item:
                walk(v, depth + 1)

    walk(value, 0)
    return found


class NotAnUploadError(Exception):
    """A request named a server path that did not come from this user's own upload."""


def guard_file_inputs(blocks: Any, ledger: UploadLedger, default_user: str) -> None:
    """Refuse, before Gradio reads or copies anything, every event whose input data names a
    file that the calling user did not upload (Gradio 6.31: `Blocks.preprocess_data` copies any
    path into its cache unless the app was started by `launch()`).

    Wraps ``blocks.process_api``, the one door every queued, direct and MCP call goes through.
    """
    import gradio as gr

    original = blocks.process_api
    signature = inspect.signature(original)

    async def process_api(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind_partial(*args, **kwargs)
        inputs = bound.arguments.get("inputs") or []
        request = bound.arguments.get("request")
        first = request[0] if isinstance(request, list) and request else request
        user = str(getattr(first, "username", None) or default_user)
        for path in file_paths(inputs):
            if not ledger.owned_by(path, user):
                log.warning("refused a file path that %r did not upload: %r", user, path)
                shown = Path(path).name or "file"
                raise gr.Error(
                    f"{escape_text(shown)}: not an uploaded file (only files uploaded by you "
                    "through this page can be added)",
                    print_exception=False,
                )
        return await original(*args, **kwargs)

    blocks.process_api = process_api


# -- sessions and logins ----------------------------------------------------------------------------


class SessionTokens(dict[str, str]):
    """Gradio's login tokens (token -> user) that expire `max_age_s` after the login.

    Gradio 6.31 keeps them for the life of the process; it reads them with ``get``, ``in``,
    ``[]``, ``keys()`` and ``del``, which all see expired tokens as gone.
    """

    def __init__(self, max_age_s: float) -> None:
        super().__init__()
        self.max_age_s = max_age_s
        self._born: dict[str, float] = {}

    def __setitem__(self, token: str, user: str) -> None:
        self._expire()
        self._born[token] = time.monotonic()
        super().__setitem__(token, user)

    def _alive(self, token: object) -> bool:
        if not isinstance(token, str):
            return False
        born = self._born.get(token)
        if born is None:
            return False
        if time.monotonic() - born > self.max_age_s:
            super().pop(token, None)
            self._born.pop(token, None)
            return False
        return True

    def _expire(self) -> None:
        for token in list(self._born):
            self._alive(token)

    def get(self, token: str, default: Any = None) -> Any:
        return super().get(token, default) if self._alive(token) else default

    def __contains__(self, token: object) -> bool:
        return self._alive(token) and super().__contains__(token)

    def __getitem__(self, token: str) -> str:
        if not self._alive(token):
            raise KeyError(token)
        return super().__getitem__(token)

    def __delitem__(self, token: str) -> None:
        self._born.pop(token, None)
        super().__delitem__(token)

    def keys(self) -> Any:
        self._expire()
        return super().keys()


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0


class LoginLimiter:
    """Exponential back-off on failed logins, per account and per client address.

    The first `free` failures of an account cost nothing; each further one locks the account
    for 2^(n - free) seconds, at most `max_lock_s`. A client address gets `client_free` failures
    before the same, since many users may share one address (a proxy, an office). A success
    clears both. While locked, every attempt is refused without checking the password, so
    guessing cannot go on in parallel.
    """

    def __init__(
        self,
        free: int = 5,
        client_free: int = 20,
        max_lock_s: float = 900.0,
        limit: int = 50_000,
    ) -> None:
        self.free = free
        self.client_free = client_free
        self.max_lock_s = max_lock_s
        self.limit = limit
        self._failures: OrderedDict[str, _Failures] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _keys(account: str, client: str) -> tuple[str, str]:
        return f"account:{account.strip().lower()}", f"client:{client}"

    def retry_after(self, account: str, client: str, now: float | None = None) -> float:
        """Seconds until this account and client may try again (0: now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            waits = [
                f.locked_until - now
                for key in self._keys(account, client)
                if (f := self._failures.get(key)) is not None
            ]
        return max([0.0, *waits])

    def failed(self, account: str, client: str, now: float | None = None) -> float:
        """Record a failure; returns the lock it starts (0 while still within the free tries)."""
        now = time.monotonic() if now is None else now
        lock = 0.0
        with self._lock:
            for key, free in zip(
                self._keys(account, client), (self.free, self.client_free), strict=True
            ):
                entry = self._failures.pop(key, None) or _Failures()
                entry.count += 1
                if entry.count > free:
                    wait = min(2.0 ** (entry.count - free), self.max_lock_s)
                    entry.locked_until = now + wait
                    lock = max(lock, wait)
                self._failures[key] = entry
            while len(self._failures) > self.limit:
                self._failures.popitem(last=False)
        return lock

    def succeeded(self, account: str, client: str) -> None:
        with self._lock:
            for key in self._keys(account, client):
                self._failures.pop(key, None)


def async_authenticator(
    check: Callable[[str, str], bool], max_parallel: int = 2
) -> Callable[[str, str], Awaitable[bool]]:
    """Gradio's login check as a coroutine: the (deliberately slow) password hash runs in a
    worker thread, at most `max_parallel` at once, so the server keeps answering meanwhile."""
    import anyio

    limiter = anyio.CapacityLimiter(max_parallel)

    async def authenticate(username: str, password: str) -> bool:
        return bool(await anyio.to_thread.run_sync(check, username, password, limiter=limiter))

    return authenticate


# -- text shown by Gradio --------------------------------------------------------------------------


def escape_text(text: str) -> str:
    """Text for Gradio's pop-ups (gr.Warning, gr.Info, gr.Error), which render HTML."""
    import html

    return html.escape(str(text), quote=True)


# -- origins ----------------------------------------------------------------------------------------


def parse_origins(value: str | Iterable[str] | None) -> frozenset[str]:
    """RAGCHAT_ALLOWED_ORIGINS: comma-separated origins like https://intranet.example:8443."""
    if value is None:
        return frozenset()
    items = value.split(",") if isinstance(value, str) else list(value)
    origins = set()
    for item in items:
        item = item.strip().rstrip("/")
        if not item:
            continue
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
            raise ValueError(
                f"RAGCHAT_ALLOWED_ORIGINS: {item!r} is not an origin like https://host[:port]"
            )
        origins.add(f"{parts.scheme}://{parts.netloc}".lower())
    return frozenset(origins)


def _netloc(origin: str) -> str:
    parts = urlsplit(origin)
    host = (parts.hostname or "").lower()
    default = {"http": 80, "https": 443}.get(parts.scheme)
    port = parts.port
    if ":" in host:
        host = f"[{host}]"
    return host if port is None or port == default else f"{host}:{port}"


def _host_netloc(host: str, scheme: str) -> str:
    return _netloc(f"{scheme}://{host}") if host else ""


def same_origin(origin: str, headers: Mapping[str, str], scheme: str) -> bool:
    """Whether a browser's Origin is this server itself: its host (and port) is the Host the
    request was sent to (or X-Forwarded-Host, as a TLS proxy in front sends it)."""
    if origin in ("null", ""):
        return False
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https"):
        return False
    mine = _netloc(origin)
    names = {
        _host_netloc(headers.get("host", ""), parts.scheme),
        _host_netloc(headers.get("x-forwarded-host", "").split(",")[0].strip(), parts.scheme),
    }
    return mine in names - {""}


# -- the middleware ---------------------------------------------------------------------------------

_SET_COOKIE_SAMESITE = re.compile(r";\s*samesite=[^;]*", re.IGNORECASE)
_CALL_POST = re.compile(r"^/gradio_api/call/(?:v2/)?[^/]+/?$")
_CALL_GET = re.compile(r"^/gradio_api/call/(?:v2/)?[^/]+/([^/]+)/?$")
_SESSION_ROUTES = tuple(
    f"/gradio_api/{name}"
    for name in (
        "cancel",
        "reset",
        "heartbeat",
        "stream",
        "upload_progress",
        "process_recording",
        "vibe",
        "undo-vibe",
        "run-history",
    )
)
_HEARTBEAT = re.compile(r"^/gradio_api/heartbeat/([^/]+)/?$")


@dataclass
class GradioSessions:
    """Binds Gradio's queue sessions and event ids to the user that created them (Gradio 6.31
    binds them to nothing but an unguessable id)."""

    ttl_s: float = BINDING_TTL_S
    limit: int = 200_000

    def __post_init__(self) -> None:
        self._owners: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, key: str, user: str) -> bool:
        """Bind `key` to `user` unless another user holds it; False if another does."""
        now = time.monotonic()
        with self._lock:
            held = self._owners.get(key)
            if held is not None and now - held[1] <= self.ttl_s and held[0] != user:
                return False
            self._owners.pop(key, None)
            self._owners[key] = (user, now)
            while len(self._owners) > self.limit:
                self._owners.popitem(last=False)
        return True

    def owner(self, key: str) -> str | None:
        with self._lock:
            held = self._owners.get(key)
        if held is None or time.monotonic() - held[1] > self.ttl_s:
            return None
        return held[0]


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None when it is larger than `limit`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        body = message.get("body", b"")
        size += len(body)
        if size > limit:
            return None
        chunks.append(body)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _json_response(
    send: Send, status: int, detail: str, headers: Mapping[str, str] | None = None
) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    for k, v in (headers or {}).items():
        raw.append((k.lower().encode("latin-1"), v.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


@dataclass
class GuardConfig:
    """What `WebGuard` enforces."""

    upload_cap: int  # bytes a /api/documents request may carry
    max_file_mb: float
    max_files: int
    accounts: bool
    trusted_hosts: frozenset[str] | None = None  # None: any Host
    allowed_origins: frozenset[str] = frozenset()
    session_hours: float = 12.0
    default_user: str = "local"  # the one user when accounts are off


class WebGuard:
    """ASGI middleware in front of the whole application (REST, /v1 and the mounted Gradio UI).

    - Host: with `trusted_hosts` (a server open without accounts on loopback) every request
      must name one of them, so a web page cannot reach it by DNS rebinding.
    - Origin: a request that may change something (anything but GET/HEAD/OPTIONS) from a
      browser page of another origin is refused, unless RAGCHAT_ALLOWED_ORIGINS lists it; this
      covers login CSRF. Clients other than browsers send no Origin and are not affected.
    - Cookies: every cookie the app sets is ``SameSite=Lax`` and lasts the session's lifetime.
    - Login: throttled per account and client (`LoginLimiter`), failures logged; ``/logout``
      only by POST.
    - Gradio: uploads are recorded per user (`UploadLedger`); queue sessions and event results
      belong to the user who created them; another user's get 404.
    - Size: uploads to /api/documents larger than the limits are refused before being read.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        config: GuardConfig,
        ledger: UploadLedger,
        limiter: LoginLimiter | None = None,
        user_of: Callable[[Mapping[str, str]], str | None] | None = None,
    ) -> None:
        self.app = app
        self.config = config
        self.ledger = ledger
        self.limiter = limiter or LoginLimiter()
        self.sessions = GradioSessions()
        self.user_of = user_of or (lambda cookies: None)

    # -- entry --------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        problem = self._host_problem(headers) or self._origin_problem(scope, headers)
        if problem is not None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            else:
                await _json_response(send, *problem)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        size_problem = self._size_problem(path, headers)
        if size_problem is not None:
            await _json_response(send, *size_problem)
            return
        if path.rstrip("/") == "/logout":
            if method != "POST":
                detail = "log out with POST /logout (the page's Log out button)"
                await _json_response(send, 405, detail, {"Allow": "POST"})
                return
            scope = {**scope, "method": "GET"}  # Gradio 6.31 serves logout by GET only
        if method == "POST" and path.rstrip("/") == "/login":
            await self._login(scope, receive, send)
            return
        if path.startswith("/gradio_api/"):
            await self._gradio(scope, receive, send, headers)
            return
        await self.app(scope, receive, self._cookie_send(send))

    # -- checks -------------------------------------------------------------------------------

    def _host_problem(self, headers: Mapping[str, str]) -> tuple[int, str] | None:
        trusted = self.config.trusted_hosts
        if trusted is None:
            return None
        host = headers.get("host", "")
        name = host[1:].split("]")[0] if host.startswith("[") else host.split(":")[0]
        if name in trusted:
            return None
        names = ", ".join(sorted(trusted))
        return (
            403,
            f"this server has no accounts and answers only to {names}; set RAGCHAT_AUTH or "
            "RAGCHAT_ALLOW_OPEN=1 to serve it under another name",
        )

    def _origin_problem(self, scope: Scope, headers: Mapping[str, str]) -> tuple[int, str] | None:
        websocket = scope["type"] == "websocket"
        if not websocket and scope.get("method", "GET") in SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is None:
            # no Origin: not a browser, or an old one; a browser that says cross-site is refused
            if headers.get("sec-fetch-site", "") == "cross-site":
                return 403, "cross-site request refused"
            return None
        if origin.lower().rstrip("/") in self.config.allowed_origins:
            return None
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        if same_origin(origin, headers, scheme):
            return None
        return (
            403,
            f"cross-origin request from {origin} refused (setting RAGCHAT_ALLOWED_ORIGINS "
            "lists the origins allowed besides the server's own)",
        )

    def _size_problem(self, path: str, headers: Mapping[str, str]) -> tuple[int, str] | None:
        length = headers.get("content-length", "")
        if path == "/api/documents" and length.isdigit() and int(length) > self.config.upload_cap:
            return 413, (
                f"the upload is {int(length) / 2**20:.0f} MB; at most {self.config.max_files} "
                f"files of {self.config.max_file_mb:g} MB each (setting RAGCHAT_MAX_FILE_MB)"
            )
        return None

    # -- cookies ------------------------------------------------------------------------------

    def _cookie_send(self, send: Send) -> Send:
        max_age = max(1, int(self.config.session_hours * 3600))

        async def wrapped(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                fixed = []
                for key, value in message.get("headers", []):
                    if key.lower() == b"set-cookie":
                        value = _lax_cookie(value.decode("latin-1"), max_age).encode("latin-1")
                    fixed.append((key, value))
                message = {**message, "headers": fixed}
            await send(message)

        return wrapped

    # -- login --------------------------------------------------------------------------------

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive, 64 * 1024)
        if body is None:
            await _json_response(send, 413, "the login form is too large")
            return
        form = parse_qs(body.decode("utf-8", "replace")) if body else {}
        account = (form.get("username") or [""])[0].strip()
        client = (scope.get("client") or ("?", 0))[0]
        wait = self.limiter.retry_after(account, client)
        if wait > 0:
            log.warning(
                "login for %r from %s refused: locked for %.0f s more", account, client, wait
            )
            seconds = math.ceil(wait)
            detail = f"Too many failed logins: try again in {seconds} s."
            await _json_response(send, 429, detail, {"Retry-After": str(seconds)})
            return
        status: list[int] = []
        cookies = self._cookie_send(send)

        async def watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await cookies(message)

        await self.app(scope, _replay(body), watch)
        if status and status[0] == 200:
            self.limiter.succeeded(account, client)
        elif status and status[0] in (400, 401):
            lock = self.limiter.failed(account, client)
            locked = f"; locked for {lock:.0f} s" if lock else ""
            log.warning("failed login for %r from %s%s", account, client, locked)

    # -- Gradio -------------------------------------------------------------------------------

    async def _gradio(
        self, scope: Scope, receive: Receive, send: Send, headers: Mapping[str, str]
    ) -> None:
        """Per-user ownership of uploads (always), queue sessions and event results (accounts
        on: without accounts there is one user)."""
        path: str = scope["path"]
        method: str = scope.get("method", "GET")
        send = self._cookie_send(send)
        if not self.config.accounts:
            if path.rstrip("/") == "/gradio_api/upload":
                await self._capture(scope, receive, send, self.config.default_user, path)
            else:
                await self.app(scope, receive, send)
            return
        user = self.user_of(_cookies(headers))
        if user is None:
            if path.startswith(_SESSION_ROUTES):  # Gradio 6.31 asks no login for these
                await _json_response(send, 401, "Not authenticated")
            else:
                await self.app(scope, receive, send)  # Gradio answers 401 where it checks
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        keys: list[str] = []
        if (match := _CALL_GET.match(path)) and method == "GET":
            keys.append(f"event:{match.group(1)}")
        if (match := _HEARTBEAT.match(path)) is not None:
            keys.append(f"session:{match.group(1)}")
        if "session_hash" in query:
            keys.append(f"session:{query['session_hash'][0]}")
        body: bytes | None = None
        if method == "POST" and path.rstrip("/") in (
            "/gradio_api/queue/join",
            "/gradio_api/cancel",
        ):
            body = await _read_body(receive, MAX_GUARDED_BODY)
            if body is None:
                await _json_response(send, 413, "the request is too large")
                return
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                data = {}
            if isinstance(data, dict) and isinstance(data.get("session_hash"), str):
                keys.append(f"session:{data['session_hash']}")
            receive = _replay(body)
        for key in keys:
            if key.startswith("session:"):
                allowed = self.sessions.claim(key, user)
            else:
                allowed = self.sessions.owner(key) == user
            if not allowed:
                log.warning("%r asked for another user's %s", user, key.split(":")[0])
                await _json_response(send, 404, "not found")
                return
        capture = path.rstrip("/") == "/gradio_api/upload" or (
            method == "POST" and _CALL_POST.match(path) is not None
        )
        if not capture:
            await self.app(scope, receive, send)
            return
        await self._capture(scope, receive, send, user, path)

    async def _capture(
        self, scope: Scope, receive: Receive, send: Send, user: str, path: str
    ) -> None:
        """Pass the request on and read the JSON it returns: the paths of an upload, or the
        event id of a call, recorded as this user's."""
        started: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def hold(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
                return
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = b"".join(chunks)
                if started.get("status") == 200:
                    self._record(user, path, body)
                await send(started)
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, hold)

    def _record(self, user: str, path: str, body: bytes) -> None:
        try:
            data = json.loads(body)
        except ValueError:
            return
        if path.rstrip("/") == "/gradio_api/upload":
            if isinstance(data, list):
                self.ledger.record(user, [p for p in data if isinstance(p, str)])
        elif isinstance(data, dict) and isinstance(data.get("event_id"), str):
            self.sessions.claim(f"event:{data['event_id']}", user)


def _cookies(headers: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in headers.get("cookie", "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            out.setdefault(name, value)
    return out


def _lax_cookie(value: str, max_age: int) -> str:
    """A Set-Cookie value with SameSite=Lax, and a Max-Age unless it is being deleted."""
    fixed = _SET_COOKIE_SAMESITE.sub("", value) + "; SameSite=Lax"
    if "max-age" not in value.lower() and "expires=" not in value.lower():
        fixed += f"; Max-Age={max_age}"
    return fixed


def gradio_user_resolver(gradio_app: Any) -> Callable[[Mapping[str, str]], str | None]:
    """The user a request's cookies sign in as, read from Gradio's own token table."""
    cookie_id = gradio_app.cookie_id
    names = (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}")

    def user_of(cookies: Mapping[str, str]) -> str | None:
        for name in names:
            token = cookies.get(name)
            if token:
                user = gradio_app.tokens.get(token)
                if user is not None:
                    return str(user)
        return None

    return user_of


def mounted_gradio_app(app: Any) -> Any:
    """The Gradio application `gr.mount_gradio_app` mounted inside `app`."""
    from starlette.routing import Mount

    for route in getattr(app, "routes", []):
        if isinstance(route, Mount) and hasattr(route.app, "tokens"):
            return route.app
    raise RuntimeError("no Gradio app is mounted")


def find_guard(app: Any) -> WebGuard | None:
    """The WebGuard instance of a built app (after its middleware stack is built)."""
    node = getattr(app, "middleware_stack", None)
    while node is not None:
        if isinstance(node, WebGuard):
            return node
        node = getattr(node, "app", None)
    return None

"""WebGuard: the ASGI middleware in front of every route (REST, /v1 and the mounted Gradio UI)."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from webapp.security.origins import same_origin
from webapp.security.sessions import GradioSessions, LoginLimiter
from webapp.security.uploads import UploadLedger

log = logging.getLogger("ragchat.webapp.security")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_GUARDED_BODY = 1 << 20  # bodies read by the guard (login, queue joins): 1 MB at most
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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

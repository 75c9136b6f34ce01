"""Logins: sessions that expire, failures throttled per account and per client, the password
check off the event loop, and Gradio's queue sessions and event results bound to their user."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

BINDING_TTL_S = 6 * 3600.0


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

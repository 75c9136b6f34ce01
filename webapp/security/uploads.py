"""Which user uploaded which file, and the guard that refuses every other server path before
Gradio opens it (Gradio 6.31 copies any path an event names into its cache: a mounted app
never sets `has_launched`, which is what turns on its own check)."""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from webapp.security.origins import escape_text

log = logging.getLogger("ragchat.webapp.security")

UPLOAD_TTL_S = 3600.0  # an upload not submitted within an hour is forgotten (and cleaned)


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

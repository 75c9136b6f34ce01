"""Web origins (RAGCHAT_ALLOWED_ORIGINS, same-origin checks) and text shown by Gradio's pop-ups."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit


def escape_text(text: str) -> str:
    """Text for Gradio's pop-ups (gr.Warning, gr.Info, gr.Error), which render HTML."""
    import html

    return html.escape(str(text), quote=True)


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

"""serve(settings, host, port, demo): build the engine, repair, seed the demo documents, and run
the FastAPI app (REST API, OpenAI-compatible API, the Gradio UI mounted at /) with uvicorn."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from rag_core.config import Settings
from rag_core.engine import Engine
from rag_core.errors import ConfigError
from rag_core.ingest.detect import SUPPORTED_EXTENSIONS

log = logging.getLogger("ragchat.webapp")

DEMO_DIR = Path(__file__).resolve().parent.parent / "assets" / "demo"


def ingest_demo(engine: Engine, folder: Path = DEMO_DIR) -> list[str]:
    """Add the demo documents to an empty knowledge base, so a first run is useful at once."""
    if not folder.is_dir():
        return [f"no demo documents at {folder}"]
    paths = [
        p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS
    ]
    results = engine.ingest(paths)
    return [
        f"demo {r.status}: {p.name} {r.error or ''}".rstrip()
        for p, r in zip(paths, results, strict=True)
    ]


def warm_up(engine: Engine) -> None:
    """Load the models and bring the keyword index up to date in the background, so the first
    question waits for neither (a new replica indexes the shared store's documents here)."""
    try:
        engine.warm_up()
    except Exception:  # the first question will report the problem properly
        log.exception("warming up the models failed")


LOOPBACK = {"127.0.0.1", "localhost", "::1"}
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})  # what a browser sends as Host


def check_open_host(settings: Settings, host: str) -> None:
    """Without accounts the API and UI are open to anyone who can reach them: only loopback,
    unless RAGCHAT_ALLOW_OPEN=1 says that is intended."""
    if settings.auth or settings.allow_open:
        return
    if host in LOOPBACK or host.startswith("127."):
        return
    raise ConfigError(
        f"refusing to serve on {host} without accounts: anyone who can reach it could read and "
        "delete the documents and use the API. Set RAGCHAT_AUTH (users and password hashes; "
        "API keys from `ragchat apikey create`), serve on 127.0.0.1, or set RAGCHAT_ALLOW_OPEN=1 "
        "if the network in front of it is trusted."
    )


STALE_UPLOAD_AT_START_S = 300.0  # at start: what no live upload can still be writing
STALE_UPLOAD_S = 3600.0  # later: uploads never submitted within an hour
CLEAN_EVERY_S = 600.0


def _start_upload_cleaner(settings: Settings) -> None:
    """Every ten minutes, delete uploads that were never submitted (aborted uploads)."""
    from webapp.ui.knowledge import clean_stale_uploads

    def loop() -> None:
        while True:
            time.sleep(CLEAN_EVERY_S)
            try:
                removed = clean_stale_uploads(settings, STALE_UPLOAD_S)
                if removed:
                    log.info("removed %d abandoned upload file(s)", removed)
            except Exception:  # never let the cleaner die
                log.exception("cleaning the upload folder failed")

    threading.Thread(target=loop, name="upload-cleaner", daemon=True).start()


def build_server_app(settings: Settings, demo: bool = True) -> tuple[Engine, Any]:
    """The engine (recovered, demo seeded, warming up) and the FastAPI app with the UI mounted."""
    from rag_core.factory import build_engine
    from webapp.api import create_app
    from webapp.auth import parse_users
    from webapp.ui.knowledge import clean_stale_uploads
    from webapp.ui.layout import build_app, ensure_secret
    from webapp.ui.theme import launch_options

    users = parse_users(settings.auth) if settings.auth else None  # bad config fails before models
    engine = build_engine(settings)
    for action in engine.recover(wait=False):
        log.info("recovered: %s", action)
    if demo and not engine.documents():
        for line in ingest_demo(engine):
            log.info(line)
    threading.Thread(target=warm_up, args=(engine,), name="warm-up", daemon=True).start()

    removed = clean_stale_uploads(settings, STALE_UPLOAD_AT_START_S)
    if removed:
        log.info("removed %d stale upload file(s) from %s", removed, settings.uploads_path)
    _start_upload_cleaner(settings)
    ui = build_app(engine, settings, secret=ensure_secret(settings.home))
    ui.queue(default_concurrency_limit=1)
    options = dict(launch_options())
    options["max_file_size"] = int(settings.max_file_mb * 1024 * 1024 * 1.05)
    # open without accounts (loopback only): answer only to loopback names, against DNS rebinding
    trusted = None if users is not None or settings.allow_open else LOOPBACK_NAMES
    app = create_app(
        engine, settings, users=users, ui=ui, ui_options=options, trusted_hosts=trusted
    )
    return engine, app


KEEP_ALIVE_S = 5  # an idle keep-alive connection is closed after this long
MAX_HEADER_BYTES = 16 * 1024  # request line and headers, as h11 buffers them


def header_timeout_protocol(seconds: float) -> type[Any]:
    """uvicorn's h11 protocol with a deadline for a request's headers: a client that opens a
    connection (or finishes a response) and then sends headers slowly, or never, is dropped
    after `seconds` (uvicorn 0.54 waits forever: slow-header sockets pile up)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutProtocol(H11Protocol):
        header_timeout = seconds
        _header_timer: Any = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def handle_events(self) -> None:
            cycle = self.cycle
            super().handle_events()
            if self.cycle is not cycle:  # a request's headers are complete
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(self.header_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _too_slow(self) -> None:
            self._header_timer = None
            busy = self.cycle is not None and not self.cycle.response_complete
            if busy or self.transport.is_closing():
                return
            log.info(
                "closed a connection from %s: no request headers in %g s",
                self.client,
                self.header_timeout,
            )
            self.transport.close()

    return HeaderTimeoutProtocol


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 7860,
    demo: bool = True,
) -> None:
    """Run the web app (UI, REST API, OpenAI-compatible API) with uvicorn until interrupted."""
    import uvicorn

    from rag_core.factory import offline_environment

    offline_environment()
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("ragchat").setLevel(logging.INFO)
    check_open_host(settings, host)
    _engine, app = build_server_app(settings, demo)
    print(f"ragchat: serving on http://{host}:{port} (API: /api, /v1; docs: /api/docs)", flush=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        http=header_timeout_protocol(settings.header_timeout_s),
        timeout_keep_alive=KEEP_ALIVE_S,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        limit_concurrency=settings.max_connections,
    )

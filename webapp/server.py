"""serve(settings, host, port, demo): build the engine, repair, seed the demo documents, launch."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from rag_core.config import Settings
from rag_core.engine import Engine
from rag_core.ingest.pipeline import SUPPORTED_EXTENSIONS

log = logging.getLogger("ragchat.webapp")

DEMO_DIR = Path(__file__).resolve().parent.parent / "assets" / "demo"


def ingest_demo(engine: Engine, folder: Path = DEMO_DIR) -> list[str]:
    """Add the demo documents to an empty knowledge base, so a first run is useful at once."""
    lines = []
    if not folder.is_dir():
        return [f"no demo documents at {folder}"]
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in SUPPORTED_EXTENSIONS:
            result = engine.ingest_path(path)
            lines.append(f"demo {result.status}: {path.name} {result.error or ''}".rstrip())
    return lines


def warm_up(engine: Engine) -> None:
    """Load the models in the background so the first question does not wait for them."""
    try:
        engine.embedder.embed_query("warm up")
        load = getattr(engine.generator, "load", None)
        if callable(load):
            load()
    except Exception:  # the first question will report the problem properly
        log.exception("warming up the models failed")


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 7860,
    demo: bool = True,
    *,
    block: bool = True,
) -> Any:
    """Run the web app until interrupted (`block=False` returns the running gradio app)."""
    from rag_core.factory import build_engine, offline_environment

    offline_environment()
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("ragchat").setLevel(logging.INFO)
    from webapp.app import build_app, ensure_secret, launch_options
    from webapp.auth import authenticator, parse_users

    users = parse_users(settings.auth) if settings.auth else None  # bad config fails before models
    engine = build_engine(settings)
    for action in engine.pipeline.recover():
        log.info("recovered: %s", action)
    if demo and not engine.documents():
        for line in ingest_demo(engine):
            log.info(line)
    threading.Thread(target=warm_up, args=(engine,), name="warm-up", daemon=True).start()

    app = build_app(engine, settings, secret=ensure_secret(settings.home))
    app.queue(default_concurrency_limit=1)
    options = launch_options()
    print(f"ragchat: serving on http://{host}:{port}", flush=True)
    app.launch(
        server_name=host,
        server_port=port,
        auth=authenticator(users) if users else None,
        auth_message="Sign in to ragchat." if users else None,
        max_file_size=int(settings.max_file_mb * 1024 * 1024 * 1.05),
        prevent_thread_lock=not block,
        quiet=True,
        **options,
    )
    return app

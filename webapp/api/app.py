"""create_app(engine, settings) -> FastAPI: the routers of webapp/api/, the UI mounted at '/',
and the guards in front of everything (see the package docstring)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Collection, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from rag_core.config import Settings
from rag_core.engine import Engine
from webapp.api import (
    ask,
    collections,
    conversations,
    documents,
    errors,
    health,
    index,
    insights,
    openai,
)
from webapp.api.deps import ApiState
from webapp.api.documents import MAX_FILES_PER_UPLOAD
from webapp.auth import LOCAL_USER
from webapp.security import (
    GuardConfig,
    SessionTokens,
    UploadLedger,
    WebGuard,
    async_authenticator,
    gradio_user_resolver,
    guard_file_inputs,
    mounted_gradio_app,
    parse_origins,
)

log = logging.getLogger("ragchat.webapp.api")

DESCRIPTION = (
    "Chat with your documents: answers with a citation [n] on every claim, each "
    "sentence checked against its source. With accounts on, send "
    "`Authorization: Bearer KEY` (keys from `ragchat apikey create --user NAME`)."
)


def create_app(
    engine: Engine,
    settings: Settings,
    *,
    users: Mapping[str, str] | None = None,
    ui: Any = None,
    ui_options: Mapping[str, Any] | None = None,
    trusted_hosts: Collection[str] | None = None,
) -> FastAPI:
    """The FastAPI application; `ui` (a gr.Blocks, queue already set) is mounted at '/'.

    `users` (from RAGCHAT_AUTH) turns accounts on: the UI asks for a login and the API for a
    per-user key. `ui_options` go to gr.mount_gradio_app (theme, CSS, max_file_size, ...).
    `trusted_hosts`: the only Host header names answered (see webapp.security.WebGuard).
    """
    app = FastAPI(
        title="ragchat API",
        version="1",
        description=DESCRIPTION,
        docs_url=None,  # FastAPI's pages load JavaScript from a CDN; /api/docs needs none
        redoc_url=None,
    )
    app.state.ragchat = ApiState.create(engine, settings, users)
    errors.install(app)
    for module in (health, documents, collections, index, ask, conversations, insights, openai):
        app.include_router(module.router)

    ledger = UploadLedger()
    user_of = None
    if ui is not None:
        user_of = _mount_ui(app, ui, settings, users, ui_options, ledger)
    _add_guards(app, settings, users is not None, trusted_hosts, ledger, user_of)
    app.state.upload_ledger = ledger
    return app


def _add_guards(
    app: FastAPI,
    settings: Settings,
    accounts: bool,
    trusted_hosts: Collection[str] | None,
    ledger: UploadLedger,
    user_of: Any,
) -> None:
    """CORS, then webapp.security's WebGuard around everything (the last added runs first)."""
    # The parent configures CORS, so Gradio adds none of its own (Gradio 6.31 echoes any Origin
    # with credentials when Host is not localhost): only the listed origins get CORS headers.
    origins = sorted(parse_origins(settings.allowed_origins))
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_credentials=True,
        allow_methods=["*"],
        allow_headers=["*"],
    )
    upload_cap = int(settings.max_file_mb * 1024 * 1024 * 1.05) * MAX_FILES_PER_UPLOAD + 2**20
    config = GuardConfig(
        upload_cap=upload_cap,
        max_file_mb=settings.max_file_mb,
        max_files=MAX_FILES_PER_UPLOAD,
        accounts=accounts,
        trusted_hosts=frozenset(trusted_hosts) if trusted_hosts is not None else None,
        allowed_origins=frozenset(origins),
        session_hours=settings.session_hours,
        default_user=LOCAL_USER,
    )
    app.add_middleware(WebGuard, config=config, ledger=ledger, user_of=user_of)


def _mount_ui(
    app: FastAPI,
    ui: Any,
    settings: Settings,
    users: Mapping[str, str] | None,
    ui_options: Mapping[str, Any] | None,
    ledger: UploadLedger,
) -> Any:
    """Mount the Gradio UI at '/' with its guards; returns the resolver of a request's user."""
    import gradio as gr

    from webapp.auth import authenticator

    accepted = inspect.signature(gr.mount_gradio_app).parameters
    options = {k: v for k, v in (ui_options or {}).items() if k in accepted}
    for key in set(ui_options or {}) - set(options):
        log.warning("the mounted UI ignores the launch option %r", key)
    gr.mount_gradio_app(
        app,
        ui,
        path="/",
        auth=async_authenticator(authenticator(dict(users))) if users else None,
        auth_message="Sign in to ragchat." if users else None,
        **options,
    )
    # Gradio 6.31: a mounted app never sets has_launched, which is what turns on Gradio's own
    # check that event inputs name files from its upload folder (guard_file_inputs checks more).
    ui.has_launched = True
    gradio_app = mounted_gradio_app(app)
    gradio_app.tokens = SessionTokens(settings.session_hours * 3600)
    guard_file_inputs(ui, ledger, LOCAL_USER)
    ui.upload_ledger = ledger  # the upload handler checks it again before reading a file
    return gradio_user_resolver(gradio_app)

"""The knowledge base tab: upload (with its staging and clean-up), a document's chunks, delete,
refresh; and the document counts the chat's welcome card shows.

Uploads reach the app through Gradio's upload route, which stores them in its cache
(RAGCHAT_HOME/uploads/incoming). Only a file this server received from the same user is read: a
client may name any path, which Gradio would copy into its cache first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr

from rag_core.config import Settings
from rag_core.engine import Engine
from rag_core.errors import DocumentNotFoundError, UserError
from rag_core.ingest.detect import SUPPORTED_EXTENSIONS
from rag_core.ingest.pipeline import IngestSource, clean_name
from rag_core.types import DocumentRecord, IngestResult
from webapp import render
from webapp.render.text import plural
from webapp.ui.common import actor_of, notify, user_of, warn

log = logging.getLogger("ragchat.webapp.ui.knowledge")

PROGRESS = gr.Progress()  # gradio injects the real tracker for a parameter with this default
UPLOAD_CACHE = "incoming"  # Gradio's upload cache, inside RAGCHAT_HOME/uploads
CONSUMED_KEPT = 256  # outcomes of moved-away cache files remembered for concurrent twins
_STAGED_EXTENSIONS = frozenset(SUPPORTED_EXTENSIONS)


def uploaded_files(payload: Any) -> list[tuple[str, str]]:
    """(server path, name the user gave the file) for each file of an unpreprocessed gr.File.

    Gradio strips characters such as < > " from the stored file name; the knowledge base keeps
    (and shows, escaped) the original name. Gradio has already checked that every path lies in
    its upload folder.
    """
    items = payload if isinstance(payload, list) else [payload] if payload else []
    out = []
    for item in items:
        if isinstance(item, dict) and item.get("path"):
            path = str(item["path"])
            out.append((path, str(item.get("orig_name") or Path(path).name)))
        elif isinstance(item, str) and item:
            out.append((item, Path(item).name))
    return out


def configure_upload_dir(settings: Settings) -> Path:
    """Point Gradio's upload cache (GRADIO_TEMP_DIR) at RAGCHAT_HOME/uploads/incoming, so an
    upload is never written outside the data folder. build_app calls it; a server that builds
    the Gradio app some other way must call it before creating or mounting the app."""
    folder = (settings.uploads_path / UPLOAD_CACHE).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    return folder


def stage_upload(path: Path, settings: Settings, name: str) -> Path:
    """Move an upload out of Gradio's cache (where its file name is the user's) to
    RAGCHAT_HOME/uploads/<random hex><ext>: a generated name, with the extension only when it is
    a supported one. The display name is kept apart, by the caller. Gradio's per-file folder is
    removed when it is left empty."""
    uploads = settings.uploads_path.resolve()
    uploads.mkdir(parents=True, exist_ok=True)
    ext = Path(clean_name(name)).suffix.lower()
    staged = uploads / f"{uuid.uuid4().hex}{ext if ext in _STAGED_EXTENSIONS else ''}"
    shutil.move(str(path), staged)
    return staged


def clean_stale_uploads(settings: Settings, max_age_s: float) -> int:
    """Delete uploads (Gradio's cache and staged files) untouched for `max_age_s` seconds: an
    aborted or never-submitted upload must not stay on disk. Empty folders go too, once
    untouched as long (a fresh one may be about to receive an upload). Returns how many files
    went."""
    uploads = settings.uploads_path
    if not uploads.is_dir():
        return 0
    cutoff = time.time() - max_age_s
    removed = 0
    paths = sorted(uploads.rglob("*"), reverse=True)  # files before their folders
    touched: dict[Path, float] = {}  # read before any unlink, which touches the folder
    for path in paths:
        with contextlib.suppress(OSError):
            touched[path] = path.lstat().st_mtime
    for path in paths:
        try:
            if touched.get(path, cutoff) >= cutoff:
                continue
            if path.is_symlink() or path.is_file():
                path.unlink()
                removed += 1
            elif path.is_dir() and path != uploads / UPLOAD_CACHE:
                path.rmdir()  # only when empty
        except OSError:
            continue
    return removed


def discard_copy(path: Path, cache: Path) -> None:
    """Delete a file Gradio copied into its upload cache. Its folder stays for
    clean_stale_uploads (see stage_upload)."""
    resolved = path.resolve()
    if resolved.parent == cache or not resolved.is_relative_to(cache):
        return
    with contextlib.suppress(OSError):
        resolved.unlink(missing_ok=True)


def eta_text(elapsed: float, fraction: float) -> str:
    """' · about 40 s left' from the time so far and the share done; '' until 5% is done."""
    if fraction < 0.05 or fraction >= 1.0:
        return ""
    left = elapsed * (1.0 - fraction) / fraction
    if left < 60:
        return f" · about {max(round(left), 1)} s left"
    minutes, seconds = divmod(round(left), 60)
    return f" · about {minutes} min {seconds:02d} s left"


def _short(name: str) -> str:
    return name if len(name) <= 60 else name[:57] + "…"


def _failed(name: str, reason: str) -> IngestResult:
    shown = clean_name(name)
    return IngestResult(shown, "error", error=f"{shown}: {reason}")


class KnowledgeController:
    """The knowledge base tab's events. Building it points Gradio's upload cache into the data
    folder (configure_upload_dir), so build it before the gr.Blocks."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.upload_cache = configure_upload_dir(settings)
        # The gr.Blocks these events belong to: webapp.api hangs its upload ledger on it.
        self.blocks: Any = None
        # Outcome per Gradio cache path: the same bytes under the same name uploaded twice at
        # once share one cached file, which the first upload moves away; the second reports it.
        self.consumed: OrderedDict[str, IngestResult] = OrderedDict()
        # the running upload's stop switch, per browser session (the Cancel button sets it)
        self.cancels: dict[str, threading.Event] = {}

    # -- what the other tabs show --------------------------------------------------------------

    def _documents(self, request: gr.Request | None = None) -> list[DocumentRecord]:
        """The documents the page's user may see."""
        return self.engine.documents(actor_of(self.settings, request))

    def index_banner(self) -> str:
        """The re-embedding banner (polled by the page): follows a finished reindex first, so
        the server switches to the new index even while nobody asks."""
        try:
            self.engine.follow_index()
        except UserError as exc:
            return render.render_index_banner(None, str(exc))
        return render.render_index_banner(self.engine.index_status())

    def welcome(self, request: gr.Request | None = None) -> str:
        """The welcome card of an empty conversation, with the counts of what the user sees."""
        docs = self._documents(request)
        return render.render_welcome(len(docs), sum(d.chunk_count for d in docs))

    def catalog(
        self, selected: str | None = None, request: gr.Request | None = None
    ) -> tuple[str, Any]:
        """The documents table with each document's collections (those the user may see), and
        the picker's choices (keeping `selected` if it still exists)."""
        actor = actor_of(self.settings, request)
        docs = self._documents(request)
        ids = {d.id for d in docs}
        picker = gr.update(
            choices=render.document_choices(docs), value=selected if selected in ids else None
        )
        seen = {c.name for c in self.engine.collections.list(actor)}
        found = self.engine.collections.memberships(ids)
        groups = {d: [n for n in names if n in seen] for d, names in found.items()}
        return render.render_documents(docs, groups), picker

    def _outputs(
        self, results_html: Any, selected: str | None = None, request: gr.Request | None = None
    ) -> tuple[Any, ...]:
        """(upload results, documents table, picker)."""
        return (results_html, *self.catalog(selected, request))

    # -- events ----------------------------------------------------------------------------------

    def received_by(self, path: str, user: str) -> bool:
        """Whether `user` uploaded `path` through this server's upload route (the guard in front
        of Gradio checked it already; this holds for an app served without that guard too)."""
        ledger = getattr(self.blocks, "upload_ledger", None)
        if ledger is not None:
            return bool(ledger.owned_by(path, user))
        return path in getattr(self.blocks, "upload_file_set", set())

    def _in_cache(self, path: str) -> bool:
        return Path(path).resolve().is_relative_to(self.upload_cache)

    def upload(
        self,
        payload: Any,
        request: gr.Request,
        progress: gr.Progress = PROGRESS,
        collection: str | None = None,
    ) -> tuple[Any, ...]:
        """Ingest the uploaded files in one batch into `collection` (None: Default), with a
        progress bar; one result row each."""
        files = uploaded_files(payload)
        if not files:
            return (*self._outputs(gr.skip(), None, request), gr.skip())
        if collection:
            try:  # before anything is staged: a collection the user may not add to
                self.engine.collections.get(collection, actor_of(self.settings, request))
            except UserError as exc:
                warn(str(exc))
                return (*self._outputs(gr.skip(), None, request), None)
        results: dict[int, IngestResult] = {}
        staged: dict[int, tuple[str, Path, str]] = {}  # slot -> (cache path, staged, name)
        for i, (path, name) in enumerate(files):
            outcome = self._accept(path, name, request)
            if isinstance(outcome, IngestResult):
                results[i] = outcome
            else:
                staged[i] = (path, outcome, name)

        started = time.monotonic()

        def report(stage: str, fraction: float) -> None:
            fraction = min(max(fraction, 0.0), 1.0)
            left = eta_text(time.monotonic() - started, fraction)
            progress(fraction, desc=f"{stage} ({plural(len(files), 'file')}){left}")

        session = request.session_hash or ""
        cancel = self.cancels[session] = threading.Event()
        report("reading", 0.0)
        try:
            results.update(self._ingest(staged, report, request, cancel, collection or None))
        finally:
            if self.cancels.get(session) is cancel:
                del self.cancels[session]
        progress(1.0, desc="cancelled" if cancel.is_set() else "done")
        rows = [results[i] for i in range(len(files))]
        return (*self._outputs(render.render_ingest_results(rows), None, request), None)

    def cancel(self, request: gr.Request) -> None:
        """Stop this browser's running upload: files not added yet are dropped, nothing of them
        is kept (the files already added stay)."""
        running = self.cancels.get(request.session_hash or "")
        if running is None:
            warn("No upload of yours is running.")
            return
        running.set()
        notify("Cancelling the upload: files not added yet are dropped.")

    def _accept(self, path: str, name: str, request: gr.Request) -> Path | IngestResult:
        """An uploaded file staged for ingestion; or its twin's outcome, or a refusal."""
        earlier = self.consumed.get(path) if not Path(path).exists() else None
        if earlier is not None:
            if earlier.document is not None:
                return IngestResult(clean_name(name), "duplicate", earlier.document)
            return replace(earlier, name=clean_name(name))
        # Only files this server received through its upload route: Gradio copies any other
        # path a client names (e.g. the data folder's database) into its cache first.
        if not self.received_by(path, user_of(request)) or not self._in_cache(path):
            log.warning("refused a path that was not uploaded: %r", path)
            discard_copy(Path(path), self.upload_cache)
            return _failed(name, "not an uploaded file")
        try:
            return stage_upload(Path(path), self.settings, name)
        except OSError as exc:
            return _failed(name, f"cannot read the upload ({exc})")

    def _ingest(
        self,
        staged: dict[int, tuple[str, Path, str]],
        report: Callable[[str, float], None],
        request: gr.Request,
        cancel: threading.Event | None = None,
        collection: str | None = None,
    ) -> dict[int, IngestResult]:
        """The staged files through the engine's one batched ingest; staged copies removed."""
        slots = list(staged)
        sources: list[IngestSource] = [(staged[i][1], staged[i][2]) for i in slots]
        actor = actor_of(self.settings, request)
        try:
            done = self.engine.ingest(
                sources, report, actor=actor, cancel=cancel, collection=collection
            )
        except Exception as exc:
            log.exception("ingesting %d uploaded files failed", len(slots))
            done = [
                IngestResult(staged[i][2], "error", error=f"{staged[i][2]}: {exc}") for i in slots
            ]
        finally:
            for _, copy, _ in staged.values():
                copy.unlink(missing_ok=True)
        for i, result in zip(slots, done, strict=True):
            self.consumed[staged[i][0]] = result
        while len(self.consumed) > CONSUMED_KEPT:
            self.consumed.popitem(last=False)
        return dict(zip(slots, done, strict=True))

    def show_chunks(self, doc_id: str | None, request: gr.Request | None = None) -> str:
        """The chunks of the picked document (one the user may see)."""
        if not doc_id:
            return render.render_chunks(None, [])
        actor = actor_of(self.settings, request)
        try:
            doc = self.engine.document(doc_id, actor=actor)
            return render.render_chunks(doc, self.engine.chunks_of(doc.id, actor=actor))
        except DocumentNotFoundError:
            return '<p class="rc-muted">That document no longer exists.</p>'

    def delete_document(self, doc_id: str | None, request: gr.Request) -> tuple[Any, ...]:
        """Remove the picked document from the knowledge base and both indexes (with accounts
        on: only its owner or an admin)."""
        if not doc_id:
            warn("Pick a document to delete.")
            return (*self._outputs(gr.skip(), None, request), gr.skip())
        try:
            record = self.engine.delete_document(doc_id, actor=actor_of(self.settings, request))
        except UserError as exc:
            warn(str(exc))
            return (*self._outputs(gr.skip(), None, request), gr.skip())
        msg = (
            f'<p class="rc-note">Deleted {render.esc(record.name)} '
            f"({record.chunk_count} chunks).</p>"
        )
        return (*self._outputs(msg, None, request), render.render_chunks(None, []))

    def refresh_documents(
        self, selected: str | None, request: gr.Request | None = None
    ) -> tuple[Any, ...]:
        # the Refresh button (and /documents for programs)
        return self.catalog(selected, request)

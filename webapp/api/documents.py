"""/api/documents: the knowledge base (shared by all users): list, show, delete, upload."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Annotated

from fastapi import APIRouter, File, HTTPException, UploadFile

from rag_core.engine import Engine
from rag_core.errors import DocumentNotFoundError, PermissionDeniedError, RagError
from rag_core.types import Actor, IngestResult
from webapp.api.deps import ActorDep, EngineDep, IngestLock, SettingsDep, User
from webapp.api.errors import ERRORS, not_found
from webapp.api.schemas import ChunkOut, DocumentDetail, DocumentOut, UploadResponse, UploadResult

log = logging.getLogger("ragchat.webapp.api")

MAX_FILES_PER_UPLOAD = 50

router = APIRouter(tags=["documents"], responses=ERRORS)


@router.get("/api/documents", response_model=list[DocumentOut])
def list_documents(user: User, engine: EngineDep) -> list[DocumentOut]:
    """Every document in the knowledge base (it is shared by all users)."""
    return [DocumentOut.model_validate(d) for d in engine.documents()]


@router.get("/api/documents/{document}", response_model=DocumentDetail)
def show_document(document: str, user: User, engine: EngineDep) -> DocumentDetail:
    """A document, by id, id prefix or name, with its chunks."""
    try:
        d = engine.document(document)
        chunks = engine.chunks_of(d.id)
    except DocumentNotFoundError as exc:
        raise not_found(exc) from exc
    return DocumentDetail(
        **DocumentOut.model_validate(d).model_dump(),
        chunks=[ChunkOut.model_validate(c) for c in chunks],
    )


@router.delete("/api/documents/{document}", response_model=DocumentOut)
def delete_document(
    document: str, actor: ActorDep, engine: EngineDep, lock: IngestLock
) -> DocumentOut:
    """Remove a document from the knowledge base and every index; returns what was removed.
    With accounts on, only its owner or an admin (RAGCHAT_ADMINS) may (403 otherwise)."""
    try:
        with lock:
            return DocumentOut.model_validate(engine.delete_document(document, actor=actor))
    except DocumentNotFoundError as exc:
        raise not_found(exc) from exc
    except PermissionDeniedError as exc:
        raise HTTPException(403, str(exc)) from exc


@router.post("/api/documents", response_model=UploadResponse)
def upload_documents(
    files: Annotated[list[UploadFile], File(description="one or more files")],
    actor: ActorDep,
    engine: EngineDep,
    settings: SettingsDep,
    lock: IngestLock,
) -> UploadResponse:
    """Add files (PDF, DOCX, HTML, Markdown, text). Each gets its own result: added,
    duplicate (same content as an existing document), replaced (same name, new content:
    a new version) or error (with the reason; nothing is changed)."""
    if len(files) > MAX_FILES_PER_UPLOAD:
        raise HTTPException(
            422, f"{len(files)} files in one request; the limit is {MAX_FILES_PER_UPLOAD}"
        )
    limit = int(settings.max_file_mb * 1024 * 1024)
    too_big = {
        i: _too_big(u.filename or "upload", u.size, settings.max_file_mb)
        for i, u in enumerate(files)
        if u.size is not None and u.size > limit
    }
    rest = [(i, u) for i, u in enumerate(files) if i not in too_big]
    # one batched ingest; each upload is read only when its turn comes
    contents = ((u.file.read(limit + 1), u.filename or "upload") for _, u in rest)
    done = _ingest(engine, contents, [u.filename or "upload" for _, u in rest], actor, lock)
    by_index = {**too_big, **dict(zip((i for i, _ in rest), done, strict=True))}
    results = [by_index[i] for i in range(len(files))]
    return UploadResponse(results=[UploadResult.of(r) for r in results])


def _too_big(name: str, size: int, max_mb: float) -> IngestResult:
    return IngestResult(
        name,
        "error",
        error=f"{name}: the file is {size / 1024 / 1024:.1f} MB; the limit is {max_mb:g} MB "
        "(setting RAGCHAT_MAX_FILE_MB)",
    )


def _ingest(
    engine: Engine,
    contents: Iterable[tuple[bytes, str]],
    names: Sequence[str],
    actor: Actor,
    lock: threading.Lock,
) -> list[IngestResult]:
    """The files into the knowledge base in one batched ingest; an unexpected failure becomes
    every file's error result (the pipeline has removed what was written)."""
    try:
        with lock:
            return engine.ingest(contents, actor=actor)
    except RagError as exc:
        return [IngestResult(n, "error", error=f"{n}: {exc}") for n in names]
    except Exception as exc:
        log.exception("ingesting %d uploaded files failed", len(names))
        return [IngestResult(n, "error", error=f"{n}: {exc}") for n in names]

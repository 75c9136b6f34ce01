"""/api/documents: the documents the caller may see (those in collections visible to them): list,
show, delete, upload (into a collection)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Annotated, NamedTuple

from fastapi import APIRouter, File, Form, HTTPException, UploadFile

from rag_core.engine import Engine
from rag_core.errors import DocumentNotFoundError, PermissionDeniedError, RagError
from rag_core.types import Actor, DocumentRecord, IngestResult
from webapp.api.deps import ActorDep, EngineDep, IngestLock, SettingsDep
from webapp.api.errors import ERRORS, not_found
from webapp.api.schemas import ChunkOut, DocumentDetail, DocumentOut, UploadResponse, UploadResult

log = logging.getLogger("ragchat.webapp.api")

MAX_FILES_PER_UPLOAD = 50

router = APIRouter(tags=["documents"], responses=ERRORS)


def documents_out(engine: Engine, records: Sequence[DocumentRecord]) -> list[DocumentOut]:
    """Documents as the API shows them, each with the names of the collections it is in."""
    memberships = engine.collections.memberships(d.id for d in records)
    found = [DocumentOut.model_validate(d) for d in records]
    for out in found:
        out.collections = memberships.get(out.id, [])
    return found


@router.get("/api/documents", response_model=list[DocumentOut])
def list_documents(actor: ActorDep, engine: EngineDep) -> list[DocumentOut]:
    """The documents the caller may see: those in a collection visible to them."""
    return documents_out(engine, engine.documents(actor))


@router.get("/api/documents/{document}", response_model=DocumentDetail)
def show_document(document: str, actor: ActorDep, engine: EngineDep) -> DocumentDetail:
    """A document, by id, id prefix or name, with its chunks (404 for one the caller may not
    see, as for one that does not exist)."""
    try:
        d = engine.document(document, actor=actor)
        chunks = engine.chunks_of(d.id, actor=actor)
    except DocumentNotFoundError as exc:
        raise not_found(exc) from exc
    return DocumentDetail(
        **documents_out(engine, [d])[0].model_dump(),
        chunks=[ChunkOut.model_validate(c) for c in chunks],
    )


@router.delete("/api/documents/{document}", response_model=DocumentOut)
def delete_document(
    document: str, actor: ActorDep, engine: EngineDep, lock: IngestLock
) -> DocumentOut:
    """Remove a document from the knowledge base, every collection and every index; returns
    what was removed. With accounts on, only its owner or an admin (RAGCHAT_ADMINS) may (403
    otherwise; 404 for a document the caller may not see)."""
    try:
        with lock:
            collections = engine.collections.memberships(
                [engine.document(document, actor=actor).id]
            )
            removed = DocumentOut.model_validate(engine.delete_document(document, actor=actor))
            removed.collections = collections.get(removed.id, [])
            return removed
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
    collection: Annotated[
        str | None,
        Form(
            max_length=255,
            description="the collection (name or id) new documents join; omitted: Default",
        ),
    ] = None,
) -> UploadResponse:
    """Add files (PDF, DOCX, HTML, Markdown, text) to a collection. Each gets its own result:
    added, duplicate (same content as an existing document; it joins a named collection too),
    replaced (same name, new content: a new version) or error (with the reason; nothing is
    changed). 404 for a collection the caller may not see."""
    if collection is not None:
        try:
            collection = engine.collections.get(collection, actor).id
        except DocumentNotFoundError as exc:
            raise not_found(exc) from exc
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
    names = [u.filename or "upload" for _, u in rest]
    done = _ingest(engine, contents, names, Target(actor, collection), lock)
    by_index = {**too_big, **dict(zip((i for i, _ in rest), done, strict=True))}
    results = [by_index[i] for i in range(len(files))]
    memberships = engine.collections.memberships(r.document.id for r in results if r.document)
    return UploadResponse(results=[UploadResult.of(r, memberships) for r in results])


def _too_big(name: str, size: int, max_mb: float) -> IngestResult:
    return IngestResult(
        name,
        "error",
        error=f"{name}: the file is {size / 1024 / 1024:.1f} MB; the limit is {max_mb:g} MB "
        "(setting RAGCHAT_MAX_FILE_MB)",
    )


class Target(NamedTuple):
    """Who uploads, and the collection (id) the files join; None: Default."""

    actor: Actor
    collection: str | None


def _ingest(
    engine: Engine,
    contents: Iterable[tuple[bytes, str]],
    names: Sequence[str],
    target: Target,
    lock: threading.Lock,
) -> list[IngestResult]:
    """The files into the knowledge base in one batched ingest; an unexpected failure becomes
    every file's error result (the pipeline has removed what was written)."""
    try:
        with lock:
            return engine.ingest(contents, actor=target.actor, collection=target.collection)
    except RagError as exc:
        return [IngestResult(n, "error", error=f"{n}: {exc}") for n in names]
    except Exception as exc:
        log.exception("ingesting %d uploaded files failed", len(names))
        return [IngestResult(n, "error", error=f"{n}: {exc}") for n in names]

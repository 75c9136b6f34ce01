"""/api/collections: named groups of documents. Each has an owner and a visibility (private,
shared with members, or everyone); a user sees, searches and lists only the documents of the
collections visible to them. A collection the caller may not see answers 404, exactly like one
that does not exist."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from rag_core.engine import Engine
from rag_core.errors import (
    CollectionConflictError,
    DocumentNotFoundError,
    PermissionDeniedError,
    UserError,
)
from rag_core.types import Actor
from webapp.api.deps import ActorDep, EngineDep, IngestLock
from webapp.api.documents import documents_out
from webapp.api.errors import ERRORS
from webapp.api.schemas_collections import (
    CollectionCreate,
    CollectionDeleted,
    CollectionDetail,
    CollectionDocumentsChanged,
    CollectionDocumentsRequest,
    CollectionOut,
    CollectionUpdate,
)

router = APIRouter(tags=["collections"], responses=ERRORS)

RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {"description": "the name is taken, or the change would leave documents in no collection"},
    422: {"description": "a bad name, visibility or member list"},
}


def collection_error(exc: UserError) -> HTTPException:
    """The HTTP answer to an engine refusal: 404 not found (or not visible), 403 not the
    caller's to change, 409 a clash with what exists, 422 a bad value."""
    if isinstance(exc, DocumentNotFoundError):  # CollectionNotFoundError included
        return HTTPException(404, str(exc))
    if isinstance(exc, PermissionDeniedError):
        return HTTPException(403, str(exc))
    if isinstance(exc, CollectionConflictError):
        return HTTPException(409, str(exc))
    return HTTPException(422, str(exc))


@contextmanager
def refusals() -> Iterator[None]:
    """Turn the engine's refusals inside the block into HTTP errors (see collection_error)."""
    try:
        yield
    except UserError as exc:
        raise collection_error(exc) from exc


@router.get("/api/collections", response_model=list[CollectionOut])
def list_collections(actor: ActorDep, engine: EngineDep) -> list[CollectionOut]:
    """The collections the caller may see, Default first, then by name, with their document
    counts, owner, visibility and members."""
    return [CollectionOut.model_validate(c) for c in engine.collections.list(actor)]


@router.post("/api/collections", response_model=CollectionOut, status_code=201, responses=RESPONSES)
def create_collection(body: CollectionCreate, actor: ActorDep, engine: EngineDep) -> CollectionOut:
    """Make a collection owned by the caller (private unless told otherwise; 'shared' needs
    `members`). Names are unique, case-insensitively, and may not contain '/'."""
    with refusals():
        record = engine.collections.create(
            body.name,
            actor,
            description=body.description,
            visibility=body.visibility,
            members=body.members,
        )
    return CollectionOut.model_validate(record)


@router.get("/api/collections/{collection}", response_model=CollectionDetail)
def show_collection(collection: str, actor: ActorDep, engine: EngineDep) -> CollectionDetail:
    """A collection, by id or name (case-insensitive), with the documents in it."""
    return _detail(engine, collection, actor)


def _detail(engine: Engine, collection: str, actor: Actor) -> CollectionDetail:
    with refusals():
        record = engine.collections.get(collection, actor)
        inside = engine.collections.document_ids(record.id)
    documents = [d for d in engine.documents(actor) if d.id in inside]
    out = CollectionOut.model_validate(record)
    return CollectionDetail(**out.model_dump(), documents=documents_out(engine, documents))


@router.patch("/api/collections/{collection}", response_model=CollectionOut, responses=RESPONSES)
def update_collection(
    collection: str, body: CollectionUpdate, actor: ActorDep, engine: EngineDep
) -> CollectionOut:
    """Rename a collection or change its description, visibility or members (its owner or an
    admin only: 403 otherwise). Turning a collection 'shared' needs `members`."""
    with refusals():
        record = engine.collections.update(
            collection,
            actor,
            name=body.name,
            description=body.description,
            visibility=body.visibility,
            members=body.members,
        )
    return CollectionOut.model_validate(record)


@router.delete(
    "/api/collections/{collection}", response_model=CollectionDeleted, responses=RESPONSES
)
def delete_collection(
    collection: str,
    actor: ActorDep,
    engine: EngineDep,
    lock: IngestLock,
    delete_documents: Annotated[
        bool, Query(description="also delete its documents that are in no other collection")
    ] = False,
) -> CollectionDeleted:
    """Delete a collection (its owner or an admin only; never Default). A collection holding
    documents found in no other collection is refused (409) unless `delete_documents=true`,
    which deletes those documents with it."""
    with refusals(), lock:
        record, removed = engine.delete_collection(
            collection, actor=actor, delete_documents=delete_documents
        )
    return CollectionDeleted(
        collection=CollectionOut.model_validate(record),
        deleted_documents=documents_out(engine, removed),
    )


@router.post(
    "/api/collections/{collection}/documents",
    response_model=CollectionDocumentsChanged,
    responses=RESPONSES,
)
def add_documents(
    collection: str,
    body: CollectionDocumentsRequest,
    actor: ActorDep,
    engine: EngineDep,
    lock: IngestLock,
) -> CollectionDocumentsChanged:
    """Put documents (names or ids) in a collection the caller may see; a document already
    there is left as it is. Only a document's owner (or an admin) may file it: a collection
    shows its documents to all its readers (403 otherwise)."""
    with refusals(), lock:
        target = engine.collections.get(collection, actor)
        ids = [engine.document(key, actor=actor).id for key in dict.fromkeys(body.documents)]
        added = engine.collections.add_documents(target.id, ids, actor)
        record = engine.collections.get(target.id, actor)
    return CollectionDocumentsChanged(
        collection=CollectionOut.model_validate(record), changed=added
    )


@router.delete(
    "/api/collections/{collection}/documents/{document}",
    response_model=CollectionDocumentsChanged,
    responses=RESPONSES,
)
def remove_document(
    collection: str, document: str, actor: ActorDep, engine: EngineDep, lock: IngestLock
) -> CollectionDocumentsChanged:
    """Take a document (name or id) out of a collection (the collection's owner or an admin
    only). A document must stay in some collection: 409 when this is its last one (add it to
    another first, or delete the document); 404 when it is not in this collection."""
    with refusals(), lock:
        target = engine.collections.get(collection, actor)
        doc_id = engine.document(document, actor=actor).id
        if doc_id not in engine.collections.document_ids(target.id):
            raise DocumentNotFoundError(
                f"Document {document!r} is not in collection {target.name!r}"
            )
        removed = engine.collections.remove_documents(target.id, [doc_id], actor)
        record = engine.collections.get(target.id, actor)
    return CollectionDocumentsChanged(
        collection=CollectionOut.model_validate(record), changed=removed
    )

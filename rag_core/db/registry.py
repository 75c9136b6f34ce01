"""DocumentRegistry: which documents exist, in which version, and which may be retrieved.

A document is 'ingesting' while its chunks are written, 'ready' once committed, and 'deleting'
while its chunks are removed; only ready documents are ever retrieved (ready_ids), and rows left
'ingesting' or 'deleting' by a crash are found again with not_ready().

Every change (commit, mark_deleting, remove) also bumps the registry's generation in the same
transaction, so `change_token()` tells an app replica in one small query whether anything changed
since its local keyword index was last brought up to date, and `ready_chunk_counts()` (read on
every question) reads the rows again only when it moved.
"""

from __future__ import annotations

import builtins
import re
import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from rag_core.db.database import Database
from rag_core.db.models import (
    CollectionDocumentRow,
    DocumentRow,
    RegistryStateRow,
    VectorIndexRow,
    from_row,
    utcnow,
)
from rag_core.errors import DocumentNotFoundError, IndexChangedError
from rag_core.types import DEFAULT_COLLECTION, DocumentRecord, IngestReport

MIN_PREFIX = 6
_HEX = re.compile(r"[0-9a-f]+")


def _record(row: DocumentRow) -> DocumentRecord:
    return from_row(DocumentRecord, row, ocr_pages=tuple(row.ocr_pages or ()), report=_report(row))


def _report(row: DocumentRow) -> IngestReport | None:
    """The row's ingest report; None for a row from before reports were kept."""
    data: Mapping[str, Any] | None = row.ingest_report
    if data is None:
        return None
    return IngestReport(
        tables=int(data.get("tables", 0)),
        warnings=tuple(str(w) for w in data.get("warnings", ())),
        embedder=row.embedder_name or "",
        embedder_fingerprint=row.embedder_fingerprint or "",
        seconds=float(data.get("seconds", 0.0)),
        load_seconds=float(data.get("load_seconds", 0.0)),
    )


def _report_json(report: IngestReport) -> dict[str, Any]:
    return {
        "tables": report.tables,
        "warnings": list(report.warnings),
        "seconds": round(report.seconds, 3),
        "load_seconds": round(report.load_seconds, 3),
    }


def _ready() -> sa.Select[DocumentRow]:
    return sa.select(DocumentRow).where(DocumentRow.status == "ready")


def bump_generation(s: Session) -> None:
    """Count one registry change, inside the caller's transaction (visible when it commits)."""
    bumped = s.execute(
        sa.update(RegistryStateRow)
        .where(RegistryStateRow.id == 1)
        .values(generation=RegistryStateRow.generation + 1)
    )
    if getattr(bumped, "rowcount", 1) == 0:  # a database created without the migrations
        s.add(RegistryStateRow(id=1, registry_id=uuid.uuid4().hex, generation=1))


_NO_TOKEN = "none:0"


def token_of(row: RegistryStateRow | None) -> str:
    """The change token '<registry id>:<generation>' of the state row."""
    return f"{row.registry_id}:{row.generation}" if row is not None else _NO_TOKEN


def _token(s: Session) -> str:
    return token_of(s.get(RegistryStateRow, 1))


class DocumentRegistry:
    """The documents table behind a small API that returns DocumentRecord objects."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # (change token, ready chunk counts) of the last read: every question reads the ready
        # set, and reading 16,000 rows again costs ~20 ms (bench.latency)
        self._ready: tuple[str, dict[str, int]] | None = None

    def by_hash(
        self, content_hash: str, among: Collection[str] | None = None
    ) -> DocumentRecord | None:
        """The ready document with this content (the oldest, if several names share it), only
        among the ids `among` when given."""
        stmt = _ready().where(DocumentRow.content_hash == content_hash)
        if among is not None:
            stmt = stmt.where(DocumentRow.id.in_(sorted(among)))
        with self.db.read_session() as s:
            row = s.scalars(stmt.order_by(DocumentRow.added_at, DocumentRow.id).limit(1)).first()
            return _record(row) if row else None

    def by_name(self, name: str) -> DocumentRecord | None:
        """The ready document with this exact name, or None."""
        stmt = _ready().where(DocumentRow.name == name)
        with self.db.read_session() as s:
            row = s.scalars(stmt.order_by(DocumentRow.version.desc()).limit(1)).first()
            return _record(row) if row else None

    def get(self, id_or_name: str) -> DocumentRecord:
        """Resolve a full id (any status), an exact name, or a unique id prefix of >= 6 chars."""
        key = id_or_name.strip()
        with self.db.read_session() as s:
            row = s.get(DocumentRow, key)
            if row is not None:
                return _record(row)
            stmt = _ready().where(DocumentRow.name == key).order_by(DocumentRow.version.desc())
            row = s.scalars(stmt.limit(1)).first()
            if row is not None:
                return _record(row)
            prefix = key.lower()
            if len(prefix) >= MIN_PREFIX and _HEX.fullmatch(prefix):
                rows = s.scalars(_ready().where(DocumentRow.id.startswith(prefix)).limit(10)).all()
                if len(rows) == 1:
                    return _record(rows[0])
                if rows:
                    names = ", ".join(f"{r.id[:12]} ({r.name})" for r in rows)
                    raise DocumentNotFoundError(
                        f"Id prefix {key!r} matches several documents: {names}; give more of the id"
                    )
            raise DocumentNotFoundError(self._not_found(s, key))

    @staticmethod
    def _not_found(s: Session, key: str) -> str:
        names = s.scalars(
            sa.select(DocumentRow.name).where(DocumentRow.status == "ready").order_by("name")
        ).all()
        if not names:
            return f"No document {key!r}: no documents have been added yet"
        shown = ", ".join(repr(n) for n in names[:10]) + (", ..." if len(names) > 10 else "")
        return (
            f"No document named {key!r} or with that id (or an id prefix of at least "
            f"{MIN_PREFIX} characters); known documents: {shown}"
        )

    def count(self) -> int:
        """How many documents are ready to be searched."""
        with self.db.read_session() as s:
            return int(s.scalar(sa.select(sa.func.count()).select_from(_ready().subquery())) or 0)

    def list(self) -> builtins.list[DocumentRecord]:
        """Every ready document, ordered by name."""
        with self.db.read_session() as s:
            rows = s.scalars(_ready().order_by(DocumentRow.name, DocumentRow.version)).all()
            return [_record(r) for r in rows]

    def begin(
        self,
        name: str,
        content_hash: str,
        size: int,
        doc_type: str,
        page_count: int | None,
        replaces_id: str | None = None,
        added_by: str | None = None,
        ocr_pages: Sequence[int] = (),
        collection_id: str | None = None,
    ) -> DocumentRecord:
        """Register a document being ingested: version 1, or the replaced version + 1. A new
        document is owned by whoever adds it; a new version keeps its document's owner and
        collections. It joins `collection_id` too (a new one without it: Default).
        `ocr_pages` are the pages whose text OCR read (kept for the document's report)."""
        with self.db.session() as s:
            version = 1
            owner = added_by
            if replaces_id is not None:
                replaced = s.get(DocumentRow, replaces_id)
                if replaced is None:
                    raise DocumentNotFoundError(f"Cannot replace document {replaces_id!r}: unknown")
                version = replaced.version + 1
                owner = replaced.owner
            row = DocumentRow(
                name=name,
                content_hash=content_hash,
                version=version,
                size=size,
                doc_type=doc_type,
                page_count=page_count,
                chunk_count=0,
                status="ingesting",
                replaces_id=replaces_id,
                owner=owner,
                added_by=added_by,
                ocr_pages=list(ocr_pages),
            )
            s.add(row)
            s.flush()
            joins = {collection_id} if collection_id else set()
            if replaces_id is not None:
                joins |= set(
                    s.scalars(
                        sa.select(CollectionDocumentRow.collection_id).where(
                            CollectionDocumentRow.document_id == replaces_id
                        )
                    )
                )
            for cid in sorted(joins or {DEFAULT_COLLECTION}):
                s.add(CollectionDocumentRow(collection_id=cid, document_id=row.id))
            return _record(row)

    def commit(
        self,
        doc_id: str,
        chunk_count: int,
        *,
        index_id: str | None = None,
        report: IngestReport | None = None,
    ) -> DocumentRecord:
        """Make an ingested document ready, with its ingest `report`; in the same transaction
        retire the one it replaces.

        `index_id`: the vector index its chunks were written to; IndexChangedError if a reindex
        made another one active meanwhile (the generation is bumped first: that holds the
        state row's lock, so a concurrent swap is either wholly before or wholly after)."""
        with self.db.session() as s:
            bump_generation(s)
            if index_id is not None:
                active = s.scalars(
                    sa.select(VectorIndexRow.id).where(VectorIndexRow.status == "active")
                ).first()
                if active is not None and active != index_id:
                    raise IndexChangedError(
                        "the knowledge base was re-embedded while this file was being added;"
                        " add it again"
                    )
            row = s.get(DocumentRow, doc_id)
            if row is None:
                raise DocumentNotFoundError(f"Cannot commit document {doc_id!r}: unknown")
            if row.status == "deleting":
                raise DocumentNotFoundError(
                    f"Cannot commit document {doc_id!r} ({row.name}): it is being deleted"
                )
            now = utcnow()
            if row.replaces_id is not None:
                old = s.get(DocumentRow, row.replaces_id)
                if old is not None and old.status != "deleting":
                    old.status = "deleting"
                    old.updated_at = now
            row.status = "ready"
            row.chunk_count = chunk_count
            if report is not None:
                row.ingest_report = _report_json(report)
                row.embedder_name = report.embedder
                row.embedder_fingerprint = report.embedder_fingerprint
            row.updated_at = now
            s.flush()
            return _record(row)

    def mark_deleting(self, doc_id: str) -> None:
        """Hide a document from retrieval before its chunks are removed."""
        with self.db.session() as s:
            row = s.get(DocumentRow, doc_id)
            if row is None:
                raise DocumentNotFoundError(f"Cannot delete document {doc_id!r}: unknown")
            row.status = "deleting"
            row.updated_at = utcnow()
            bump_generation(s)

    def remove(self, doc_id: str) -> None:
        """Delete the row (after its chunks are gone); a no-op if it is already gone."""
        with self.db.session() as s:
            deleted = s.execute(sa.delete(DocumentRow).where(DocumentRow.id == doc_id))
            if getattr(deleted, "rowcount", 1):
                bump_generation(s)

    def change_token(self) -> str:
        """'<registry id>:<generation>': changes with every commit, deletion or removal."""
        with self.db.read_session() as s:
            return _token(s)

    def ready_ids(self) -> set[str]:
        """Ids of the documents retrieval may return."""
        return set(self.ready_chunk_counts())

    def ready_chunk_counts(self) -> dict[str, int]:
        """Ids of the documents retrieval may return, each with its number of chunks. The rows
        are read again only when the change token moved (any replica's commit, deletion or
        removal bumps it); the token is read first, so a change racing the read only costs
        one more read."""
        stmt = sa.select(DocumentRow.id, DocumentRow.chunk_count).where(
            DocumentRow.status == "ready"
        )
        with self.db.read_session() as s:
            token = _token(s)
            cached = self._ready
            if cached is not None and cached[0] == token:
                return dict(cached[1])
            counts = {doc_id: int(count or 0) for doc_id, count in s.execute(stmt)}
        if token != _NO_TOKEN:  # a database without the state row has nothing to compare
            self._ready = (token, counts)
        return dict(counts)

    def touch(self, doc_ids: Collection[str]) -> None:
        """Record progress of unfinished ingests, so other replicas do not take them for dead."""
        if not doc_ids:
            return
        stmt = (
            sa.update(DocumentRow)
            .where(DocumentRow.id.in_(sorted(doc_ids)), DocumentRow.status == "ingesting")
            .values(updated_at=utcnow())
        )
        with self.db.session() as s:
            s.execute(stmt)

    def not_ready(self) -> builtins.list[DocumentRecord]:
        """Rows a crash may have left half done: 'ingesting' and 'deleting', oldest first."""
        stmt = sa.select(DocumentRow).where(DocumentRow.status.in_(("ingesting", "deleting")))
        with self.db.read_session() as s:
            rows = s.scalars(stmt.order_by(DocumentRow.added_at, DocumentRow.id)).all()
            return [_record(r) for r in rows]

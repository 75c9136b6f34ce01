"""IndexRegistry: the vector indexes (Chroma collections) and which embedder fills each.

One index is 'active': answers come from it and ingestion writes to it. `ragchat reindex` fills
a 'building' one with every chunk embedded by the newly configured embedder, then `swap` makes it
active and the old one 'retired' in one transaction, which also bumps the registry's change token
(so every replica notices) after checking that no document was committed or deleted since the
caller's last catch-up. A retired index is dropped once nothing reads it any more.
"""

from __future__ import annotations

import builtins
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rag_core.db.database import Database
from rag_core.db.models import (
    DocumentRow,
    RegistryStateRow,
    VectorIndexRow,
    from_row,
    new_id,
    utcnow,
)
from rag_core.db.registry import bump_generation, token_of
from rag_core.embedders.identity import EmbedderIdentity
from rag_core.errors import ConfigError
from rag_core.types import IndexRecord, IndexState, IndexStatus

__all__ = ["LEGACY_COLLECTION", "IndexRegistry"]

# The collection every index lived in before indexes were recorded (and a new install's first).
LEGACY_COLLECTION = "ragchat"
# A building index whose run made no progress for this long is shown as stopped, not running.
STALLED_AFTER_S = 120.0


def _record(row: VectorIndexRow) -> IndexRecord:
    status: IndexState = row.status  # type: ignore[assignment]  # the check constraint holds it
    return from_row(IndexRecord, row, status=status)


def _row(collection: str, status: str, identity: EmbedderIdentity) -> VectorIndexRow:
    return VectorIndexRow(id=new_id(), collection=collection, status=status, identity=identity)


def _in_state(s: Session, status: str) -> VectorIndexRow | None:
    stmt = sa.select(VectorIndexRow).where(VectorIndexRow.status == status)
    return s.scalars(stmt.limit(1)).first()


class IndexRegistry:
    """The vector_indexes table behind a small API returning IndexRecord objects."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def active(self) -> IndexRecord | None:
        """The index answers come from (None before the first start has recorded one)."""
        with self.db.read_session() as s:
            row = _in_state(s, "active")
            return _record(row) if row else None

    def building(self) -> IndexRecord | None:
        """The index a `ragchat reindex` is filling (or left unfinished), if any."""
        with self.db.read_session() as s:
            row = _in_state(s, "building")
            return _record(row) if row else None

    def retired(self) -> builtins.list[IndexRecord]:
        """Indexes replaced by a reindex whose collections are not dropped yet."""
        stmt = sa.select(VectorIndexRow).where(VectorIndexRow.status == "retired")
        with self.db.read_session() as s:
            return [_record(r) for r in s.scalars(stmt.order_by(VectorIndexRow.updated_at))]

    def status(self, now: datetime | None = None) -> IndexStatus:
        """The active and the building index, and whether the building one has stalled."""
        with self.db.read_session() as s:
            active, building = _in_state(s, "active"), _in_state(s, "building")
            a = _record(active) if active else None
            b = _record(building) if building else None
        stalled = False
        if b is not None:
            idle = ((now or datetime.now(UTC)) - b.updated_at).total_seconds()
            stalled = idle > STALLED_AFTER_S
        return IndexStatus(a, b, stalled)

    def adopt(self, collection: str, identity: EmbedderIdentity) -> IndexRecord:
        """Record `collection` as the active index, filled by `identity`; when another process
        recorded one first, that one is returned."""
        try:
            with self.db.session() as s:
                row = _row(collection, "active", identity)
                s.add(row)
                s.flush()
                return _record(row)
        except IntegrityError:
            active = self.active()
            if active is None:
                raise
            return active

    def start_building(self, collection_prefix: str, identity: EmbedderIdentity) -> IndexRecord:
        """A new 'building' index in a collection of its own, named after its id."""
        row_id = new_id()
        collection = f"{collection_prefix}-{row_id[:12]}"
        try:
            with self.db.session() as s:
                row = _row(collection, "building", identity)
                row.id = row_id
                s.add(row)
                s.flush()
                return _record(row)
        except IntegrityError as exc:
            raise ConfigError(
                "another re-embedding was started at the same moment; run `ragchat reindex` again"
            ) from exc

    def progress(self, index_id: str, done: int, total: int) -> None:
        """Record how many chunks a building index holds (also its run's heartbeat)."""
        stmt = (
            sa.update(VectorIndexRow)
            .where(VectorIndexRow.id == index_id)
            .values(chunks_done=done, chunks_total=total, updated_at=utcnow())
        )
        with self.db.session() as s:
            s.execute(stmt)

    def swap(self, building_id: str, expected_token: str) -> bool:
        """Make the building index active and the active one retired, in one transaction, if
        the registry's change token is still `expected_token` (nothing was committed or deleted
        since the caller caught up); False, changing nothing, when it moved."""
        with self.db.session() as s:
            state = s.scalars(
                sa.select(RegistryStateRow).where(RegistryStateRow.id == 1).with_for_update()
            ).first()
            if token_of(state) != expected_token:
                return False
            building = s.get(VectorIndexRow, building_id)
            if building is None or building.status != "building":
                raise ConfigError("the index being built was removed by another process")
            now = utcnow()
            active = _in_state(s, "active")
            if active is not None:
                active.status = "retired"
                active.updated_at = now
                s.flush()  # one active index at a time, also inside this transaction
            building.status = "active"
            building.updated_at = now
            # every ready document is in the new index now: its report names the new embedder
            s.execute(
                sa.update(DocumentRow)
                .where(DocumentRow.embedder_name.is_not(None))
                .values(
                    embedder_name=building.identity.name,
                    embedder_fingerprint=building.identity.fingerprint,
                )
            )
            bump_generation(s)
            return True

    def remove(self, index_id: str) -> None:
        """Forget an index (its collection dropped, or an abandoned build)."""
        with self.db.session() as s:
            s.execute(sa.delete(VectorIndexRow).where(VectorIndexRow.id == index_id))

    def active_in(self, s: Session) -> str | None:
        """Inside the caller's transaction: the active index's id (None before one exists)."""
        row = _in_state(s, "active")
        return row.id if row else None

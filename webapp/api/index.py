"""/api/index: which embedder fills the vector index, and how far a re-embedding has got."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from rag_core.types import IndexRecord
from webapp.api.deps import EngineDep, User
from webapp.api.errors import ERRORS
from webapp.api.schemas import EmbedderOut, IndexStatusOut, VectorIndexOut

router = APIRouter(tags=["index"], responses=ERRORS)


def _index(record: IndexRecord | None) -> VectorIndexOut | None:
    if record is None:
        return None
    return VectorIndexOut(
        collection=record.collection,
        status=record.status,
        embedder=EmbedderOut(**asdict(record.identity)),
        chunks_done=record.chunks_done,
        chunks_total=record.chunks_total,
        updated_at=record.updated_at,
    )


@router.get("/api/index", response_model=IndexStatusOut)
def index_status(user: User, engine: EngineDep) -> IndexStatusOut:
    """The active vector index and its embedder; while `ragchat reindex` runs, the index it
    builds with its progress (the page's banner shows the same)."""
    engine.follow_index()
    status = engine.index_status()
    if status is None:
        return IndexStatusOut(active=None, building=None, stalled=False)
    return IndexStatusOut(
        active=_index(status.active), building=_index(status.building), stalled=status.stalled
    )

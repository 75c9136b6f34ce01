"""/api/insights: what the conversation log says over the last days (every user's questions, so
with accounts on only an admin may read it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from rag_core.db.insights import DEFAULT_DAYS, MAX_DAYS
from rag_core.errors import PermissionDeniedError
from webapp import serialize
from webapp.api.deps import ActorDep, EngineDep
from webapp.api.errors import ERRORS
from webapp.api.schemas import InsightsOut

router = APIRouter(tags=["insights"], responses=ERRORS)


@router.get("/api/insights", response_model=InsightsOut)
def insights(
    engine: EngineDep,
    actor: ActorDep,
    days: Annotated[
        int, Query(ge=1, le=MAX_DAYS, description="the last N days, today included")
    ] = DEFAULT_DAYS,
) -> InsightsOut:
    """Questions per day; refusal, quoted-fallback and thumbs-down rates; first-token and total
    time p50/p95 per day; the most and never cited documents; the most refused questions.
    With accounts on, admins only (403)."""
    try:
        report = engine.insights(days, actor=actor)
    except PermissionDeniedError as exc:
        raise HTTPException(403, str(exc)) from exc
    return InsightsOut.model_validate(serialize.insights(report))

"""/api/conversations and /api/turns: the caller's logged conversations, their turns, and what
each answer cited and retrieved. Another user's ids answer 404, like ids that do not exist."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

import anyio
from fastapi import APIRouter, HTTPException, Query, Response

from rag_core.db.log import ConversationLog, cursor_of
from rag_core.db.records import Feedback, TurnRecord, passage_id
from rag_core.errors import ConversationNotFoundError, RagError, UserError
from rag_core.replay import replay_turn
from webapp import serialize
from webapp.api.deps import ActorDep, AnswerLimiter, EngineDep, User
from webapp.api.errors import ERRORS, not_found, unprocessable
from webapp.api.schemas import (
    CitationOut,
    ConversationDetail,
    ConversationExport,
    ConversationOut,
    FeedbackRequest,
    PassageOut,
    RenameRequest,
    ReplayOut,
    ScopeOut,
    TurnOut,
)
from webapp.export import MEDIA_TYPES, ExportFormat, export_for

DEFAULT_PAGE = 100  # conversations per page of /api/conversations
MAX_PAGE = 500

router = APIRouter(tags=["conversations"], responses=ERRORS)


def _detail(log: ConversationLog, conv_id: str, user: str) -> ConversationDetail:
    try:
        record = log.get_conversation(conv_id, user)
        turns = log.turns(conv_id, user)
    except ConversationNotFoundError as exc:
        raise not_found(exc) from exc
    return ConversationDetail(
        **ConversationOut.model_validate(record).model_dump(),
        scope=ScopeOut.model_validate(record.scope),
        turns=[TurnOut.model_validate(serialize.turn(t)) for t in turns],
    )


def _turn(log: ConversationLog, turn_id: int, user: str) -> TurnRecord:
    try:
        return log.get_turn(turn_id, user)
    except ConversationNotFoundError as exc:
        raise not_found(exc) from exc


def _next_page(response: Response, following: str, limit: int, q: str | None) -> None:
    """Point the client at the page after this one (`X-Next-Cursor` and a `Link` header)."""
    response.headers["X-Next-Cursor"] = following
    params = (("limit", limit), ("cursor", following), ("q", q))
    query = urlencode({k: v for k, v in params if v})
    response.headers["Link"] = f'</api/conversations?{query}>; rel="next"'


@router.get("/api/conversations", response_model=list[ConversationOut])
def list_conversations(
    user: User,
    response: Response,
    engine: EngineDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    q: Annotated[str | None, Query(max_length=200, description="title contains")] = None,
) -> list[ConversationOut]:
    """The caller's conversations, most recently active first, a page at a time: when
    there are more, the `X-Next-Cursor` header (and a `Link: <...>; rel="next"` header)
    gives the `cursor` of the next page."""
    try:
        page = engine.log.list_conversations(user, limit=limit + 1, after=cursor, search=q)
    except UserError as exc:
        raise unprocessable(exc) from exc
    if len(page) > limit:
        page = page[:limit]
        _next_page(response, cursor_of(page[-1]), limit, q)
    return [ConversationOut.model_validate(c) for c in page]


@router.get("/api/conversations/{conversation_id}", response_model=ConversationDetail)
def get_conversation(conversation_id: str, user: User, engine: EngineDep) -> ConversationDetail:
    """A conversation with all its turns, citations and passages, and its `scope`: what its
    next question searches when it names none."""
    return _detail(engine.log, conversation_id, user)


@router.patch("/api/conversations/{conversation_id}", response_model=ConversationOut)
def rename_conversation(
    conversation_id: str, body: RenameRequest, user: User, engine: EngineDep
) -> ConversationOut:
    """Rename a conversation (whitespace collapsed, at most 200 characters kept)."""
    try:
        record = engine.log.rename(conversation_id, user, body.title)
    except ConversationNotFoundError as exc:
        raise not_found(exc) from exc
    except UserError as exc:
        raise unprocessable(exc) from exc
    return ConversationOut.model_validate(record)


@router.delete("/api/conversations/{conversation_id}", status_code=204)
def delete_conversation(conversation_id: str, user: User, engine: EngineDep) -> Response:
    """Delete a conversation with its turns, passages and feedback."""
    try:
        engine.log.delete(conversation_id, user)
    except ConversationNotFoundError as exc:
        raise not_found(exc) from exc
    return Response(status_code=204)


_EXPORTS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the file: JSON (this schema), Markdown or PDF",
        "content": {MEDIA_TYPES["md"]: {}, MEDIA_TYPES["pdf"]: {}},
    }
}


@router.get(
    "/api/conversations/{conversation_id}/export",
    response_model=ConversationExport,
    responses=_EXPORTS,
)
def export_conversation(
    conversation_id: str,
    user: User,
    engine: EngineDep,
    format: Annotated[ExportFormat, Query(description="md, json or pdf")] = "json",
) -> Response:
    """The conversation as a file to download: every question and answer, each citation's
    passage with its document, version, page and headings, the settings and timestamps."""
    try:
        file = export_for(engine, conversation_id, user, format)
    except ConversationNotFoundError as exc:
        raise not_found(exc) from exc
    disposition = f'attachment; filename="{file.filename}"'
    return Response(
        file.content, media_type=file.media_type, headers={"Content-Disposition": disposition}
    )


@router.get("/api/turns/{turn_id}", response_model=TurnOut)
def get_turn(turn_id: int, user: User, engine: EngineDep) -> TurnOut:
    """One logged answer with its citations, passages and sentence checks."""
    return TurnOut.model_validate(serialize.turn(_turn(engine.log, turn_id, user)))


@router.get("/api/turns/{turn_id}/citations", response_model=list[CitationOut])
def turn_citations(turn_id: int, user: User, engine: EngineDep) -> list[CitationOut]:
    """What each [n] of a logged answer cites, with the supporting sentence."""
    record = _turn(engine.log, turn_id, user)
    return [CitationOut.model_validate(serialize.citation(c)) for c in record.citations]


@router.get("/api/turns/{turn_id}/passages", response_model=list[PassageOut])
def turn_passages(turn_id: int, user: User, engine: EngineDep) -> list[PassageOut]:
    """Every passage retrieved for a logged answer, cited or not, in rank order."""
    record = _turn(engine.log, turn_id, user)
    return [PassageOut.model_validate(p) for p in serialize.passages(record.hits, record.citations)]


@router.post("/api/turns/{turn_id}/replay", response_model=ReplayOut)
async def replay(
    turn_id: int, user: User, actor: ActorDep, engine: EngineDep, limiter: AnswerLimiter
) -> ReplayOut:
    """Answer a logged turn again with the settings it was answered with, on today's knowledge
    base, and compare: answer, citations, passages (in, out, rank changes), gate score, each
    sentence's verdict, documents deleted or replaced since. Nothing is logged. Only the turn's
    owner may replay it, and today's answer searches only what they may see now; it waits for a
    free answer slot like /api/ask."""
    try:
        result = await anyio.to_thread.run_sync(
            replay_turn, engine, turn_id, user, actor, limiter=limiter
        )
    except ConversationNotFoundError as exc:
        raise not_found(exc) from exc
    except UserError as exc:
        raise unprocessable(exc) from exc
    except RagError as exc:
        raise HTTPException(500, f"The replay could not be produced: {exc}") from exc
    return ReplayOut.model_validate(serialize.replay(result))


@router.put("/api/turns/{turn_id}/feedback", response_model=TurnOut)
def give_feedback(turn_id: int, body: FeedbackRequest, user: User, engine: EngineDep) -> TurnOut:
    """Rate a logged answer: thumbs up (1) or down (-1) with an optional comment; with a thumbs
    down, what was wrong (`reason`) and the passage that should have been used (`passage`, its
    number in /passages) or `none_of_these`. A new rating replaces the previous one."""
    record = _turn(engine.log, turn_id, user)
    try:
        marked = passage_id(record, body.passage) if body.passage is not None else None
        feedback = Feedback(body.reason, marked, body.none_of_these)
        engine.log.set_feedback(turn_id, user, body.rating, body.comment, feedback)
    except ConversationNotFoundError as exc:
        raise not_found(exc) from exc
    except UserError as exc:
        raise unprocessable(exc) from exc
    return TurnOut.model_validate(serialize.turn(_turn(engine.log, turn_id, user)))

"""/api/ask: a question answered from the documents, as one JSON body or as server-sent events."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import anyio
from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse

from rag_core.errors import RagError, UserError
from rag_core.types import Actor, Logged, Released, Retrieved, SentenceChecked, Token
from webapp import serialize
from webapp.api.deps import ActorDep, AnswerLimiter, ApiState, State, User
from webapp.api.errors import ERRORS, unprocessable
from webapp.api.schemas import AskRequest, AskResponse, PassageOut, SentenceOut
from webapp.api.streaming import Answer, event_stream, sse

log = logging.getLogger("ragchat.webapp.api")

router = APIRouter(tags=["ask"], responses=ERRORS)

STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "server-sent events: `retrieved` (passages), `token` (the live draft, "
        "unchecked), `sentence` (a checked sentence), `released` (checked answer text: joined, "
        "the `released` texts are the answer), then `done` (answer, citations, turn_id) or "
        "`error`",
        "content": {"text/event-stream": {}},
    },
}


def _start(state: ApiState, body: AskRequest, user: str, actor: Actor) -> Answer:
    options = body.model_dump(
        include={"mode", "top_k", "max_new_tokens", "answer_mode", "strategy"}
    )
    return Answer(
        state,
        body.question,
        body.conversation_id,
        user,
        options=options,
        actor=actor,
        scope=body.scope(),
    )


def _response(answer: Answer) -> AskResponse:
    if answer.done is None:
        raise HTTPException(500, "The answer could not be produced; the server log has details.")
    ids = {"conversation_id": answer.conversation_id, "turn_id": answer.turn_id}
    return AskResponse.model_validate({**serialize.answer(answer.done), **ids})


@router.post("/api/ask", response_model=AskResponse)
async def ask(
    body: AskRequest, user: User, actor: ActorDep, state: State, limiter: AnswerLimiter
) -> AskResponse:
    """Ask a question and wait for the whole checked answer (see /api/ask/stream). Only the
    documents the caller may see are searched; `collections` and `documents` narrow that
    (404 for one they may not see), and the conversation remembers them."""
    return await anyio.to_thread.run_sync(ask_and_wait, state, body, user, actor, limiter=limiter)


def ask_and_wait(state: ApiState, body: AskRequest, user: str, actor: Actor) -> AskResponse:
    answer = _start(state, body, user, actor)
    try:
        answer.wait()
    except UserError as exc:
        raise unprocessable(exc) from exc
    except RagError as exc:
        raise HTTPException(500, f"The answer could not be produced: {exc}") from exc
    return _response(answer)


@router.post("/api/ask/stream", responses=STREAM_RESPONSES)
def ask_stream(
    body: AskRequest, user: User, actor: ActorDep, state: State, limiter: AnswerLimiter
) -> StreamingResponse:
    """Ask a question; the answer streams as server-sent events (scoped as /api/ask)."""
    answer = _start(state, body, user, actor)
    return event_stream(_events(answer), answer, limiter)


def _events(answer: Answer) -> Iterator[str]:
    """The engine's events as server-sent events; a failure ends the stream with `error`."""
    try:
        for event in answer:
            if isinstance(event, Retrieved):
                yield sse("retrieved", _retrieved(event))
            elif isinstance(event, Token):
                yield sse("token", {"text": event.text})
            elif isinstance(event, Released):
                yield sse("released", {"text": event.text})
            elif isinstance(event, SentenceChecked):
                check = SentenceOut.model_validate(serialize.sentence(event.check))
                yield sse("sentence", check.model_dump())
            elif isinstance(event, Logged):
                yield sse("done", _response(answer).model_dump(mode="json"))
    except RagError as exc:
        yield sse("error", {"detail": str(exc)})
    except Exception:
        log.exception("answering %r failed", answer.question)
        yield sse("error", {"detail": "The answer failed; the server log has details."})


def _retrieved(event: Retrieved) -> dict[str, Any]:
    passages = [PassageOut.model_validate(p) for p in serialize.passages(event.hits, ())]
    return {
        "question": event.question,
        "query": event.query,
        "refused": event.refused,
        "gate_score": event.gate_score,
        "passages": [p.model_dump() for p in passages],
    }

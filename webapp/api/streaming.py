"""Running an answer for an HTTP request: the question checked once at the edge, the engine's
events pulled in worker threads, server-sent events, and the text that leaves a streaming
client with the checked answer."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import anyio
from fastapi.responses import StreamingResponse

from rag_core.engine import clean_question
from rag_core.errors import ConversationNotFoundError, DocumentNotFoundError, InvalidQuestionError
from rag_core.types import Actor, Done, Logged, Scope, Turn
from webapp.api.deps import ApiState
from webapp.api.errors import not_found, unprocessable
from webapp.api.schemas_openai import ChatMessage

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_END = object()


class Answer:
    """One answer to an HTTP request: runs engine.chat in the caller's thread and remembers
    Done and Logged.

    The question is checked here, at the edge, before anything runs: 422 for an empty or too
    long question, 404 for a conversation that is not the caller's, or a collection or document
    in `scope` that `actor` may not see. `scope` None: the conversation's remembered scope.
    """

    def __init__(
        self,
        state: ApiState,
        question: str,
        conversation_id: str | None,
        user: str,
        history: Sequence[Turn] | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        actor: Actor,
        scope: Scope | None = None,
    ) -> None:
        try:
            self.question = clean_question(question, state.settings.max_question_chars)
        except InvalidQuestionError as exc:
            raise unprocessable(exc) from exc
        if conversation_id:
            try:
                state.engine.log.get_conversation(conversation_id, user)
            except ConversationNotFoundError as exc:
                raise not_found(exc) from exc
        self.stop = threading.Event()
        self.done: Done | None = None
        self.logged: Logged | None = None
        self.conversation_id = conversation_id or ""
        try:
            chosen = state.engine.options(**dict(options or {}))
            self.events = state.engine.chat(
                self.question,
                conversation_id,
                user=user,
                options=chosen,
                stop=self.stop,
                history=history,
                actor=actor,
                scope=scope,
            )
        except InvalidQuestionError as exc:  # a bad option (InvalidOptionError) included
            raise unprocessable(exc) from exc
        except (ConversationNotFoundError, DocumentNotFoundError) as exc:  # or not visible
            raise not_found(exc) from exc

    @property
    def turn_id(self) -> int | None:
        return self.logged.turn_id if self.logged else None

    def __iter__(self) -> Iterator[Any]:
        for event in self.events:
            if isinstance(event, Done):
                self.done = event
            elif isinstance(event, Logged):
                self.logged = event
                self.conversation_id = event.conversation_id
            yield event

    def wait(self) -> Done | None:
        """Run to the end (stopping the engine whatever happens); the Done, if one came."""
        try:
            for _ in self:
                pass
        finally:
            self.close()
        return self.done

    def close(self) -> None:
        self.stop.set()
        self.events.close()


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


async def _pump(
    chunks: Iterator[str], answer: Answer, limiter: anyio.CapacityLimiter
) -> AsyncIterator[str]:
    """Pull a blocking iterator in worker threads (of `limiter`); a client that goes away stops
    the answer (engine.chat then logs the turn as 'stopped')."""
    try:
        while True:
            item = await anyio.to_thread.run_sync(next, chunks, _END, limiter=limiter)
            if item is _END:
                return
            yield item  # type: ignore[misc]
    finally:
        answer.stop.set()
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(answer.close)


def event_stream(
    chunks: Iterator[str], answer: Answer, limiter: anyio.CapacityLimiter
) -> StreamingResponse:
    """The server-sent events `chunks` yields, pulled in the answer threads."""
    return StreamingResponse(
        _pump(chunks, answer, limiter), media_type="text/event-stream", headers=SSE_HEADERS
    )


def split_history(messages: Sequence[ChatMessage]) -> tuple[str, list[Turn]]:
    """The last user message is the question; earlier user/assistant pairs become history."""
    if messages[-1].role != "user":
        raise InvalidQuestionError("the last message must be the user's question (role 'user')")
    turns: list[Turn] = []
    pending: str | None = None
    for m in messages[:-1]:
        if m.role == "user":
            pending = m.text()
        elif m.role == "assistant" and pending is not None:
            turns.append(Turn(question=pending, answer=m.text()))
            pending = None
    return messages[-1].text(), turns

"""/v1: OpenAI's chat API, so OpenAI clients can use ragchat as a model; answers carry their
citations in an extra `citations` field and ragchat's details in `ragchat`."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any, NamedTuple

import anyio
from fastapi import APIRouter, HTTPException

from rag_core.errors import DocumentNotFoundError, InvalidQuestionError, RagError
from rag_core.types import Actor, Logged, Released, Scope
from webapp import serialize
from webapp.api.deps import ActorDep, AnswerLimiter, ApiState, EngineDep, State, User
from webapp.api.errors import ERRORS
from webapp.api.schemas import CitationOut
from webapp.api.schemas_openai import (
    MODEL_ID,
    ChatCompletion,
    ChatCompletionRequest,
    CompletionChoice,
    CompletionMessage,
    ModelCard,
    ModelList,
    RagchatInfo,
    Usage,
)
from webapp.api.streaming import Answer, event_stream, split_history

_STARTED = int(time.time())
DONE = "data: [DONE]\n\n"

router = APIRouter(tags=["openai"], responses=ERRORS)

COMPLETION_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "a chat.completion, or with `stream: true` server-sent "
        "chat.completion.chunk objects ending with `data: [DONE]`; the last chunk "
        "carries `citations` and `ragchat`",
        "content": {"text/event-stream": {}},
    },
}


@router.get("/v1/models", response_model=ModelList)
def models(actor: ActorDep, engine: EngineDep) -> ModelList:
    """`ragchat` answers from every document the caller may see; `ragchat/NAME` from the
    collection NAME only, one model for each collection the caller may see."""
    cards = [ModelCard(id=MODEL_ID, created=_STARTED)]
    for c in engine.collections.list(actor):
        created = int(c.created_at.timestamp()) if c.created_at else _STARTED
        cards.append(ModelCard(id=f"{MODEL_ID}/{c.name}", created=created))
    return ModelList(data=cards)


def model_scope(state: ApiState, model: str, actor: Actor) -> Scope:
    """What a model id searches: `ragchat/NAME` the collection NAME (404 when the caller may
    not see it, as when there is none); any other id every document the caller may see."""
    prefix = f"{MODEL_ID}/"
    if not model.startswith(prefix):
        return Scope()
    try:
        record = state.engine.collections.get(model[len(prefix) :], actor)
    except DocumentNotFoundError as exc:
        raise HTTPException(
            404, f"The model {model!r} does not exist: {exc} (GET /v1/models lists them)"
        ) from exc
    return Scope(collections=(record.id,))


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=COMPLETION_RESPONSES)
async def chat_completions(
    body: ChatCompletionRequest,
    user: User,
    actor: ActorDep,
    state: State,
    limiter: AnswerLimiter,
) -> Any:
    """OpenAI's chat completions: the last user message is the question, earlier messages
    are the history. The answer has [n] markers; `citations` says what each one cites.
    `model: "ragchat/NAME"` searches only the collection NAME; `ragchat`, every document the
    caller may see."""
    return await anyio.to_thread.run_sync(
        complete_chat, state, body, Asker(user, actor), limiter, limiter=limiter
    )


class Asker(NamedTuple):
    """Who asks: the user whose conversation it is, as an Actor for what they may see."""

    user: str
    actor: Actor


def complete_chat(
    state: ApiState, body: ChatCompletionRequest, asker: Asker, limiter: anyio.CapacityLimiter
) -> Any:
    try:
        question, history = split_history(body.messages)
    except InvalidQuestionError as exc:
        raise HTTPException(400, str(exc)) from exc
    scope = model_scope(state, body.model, asker.actor)
    answer = Answer(
        state,
        question,
        body.conversation_id,
        asker.user,
        history,
        _options(body),
        actor=asker.actor,
        scope=scope,
    )
    completion = Completion(answer, body.model)
    if body.stream:
        return event_stream(completion.chunks(), answer, limiter)
    return completion.whole()


def _options(body: ChatCompletionRequest) -> dict[str, Any]:
    wanted = body.max_completion_tokens or body.max_tokens or 0
    chosen = body.model_dump(include={"mode", "top_k", "answer_mode", "strategy"})
    return {**chosen, "max_new_tokens": min(wanted, 4096) or None}


class Completion:
    """One chat completion of an answer: whole, or as a stream of chunks."""

    def __init__(self, answer: Answer, model: str) -> None:
        self.answer = answer
        self.model = model
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def extras(self) -> dict[str, Any]:
        """ragchat's additions: `citations` and `ragchat` (ids, refusal, the checked answer)."""
        done = self.answer.done
        assert done is not None
        info = RagchatInfo(
            conversation_id=self.answer.conversation_id,
            turn_id=self.answer.turn_id,
            refused=done.refused,
            mode=done.mode,
            status=done.status,
            answer=done.answer,
        )
        citations = [CitationOut.model_validate(serialize.citation(c)) for c in done.citations]
        return {"citations": [c.model_dump() for c in citations], "ragchat": info.model_dump()}

    def whole(self) -> ChatCompletion:
        """The chat.completion, once the answer is complete."""
        try:
            done = self.answer.wait()
        except RagError as exc:
            raise HTTPException(500, f"The answer could not be produced: {exc}") from exc
        if done is None:
            raise HTTPException(500, "The answer could not be produced.")
        return ChatCompletion(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[CompletionChoice(message=CompletionMessage(content=done.answer))],
            usage=Usage.of(done.timings),
            **self.extras(),
        )

    def chunk(self, delta: dict[str, Any], finish: str | None = None, **more: Any) -> str:
        """One chat.completion.chunk as a server-sent event."""
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        payload = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            **more,
        }
        return f"data: {json.dumps(payload, ensure_ascii=False, default=str)}\n\n"

    def chunks(self) -> Iterator[str]:
        """The stream: the checked answer's text as each sentence passes its check (never the
        unchecked draft), then a last chunk with usage, citations and ragchat's details."""
        yield self.chunk({"role": "assistant", "content": ""})
        try:
            for event in self.answer:
                if isinstance(event, Released):
                    yield self.chunk({"content": event.text})
                elif isinstance(event, Logged):
                    break
        except RagError as exc:
            yield self.chunk({"content": f"\n\n{exc}"}, "stop")
            yield DONE
            return
        done = self.answer.done
        if done is not None:
            usage = Usage.of(done.timings).model_dump()
            yield self.chunk({}, "stop", usage=usage, **self.extras())
        yield DONE

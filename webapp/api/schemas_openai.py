"""The request and response bodies of /v1, OpenAI's chat API (chat completions, models)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rag_core.types import Timings
from webapp.api.schemas import (
    STRATEGY_HELP,
    AnswerModeName,
    CitationOut,
    RetrievalModeName,
    StrategyName,
)

MODEL_ID = "ragchat"  # every visible document; "ragchat/<collection>" searches one collection


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        parts = self.content or []
        return "\n".join(str(p.get("text", "")) for p in parts if p.get("type") == "text")


class ChatCompletionRequest(BaseModel):
    """OpenAI's request body. Sampling options are accepted and ignored (ragchat's settings
    decide); `conversation_id`, `mode`, `top_k`, `answer_mode` and `strategy` are ragchat
    extras."""

    model_config = ConfigDict(extra="allow")

    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    conversation_id: str | None = Field(None, description="ragchat: log into this conversation")
    mode: RetrievalModeName | None = None
    top_k: int | None = Field(None, ge=1, le=50)
    answer_mode: AnswerModeName | None = None
    strategy: StrategyName | None = Field(None, description=STRATEGY_HELP)


class CompletionMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class CompletionChoice(BaseModel):
    index: int = 0
    message: CompletionMessage
    finish_reason: Literal["stop", "length"] = "stop"


class Usage(BaseModel):
    prompt_tokens: int = Field(
        description="tokens of the prompt the generator read (passages, history, question); "
        "0 when no generator ran (a refusal or a quoted answer)"
    )
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, timings: Timings) -> Usage:
        prompt, completion = timings.prompt_tokens, timings.tokens
        return cls(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )


class RagchatInfo(BaseModel):
    """ragchat's extra details of a completion."""

    conversation_id: str
    turn_id: int | None
    refused: bool
    mode: str
    status: str
    answer: str = Field(description="the checked answer (what `content` holds when not streamed)")


class ChatCompletion(BaseModel):
    """OpenAI's chat.completion, plus `citations` and `ragchat`."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    citations: list[CitationOut] = Field(description="ragchat: what each [n] in the answer cites")
    ragchat: RagchatInfo


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "ragchat"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]

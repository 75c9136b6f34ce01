"""Frozen records the conversation log returns: enough to rebuild a chat and its sources panel."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rag_core.errors import UserError
from rag_core.types import Citation, FeedbackReason, Hit, Scope, SentenceCheck, Timings


@dataclass(frozen=True)
class Feedback:
    """What a thumbs down says was wrong, and which passage should have been used: `passage` is
    the chunk id of one of the turn's passages; `no_passage` says none of them answers."""

    reason: FeedbackReason | None = None
    passage: str | None = None
    no_passage: bool = False


@dataclass(frozen=True)
class ConversationRecord:
    """A conversation as listed in the sidebar."""

    id: str
    user: str
    title: str
    created_at: datetime
    updated_at: datetime
    turn_count: int
    scope: Scope = field(default_factory=Scope)  # what its questions search (empty: everything)


@dataclass(frozen=True)
class TurnRecord:
    """One logged turn with the passages it retrieved, the citations and the sentence verdicts."""

    id: int
    conversation_id: str
    position: int  # 0 for the first turn of a conversation
    question: str
    query: str
    answer: str
    raw_answer: str
    refused: bool
    mode: str
    status: str
    error: str | None
    timings: Timings
    config: dict[str, Any]
    created_at: datetime
    feedback_rating: int | None
    feedback_comment: str | None
    hits: tuple[Hit, ...]
    citations: tuple[Citation, ...]
    sentences: tuple[SentenceCheck, ...]  # each with its verdict
    lead: str = ""  # the text shown before the sentences (a refusal, what a quote is)
    gate_score: float | None = None  # the refusal gate's score (None: logged before it was kept)
    feedback: Feedback | None = None  # what a thumbs down said was wrong, if it said

    @property
    def shown(self) -> tuple[SentenceCheck, ...]:
        """The sentences the answer showed, with their verdicts and citations."""
        return tuple(s for s in self.sentences if s.shown)


def passage_id(record: TurnRecord, number: int) -> str:
    """The chunk id of passage `number` (1-based, in rank order) of a logged turn."""
    if (
        isinstance(number, bool)
        or not isinstance(number, int)
        or not 1 <= number <= len(record.hits)
    ):
        raise UserError(
            f"Passage {number!r} is not one of this answer's {len(record.hits)} passages"
        )
    return record.hits[number - 1].chunk.id

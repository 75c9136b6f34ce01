"""One answer -> plain JSON-able dicts, for the REST API, `ragchat ask --json` and the Gradio API.

An answer reaches the web app in two forms: `Done`, the engine's last event, and `TurnRecord`,
the same answer as the conversation log returns it later. Both become the same dicts here, each
part (citation, passage, sentence, timings) by one function, with every field a client may
want. Each adapter then keeps the fields (and the names) its clients read: the REST schemas
validate these dicts, and `pick` maps them to the older CLI and Gradio shapes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from rag_core.db.records import TurnRecord
from rag_core.types import Chunk, Citation, Done, Hit, SentenceCheck, Timings


def chunk(c: Chunk) -> dict[str, Any]:
    """Where a passage comes from and its text (the fields a citation and a passage share)."""
    return {
        "document": c.document_name,
        "document_id": c.document_id,
        "version": c.version,
        "page": c.page,
        "page_end": c.page_end,
        "heading_path": list(c.heading_path),
        "ocr": c.ocr,
        "chunk_id": c.id,
        "char_start": c.char_start,
        "char_end": c.char_end,
        "text": c.text,
    }


def citation(c: Citation) -> dict[str, Any]:
    """Citation [number]: the passage it points to and the passage sentence that supports it."""
    support = {"support": c.support, "support_start": c.support_start, "support_end": c.support_end}
    return {"number": c.n, **chunk(c.chunk), **support}


def passage(number: int, hit: Hit, cited: bool) -> dict[str, Any]:
    """A retrieved passage; `number` is the [n] an answer uses to cite it."""
    return {
        "number": number,
        "rank": hit.rank,
        "score": hit.score,
        "found_by": hit.found_by,
        "dense_score": hit.dense_score,
        "keyword_score": hit.keyword_score,
        "cited": cited,
        **chunk(hit.chunk),
    }


def passages(hits: Sequence[Hit], citations: Iterable[Citation]) -> list[dict[str, Any]]:
    """Every retrieved passage in rank order, numbered from 1, marked when the answer cites it."""
    cited = {c.chunk.id for c in citations}
    return [passage(i + 1, h, h.chunk.id in cited) for i, h in enumerate(hits)]


def sentence(s: SentenceCheck) -> dict[str, Any]:
    """The check of one answer sentence against the passages."""
    return asdict(s)


def timings(t: Timings | Mapping[str, Any]) -> dict[str, Any]:
    """How long each step took and how many tokens it read and wrote (the log keeps a dict)."""
    return asdict(t) if isinstance(t, Timings) else dict(t)


def answer(done: Done | TurnRecord) -> dict[str, Any]:
    """A finished answer (the engine's Done, or the log's record of it): the texts, what it
    cites and retrieved, the sentence checks, the timings and the config it ran with."""
    return {
        "question": done.question,
        "query": done.query,
        "answer": done.answer,
        "raw_answer": done.raw_answer,
        "refused": done.refused,
        "mode": done.mode,
        "status": done.status,
        "error": done.error,
        "citations": [citation(c) for c in done.citations],
        "passages": passages(done.hits, done.citations),
        "sentences": [sentence(s) for s in done.sentences],
        "timings": timings(done.timings),
        "config": dict(done.config),
    }


def turn(record: TurnRecord) -> dict[str, Any]:
    """A logged turn: where it sits, its feedback, then the same fields as `answer`."""
    return {
        "id": record.id,
        "conversation_id": record.conversation_id,
        "position": record.position,
        "created_at": record.created_at.isoformat(),
        "feedback_rating": record.feedback_rating,
        "feedback_comment": record.feedback_comment,
        **answer(record),
    }


def pick(data: Mapping[str, Any], names: str | Iterable[str], **sources: str) -> dict[str, Any]:
    """The fields `names` (a sequence, or one string of space-separated names) of `data`, in that
    order; `sources` names the field an output name is read from when the two differ:
    `pick(c, "n text", n="number")` -> {"n": c["number"], "text": c["text"]}."""
    wanted = names.split() if isinstance(names, str) else names
    return {name: data[sources.get(name, name)] for name in wanted}

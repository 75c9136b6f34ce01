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

from rag_core.db.insights import Insights
from rag_core.db.records import TurnRecord
from rag_core.replay import Replay, ReplaySummary
from rag_core.types import (
    Chunk,
    Citation,
    DocumentRecord,
    Done,
    Hit,
    Scope,
    SentenceCheck,
    Timings,
    page_ranges,
)


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


def document(d: DocumentRecord) -> dict[str, Any]:
    """A document as the REST API shows it (`ragchat docs show --json` too): its record's
    fields, dates in ISO 8601, and its ingest report."""
    return {
        "id": d.id,
        "name": d.name,
        "version": d.version,
        "content_hash": d.content_hash,
        "size": d.size,
        "doc_type": d.doc_type,
        "page_count": d.page_count,
        "ocr_pages": list(d.ocr_pages),
        "chunk_count": d.chunk_count,
        "added_at": d.added_at.isoformat(),
        "status": d.status,
        "owner": d.owner,
        "added_by": d.added_by,
        "report": document_report(d),
    }


def document_report(d: DocumentRecord) -> dict[str, Any]:
    """A document's ingest report (REST `report`, `ragchat docs show --json`): what was read and
    what it cost. `recorded` false: ingested before reports were kept; then only the pages, the
    pages OCR read and the chunks are known, the rest is null."""
    r = d.report
    return {
        "recorded": r is not None,
        "pages": d.page_count,
        "ocr_pages": list(d.ocr_pages),
        "tables": r.tables if r else None,
        "chunks": d.chunk_count,
        "warnings": list(r.warnings) if r else None,
        "embedder": r.embedder if r else None,
        "embedder_fingerprint": r.embedder_fingerprint if r else None,
        "seconds": round(r.seconds, 3) if r else None,
        "load_seconds": round(r.load_seconds, 3) if r else None,
        "index_seconds": round(r.index_seconds, 3) if r else None,
    }


def report_facts(d: DocumentRecord) -> list[tuple[str, str]]:
    """The ingest report as (label, text) lines, for the page and `ragchat docs show`."""
    pages = "–" if d.page_count is None else str(d.page_count)
    facts = [
        ("Pages", pages),
        ("Read by OCR", f"page(s) {page_ranges(d.ocr_pages)}" if d.ocr_pages else "none"),
        ("Chunks", str(d.chunk_count)),
    ]
    r = d.report
    if r is None:
        facts.append(("Report", "not recorded (added before ingest reports were kept)"))
        return facts
    weights = f" (weights {r.embedder_fingerprint[:12]})" if r.embedder_fingerprint else ""
    facts += [
        ("Tables", str(r.tables)),
        ("Embedder", f"{r.embedder or 'unknown'}{weights}"),
        (
            "Time",
            f"{r.seconds:.2f} s (reading {r.load_seconds:.2f} s, chunking and embedding"
            f" {r.index_seconds:.2f} s)",
        ),
    ]
    facts += [("Warning", w) for w in r.warnings] or [("Warnings", "none")]
    return facts


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
        "scope": scope(done.config),
    }


def scope(config: Mapping[str, Any]) -> dict[str, list[str]]:
    """What an answer searched, from its config snapshot (which names a scope only when it is
    not everything): collections and documents, both empty for everything visible."""
    return Scope.from_json(config.get("scope")).as_json()


def turn(record: TurnRecord) -> dict[str, Any]:
    """A logged turn: where it sits, its feedback, then the same fields as `answer`."""
    fb = record.feedback
    return {
        "id": record.id,
        "conversation_id": record.conversation_id,
        "position": record.position,
        "created_at": record.created_at.isoformat(),
        "feedback_rating": record.feedback_rating,
        "feedback_comment": record.feedback_comment,
        "feedback_reason": fb.reason if fb else None,
        "feedback_passage": fb.passage if fb else None,
        "feedback_no_passage": fb.no_passage if fb else False,
        "gate_score": record.gate_score,
        **answer(record),
    }


def pick(data: Mapping[str, Any], names: str | Iterable[str], **sources: str) -> dict[str, Any]:
    """The fields `names` (a sequence, or one string of space-separated names) of `data`, in that
    order; `sources` names the field an output name is read from when the two differ:
    `pick(c, "n text", n="number")` -> {"n": c["number"], "text": c["text"]}."""
    wanted = names.split() if isinstance(names, str) else names
    return {name: data[sources.get(name, name)] for name in wanted}


def _replay_side(a: Done | TurnRecord) -> dict[str, Any]:
    """One side of a replay: what the answer said and cited, and its gate score."""
    return {
        "answer": a.answer,
        "refused": a.refused,
        "mode": a.mode,
        "status": a.status,
        "gate_score": a.gate_score,
        "citations": [citation(c) for c in a.citations],
        "config": dict(a.config),
    }


def _replay_sentence(s: SentenceCheck | None) -> dict[str, Any] | None:
    return None if s is None else {"text": s.text, "verdict": s.verdict, "citation": s.citation}


def replay(r: Replay) -> dict[str, Any]:
    """A logged turn beside its replay on today's knowledge base, and what changed."""
    return {
        "turn_id": r.before.id,
        "conversation_id": r.before.conversation_id,
        "question": r.before.question,
        "logged_at": r.before.created_at.isoformat(),
        "models_differ": r.models_differ,
        "notes": list(r.notes),
        "changed": {
            "answer": r.answer_changed,
            "citations": r.citations_moved,
            "refusal_appeared": r.refusal_appeared,
            "refusal_vanished": r.refusal_vanished,
        },
        "before": _replay_side(r.before),
        "after": _replay_side(r.after),
        "passages": [{**asdict(p), "change": p.change} for p in r.passages],
        "sentences": [
            {
                "before": _replay_sentence(s.before),
                "after": _replay_sentence(s.after),
                "changed": s.changed,
            }
            for s in r.sentences
        ],
        "documents": [
            {
                "document_id": d.document_id,
                "name": d.name,
                "status": d.status,
                "current_id": d.current.id if d.current else None,
                "current_version": d.current.version if d.current else None,
            }
            for d in r.documents
        ],
    }


def replay_summary(summary: ReplaySummary) -> dict[str, Any]:
    """Many replays: the turn ids in each kind of change, and one line of facts per turn."""
    return {
        "turns": len(summary.replays),
        "answers_changed": list(summary.answers_changed),
        "citations_moved": list(summary.citations_moved),
        "refusals_appeared": list(summary.refusals_appeared),
        "refusals_vanished": list(summary.refusals_vanished),
        "models_differ": list(summary.models_differ),
        "failures": [asdict(f) for f in summary.failures],
        "replays": [
            {
                "turn_id": r.before.id,
                "question": r.before.question,
                "answer_changed": r.answer_changed,
                "citations_moved": r.citations_moved,
                "refusal_appeared": r.refusal_appeared,
                "refusal_vanished": r.refusal_vanished,
                "gate_before": r.gate_before,
                "gate_after": r.gate_after,
                "documents": [f"{d.name} ({d.status})" for d in r.documents],
                "notes": list(r.notes),
            }
            for r in summary.replays
        ],
    }


def insights(report: Insights) -> dict[str, Any]:
    """The log's insights as JSON (GET /api/insights and the Insights tab read the same)."""
    return {
        "since": report.since.isoformat(),
        "until": report.until.isoformat(),
        "questions": report.questions,
        "days": [
            {
                "day": d.day.isoformat(),
                "questions": d.questions,
                "refused": d.refused,
                "quoted": d.quoted,
                "rated": d.rated,
                "thumbs_down": d.thumbs_down,
                "refusal_rate": d.refusal_rate,
                "quoted_rate": d.quoted_rate,
                "thumbs_down_rate": d.thumbs_down_rate,
            }
            for d in report.days
        ],
        "times": [
            {
                "day": t.day.isoformat(),
                "metric": t.metric,
                "count": t.count,
                "p50_ms": t.p50_ms,
                "p95_ms": t.p95_ms,
            }
            for t in report.times
        ],
        "most_cited": [
            {"document": c.document, "answers": c.answers, "last_cited": c.last_cited.isoformat()}
            for c in report.most_cited
        ],
        "never_cited": [
            {"document": u.document, "version": u.version, "added_at": u.added_at.isoformat()}
            for u in report.never_cited
        ],
        "refused": [
            {"question": r.question, "count": r.count, "last_asked": r.last_asked.isoformat()}
            for r in report.refused
        ],
    }

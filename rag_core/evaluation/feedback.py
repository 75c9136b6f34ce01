"""Rated turns become an evaluation set: the users' own questions, with the documents that answer
them (from the passages marked with a thumbs down, and the citations of answers rated thumbs up)
and whether the documents answer at all (the refusal labels). Written in BEIR format, so
`ragchat eval retrieval|answers --beir DIR` reads it like any other set.

Corpus ids are document names: a document replaced since keeps its name, so a question stays
judged across new versions. A marked passage of a document deleted since is kept in the corpus
as the logged passage text (the log has it).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rag_core.db.records import TurnRecord
from rag_core.errors import UserError
from rag_core.evaluation.beir import BeirDocument
from rag_core.types import Chunk

if TYPE_CHECKING:
    from rag_core.engine import Engine

SPLIT = "test"  # the qrels file of an exported set: qrels/test.tsv


@dataclass(frozen=True)
class FeedbackQuery:
    """One rated turn as an evaluation question. `relevant`: document names that answer it (may
    be empty when nobody marked one); `answerable`: whether the documents answer it, None when
    the rating does not say."""

    id: str
    turn_id: int
    question: str  # the standalone query the turn searched (a follow-up, rewritten)
    rating: int
    reason: str | None
    relevant: frozenset[str]
    answerable: bool | None


@dataclass(frozen=True)
class FeedbackSet:
    """The evaluation set: the questions and the corpus they are judged against."""

    queries: tuple[FeedbackQuery, ...]
    corpus: dict[str, BeirDocument]  # document name -> the document's text

    @property
    def qrels(self) -> dict[str, dict[str, int]]:
        return {q.id: dict.fromkeys(sorted(q.relevant), 1) for q in self.queries if q.relevant}

    @property
    def judged(self) -> tuple[FeedbackQuery, ...]:
        """Questions with at least one relevant document (retrieval can be scored on them)."""
        return tuple(q for q in self.queries if q.relevant)

    @property
    def unanswerable(self) -> tuple[FeedbackQuery, ...]:
        return tuple(q for q in self.queries if q.answerable is False)


def label(record: TurnRecord) -> tuple[frozenset[str], bool | None]:
    """What a rating says: the relevant document names, and whether the documents answer.

    Thumbs up: the answer was right, so its cited documents answer it, or its refusal was right.
    Thumbs down: a marked passage's document answers it; 'answered but they don't' and 'none of
    these' without another reason say the documents do not; 'refused but they do', a wrong fact
    or a wrong citation say they do."""
    fb = record.feedback
    if record.feedback_rating == 1:
        if record.refused:
            return frozenset(), False
        return frozenset(c.chunk.document_name for c in record.citations), True
    if record.feedback_rating != -1:
        return frozenset(), None
    if fb is None:
        return frozenset(), None
    marked = frozenset(
        h.chunk.document_name for h in record.hits if fb.passage and h.chunk.id == fb.passage
    )
    if fb.reason == "should_refuse":
        return frozenset(), False
    if marked or fb.reason in ("should_answer", "wrong_citation", "wrong_fact"):
        return marked, True
    if fb.no_passage:
        return frozenset(), False
    return frozenset(), None


def _document_text(chunks: Sequence[Chunk]) -> str:
    """A document's text rebuilt from its chunks (each is text[char_start:char_end])."""
    out = ""
    for c in sorted(chunks, key=lambda c: (c.char_start, c.char_end)):
        if c.char_start > len(out):
            out += "\n" * min(2, c.char_start - len(out))
            out += c.text
        elif c.char_end > len(out):
            out += c.text[len(out) - c.char_start :]
    return out


def feedback_set(engine: Engine, *, user: str | None = None) -> FeedbackSet:
    """Every rated turn (of `user`, or everyone's) that says something, oldest first, with
    today's documents as the corpus. UserError when no rating says anything yet."""
    queries: list[FeedbackQuery] = []
    extra: dict[str, BeirDocument] = {}
    for turn_id, owner in engine.log.turn_ids(user=user, rated=True):
        record = engine.log.get_turn(turn_id, owner)
        relevant, answerable = label(record)
        if not relevant and answerable is None:
            continue
        reason = record.feedback.reason if record.feedback else None
        question = record.query or record.question
        queries.append(
            FeedbackQuery(
                f"turn-{turn_id}",
                turn_id,
                question,
                record.feedback_rating or 0,
                reason,
                relevant,
                answerable,
            )
        )
        for h in record.hits:  # the logged text of the relevant passages, for deleted documents
            name = h.chunk.document_name
            if name in relevant and name not in extra:
                extra[name] = BeirDocument(name, "", h.chunk.text)
    if not queries:
        who = f" of {user!r}" if user else ""
        raise UserError(
            f"No rated answers{who} to build an evaluation set from: rate answers with 👍, or "
            "👎 with a reason or a marked passage"
        )
    corpus = {
        d.name: BeirDocument(d.name, "", _document_text(engine.store.chunks_of(d.id)))
        for d in engine.documents()
    }
    for name, doc in extra.items():
        corpus.setdefault(name, doc)
    return FeedbackSet(tuple(queries), corpus)


def write_beir(data: FeedbackSet, folder: Path) -> list[Path]:
    """corpus.jsonl, queries.jsonl, qrels/test.tsv, labels.jsonl (rating, reason, answerable)
    and unanswerable.txt (for `ragchat eval answers --unanswerable`); the files written."""
    folder = Path(folder).expanduser()
    try:
        (folder / "qrels").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"Cannot write the evaluation set to {folder}: {exc.strerror}") from exc
    paths = {
        "corpus": folder / "corpus.jsonl",
        "queries": folder / "queries.jsonl",
        "qrels": folder / "qrels" / f"{SPLIT}.tsv",
        "labels": folder / "labels.jsonl",
        "unanswerable": folder / "unanswerable.txt",
    }
    rows = (
        json.dumps({"_id": d.id, "title": d.title, "text": d.text}) for d in data.corpus.values()
    )
    paths["corpus"].write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    lines = (json.dumps({"_id": q.id, "text": q.question}) for q in data.queries)
    paths["queries"].write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    with paths["qrels"].open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(["query-id", "corpus-id", "score"])
        for qid, judged in data.qrels.items():
            writer.writerows([qid, doc, score] for doc, score in judged.items())
    labels = (
        json.dumps(
            {
                "_id": q.id,
                "turn_id": q.turn_id,
                "rating": q.rating,
                "reason": q.reason,
                "answerable": q.answerable,
                "relevant": sorted(q.relevant),
            }
        )
        for q in data.queries
    )
    paths["labels"].write_text("".join(line + "\n" for line in labels), encoding="utf-8")
    unanswerable = "".join(" ".join(q.question.split()) + "\n" for q in data.unanswerable)
    paths["unanswerable"].write_text(unanswerable, encoding="utf-8")
    return list(paths.values())

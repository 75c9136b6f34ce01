"""The facts benchmark: questions with short gold answers over documents in all five formats
(bench/data/facts), scored the way a person judges an answer: is the fact right, is it cited to
the right document, is it short and free of talk about "the passage", and does the system decline
when the documents do not say?"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag_core.errors import UserError
from rag_core.evaluation.corpus import Progress, run_grid
from rag_core.evaluation.metrics import percentile, ratio
from rag_core.prompting import strip_markers
from rag_core.types import AnswerOptions, Done, Token

if TYPE_CHECKING:
    from rag_core.engine import Engine

# What a person reads as the answer talking about itself rather than answering.
META_TALK = re.compile(
    r"\b(the|this|that) (passage|passages|sentence|text|document|doc)s? (says?|states?|mentions?|"
    r"is from|comes from|describes?)\b|\bthe answer is\b|\bthe doc states\b|\bquestion:|"
    r"\baccording to the (text|passage|passages|document)\b|\bthe passage\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class FactQuestion:
    id: str
    question: str
    answerable: bool
    answers: tuple[str, ...]
    document: str | None  # the file that answers it
    type: str = "text"
    reason_terms: tuple[str, ...] = ()
    page: int | None = None
    hard: tuple[str, ...] = ()


@dataclass(frozen=True)
class FactsSet:
    root: Path
    documents: tuple[Path, ...]
    questions: tuple[FactQuestion, ...]


def _own_words(done: Done) -> str:
    """The answer without the sentences it quotes verbatim from a passage: a document's own
    "This document describes ..." is its content, not the answer talking about itself."""
    kept = [done.lead] + [
        s.text
        for s in done.shown
        if not (s.support and strip_markers(s.text) == " ".join(s.support.split()))
    ]
    return " ".join(kept)


def load_facts(path: str | Path) -> FactsSet:
    """A split of the facts set: `documents/` and `questions.jsonl` (see bench/data/facts)."""
    root = Path(path).expanduser()
    docs_dir, qfile = root / "documents", root / "questions.jsonl"
    if not docs_dir.is_dir() or not qfile.is_file():
        raise UserError(f"{root} is not a facts set: it needs documents/ and questions.jsonl")
    questions = []
    for lineno, line in enumerate(qfile.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            questions.append(
                FactQuestion(
                    id=str(row["id"]),
                    question=str(row["question"]),
                    answerable=bool(row["answerable"]),
                    answers=tuple(row.get("answers") or ()),
                    document=row.get("document"),
                    type=str(row.get("type") or "text"),
                    reason_terms=tuple(row.get("reason_terms") or ()),
                    page=row.get("page"),
                    hard=tuple(row.get("hard") or ()),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{qfile} line {lineno}: not a facts question ({exc})") from exc
    documents = tuple(sorted(p for p in docs_dir.iterdir() if p.is_file()))
    return FactsSet(root, documents, tuple(questions))


def _norm(text: str) -> str:
    return " ".join(text.lower().replace("\u00a0", " ").split())


def contains_fact(answer: str, fact: str) -> bool:
    """`fact` in `answer`, case- and whitespace-insensitively, at word boundaries ("5 days" is
    not in "15 days")."""
    needle = re.escape(_norm(fact))
    return re.search(rf"(?<![\w.]){needle}(?![\w]|[.,]\d)", _norm(answer)) is not None


def fact_right(q: FactQuestion, answer: str) -> bool:
    """The gold fact is in the answer (for yes/no: the key word and a word of the reason)."""
    if not any(contains_fact(answer, a) for a in q.answers):
        return False
    if q.type == "yesno" and q.reason_terms:
        return any(t.lower() in answer.lower() for t in q.reason_terms)
    return True


@dataclass(frozen=True)
class FactRecord:
    id: str
    answerable: bool
    strategy: str
    refused: bool
    right: bool  # the fact is shown and a citation points at the gold document
    fact_shown: bool
    cites_gold: bool
    meta_talk: bool
    quoted_fallback: bool
    sentences: int
    first_token_ms: float | None
    total_ms: float
    answer: str
    hard: tuple[str, ...] = ()


def run_fact(engine: Engine, q: FactQuestion, options: AnswerOptions, strategy: str) -> FactRecord:
    t0 = time.perf_counter()
    first: float | None = None
    done: Done | None = None
    for event in engine.answer(q.question, (), options):
        if isinstance(event, Token) and first is None:
            first = (time.perf_counter() - t0) * 1000
        elif isinstance(event, Done):
            done = event
    if done is None:
        raise RuntimeError(f"the engine ended without a Done event for {q.question!r}")
    total = (time.perf_counter() - t0) * 1000
    shown = done.answer
    cited_docs = {c.chunk.document_name for c in done.citations}
    fact = q.answerable and not done.refused and fact_right(q, shown)
    gold = q.document is not None and q.document in cited_docs
    return FactRecord(
        id=q.id,
        answerable=q.answerable,
        strategy=strategy,
        refused=done.refused,
        right=fact and gold,
        fact_shown=fact,
        cites_gold=gold,
        meta_talk=META_TALK.search(_own_words(done)) is not None,
        quoted_fallback=done.mode == "extractive" and strategy != "extractive",
        sentences=sum(1 for s in done.shown if s.claim),
        first_token_ms=first,
        total_ms=total,
        answer=shown,
        hard=q.hard,
    )


def evaluate_facts(
    engine: Engine,
    questions: Sequence[FactQuestion],
    strategies: Sequence[tuple[str, AnswerOptions]],
    progress: Progress | None = None,
) -> list[FactRecord]:
    """Answer every question under each named strategy, one strategy after the other."""

    def run(strategy: tuple[str, AnswerOptions], q: FactQuestion) -> FactRecord:
        name, options = strategy
        return run_fact(engine, q, options, name)

    return run_grid(strategies, questions, run, progress)


@dataclass(frozen=True)
class FactScores:
    strategy: str
    answerable: int
    unanswerable: int
    right: float | None
    fact_shown: float | None
    cites_gold: float | None
    refusal_precision: float | None
    refusal_recall: float | None
    answerable_refused: float | None
    meta_talk: float | None
    quoted_fallback: float | None
    sentences_per_answer: float | None
    first_token_p50_ms: float | None
    total_p50_ms: float | None
    by_hard_case: dict[str, float | None] = field(default_factory=dict)


def summarize_facts(records: Iterable[FactRecord], strategy: str) -> FactScores:
    rs = [r for r in records if r.strategy == strategy]
    ans = [r for r in rs if r.answerable]
    unans = [r for r in rs if not r.answerable]
    shown = [r for r in rs if not r.refused]
    refused = [r for r in rs if r.refused]
    tags = sorted({t for r in ans for t in r.hard})
    return FactScores(
        strategy=strategy,
        answerable=len(ans),
        unanswerable=len(unans),
        right=ratio(sum(r.right for r in ans), len(ans)),
        fact_shown=ratio(sum(r.fact_shown for r in ans), len(ans)),
        cites_gold=ratio(sum(r.cites_gold for r in ans), len(ans)),
        refusal_precision=ratio(sum(not r.answerable for r in refused), len(refused)),
        refusal_recall=ratio(sum(r.refused for r in unans), len(unans)),
        answerable_refused=ratio(sum(r.refused for r in ans), len(ans)),
        meta_talk=ratio(sum(r.meta_talk for r in shown), len(shown)),
        quoted_fallback=ratio(sum(r.quoted_fallback for r in shown), len(shown)),
        sentences_per_answer=(sum(r.sentences for r in shown) / len(shown)) if shown else None,
        first_token_p50_ms=percentile([r.first_token_ms for r in rs if r.first_token_ms], 50),
        total_p50_ms=percentile([r.total_ms for r in rs], 50),
        by_hard_case={
            t: ratio(sum(r.right for r in ans if t in r.hard), sum(t in r.hard for r in ans))
            for t in tags
        },
    )


def facts_as_json(records: Sequence[FactRecord]) -> list[dict[str, Any]]:
    from dataclasses import asdict

    return [asdict(r) for r in records]

"""Answer evaluation: citations, sentence support, refusals and first-token time per policy."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rag_core.evaluation.corpus import CorpusMap, Progress, run_grid
from rag_core.evaluation.metrics import percentile, ratio
from rag_core.prompting import markers_in, strip_markers
from rag_core.protocols import Embedder
from rag_core.types import Done, Hit, Retrieved, SentenceCheck, Token

if TYPE_CHECKING:
    from rag_core.engine import Engine


@dataclass(frozen=True)
class AnswerRecord:
    """What one answer showed, reduced to the figures the answer report needs."""

    question: str
    answerable: bool
    grounding: str
    refused: bool
    mode: str  # Done.mode: generated, extractive, refused
    status: str
    gate_score: float | None
    citations: int
    correct_citations: int
    shown_sentences: int  # claim sentences the user sees
    shown_supported: int
    unflagged_unsupported: int  # unsupported sentences shown without UNSUPPORTED_MARK
    first_token_ms: float | None
    answer: str
    # ALCE (Gao et al. 2023): sentences whose citations together support them, and citations
    # that are needed (support alone, or the others do not without them)
    alce_supported: int = 0
    alce_sentences: int = 0
    alce_needed: int = 0
    alce_citations: int = 0


Judge = Callable[[str, str, Sequence[Hit]], bool]


def checker_judge(embedder: Embedder, threshold: float) -> Judge:
    """Whether `passages` support a sentence, by ragchat's sentence check run on those passages
    alone (numbers with units and roles, names, meaning and words): the judge ALCE leaves to an
    NLI model, which this offline stack does not ship."""
    from rag_core.grounding import Evidence, check_sentences

    def judge(question: str, sentence: str, passages: Sequence[Hit]) -> bool:
        if not passages:
            return False
        evidence = Evidence(question, passages, embedder)
        [check] = check_sentences([sentence], evidence, threshold=threshold)
        return check.supported

    return judge


def alce_counts(done: Done, judge: Judge) -> tuple[int, int, int, int]:
    """(sentences supported by their citations, sentences, needed citations, citations) over
    the answer's shown claim sentences, as ALCE's citation recall and precision count them."""
    supported = sentences = needed = citations = 0
    for check in done.shown:
        if not check.claim:
            continue
        sentences += 1
        cited = [n for n in markers_in(check.text) if 1 <= n <= len(done.hits)]
        claim = strip_markers(check.text)
        together = judge(done.question, claim, [done.hits[n - 1] for n in cited])
        supported += together
        for n in cited:
            citations += 1
            alone = judge(done.question, claim, [done.hits[n - 1]])
            rest = [done.hits[m - 1] for m in cited if m != n]
            # ALCE: irrelevant when it does not support alone and the rest support without it
            needed += alone or not (together and rest and judge(done.question, claim, rest))
    return supported, sentences, needed, citations


def shown_sentences(done: Done) -> tuple[list[SentenceCheck], int]:
    """The claim sentences the answer shows, and how many of them are unsupported yet shown
    without UNSUPPORTED_MARK (grounding 'off' shows them unchecked)."""
    shown = [c for c in done.shown if c.claim]
    return shown, sum(c.verdict == "unchecked" for c in shown)


def answer_record(
    done: Done,
    *,
    grounding: str,
    relevant: Iterable[str] | None,
    documents: CorpusMap,
    first_token_ms: float | None,
    gate: float | None = None,
    judge: Judge | None = None,
) -> AnswerRecord:
    """Score one Done: `relevant` is the set of relevant corpus ids, None for unanswerable."""
    good = set(relevant or ())
    correct = sum(1 for c in done.citations if good & set(documents.doc_ids(c.chunk)))
    shown, bad = shown_sentences(done)
    alce = alce_counts(done, judge) if judge is not None and not done.refused else (0, 0, 0, 0)
    return AnswerRecord(
        question=done.question,
        answerable=relevant is not None,
        grounding=grounding,
        refused=done.refused,
        mode=done.mode,
        status=done.status,
        gate_score=gate,
        citations=len(done.citations),
        correct_citations=correct,
        shown_sentences=len(shown),
        shown_supported=sum(1 for c in shown if c.supported),
        unflagged_unsupported=bad,
        first_token_ms=first_token_ms,
        answer=done.answer,
        alce_supported=alce[0],
        alce_sentences=alce[1],
        alce_needed=alce[2],
        alce_citations=alce[3],
    )


def run_answer(
    engine: Engine, question: str, grounding: str
) -> tuple[Done, float | None, float | None]:
    """Run the engine on one question: (Done, ms to the first Token event, gate score)."""
    t0 = time.perf_counter()
    first: float | None = None
    gate: float | None = None
    done: Done | None = None
    for event in engine.answer(question, (), engine.options(grounding=grounding)):
        if isinstance(event, Retrieved):
            gate = event.gate_score
        elif isinstance(event, Token) and first is None:
            first = (time.perf_counter() - t0) * 1000
        elif isinstance(event, Done):
            done = event
    if done is None:  # the engine promises exactly one Done
        raise RuntimeError(f"the engine ended without a Done event for {question!r}")
    return done, first, gate


def evaluate_answers(
    engine: Engine,
    questions: Sequence[tuple[str, frozenset[str] | None]],
    groundings: Sequence[str],
    *,
    documents: CorpusMap,
    progress: Progress | None = None,
    judge: Judge | None = None,
) -> list[AnswerRecord]:
    """Answer each (question, relevant ids or None if unanswerable) under each grounding policy."""

    score = functools.partial(answer_record, documents=documents, judge=judge)

    def run(item: tuple[str, frozenset[str] | None], policy: str) -> AnswerRecord:
        question, relevant = item
        done, first, gate = run_answer(engine, question, policy)
        return score(done, grounding=policy, relevant=relevant, first_token_ms=first, gate=gate)

    return run_grid(questions, groundings, run, progress)


@dataclass(frozen=True)
class AnswerScores:
    """Answer quality under one grounding policy. A figure is None when it has no denominator."""

    grounding: str
    answerable: int
    unanswerable: int
    citation_precision: float | None  # citations into a relevant document / all citations
    answers_with_correct_citation: float | None  # over answerable questions
    alce_citation_recall: float | None  # shown sentences their citations support
    alce_citation_precision: float | None  # citations that are needed
    supported_sentence_rate: float | None  # shown claim sentences that are supported
    unflagged_unsupported_rate: float | None  # shown answers with an unmarked unsupported sentence
    refusal_rate_answerable: float | None
    refusal_precision: float | None  # positives: the unanswerable questions
    refusal_recall: float | None
    first_token_p50_ms: float | None  # to the first Token event, answers that were not refused
    first_token_p95_ms: float | None
    extractive_share: float | None  # answers not refused that fell back to quoting


def summarize_answers(records: Sequence[AnswerRecord], grounding: str) -> AnswerScores:
    rs = [r for r in records if r.grounding == grounding]
    ans = [r for r in rs if r.answerable]
    unans = [r for r in rs if not r.answerable]
    shown = [r for r in rs if not r.refused]
    refused_pos = sum(r.refused for r in unans)
    refused_all = sum(r.refused for r in rs)
    ttft = [r.first_token_ms for r in shown if r.first_token_ms is not None]
    return AnswerScores(
        grounding=grounding,
        answerable=len(ans),
        unanswerable=len(unans),
        citation_precision=ratio(
            sum(r.correct_citations for r in ans), sum(r.citations for r in ans)
        ),
        answers_with_correct_citation=ratio(sum(r.correct_citations > 0 for r in ans), len(ans)),
        alce_citation_recall=ratio(
            sum(r.alce_supported for r in shown), sum(r.alce_sentences for r in shown)
        ),
        alce_citation_precision=ratio(
            sum(r.alce_needed for r in shown), sum(r.alce_citations for r in shown)
        ),
        supported_sentence_rate=ratio(
            sum(r.shown_supported for r in shown), sum(r.shown_sentences for r in shown)
        ),
        unflagged_unsupported_rate=ratio(
            sum(r.unflagged_unsupported > 0 for r in shown), len(shown)
        ),
        refusal_rate_answerable=ratio(sum(r.refused for r in ans), len(ans)),
        refusal_precision=ratio(refused_pos, refused_all) if unans else None,
        refusal_recall=ratio(refused_pos, len(unans)),
        first_token_p50_ms=percentile(ttft, 50),
        first_token_p95_ms=percentile(ttft, 95),
        extractive_share=ratio(sum(r.mode == "extractive" for r in shown), len(shown)),
    )

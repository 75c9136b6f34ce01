"""Evaluation on BEIR-format datasets: loading, retrieval metrics, answer quality, gate calibration.

Everything here runs through the real engine (ingestion, retrieval, generation, grounding), so the
figures describe what a user gets. Nothing is logged: answers go through `Engine.answer`.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag_core.errors import UserError
from rag_core.grounding import (
    UNSUPPORTED_MARK,
    GateFeatures,
    GateModel,
    fit_gate,
    gate_features,
)
from rag_core.ingest.pipeline import clean_name
from rag_core.types import Chunk, Done, Hit, RetrievalMode, Retrieved, SentenceCheck, Token

if TYPE_CHECKING:
    from rag_core.engine import Engine

Progress = Callable[[int, int], None]  # (items done, items in all)

# --------------------------------------------------------------------------------------------
# BEIR loading


@dataclass(frozen=True)
class BeirDocument:
    id: str
    title: str
    text: str

    @property
    def markdown(self) -> str:
        """The document as ingested: the title becomes the heading of the text."""
        return f"# {self.title}\n\n{self.text}" if self.title.strip() else self.text


@dataclass(frozen=True)
class BeirDataset:
    """A BEIR dataset split: corpus, the queries that have judgements, and the judgements."""

    path: Path
    split: str
    corpus: Mapping[str, BeirDocument]
    queries: Mapping[str, str]  # only queries with at least one relevant document
    qrels: Mapping[str, Mapping[str, int]]  # query id -> corpus id -> graded relevance

    @property
    def corpus_file(self) -> Path:
        return self.path / "corpus.jsonl"


def _read_jsonl(path: Path, required: Sequence[str]) -> list[dict[str, Any]]:
    if not path.is_file():
        raise UserError(f"BEIR dataset: {path} is missing")
    rows = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(
                    f"BEIR dataset: {path} line {lineno} is not JSON ({exc.msg})"
                ) from exc
            if not isinstance(row, dict) or any(key not in row for key in required):
                raise UserError(
                    f"BEIR dataset: {path} line {lineno} lacks one of the fields {list(required)}"
                )
            rows.append(row)
    if not rows:
        raise UserError(f"BEIR dataset: {path} is empty")
    return rows


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    if not path.is_file():
        raise UserError(f"BEIR dataset: {path} is missing (qrels of the split)")
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:3]] != ["query-id", "corpus-id", "score"]:
            raise UserError(
                f"BEIR dataset: {path} must start with the header "
                "'query-id<TAB>corpus-id<TAB>score'"
            )
        for lineno, row in enumerate(reader, start=2):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 3:
                raise UserError(f"BEIR dataset: {path} line {lineno} has fewer than 3 columns")
            try:
                score = int(float(row[2]))
            except ValueError as exc:
                raise UserError(
                    f"BEIR dataset: {path} line {lineno}: score {row[2]!r} is not a number"
                ) from exc
            qrels.setdefault(row[0].strip(), {})[row[1].strip()] = score
    return qrels


def load_beir(path: str | Path, split: str = "dev") -> BeirDataset:
    """Read corpus.jsonl, queries.jsonl and qrels/<split>.tsv; UserError names a bad file."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise UserError(f"BEIR dataset: {root} is not a folder")
    corpus: dict[str, BeirDocument] = {}
    for row in _read_jsonl(root / "corpus.jsonl", ("_id", "text")):
        doc_id = str(row["_id"])
        corpus[doc_id] = BeirDocument(doc_id, str(row.get("title") or ""), str(row["text"] or ""))
    all_queries = {
        str(r["_id"]): str(r["text"]) for r in _read_jsonl(root / "queries.jsonl", ("_id", "text"))
    }
    qrels_all = _read_qrels(root / "qrels" / f"{split}.tsv")
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for qid, judged in qrels_all.items():
        if qid in all_queries and any(score > 0 for score in judged.values()):
            queries[qid] = all_queries[qid]
            qrels[qid] = judged
    if not queries:
        raise UserError(
            f"BEIR dataset: no query of {root / 'queries.jsonl'} has a relevant document in "
            f"{root / 'qrels' / f'{split}.tsv'}"
        )
    return BeirDataset(root, split, corpus, queries, qrels)


def read_questions(path: str | Path) -> list[str]:
    """One question a line; blank lines and lines starting with '#' are skipped."""
    file = Path(path).expanduser()
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read questions from {file}: {exc.strerror or exc}") from exc
    questions = [
        line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")
    ]
    if not questions:
        raise UserError(f"{file} holds no questions (one a line)")
    return questions


def spread(items: Sequence[Any], limit: int | None) -> list[Any]:
    """At most `limit` items, evenly spaced over the sequence (deterministic, not the first N)."""
    if limit is None or limit >= len(items):
        return list(items)
    if limit <= 0:
        return []
    return [items[(i * len(items)) // limit] for i in range(limit)]


# --------------------------------------------------------------------------------------------
# metrics (BEIR / trec_eval definitions; linear gain for nDCG as in pytrec_eval)


def ndcg_at_k(ranking: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    """nDCG@k with graded relevance: sum rel_i / log2(i + 1), over the ideal ordering's sum."""
    dcg = sum(
        qrels.get(doc, 0) / math.log2(i + 2)
        for i, doc in enumerate(ranking[:k])
        if qrels.get(doc, 0) > 0
    )
    ideal = sorted((r for r in qrels.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranking: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    """Share of the relevant documents found in the top k."""
    relevant = {doc for doc, r in qrels.items() if r > 0}
    if not relevant:
        return 0.0
    return len(relevant & set(ranking[:k])) / len(relevant)


def mrr_at_k(ranking: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    """1 / rank of the first relevant document in the top k, else 0."""
    for i, doc in enumerate(ranking[:k], start=1):
        if qrels.get(doc, 0) > 0:
            return 1.0 / i
    return 0.0


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0..100), linear interpolation as numpy's default; None if empty."""
    if not values:
        return None
    data = sorted(values)
    pos = (len(data) - 1) * p / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


# --------------------------------------------------------------------------------------------
# indexing a corpus through the real ingestion path


@dataclass(frozen=True)
class CorpusMap:
    """How indexed documents map back to corpus ids.

    `names` maps a document name to its corpus id. Corpus documents with the same content as an
    earlier one are not indexed twice (the pipeline reports them as duplicates): `duplicates` maps
    the indexed id to the ids that share its content, which get the same score.
    """

    names: Mapping[str, str]
    duplicates: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)
    chunks: int = 0

    def doc_ids(self, chunk: Chunk) -> tuple[str, ...]:
        doc = self.names.get(chunk.document_name)
        if doc is None:
            doc = chunk.document_name.removesuffix(".md")
        return (doc, *self.duplicates.get(doc, ()))

    def to_json(self) -> dict[str, Any]:
        return {
            "names": dict(self.names),
            "duplicates": {k: list(v) for k, v in self.duplicates.items()},
            "errors": dict(self.errors),
            "chunks": self.chunks,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CorpusMap:
        return cls(
            names=dict(data["names"]),
            duplicates={k: tuple(v) for k, v in data.get("duplicates", {}).items()},
            errors=dict(data.get("errors", {})),
            chunks=int(data.get("chunks", 0)),
        )


def document_names(ids: Iterable[str]) -> dict[str, str]:
    """A document name per corpus id: f"{id}.md", made safe where the id is not a valid file name.

    Ids such as 'faq/general#1' hold a '/', which the ingestion path would cut ('general#1.md',
    colliding with 'library/general#1'); '/' and '\\' become '__', and a name that is still not
    safe or unique gets a hash of the id.
    """
    out: dict[str, str] = {}
    used: set[str] = set()
    for doc_id in ids:
        name = re.sub(r"[\\/]", "__", doc_id) + ".md"
        if clean_name(name) != name or name in used:
            name = f"doc-{hashlib.sha1(doc_id.encode()).hexdigest()[:16]}.md"
        used.add(name)
        out[doc_id] = name
    return out


def index_corpus(
    engine: Engine,
    corpus: Mapping[str, BeirDocument],
    progress: Progress | None = None,
    *,
    group: int = 256,
) -> CorpusMap:
    """Ingest every corpus document as Markdown (`# title` then text) via `ingest_many`."""
    names = document_names(corpus)
    by_name = {name: doc_id for doc_id, name in names.items()}
    name_of_doc_id: dict[str, str] = {}  # registry document id -> corpus id
    duplicates: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    chunks = 0
    ids = list(corpus)
    for start in range(0, len(ids), group):
        part = ids[start : start + group]
        files = [(corpus[i].markdown.encode("utf-8"), names[i]) for i in part]
        results = engine.pipeline.ingest_many(files)
        for doc_id, result in zip(part, results, strict=True):
            if result.status in ("added", "replaced") and result.document is not None:
                name_of_doc_id[result.document.id] = doc_id
                chunks += result.chunks
            elif result.status == "duplicate" and result.document is not None:
                original = by_name.get(result.document.name)
                if original is None:
                    errors[doc_id] = f"duplicate of unknown document {result.document.name}"
                else:
                    duplicates.setdefault(original, []).append(doc_id)
            else:
                errors[doc_id] = result.error or result.status
        if progress:
            progress(min(start + group, len(ids)), len(ids))
    return CorpusMap(by_name, {k: tuple(v) for k, v in duplicates.items()}, errors, chunks)


def rank_documents(hits: Sequence[Hit], documents: CorpusMap) -> list[str]:
    """Corpus ids in ranking order; a document ranks where its best chunk does."""
    seen: dict[str, None] = {}
    for hit in hits:
        for doc in documents.doc_ids(hit.chunk):
            seen.setdefault(doc, None)
    return list(seen)


# --------------------------------------------------------------------------------------------
# retrieval evaluation


@dataclass(frozen=True)
class RetrievalScores:
    """Mean metrics of one retrieval mode over the queries, and engine-shaped query latency."""

    mode: str
    queries: int
    ndcg_at_10: float
    recall_at_10: float
    recall_at_100: float
    mrr_at_10: float
    latency_p50_ms: float
    latency_p95_ms: float


def search_documents(
    engine: Engine, query: str, mode: RetrievalMode, k: int, documents: CorpusMap
) -> list[str]:
    """The top k corpus ids for a query; asks for more chunks until k documents are ranked."""
    candidates = engine.settings.candidates
    n_chunks = 3 * k
    while True:
        result = engine.retriever.search(
            query, mode=mode, k=n_chunks, candidates=max(n_chunks, candidates)
        )
        ranking = rank_documents(result.hits, documents)
        if len(ranking) >= k or len(result.hits) < n_chunks or n_chunks >= 40 * k:
            return ranking[:k]
        n_chunks *= 2


def evaluate_retrieval(
    engine: Engine,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    modes: Sequence[RetrievalMode],
    k: int = 100,
    *,
    documents: CorpusMap | None = None,
    progress: Progress | None = None,
) -> list[RetrievalScores]:
    """nDCG@10, Recall@10/@100 and MRR@10 per mode over document rankings of depth k.

    Latency is that of the query as the engine runs it for an answer (top_k passages, the
    configured candidates per retriever, query embedding included), timed separately.
    """
    documents = documents or CorpusMap({})
    s = engine.settings
    out = []
    total = len(queries) * len(modes)
    done = 0
    for mode in modes:
        ndcg, r10, r100, mrr, latency = [], [], [], [], []
        for qid, text in queries.items():
            ranking = search_documents(engine, text, mode, k, documents)
            judged = qrels.get(qid, {})
            ndcg.append(ndcg_at_k(ranking, judged, 10))
            r10.append(recall_at_k(ranking, judged, 10))
            r100.append(recall_at_k(ranking, judged, 100))
            mrr.append(mrr_at_k(ranking, judged, 10))
            t0 = time.perf_counter()
            engine.retriever.search(text, mode=mode, k=s.top_k, candidates=s.candidates)
            latency.append((time.perf_counter() - t0) * 1000)
            done += 1
            if progress:
                progress(done, total)
        out.append(
            RetrievalScores(
                mode=mode,
                queries=len(queries),
                ndcg_at_10=_mean(ndcg) or 0.0,
                recall_at_10=_mean(r10) or 0.0,
                recall_at_100=_mean(r100) or 0.0,
                mrr_at_10=_mean(mrr) or 0.0,
                latency_p50_ms=percentile(latency, 50) or 0.0,
                latency_p95_ms=percentile(latency, 95) or 0.0,
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# answer evaluation


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


_MARKER_NEXT = re.compile(r"\s*\[\d+\]")


def shown_sentences(done: Done, grounding: str) -> tuple[list[SentenceCheck], int]:
    """The claim sentences (no fillers) the answer shows, and how many of them are unsupported
    yet shown without UNSUPPORTED_MARK right after them (with grounding 'off': all unsupported).

    The answer text is scanned in sentence order, so a sentence repeated elsewhere in the answer
    (small models repeat themselves) is matched at its own place.
    """
    claims = [c for c in done.sentences if c.reason != "no claim"]
    if done.mode == "extractive":
        return [c for c in claims if c.supported], 0  # the quotes; rejected text is hidden
    if done.mode != "generated":
        return [], 0
    if grounding == "off":
        return claims, sum(not c.supported for c in claims)
    text = done.answer
    shown: list[SentenceCheck] = []
    bad = pos = 0
    for c in claims:
        at = text.find(c.text, pos)
        if at < 0:
            continue  # removed
        end = at + len(c.text)
        rest = text[end:]
        if not c.supported:
            if rest.lstrip().startswith(UNSUPPORTED_MARK):
                end = text.index(UNSUPPORTED_MARK, end) + len(UNSUPPORTED_MARK)
            elif _MARKER_NEXT.match(rest):
                continue  # this is a later, supported sentence with the same words
            else:
                bad += 1
        shown.append(c)
        pos = end
    return shown, bad


def answer_record(
    done: Done,
    *,
    grounding: str,
    relevant: Iterable[str] | None,
    documents: CorpusMap,
    first_token_ms: float | None,
    gate: float | None = None,
) -> AnswerRecord:
    """Score one Done: `relevant` is the set of relevant corpus ids, None for unanswerable."""
    good = set(relevant or ())
    correct = sum(1 for c in done.citations if good & set(documents.doc_ids(c.chunk)))
    shown, bad = shown_sentences(done, grounding)
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
    )


def run_answer(
    engine: Engine, question: str, grounding: str
) -> tuple[Done, float | None, float | None]:
    """Run the engine on one question: (Done, ms to the first Token event, gate score)."""
    t0 = time.perf_counter()
    first: float | None = None
    gate: float | None = None
    done: Done | None = None
    for event in engine.answer(question, (), grounding=grounding):
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
) -> list[AnswerRecord]:
    """Answer each (question, relevant ids or None if unanswerable) under each grounding policy."""
    records = []
    total = len(questions) * len(groundings)
    for i, (question, relevant) in enumerate(questions):
        for j, policy in enumerate(groundings):
            done, first, gate = run_answer(engine, question, policy)
            records.append(
                answer_record(
                    done,
                    grounding=policy,
                    relevant=relevant,
                    documents=documents,
                    first_token_ms=first,
                    gate=gate,
                )
            )
            if progress:
                progress(i * len(groundings) + j + 1, total)
    return records


@dataclass(frozen=True)
class AnswerScores:
    """Answer quality under one grounding policy. A figure is None when it has no denominator."""

    grounding: str
    answerable: int
    unanswerable: int
    citation_precision: float | None  # citations into a relevant document / all citations
    answers_with_correct_citation: float | None  # over answerable questions
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
        citation_precision=_ratio(
            sum(r.correct_citations for r in ans), sum(r.citations for r in ans)
        ),
        answers_with_correct_citation=_ratio(sum(r.correct_citations > 0 for r in ans), len(ans)),
        supported_sentence_rate=_ratio(
            sum(r.shown_supported for r in shown), sum(r.shown_sentences for r in shown)
        ),
        unflagged_unsupported_rate=_ratio(
            sum(r.unflagged_unsupported > 0 for r in shown), len(shown)
        ),
        refusal_rate_answerable=_ratio(sum(r.refused for r in ans), len(ans)),
        refusal_precision=_ratio(refused_pos, refused_all) if unans else None,
        refusal_recall=_ratio(refused_pos, len(unans)),
        first_token_p50_ms=percentile(ttft, 50),
        first_token_p95_ms=percentile(ttft, 95),
        extractive_share=_ratio(sum(r.mode == "extractive" for r in shown), len(shown)),
    )


# --------------------------------------------------------------------------------------------
# refusal gate calibration


def question_gate_features(
    engine: Engine, question: str, mode: RetrievalMode | None = None
) -> GateFeatures | None:
    """The refusal gate's evidence for a question, computed as Engine.answer does (None: no hits)."""
    from rag_core.engine import clean_question
    from rag_core.retrieval import standalone_query

    s = engine.settings
    query = standalone_query(clean_question(question, s.max_question_chars), ())
    result = engine.retriever.search(
        query, mode=mode or s.retrieval_mode, k=s.top_k, candidates=s.candidates
    )
    if not result.hits:
        return None
    return gate_features(result.hits, result.top_dense, engine.retriever.term_stats(query))


def question_gate_score(engine: Engine, question: str, mode: RetrievalMode | None = None) -> float:
    """The refusal gate's score for a question, as Engine.answer computes it (0 without hits)."""
    features = question_gate_features(engine, question, mode)
    if features is None:
        return 0.0
    return GateModel.from_weights(engine.settings.refusal_gate).score(features)


@dataclass(frozen=True)
class RefusalStats:
    """Refusal quality at one threshold (refuse when score < threshold; positives: unanswerable)."""

    threshold: float
    precision: float
    recall: float
    f1: float
    balanced_accuracy: float
    refused_answerable: int
    refused_unanswerable: int


def refusal_stats(
    answerable: Sequence[float], unanswerable: Sequence[float], threshold: float
) -> RefusalStats:
    tp = sum(s < threshold for s in unanswerable)
    fp = sum(s < threshold for s in answerable)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / len(unanswerable) if unanswerable else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    specificity = 1 - fp / len(answerable) if answerable else 0.0
    return RefusalStats(threshold, precision, recall, f1, (recall + specificity) / 2, fp, tp)


def best_threshold(
    answerable: Sequence[float], unanswerable: Sequence[float], *, decimals: int = 3
) -> RefusalStats:
    """The threshold with the highest refusal F1 (ties: higher balanced accuracy, then the lower
    threshold), placed midway between neighbouring scores and rounded to `decimals`."""
    if not answerable or not unanswerable:
        raise UserError("calibration needs answerable and unanswerable questions")
    values = sorted(set(answerable) | set(unanswerable))
    cuts = [values[0] - 0.01, *((a + b) / 2 for a, b in itertools.pairwise(values))]
    cuts.append(values[-1] + 0.01)
    best: RefusalStats | None = None
    for cut in cuts:
        stats = refusal_stats(answerable, unanswerable, round(cut, decimals))
        if best is None or (stats.f1, stats.balanced_accuracy) > (best.f1, best.balanced_accuracy):
            best = stats
    assert best is not None
    return best


# features of a question without hits: nothing found, nothing covered
NO_EVIDENCE = GateFeatures(0.0, 0.0, 0.0)


@dataclass(frozen=True)
class GateCalibration:
    """A gate model fit on all questions, its threshold, and what k-fold cross-validation says.

    `fitted` is measured on the questions the model was fit on; `cross_validated` pools the
    held-out predictions of `folds` models, each fit (threshold included) without its fold.
    """

    model: GateModel
    fitted: RefusalStats
    cross_validated: RefusalStats
    folds: int


def _fit_with_threshold(
    answerable: Sequence[GateFeatures], unanswerable: Sequence[GateFeatures]
) -> tuple[GateModel, RefusalStats]:
    try:
        model = fit_gate(answerable, unanswerable)
    except ValueError as exc:
        raise UserError(f"cannot calibrate the refusal gate: {exc}") from exc
    stats = best_threshold(
        [model.score(f) for f in answerable], [model.score(f) for f in unanswerable]
    )
    return model, stats


def calibrate_gate(
    answerable: Sequence[GateFeatures], unanswerable: Sequence[GateFeatures], *, folds: int = 10
) -> GateCalibration:
    """Fit the gate (logistic regression + the max-F1 threshold) and cross-validate it.

    Folds are stratified and deterministic: question i of each set goes to fold i mod `folds`.
    """
    if len(answerable) < folds or len(unanswerable) < folds:
        raise UserError(
            f"calibration needs at least {folds} answerable and {folds} unanswerable questions, "
            f"got {len(answerable)} and {len(unanswerable)}"
        )
    model, fitted = _fit_with_threshold(answerable, unanswerable)
    held_ans: list[bool] = []  # refused?
    held_unans: list[bool] = []
    for k in range(folds):
        train_a = [f for i, f in enumerate(answerable) if i % folds != k]
        train_u = [f for i, f in enumerate(unanswerable) if i % folds != k]
        m, st = _fit_with_threshold(train_a, train_u)
        held_ans += [m.score(f) < st.threshold for i, f in enumerate(answerable) if i % folds == k]
        held_unans += [
            m.score(f) < st.threshold for i, f in enumerate(unanswerable) if i % folds == k
        ]
    # pooled held-out decisions, as scores 0 (refused) / 1 (answered) against threshold 0.5
    cv = refusal_stats(
        [0.0 if r else 1.0 for r in held_ans], [0.0 if r else 1.0 for r in held_unans], 0.5
    )
    return GateCalibration(model, fitted, replace(cv, threshold=fitted.threshold), folds)

"""The study behind the retrieval and refusal-gate constants, on several corpora, split in halves.

`dump` runs every question of each corpus once through its cached evaluation index (the same
index `ragchat eval retrieval` builds) and keeps, per question, what every ranking variant needs:
the dense candidates with their exact cosines, the BM25 candidates, each candidate's document,
whether it opens a section, its document's size and similarity, and the refusal gate's raw
signals (also for each corpus's unanswerable questions). `study` then scores ranking variants
and gate features offline, in seconds: constants are chosen on the tune halves only and reported
on the test halves, and leave-one-corpus-out (chosen on the other corpora's tune halves, scored on
this corpus's test half).

    python -m bench.retrieval_study dump [--corpora pyfaq,debian-faq,sqlite,fetchmail]
    python -m bench.retrieval_study study [--json FILE]

Corpora come from `make eval-data` (bench/corpora), in RAGCHAT_EVAL_DATA or
~/.cache/ragchat/eval; dumps go to RAGCHAT_STUDY or ~/.cache/ragchat/study/ (one folder per
chunk size studied: RAGCHAT_CHUNK_SIZE=128 RAGCHAT_STUDY=~/.cache/ragchat/study-128 ...).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common import log

CORPORA = ("pyfaq", "debian-faq", "sqlite", "fetchmail", "facts")  # facts: the gate only
CANDIDATES = 200  # per retriever: deep enough that the top 10 of any variant is inside
DATA = Path(os.environ.get("RAGCHAT_EVAL_DATA", Path.home() / ".cache" / "ragchat" / "eval"))
STUDY = Path(os.environ.get("RAGCHAT_STUDY", Path.home() / ".cache" / "ragchat" / "study"))


@dataclass
class Candidate:
    chunk: str
    docs: list[str]  # corpus ids (a duplicate's ids too)
    document_id: str  # the registry's id
    cos: float  # exact cosine of the query with the chunk's embedding
    bm25: float | None
    dense_rank: int | None
    keyword_rank: int | None
    opens: bool
    chunks_in_document: int
    document_cos: float | None
    heading: str


@dataclass
class Question:
    qid: str
    split: str  # tune or test
    text: str
    relevant: dict[str, int]  # corpus id -> grade; {} for an unanswerable question
    candidates: list[Candidate] = field(default_factory=list)
    gate: dict[str, Any] = field(default_factory=dict)


def _args(index_dir: str | None = None) -> argparse.Namespace:
    return argparse.Namespace(index_dir=index_dir, reindex=False)


def _questions(root: Path) -> list[Question]:
    from rag_core.evaluation import load_beir, read_questions

    out: list[Question] = []
    for split in ("tune", "test"):
        data = load_beir(root, split)
        for qid, text in data.queries.items():
            out.append(Question(qid, split, text, dict(data.qrels[qid])))
        unanswerable = root / f"unanswerable-{split}.txt"
        if unanswerable.is_file():
            for i, text in enumerate(read_questions(unanswerable)):
                out.append(Question(f"unanswerable-{split}-{i}", split, text, {}))
    return out


def _embeddings(engine: Any, chunk_ids: Sequence[str]) -> dict[str, Any]:
    import numpy as np

    got = engine.store._collection.get(ids=list(chunk_ids), include=["embeddings"])
    return {
        cid: np.asarray(e, dtype=np.float32)
        for cid, e in zip(got["ids"], got["embeddings"], strict=False)
    }


def _gate_signals(engine: Any, question: str, query: str, dense: Sequence[float]) -> dict[str, Any]:
    """The refusal gate's inputs as the engine computes them, and raw signals beside them."""
    retrieved = engine.retrieve(question)
    terms = engine.retriever.term_stats(query)
    features = retrieved.features
    return {
        "gate": retrieved.gate_score,
        "features": asdict(features) if features is not None else None,
        "sentence": _best_sentence(engine, question, retrieved.hits),
        "terms": [(t.term, t.df, t.idf) for t in terms],
        "top_dense": list(dense[:20]),
        "hits": [
            {
                "terms": sorted(set(_tokens(" ".join((*h.chunk.heading_path, h.chunk.text))))),
                "dense_rank": h.dense_rank,
                "keyword_rank": h.keyword_rank,
            }
            for h in retrieved.hits
        ],
        "index_chunks": engine.keyword.count(),
    }


def _best_sentence(engine: Any, question: str, hits: Sequence[Any]) -> dict[str, Any]:
    """The best passage sentence as an answer (rag_core/extractive.py): the gate override's
    evidence, and a candidate feature of the gate itself."""
    from rag_core.answer_types import expected_kinds
    from rag_core.extractive import score_sentences
    from rag_core.grounding import Evidence

    ranked = score_sentences(question, Evidence(question, hits, engine.embedder)) if hits else []
    best = ranked[0] if ranked else None
    return {
        "score": best.score if best else 0.0,
        "holds_kind": bool(best and best.holds_kind),
        "asks_kind": bool(expected_kinds(question)),
        "text": best.sentence.text if best else "",
    }


def _memoise_sentences(engine: Any) -> None:
    """Embed each passage sentence once per dump: the same passages come back for many
    questions, and the gate override embeds them again (the study's time is mostly this)."""
    embedder = engine.embedder
    plain = embedder.embed_documents
    memo: dict[str, list[float]] = {}

    def embed_documents(texts: Sequence[str]) -> list[list[float]]:
        missing = list(dict.fromkeys(t for t in texts if t not in memo))
        if missing:
            memo.update(zip(missing, plain(missing), strict=True))
        return [memo[t] for t in texts]

    embedder.embed_documents = embed_documents


def _tokens(text: str) -> list[str]:
    from rag_core.stores.tokenize import tokenize

    return tokenize(text)


def _dump_question(engine: Any, cmap: Any, q: Question, sizes: dict[str, int]) -> None:
    import numpy as np

    from rag_core.retrieval import standalone_query
    from rag_core.text import clean_question

    text = clean_question(q.text, engine.settings.max_question_chars)
    query = standalone_query(text, ())
    vector = np.asarray(engine.embedder.embed_query(query), dtype=np.float32)
    dense = engine.store.query(vector.tolist(), CANDIDATES)
    keyword = engine.keyword.search(query, CANDIDATES)
    chunks = {c.id: c for c, _ in dense}
    missing = [cid for cid, _ in keyword if cid not in chunks]
    chunks.update({c.id: c for c in engine.store.get(missing)})
    vectors = _embeddings(engine, list(chunks))
    openings = engine.retriever.section_openings(list(chunks.values()))
    doc_cos = engine.retriever.document_similarities(
        vector.tolist(), [c.document_id for c in chunks.values()]
    )
    dense_rank = {c.id: i + 1 for i, (c, _) in enumerate(dense)}
    bm25 = {cid: (i + 1, s) for i, (cid, s) in enumerate(keyword)}
    for cid, chunk in chunks.items():
        rank, score = bm25.get(cid, (None, None))
        q.candidates.append(
            Candidate(
                chunk=cid,
                docs=list(cmap.doc_ids(chunk)),
                document_id=chunk.document_id,
                cos=float(vectors[cid] @ vector),
                bm25=score,
                dense_rank=dense_rank.get(cid),
                keyword_rank=rank,
                opens=cid in openings,
                chunks_in_document=sizes.get(chunk.document_id, 1),
                document_cos=doc_cos.get(chunk.document_id),
                heading=" > ".join(chunk.heading_path),
            )
        )
    q.gate = _gate_signals(engine, text, query, [s for _, s in dense])


PROBES = 200  # probes of each kind per knowledge base (kb_calibration)


def _probes(
    engine: Any, probes: int, seed: int
) -> dict[str, list[tuple[str, tuple[str, ...], str]]]:
    """Seeded probes, (document id, heading path, text asked): each section heading, and one
    passage sentence of 6-40 words from each of up to two chunks per document."""
    import hashlib

    from rag_core.text import split_sentences

    def order(key: str) -> str:
        return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()

    out: dict[str, list[tuple[str, tuple[str, ...], str]]] = {"heading": [], "sentence": []}
    for document_id in sorted(engine.registry.ready_chunk_counts(), key=order):
        chunks = engine.store.chunks_of(document_id)
        for path in dict.fromkeys(c.heading_path for c in chunks):
            if path and path[-1].strip() and len(out["heading"]) < probes:
                out["heading"].append((document_id, path, path[-1]))
        for c in sorted(chunks, key=lambda c: order(c.id))[:2]:
            said = [c.text[a:b].strip() for a, b in split_sentences(c.text)]
            said = sorted((x for x in said if 6 <= len(x.split()) <= 40), key=order)
            if said and len(out["sentence"]) < probes:
                out["sentence"].append((document_id, c.heading_path, said[0]))
        if all(len(v) >= probes for v in out.values()):
            break
    return out


def kb_calibration(engine: Any, probes: int = PROBES, seed: int = 20240611) -> dict[str, Any]:
    """How similar the knowledge base is to itself, from its own text and no labels. Each probe
    (a section heading, or a passage sentence) is asked as a question: `own` is its best cosine
    inside its own section, `null` the best outside it, what a related question that the
    documents do not answer might score. A gate feature can place a question's best cosine in
    this distribution instead of using one threshold for every knowledge base."""
    import numpy as np

    out: dict[str, Any] = {}
    for kind, chosen in _probes(engine, probes, seed).items():
        own: list[float] = []
        null: list[float] = []
        for document_id, path, text in chosen:
            vector = np.asarray(engine.embedder.embed_query(text), dtype=np.float32)
            hits = engine.store.query(vector.tolist(), 40)
            inside = [s for c, s in hits if (c.document_id, c.heading_path) == (document_id, path)]
            outside = [s for c, s in hits if (c.document_id, c.heading_path) != (document_id, path)]
            own.append(float(max(inside, default=0.0)))
            null.append(float(max(outside, default=0.0)))
        out[kind] = {"probes": len(own), "own": own, "null": null}
    return out


def heading_keyword_index(engine: Any, repeat: int) -> None:
    """Swap the engine's BM25 index for one over each chunk's heading path (`repeat` times:
    a field weight) and its text; the shipped index reads the text alone."""
    from dataclasses import replace

    from rag_core.stores.keyword import BM25Index

    index = BM25Index(None)
    for document_id in sorted(engine.registry.ready_chunk_counts()):
        chunks = engine.store.chunks_of(document_id)
        index.add(
            [
                replace(c, text="\n".join([" > ".join(c.heading_path)] * repeat + [c.text]))
                for c in chunks
            ]
        )
    engine.keyword = engine.retriever.keyword = index
    log(f"keyword index with headings x{repeat}: {index.count()} chunks")


class ExpandedKeyword:
    """RM3-style expansion on the keyword side: BM25 searches the query plus the `terms` words
    that weigh most (tf x idf) in the top `feedback` dense hits and are not in the query. Wraps
    the engine's BM25 index; everything but `search` passes through."""

    def __init__(self, engine: Any, terms: int, feedback: int = 3) -> None:
        self.engine, self.inner, self.terms, self.feedback = engine, engine.keyword, terms, feedback

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def expand(self, query: str) -> str:
        from collections import Counter

        from rag_core.retrieval import bm25_idf
        from rag_core.stores.tokenize import terms_with_sources

        asked = {term for term, _ in terms_with_sources(query)}
        vector = self.engine.embedder.embed_query(query)
        hits = self.engine.store.query(vector, self.feedback)
        counts: Counter[str] = Counter()
        words: dict[str, str] = {}
        for chunk, _ in hits:
            for term, word in terms_with_sources(chunk.text):
                if term not in asked and not term.isdigit():
                    counts[term] += 1
                    words.setdefault(term, word)
        n = self.inner.count()
        df = self.inner.document_frequency(list(counts))
        weight = {t: c * bm25_idf(df.get(t, 0), n) for t, c in counts.items()}
        best = sorted(weight, key=lambda t: -weight[t])[: self.terms]
        return " ".join([query, *(words[t] for t in best)])

    def search(
        self, query: str, k: int, document_ids: Sequence[str] | None = None
    ) -> list[tuple[str, float]]:
        return self.inner.search(self.expand(query), k, document_ids)  # type: ignore[no-any-return]


def dump(corpus: str, settings: Any, headings: int = 0, expand: int = 0) -> Path:
    """Run every question of `corpus` once and save what the study needs (`headings` > 0: with
    BM25 over the heading path that many times and the text, see heading_keyword_index)."""
    from rag_core.evaluation import load_beir
    from webapp.eval_cli import _close, open_index

    root = DATA / corpus
    out = STUDY / f"{corpus}.jsonl"
    questions = _questions(root)
    dataset = load_beir(root, "tune")
    engine, cmap, info = open_index(_args(), settings, dataset)
    if headings:
        heading_keyword_index(engine, headings)
    if expand:
        engine.keyword = engine.retriever.keyword = ExpandedKeyword(engine, expand)
    t0 = time.perf_counter()
    _memoise_sentences(engine)
    try:
        sizes = dict(engine.registry.ready_chunk_counts())
        STUDY.mkdir(parents=True, exist_ok=True)
        _write_calibration(corpus, kb_calibration(engine))
        with out.open("w", encoding="utf-8") as fh:
            for i, q in enumerate(questions):
                _dump_question(engine, cmap, q, sizes)
                fh.write(json.dumps(asdict(q)) + "\n")
                if i % 50 == 0:
                    log(f"{corpus}: {i}/{len(questions)} questions")
    finally:
        _close(engine)
    log(
        f"{corpus}: {len(questions)} questions, {info.chunks} chunks in {time.perf_counter() - t0:.0f} s"
    )
    return out


def _write_calibration(name: str, data: dict[str, Any]) -> None:
    (STUDY / f"{name}.calibration.json").write_text(json.dumps(data), encoding="utf-8")


def calibration(corpus: str, split: str) -> dict[str, Any] | None:
    """A dump's kb_calibration (facts: one per half, each half its own documents)."""
    path = STUDY / f"{corpus}.calibration.json"
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data.get(split, data)


FACTS = Path(__file__).resolve().parent / "data" / "facts"


def dump_facts(settings: Any) -> Path:
    """The facts set (bench/data/facts) as a gate corpus: dev is its tune half, test its test
    half, each split over its own documents. Only the gate's signals are kept (no candidates:
    its retrieval is a handful of documents)."""
    from rag_core.evaluation.facts import load_facts
    from webapp.eval_facts import open_facts_index

    out = STUDY / "facts.jsonl"
    STUDY.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    calibrations: dict[str, Any] = {}
    with out.open("w", encoding="utf-8") as fh:
        for split, half in (("dev", "tune"), ("test", "test")):
            facts = load_facts(FACTS / split)
            engine = open_facts_index(_args(), settings, facts)
            _memoise_sentences(engine)
            calibrations[half] = kb_calibration(engine)
            try:
                for fq in facts.questions:
                    relevant = {fq.document or "?": 1} if fq.answerable else {}
                    q = Question(fq.id, half, fq.question, relevant)
                    from rag_core.retrieval import standalone_query
                    from rag_core.text import clean_question

                    text = clean_question(q.text, engine.settings.max_question_chars)
                    query = standalone_query(text, ())
                    vector = engine.embedder.embed_query(query)
                    dense = engine.store.query(vector, 20)
                    q.gate = _gate_signals(engine, text, query, [s for _, s in dense])
                    fh.write(json.dumps(asdict(q)) + "\n")
            finally:
                from webapp.eval_cli import _close

                _close(engine)
    _write_calibration("facts", calibrations)
    log(f"facts: dumped in {time.perf_counter() - t0:.0f} s")
    return out


def load(corpus: str) -> list[Question]:
    """A corpus's dump."""
    questions = []
    with (STUDY / f"{corpus}.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            data = json.loads(line)
            cands = [Candidate(**c) for c in data.pop("candidates")]
            questions.append(Question(**data, candidates=cands))
    for q in questions:  # the knowledge base's probes (kb_calibration), for the gate's features
        q.gate["kb"] = calibration(corpus, q.split)
    return questions


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.retrieval_study", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump", help="run every question once; save candidates and gate signals")
    d.add_argument("--corpora", default=",".join(CORPORA))
    d.add_argument(
        "--keyword-headings",
        type=int,
        default=0,
        help="BM25 over the heading path this many times plus the text (0: the text, as shipped)",
    )
    d.add_argument(
        "--keyword-expansion",
        type=int,
        default=0,
        help="BM25 searches the query plus this many words from the top dense hits (RM3-style)",
    )
    s = sub.add_parser("study", help="score ranking variants and gate features offline")
    s.add_argument("--corpora", default=",".join(CORPORA))
    s.add_argument("--json", default=None, help="write the results here too")
    s.add_argument("--gate-only", action="store_true", help="only the refusal-gate study")
    s.add_argument("--markdown", default=None, help="write the key tables here (markdown)")
    s.add_argument(
        "--benchmarks",
        default=None,
        metavar="FILE",
        help="write the key tables into FILE (docs/BENCHMARKS.md) between its study-table markers",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    names = [c.strip() for c in args.corpora.split(",") if c.strip()]
    if args.cmd == "dump":
        from rag_core.config import Settings
        from rag_core.factory import offline_environment

        offline_environment()
        settings = Settings()
        for name in names:
            if name == "facts":
                dump_facts(settings)
            else:
                dump(name, settings, args.keyword_headings, args.keyword_expansion)
        return 0
    from bench.study_analysis import run_study

    run_study(
        names,
        args.json,
        gate_only=args.gate_only,
        markdown_path=args.markdown,
        benchmarks_path=args.benchmarks,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Retrieval evaluation: nDCG@10, Recall@10/@100 and MRR@10 per mode, with query latency."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rag_core.evaluation.corpus import CorpusMap, Progress, rank_documents
from rag_core.evaluation.metrics import mean, mrr_at_k, ndcg_at_k, percentile, recall_at_k
from rag_core.types import RetrievalMode

if TYPE_CHECKING:
    from rag_core.engine import Engine


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
    per_query: dict[str, float] = field(default_factory=dict)  # query id -> nDCG@10


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


def chat_ranking(
    engine: Engine, query: str, mode: RetrievalMode, documents: CorpusMap
) -> list[str]:
    """The corpus ids in the order a chat question ranks them: each retriever gives the
    configured number of candidates (RAGCHAT_CANDIDATES), as it does for an answer, and the
    best that many fused chunks are ranked (far more than the top 10 documents need). The
    fusion's z-scores depend on that pool, so a deeper search would measure a ranking no user
    gets."""
    n = engine.settings.candidates
    result = engine.retriever.search(query, mode=mode, k=n, candidates=n)
    return rank_documents(result.hits, documents)


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
    """nDCG@10, Recall@10 and MRR@10 per mode over the ranking a chat question gets
    (`chat_ranking`), and Recall@100 over a document ranking of depth k.

    Latency is what a user waits for before the first token: Engine.retrieve (query embedding,
    search with the configured top_k and candidates, the refusal gate), timed separately.
    """
    documents = documents or CorpusMap({})
    out = []
    total = len(queries) * len(modes)
    done = 0
    for mode in modes:
        options = engine.options(mode=mode)
        ndcg, r10, r100, mrr, latency = [], [], [], [], []
        each: dict[str, float] = {}
        for qid, text in queries.items():
            top = chat_ranking(engine, text, mode, documents)
            judged = qrels.get(qid, {})
            ndcg.append(ndcg_at_k(top, judged, 10))
            each[qid] = round(ndcg[-1], 4)
            r10.append(recall_at_k(top, judged, 10))
            mrr.append(mrr_at_k(top, judged, 10))
            deep = search_documents(engine, text, mode, k, documents)
            r100.append(recall_at_k(deep, judged, 100))
            t0 = time.perf_counter()
            engine.retrieve(text, (), options)
            latency.append((time.perf_counter() - t0) * 1000)
            done += 1
            if progress:
                progress(done, total)
        out.append(
            RetrievalScores(
                mode=mode,
                queries=len(queries),
                ndcg_at_10=mean(ndcg) or 0.0,
                recall_at_10=mean(r10) or 0.0,
                recall_at_100=mean(r100) or 0.0,
                mrr_at_10=mean(mrr) or 0.0,
                latency_p50_ms=percentile(latency, 50) or 0.0,
                latency_p95_ms=percentile(latency, 95) or 0.0,
                per_query=each,
            )
        )
    return out

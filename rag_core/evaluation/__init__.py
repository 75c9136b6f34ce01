"""Evaluation on BEIR-format datasets: loading, retrieval metrics, answer quality, gate calibration.

Everything here runs through the real engine (ingestion, retrieval, generation, grounding), so the
figures describe what a user gets. Nothing is logged: answers go through `Engine.answer`.
"""

from rag_core.evaluation.answers import (
    AnswerRecord,
    AnswerScores,
    alce_counts,
    answer_record,
    checker_judge,
    evaluate_answers,
    run_answer,
    shown_sentences,
    summarize_answers,
)
from rag_core.evaluation.beir import BeirDataset, BeirDocument, load_beir, read_questions, spread
from rag_core.evaluation.calibration import (
    NO_EVIDENCE,
    GateCalibration,
    RefusalStats,
    best_threshold,
    calibrate_gate,
    question_gate_features,
    refusal_stats,
)
from rag_core.evaluation.corpus import (
    CorpusMap,
    Progress,
    document_names,
    index_corpus,
    rank_documents,
)
from rag_core.evaluation.metrics import mrr_at_k, ndcg_at_k, percentile, recall_at_k
from rag_core.evaluation.retrieval import RetrievalScores, evaluate_retrieval, search_documents

__all__ = [
    "NO_EVIDENCE",
    "AnswerRecord",
    "AnswerScores",
    "BeirDataset",
    "BeirDocument",
    "CorpusMap",
    "GateCalibration",
    "Progress",
    "RefusalStats",
    "RetrievalScores",
    "alce_counts",
    "answer_record",
    "best_threshold",
    "calibrate_gate",
    "checker_judge",
    "document_names",
    "evaluate_answers",
    "evaluate_retrieval",
    "index_corpus",
    "load_beir",
    "mrr_at_k",
    "ndcg_at_k",
    "percentile",
    "question_gate_features",
    "rank_documents",
    "read_questions",
    "recall_at_k",
    "refusal_stats",
    "run_answer",
    "search_documents",
    "shown_sentences",
    "spread",
    "summarize_answers",
]

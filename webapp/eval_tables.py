"""The score tables the `ragchat eval` commands print (retrieval, answers, facts, feedback)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rag_core.evaluation import RetrievalScores


def print_retrieval_table(scores: Sequence[RetrievalScores]) -> None:
    """One row of retrieval figures per mode, under a header."""
    cols = ("nDCG@10", "R@10", "R@100", "MRR@10", "p50 ms", "p95 ms")
    print(f"{'mode':<8}" + "".join(f"{c:>9}" for c in cols))
    for s in scores:
        print(
            f"{s.mode:<8}{s.ndcg_at_10:>9.3f}{s.recall_at_10:>9.3f}{s.recall_at_100:>9.3f}"
            f"{s.mrr_at_10:>9.3f}{s.latency_p50_ms:>9.1f}{s.latency_p95_ms:>9.1f}"
        )


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _digits(key: str) -> int:
    return 0 if key.endswith("_ms") else 3


def print_figures(
    corner: str,
    columns: Sequence[tuple[str, object]],
    rows: Sequence[tuple[str, str]],
    *,
    cell: int = 10,
    digits: Callable[[str], int] = _digits,
) -> None:
    """A table of scores: a column per (name, scores object), a row per (attribute, label), each
    figure with `digits(attribute)` decimals (by default none for milliseconds, else 3)."""
    width = 44
    print(f"{corner:<{width}}" + "".join(f"{name:>{cell}}" for name, _ in columns))
    for key, label in rows:
        cells = "".join(f"{_fmt(getattr(s, key), digits(key)):>{cell}}" for _, s in columns)
        print(f"{label:<{width}}{cells}")

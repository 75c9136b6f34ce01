"""Refusal-gate features that carry across corpora: fitted on tune halves (pooled, or all
corpora but one), reported on test halves. Positives are the unanswerable questions."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.retrieval_study import Question

SHIPPED = (0.506, 0.598, 0.219)  # coverage weight, known weight, threshold (pyfaq dev fit)


def _terms(q: Question) -> list[tuple[str, int, float]]:
    return [tuple(t) for t in q.gate.get("terms", [])]  # type: ignore[misc]


def features(q: Question) -> dict[str, float]:
    """Every signal a gate might use, for one question."""
    g = q.gate
    top = g.get("top_dense") or [0.0]
    f = g.get("features") or {"top_dense": 0.0, "coverage": 0.0, "known": 0.0}
    head = top[:20]
    mean = sum(head) / len(head)
    std = math.sqrt(sum((x - mean) ** 2 for x in head) / len(head)) or 1e-6
    n = max(int(g.get("index_chunks", 1)), 1)
    terms = _terms(q)
    unknown = [idf for _, df, idf in terms if df == 0]
    hits = g.get("hits") or []
    agree = any(
        h["dense_rank"] is not None and h["keyword_rank"] is not None
        and h["dense_rank"] <= 3 and h["keyword_rank"] <= 3
        for h in hits
    )  # fmt: skip
    return {
        "top_dense": f["top_dense"],
        "coverage": f["coverage"],
        "known": f["known"],
        "peak": top[0] - (sum(top[1:10]) / max(len(top[1:10]), 1)),
        "z": (top[0] - mean) / std,
        "agree": 1.0 if agree else 0.0,
        "unknown_rare": max(unknown, default=0.0) / math.log(1 + n),
        "unknown_share": len(unknown) / len(terms) if terms else 0.0,
    }


@dataclass(frozen=True)
class Gate:
    names: tuple[str, ...]
    weights: tuple[float, ...]  # intercept first
    threshold: float  # refuse when P(answerable) < threshold

    def p_answerable(self, f: dict[str, float]) -> float:
        z = self.weights[0] + sum(
            w * f[n] for n, w in zip(self.names, self.weights[1:], strict=True)
        )
        return 1 / (1 + math.exp(-max(min(z, 60), -60)))


def fit(
    rows: Sequence[tuple[dict[str, float], bool]], names: Sequence[str], l2: float = 1.0
) -> Gate:
    """L2 logistic regression (classes weighted equally), threshold at max refusal F1."""
    import numpy as np

    x = np.array([[f[n] for n in names] for f, _ in rows], dtype=np.float64)
    y = np.array([1.0 if ok else 0.0 for _, ok in rows])
    pos, neg = y.sum(), len(y) - y.sum()
    w_row = np.where(y == 1, 0.5 / pos, 0.5 / neg) * len(y)
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1.0
    z = np.hstack([np.ones((len(y), 1)), (x - mean) / std])
    beta = np.zeros(z.shape[1])
    reg = np.full(z.shape[1], l2)
    reg[0] = 0.0
    for _ in range(100):
        p = 1 / (1 + np.exp(-np.clip(z @ beta, -60, 60)))
        grad = z.T @ (w_row * (p - y)) + reg * beta
        hess = (z * (w_row * p * (1 - p))[:, None]).T @ z + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if float(np.abs(step).max()) < 1e-10:
            break
    weights = beta[1:] / std
    intercept = beta[0] - float((beta[1:] * mean / std).sum())
    gate = Gate(tuple(names), (float(intercept), *map(float, weights)), 0.5)
    return _with_best_threshold(gate, rows)


def _with_best_threshold(gate: Gate, rows: Sequence[tuple[dict[str, float], bool]]) -> Gate:
    probs = sorted({gate.p_answerable(f) for f, _ in rows})
    cuts = [0.0, *((a + b) / 2 for a, b in itertools.pairwise(probs)), 1.0]
    best = max(cuts, key=lambda t: (stats(gate_at(gate, t), rows)["f1"], -abs(t - 0.5)))
    return gate_at(gate, best)


def gate_at(gate: Gate, threshold: float) -> Gate:
    return Gate(gate.names, gate.weights, threshold)


def stats(
    decide: Gate | Callable[[dict[str, float]], bool], rows: Sequence[tuple[dict[str, float], bool]]
) -> dict[str, float]:
    refuse = (
        decide
        if callable(decide) and not isinstance(decide, Gate)
        else (
            lambda f: decide.p_answerable(f) < decide.threshold  # type: ignore[union-attr]
        )
    )
    tp = sum(1 for f, ok in rows if not ok and refuse(f))
    fp = sum(1 for f, ok in rows if ok and refuse(f))
    unans = sum(1 for _, ok in rows if not ok)
    ans = len(rows) - unans
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / unans if unans else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3),
            "answerable_refused": round(fp / ans, 3) if ans else 0.0, "n": len(rows)}  # fmt: skip


def shipped(f: dict[str, float]) -> bool:
    cw, kw, threshold = SHIPPED
    score = max(0.0, f["top_dense"] + cw * (f["coverage"] - 1) + kw * (f["known"] - 1))
    return score < threshold


FEATURE_SETS = {
    "shipped features, refit": ("top_dense", "coverage", "known"),
    "+ peak, z": ("top_dense", "coverage", "known", "peak", "z"),
    "+ agreement": ("top_dense", "coverage", "known", "agree"),
    "+ unknown rare term": ("top_dense", "coverage", "known", "unknown_rare", "unknown_share"),
    "all": (
        "top_dense",
        "coverage",
        "known",
        "peak",
        "z",
        "agree",
        "unknown_rare",
        "unknown_share",
    ),
    "z, coverage, unknown": ("z", "coverage", "unknown_rare", "unknown_share"),
}


def gate_report(loaded: dict[str, list[Question]], corpora: Sequence[str]) -> dict[str, Any]:
    rows = {
        c: {
            s: [(features(q), bool(q.relevant)) for q in qs if q.split == s]
            for s in ("tune", "test")
        }
        for c, qs in loaded.items()
    }
    out: dict[str, Any] = {"shipped": {c: stats(shipped, rows[c]["test"]) for c in corpora}}
    for name, names in FEATURE_SETS.items():
        pooled = [r for c in corpora for r in rows[c]["tune"]]
        gate = fit(pooled, names)
        loo = {}
        for held in corpora if len(corpora) > 1 else ():
            train = [r for c in corpora if c != held for r in rows[c]["tune"]]
            g = fit(train, names)
            loo[held] = stats(g, rows[held]["test"])
        out[name] = {
            "weights": dict(
                zip(("intercept", *names), (round(w, 4) for w in gate.weights), strict=True)
            ),
            "threshold": round(gate.threshold, 4),
            "test": {c: stats(gate, rows[c]["test"]) for c in corpora},
            "leave_one_out": loo,
        }
    return out

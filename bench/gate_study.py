"""Refusal-gate features that carry across corpora: fitted on tune halves (pooled, or all
corpora but one), reported on test halves. Positives are the unanswerable questions."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.retrieval_study import Question
from rag_core.grounding import REQUEST_TERMS
from rag_core.stores.tokenize import tokenize

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
    sentence = g.get("sentence") or {}
    best = f["top_dense"]
    said = set(tokenize(sentence.get("text", "")))
    asked = [(t, idf) for t, df, idf in terms if df > 0 and t not in REQUEST_TERMS]
    mass = sum(idf for _, idf in asked)
    return {
        **_calibrated(best, (g.get("kb") or {}).get("sentence"), ""),
        **_calibrated(best, (g.get("kb") or {}).get("heading"), "_heading"),
        "top_dense": f["top_dense"],
        "coverage": f["coverage"],
        "known": f["known"],
        "peak": top[0] - (sum(top[1:10]) / max(len(top[1:10]), 1)),
        "z": (top[0] - mean) / std,
        "agree": 1.0 if agree else 0.0,
        "unknown_rare": max(unknown, default=0.0) / math.log(1 + n),
        "unknown_share": len(unknown) / len(terms) if terms else 0.0,
        "sentence": float(sentence.get("score", 0.0)),
        # the share of the question's known rare vocabulary that the best answer sentence holds
        "sentence_coverage": sum(idf for t, idf in asked if t in said) / mass if mass else 0.0,
        "holds_kind": 1.0 if sentence.get("holds_kind") else 0.0,
        "asks_kind": 1.0 if sentence.get("asks_kind") else 0.0,
        # asks for a kind of fact (an amount, a duration, ...) that the best sentence lacks
        "kind_missing": 1.0
        if sentence.get("asks_kind") and not sentence.get("holds_kind")
        else 0.0,
    }


def _calibrated(best: float, probes: dict[str, Any] | None, suffix: str) -> dict[str, float]:
    """The best cosine placed among the knowledge base's own probes (kb_calibration): z-score
    over the probes' best cosine outside their section, its percentile there, and its position
    between that mean (0) and the mean of their best cosine inside their section (1)."""
    null = (probes or {}).get("null") or [0.0]
    own = (probes or {}).get("own") or [1.0]
    mean = sum(null) / len(null)
    std = math.sqrt(sum((x - mean) ** 2 for x in null) / len(null)) or 1e-6
    return {
        f"kbz{suffix}": (best - mean) / std,
        f"kbp{suffix}": sum(1 for x in null if x < best) / len(null),
        f"kbpos{suffix}": (best - mean) / ((sum(own) / len(own) - mean) or 1e-6),
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
    rows: Sequence[tuple[dict[str, float], bool]],
    names: Sequence[str],
    l2: float = 1.0,
    cap: float | None = None,
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
    return _with_best_threshold(gate, rows, cap)


def _with_best_threshold(
    gate: Gate, rows: Sequence[tuple[dict[str, float], bool]], cap: float | None = None
) -> Gate:
    """The threshold with the best refusal F1 on `rows`; with `cap`, the one with the best
    recall among those that refuse at most `cap` of the answerable questions."""
    probs = sorted({gate.p_answerable(f) for f, _ in rows})
    cuts = [0.0, *((a + b) / 2 for a, b in itertools.pairwise(probs)), 1.0]

    def key(t: float) -> tuple[float, ...]:
        st = stats(gate_at(gate, t), rows)
        if cap is None:
            return (st["f1"], -abs(t - 0.5))
        return (st["answerable_refused"] <= cap, st["recall"], st["precision"], -t)

    return gate_at(gate, max(cuts, key=key))


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


OVERRIDE = 0.5  # Settings.gate_override_score


def overridden(refuse: Callable[[dict[str, float]], bool]) -> Callable[[dict[str, float]], bool]:
    """The engine's decision: the gate refuses, unless a passage sentence holds the kind of
    fact asked for and scores at least OVERRIDE as an answer."""
    return lambda f: refuse(f) and not (f["holds_kind"] and f["sentence"] >= OVERRIDE)


def refuser(gate: Gate) -> Callable[[dict[str, float]], bool]:
    return lambda f: gate.p_answerable(f) < gate.threshold


FEATURE_SETS = {
    "shipped features, refit": ("top_dense", "coverage", "known"),
    "+ peak, z": ("top_dense", "coverage", "known", "peak", "z"),
    "+ agreement": ("top_dense", "coverage", "known", "agree"),
    "+ unknown rare term": ("top_dense", "coverage", "known", "unknown_rare", "unknown_share"),
    "+ sentence score": ("top_dense", "coverage", "known", "sentence"),
    "+ sentence": ("top_dense", "coverage", "known", "sentence", "holds_kind", "asks_kind"),
    "+ sentence, asks kind": ("top_dense", "coverage", "known", "sentence", "asks_kind"),
    "+ sentence, kind missing": ("top_dense", "coverage", "known", "sentence", "kind_missing"),
    "+ kind missing": ("top_dense", "coverage", "known", "kind_missing"),
    "+ z, sentence, kind missing": ("top_dense", "coverage", "known", "z", "sentence", "kind_missing"),
    "+ z, sentence": ("top_dense", "coverage", "known", "z", "sentence", "holds_kind", "asks_kind"),
    "all": (
        "top_dense", "coverage", "known", "peak", "z", "agree", "unknown_rare", "unknown_share",
        "sentence", "holds_kind", "asks_kind",
    ),
    "z, coverage, unknown": ("z", "coverage", "unknown_rare", "unknown_share"),
    "kb z (heading probes) for similarity + sentence, asks kind": ("kbz_heading", "coverage", "known", "sentence", "asks_kind"),
    "+ sentence, asks kind, sentence coverage": ("top_dense", "coverage", "known", "sentence", "asks_kind", "sentence_coverage"),
    "+ sentence, sentence coverage": ("top_dense", "coverage", "known", "sentence", "sentence_coverage"),
    "kb z for similarity": ("kbz", "coverage", "known"),
    "kb z for similarity + sentence, asks kind": ("kbz", "coverage", "known", "sentence", "asks_kind"),
    "kb percentile for similarity + sentence, asks kind": ("kbp", "coverage", "known", "sentence", "asks_kind"),
    "kb position for similarity + sentence, asks kind": ("kbpos", "coverage", "known", "sentence", "asks_kind"),
    "+ kb z, sentence, asks kind": ("top_dense", "kbz", "coverage", "known", "sentence", "asks_kind"),
}  # fmt: skip
RULES = {"max F1": None, "answerable refused <= 0.05": 0.05}

Rows = dict[str, dict[str, list[tuple[dict[str, float], bool]]]]  # corpus -> half -> rows


def _macro(per: dict[str, dict[str, float]]) -> dict[str, float]:
    keys = ("precision", "recall", "f1", "answerable_refused")
    return {k: round(sum(v[k] for v in per.values()) / len(per), 3) for k in keys}


def leave_one_out(
    rows: Rows, corpora: Sequence[str], names: Sequence[str], cap: float | None
) -> dict[str, Any]:
    """Fit on the other corpora's tune halves, score this corpus's test half (and both of its
    halves: it was never seen), with and without the engine's answer-level override."""
    out: dict[str, Any] = {"gate": {}, "gate + override": {}, "gate, whole corpus": {}}
    for held in corpora:
        train = [r for c in corpora if c != held for r in rows[c]["tune"]]
        g = fit(train, names, cap=cap)
        out["gate"][held] = stats(g, rows[held]["test"])
        out["gate + override"][held] = stats(overridden(refuser(g)), rows[held]["test"])
        out["gate, whole corpus"][held] = stats(g, rows[held]["tune"] + rows[held]["test"])
    for key in list(out):
        out[key]["macro"] = _macro(out[key])
    return out


def rows_of(
    loaded: dict[str, list[Question]],
    extra: Callable[[Question], dict[str, float]] | None = None,
) -> Rows:
    """Per corpus and half, each question's features (with `extra`'s added) and whether it is
    answerable."""
    return {
        c: {
            s: [
                (features(q) | (extra(q) if extra else {}), bool(q.relevant))
                for q in qs
                if q.split == s
            ]
            for s in ("tune", "test")
        }
        for c, qs in loaded.items()
    }


def gate_report(loaded: dict[str, list[Question]], corpora: Sequence[str]) -> dict[str, Any]:
    """The shipped gate and every feature set's fits, per corpus, on test halves and
    leave-one-corpus-out."""
    rows = rows_of(loaded)
    out: dict[str, Any] = {
        "shipped": {c: {s: stats(shipped, rows[c][s]) for s in ("tune", "test")} for c in corpora},
        "shipped + override": {
            c: {s: stats(overridden(shipped), rows[c][s]) for s in ("tune", "test")}
            for c in corpora
        },
        "fits": {},
    }
    for name, names in FEATURE_SETS.items():
        for rule, cap in RULES.items():
            pooled = [r for c in corpora for r in rows[c]["tune"]]
            gate = fit(pooled, names, cap=cap)
            test = {c: stats(gate, rows[c]["test"]) for c in corpora}
            test["macro"] = _macro(test)
            out["fits"][f"{name}; {rule}"] = {
                "features": list(names),
                "weights": dict(
                    zip(("intercept", *names), (round(w, 4) for w in gate.weights), strict=True)
                ),
                "threshold": round(gate.threshold, 4),
                "pooled tune fit, test halves": test,
                "leave_one_out": leave_one_out(rows, corpora, names, cap)
                if len(corpora) > 1
                else {},
            }
    return out


SHIP = ("+ sentence, asks kind", 0.05)  # the feature set and answerable-refused cap shipped


def engine_form(gate: Gate) -> tuple[tuple[float, ...], float]:
    """The fitted gate as the engine's settings (rag_core.grounding.GateModel): weights relative
    to the similarity's coefficient, and the threshold on the engine's score. Needs the features
    (top_dense, coverage, known, sentence, asks_kind), in that order."""
    names = ("top_dense", "coverage", "known", "sentence", "asks_kind")
    if gate.names != names:
        raise ValueError(f"the engine's gate reads {names}, this fit {gate.names}")
    b0, w_top, w_cov, w_known, w_sent, w_asks = gate.weights
    if w_top <= 0:
        raise ValueError("the fit gives no positive weight to the dense similarity")
    cw, kw, sw, aw = (w / w_top for w in (w_cov, w_known, w_sent, w_asks))
    logit = math.log(gate.threshold / (1 - gate.threshold))
    threshold = (logit - b0) / w_top - (cw + kw)
    return (cw, kw, sw, aw), threshold


def ship(loaded: dict[str, list[Question]], corpora: Sequence[str]) -> dict[str, Any]:
    """Fit the shipped feature set on every corpus's tune half; its engine settings, and the
    engine's own decisions (GateModel + override) on each test half as a check of the form."""
    from rag_core.grounding import GateModel
    from rag_core.types import GateFeatures

    name, cap = SHIP
    rows = [
        (features(q), bool(q.relevant)) for c in corpora for q in loaded[c] if q.split == "tune"
    ]
    gate = fit(rows, FEATURE_SETS[name], cap=cap)
    weights, threshold = engine_form(gate)
    model = GateModel.from_weights(weights)

    def engine_refuses(f: dict[str, float]) -> bool:
        gf = GateFeatures(f["top_dense"], f["coverage"], f["known"], f["sentence"], f["asks_kind"])
        return model.score(gf) < threshold

    test = {}
    for c in corpora:
        half = [(features(q), bool(q.relevant)) for q in loaded[c] if q.split == "test"]
        test[c] = {"gate": stats(engine_refuses, half),
                   "gate + override": stats(overridden(engine_refuses), half)}  # fmt: skip
    return {
        "features": name,
        "cap": cap,
        "fitted_on": [f"{c} tune half" for c in corpora],
        "refusal_gate": [round(w, 4) for w in weights],
        "refusal_threshold": round(threshold, 4),
        "test halves (tuned on the other half)": test,
    }


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import json

    from bench.retrieval_study import load

    parser = argparse.ArgumentParser(
        prog="python -m bench.gate_study",
        description="Fit the shipped refusal-gate form on the dumps of bench.retrieval_study; "
        "print its settings and its leave-one-corpus-out figures.",
    )
    parser.add_argument("--corpora", default="pyfaq,debian-faq,fetchmail,sqlite,facts")
    args = parser.parse_args(argv)
    corpora = [c.strip() for c in args.corpora.split(",") if c.strip()]
    loaded = {c: load(c) for c in corpora}
    report = gate_report(loaded, corpora)
    name, cap = SHIP
    rule = next(r for r, v in RULES.items() if v == cap)
    out = {
        "ship": ship(loaded, corpora),
        "leave_one_out": report["fits"][f"{name}; {rule}"]["leave_one_out"],
        "shipped before": {
            "gate": report["shipped"],
            "gate + override": report["shipped + override"],
        },
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

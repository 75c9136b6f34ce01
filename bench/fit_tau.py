"""Fit tau of the RAG prior p(z|x) = softmax(retrieval score / tau) on the facts dev split.

For each answerable dev question, the top-k passages of `Engine.retrieve` (the same retrieval the
answer uses) and which of them are gold: from the gold document and holding one of the gold
answer's spellings. tau maximises the likelihood the prior puts on the gold passages (the mass of
p(z|x) on them), over a log-spaced grid. Questions whose top k hold no gold passage say nothing about tau and are counted
apart. The test split is scored with the fitted tau, never used to choose it.

    python -m bench.fit_tau [--dev bench/data/facts/dev] [--test bench/data/facts/test]
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path

from bench.common import log

GRID = tuple(round(0.01 * 1.25**i, 4) for i in range(26))  # 0.01 .. ~2.6


def gold_mass(scores: Sequence[float], gold: Sequence[bool], tau: float) -> float:
    """The prior's mass on the gold passages."""
    top = max(scores)
    weights = [math.exp((s - top) / tau) for s in scores]
    return sum(w for w, g in zip(weights, gold, strict=True) if g) / sum(weights)


def mean_log_likelihood(rows: Sequence[tuple[list[float], list[bool]]], tau: float) -> float:
    return sum(math.log(max(gold_mass(s, g, tau), 1e-12)) for s, g in rows) / len(rows)


def _holds(text: str, answers: Sequence[str]) -> bool:
    flat = " ".join(text.lower().split())
    return any(" ".join(a.lower().split()) in flat for a in answers)


def collect(split: Path) -> tuple[list[tuple[list[float], list[bool]]], int]:
    """(scores, is-gold) per answerable question with a gold passage in its top k; and how many
    questions had none."""
    from rag_core.config import Settings
    from rag_core.evaluation.facts import load_facts
    from webapp.eval_cli import _close
    from webapp.eval_facts import open_facts_index

    facts = load_facts(split)
    settings = Settings()
    args = argparse.Namespace(reindex=False)
    engine = open_facts_index(args, settings, facts)
    rows, missing = [], 0
    try:
        options = engine.options()
        for q in facts.questions:
            if not q.answerable:
                continue
            hits = engine.retrieve(q.question, (), options).hits
            gold = [
                h.chunk.document_name == q.document and _holds(h.chunk.text, q.answers)
                for h in hits
            ]
            if not any(gold):
                missing += 1
                continue
            rows.append(([h.score for h in hits], gold))
    finally:
        _close(engine)
    return rows, missing


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", default="bench/data/facts/dev")
    parser.add_argument("--test", default="bench/data/facts/test")
    args = parser.parse_args(argv)
    dev, dev_missing = collect(Path(args.dev))
    curve = {tau: mean_log_likelihood(dev, tau) for tau in GRID}
    best = max(curve, key=lambda t: curve[t])
    test, test_missing = collect(Path(args.test))
    out = {
        "tau": best,
        "dev_questions": len(dev),
        "dev_without_gold_in_top_k": dev_missing,
        "dev_mean_log_likelihood": round(curve[best], 4),
        "dev_gold_mass_mean": round(sum(gold_mass(s, g, best) for s, g in dev) / len(dev), 4),
        "test_questions": len(test),
        "test_without_gold_in_top_k": test_missing,
        "test_mean_log_likelihood": round(mean_log_likelihood(test, best), 4),
        "test_gold_mass_mean": round(sum(gold_mass(s, g, best) for s, g in test) / len(test), 4),
        "test_gold_mass_uniform": round(
            sum(sum(g) / len(g) for _, g in test) / len(test), 4
        ),  # tau -> infinity
        "curve": {str(t): round(v, 4) for t, v in curve.items()},
    }
    log(f"fit_tau: tau {best} (dev mean log-likelihood {curve[best]:.4f})")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

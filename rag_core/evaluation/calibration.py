"""Refusal gate calibration: the gate's evidence per question, fit, threshold, k-fold check."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from rag_core.errors import UserError
from rag_core.grounding import GateModel, fit_gate
from rag_core.types import GateFeatures, RetrievalMode

if TYPE_CHECKING:
    from rag_core.engine import Engine


def question_gate_features(
    engine: Engine, question: str, mode: RetrievalMode | None = None
) -> GateFeatures | None:
    """The refusal gate's evidence for a question, as Engine.retrieve computes it for an answer
    (None: nothing was retrieved)."""
    return engine.retrieve(question, (), engine.options(mode=mode)).features


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

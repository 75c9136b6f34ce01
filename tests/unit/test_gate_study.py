"""The refusal-gate study (bench/gate_study.py): the fit it ships decides in the engine exactly as
it did in the study, and leave-one-corpus-out never scores a corpus with a fit that saw it."""

from __future__ import annotations

import random

from bench.gate_study import FEATURE_SETS, SHIP, engine_form, fit, leave_one_out, refuser
from rag_core.grounding import GateModel
from rag_core.types import GateFeatures


def _rows(seed: int, n: int = 60) -> list[tuple[dict[str, float], bool]]:
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        ok = i % 3 != 0
        f = {
            "top_dense": rnd.uniform(0.45, 0.75) + (0.05 if ok else 0.0),
            "coverage": rnd.uniform(0.4, 1.0) if ok else rnd.uniform(0.2, 0.8),
            "known": rnd.uniform(0.8, 1.0),
            "sentence": rnd.uniform(0.4, 0.9) if ok else rnd.uniform(0.1, 0.6),
            "asks_kind": float(rnd.random() < (0.5 if ok else 0.8)),
            "holds_kind": 0.0,
        }
        rows.append((f, ok))
    return rows


def test_the_engine_form_of_a_fit_makes_the_same_decisions() -> None:
    rows = _rows(1)
    gate = fit(rows, FEATURE_SETS[SHIP[0]], cap=SHIP[1])
    weights, threshold = engine_form(gate)
    model = GateModel.from_weights(weights)
    assert model.reads_sentence and model.reads_kind
    study = refuser(gate)
    for f, _ in _rows(2, 200):  # questions the fit never saw
        gf = GateFeatures(f["top_dense"], f["coverage"], f["known"], f["sentence"], f["asks_kind"])
        assert (model.score(gf) < threshold) == study(f)


def test_leave_one_out_scores_each_corpus_with_a_fit_on_the_others() -> None:
    rows = {
        "a": {"tune": _rows(3), "test": _rows(4)},
        "b": {"tune": _rows(5), "test": _rows(6)},
        # a corpus whose labels are reversed: a fit that saw it would do far worse on the others
        "c": {"tune": [(f, not ok) for f, ok in _rows(7)], "test": _rows(8)},
    }
    out = leave_one_out(rows, ["a", "b", "c"], FEATURE_SETS[SHIP[0]], cap=None)
    assert set(out["gate"]) == {"a", "b", "c", "macro"}
    # c's test half is ordinary data: the fit on a and b (which never saw c's reversed tune half)
    # refuses the unanswerable ones there
    assert out["gate"]["c"]["recall"] > 0.5


def test_a_similarity_is_placed_among_the_knowledge_bases_own_probes() -> None:
    from bench.gate_study import _calibrated

    probes = {"null": [0.4, 0.5, 0.6], "own": [0.8, 0.8, 0.8]}
    at_null = _calibrated(0.5, probes, "")
    assert at_null["kbz"] == 0.0 and at_null["kbpos"] == 0.0
    assert at_null["kbp"] == 1 / 3  # above one of the three probes' best outside their section
    at_own = _calibrated(0.8, probes, "_heading")
    assert abs(at_own["kbpos_heading"] - 1.0) < 1e-9 and at_own["kbp_heading"] == 1.0
    assert abs(at_own["kbz_heading"] - 0.3 / (0.02 / 3) ** 0.5) < 1e-9

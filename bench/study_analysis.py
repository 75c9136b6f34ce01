"""Offline scoring for bench/retrieval_study.py: ranking variants and refusal-gate features,
chosen on tune halves, reported on test halves and leave-one-corpus-out."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench.common import log
from bench.retrieval_study import Candidate, Question, load
from rag_core.evaluation import ndcg_at_k

LENGTH_CAP = 8


@dataclass(frozen=True)
class Variant:
    """One way to rank the candidates (the engine's fusion, and the alternatives studied). The
    defaults are the engine's former ones (chosen on pyfaq dev), so labels name what differs."""

    method: str = "convex"  # convex | rrf | dense | bm25
    alpha: float = 0.95  # convex: weight of the (boosted) dense similarity
    section_bonus: float = 0.15
    length_penalty: float = 0.02
    document_weight: float = 0.2
    rrf_k: int = 60
    keyword_weight: float = 0.5  # rrf: weight of the BM25 rank (dense: 1)
    pool: int = 40  # candidates per retriever, as chat runs (RAGCHAT_CANDIDATES)
    normalise: str = "max"  # convex: max (BM25 / best) | minmax | z (both retrievers)
    exact_keyword_only: bool = False  # a BM25-only chunk gets its own cosine, not the floor
    exact_dense: bool = False  # the dense pool is the exact top by cosine (ef_search -> inf)
    keyword_gate: str = "none"  # scale BM25's weight per question by a signal: see _confidence
    gate_at: float = 0.0  # the signal's value from which BM25 has its full weight (linear below)

    def label(self) -> str:
        keys = asdict(self)
        base = asdict(Variant())
        return ", ".join(f"{k}={v}" for k, v in keys.items() if v != base[k]) or "engine"


def _boosted(c: Candidate, v: Variant) -> float:
    score = c.cos
    if v.document_weight and c.document_cos is not None:
        score += v.document_weight * (c.document_cos - c.cos)
    if v.section_bonus and c.opens:
        score += v.section_bonus
    n = min(c.chunks_in_document, LENGTH_CAP)
    if v.length_penalty and n > 1:
        score -= v.length_penalty * math.log(n)
    return score


def _scale(values: dict[str, float], how: str) -> dict[str, float]:
    if not values:
        return values
    xs = list(values.values())
    if how == "minmax":
        lo, hi = min(xs), max(xs)
        return {k: (x - lo) / (hi - lo) if hi > lo else 0.0 for k, x in values.items()}
    mean = sum(xs) / len(xs)
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / len(xs)) or 1.0
    return {k: (x - mean) / std for k, x in values.items()}


def _confidence(
    q: Question, kw: dict[str, Candidate], dense: dict[str, Candidate], how: str
) -> float:
    """How far BM25 can be trusted on this question, by a signal that needs no labels:
    ztop: its best score's z-score over its own pool (a clear winner, not a flat list);
    margin: its best score's lead over the second, relative to the best;
    agree: the share of its top 10 chunks that dense also has in its pool;
    idf: the question's rarest term's idf over the largest idf the index can give."""
    if how == "ztop":
        return max(_scale({cid: c.bm25 or 0.0 for cid, c in kw.items()}, "z").values(), default=0.0)
    scores = sorted((c.bm25 or 0.0 for c in kw.values()), reverse=True)
    if how == "margin":
        return (scores[0] - scores[1]) / scores[0] if len(scores) > 1 and scores[0] > 0 else 0.0
    if how == "agree":
        top = sorted(kw.values(), key=lambda c: c.keyword_rank or 0)[:10]
        return sum(c.chunk in dense for c in top) / 10
    if how == "idf":
        n = q.gate.get("index_chunks") or 1
        idfs = [idf for _, _, idf in q.gate.get("terms", [])]
        return max(idfs, default=0.0) / math.log(1 + n)
    return 1.0


def chunk_scores(q: Question, v: Variant) -> dict[str, float]:
    """Each candidate chunk's ranking score under variant `v`."""
    if v.exact_dense:
        by_cos = sorted(q.candidates, key=lambda c: -c.cos)[: v.pool]
        dense = {c.chunk: c for c in by_cos}
    else:
        dense = {
            c.chunk: c for c in q.candidates if c.dense_rank is not None and c.dense_rank <= v.pool
        }
    kw = {
        c.chunk: c for c in q.candidates if c.keyword_rank is not None and c.keyword_rank <= v.pool
    }
    if v.method == "bm25":
        return {cid: c.bm25 or 0.0 for cid, c in kw.items()}
    boosted = {cid: _boosted(c, v) for cid, c in dense.items()}
    if v.method == "dense":
        return boosted
    if v.method == "rrf":
        order = sorted(boosted, key=lambda cid: -boosted[cid])
        scores = {cid: 1 / (v.rrf_k + r) for r, cid in enumerate(order, start=1)}
        for cid, c in kw.items():
            assert c.keyword_rank is not None
            scores[cid] = scores.get(cid, 0.0) + v.keyword_weight / (v.rrf_k + c.keyword_rank)
        return scores
    floor = min(boosted.values(), default=0.0)
    d = dict(boosted)
    for cid in kw.keys() - boosted.keys():
        d[cid] = _boosted(kw[cid], v) if v.exact_keyword_only else floor
    k = {cid: kw[cid].bm25 or 0.0 for cid in kw}
    if v.normalise == "max":
        top = max(k.values(), default=0.0) or 1.0
        k = {cid: s / top for cid, s in k.items()}
    else:
        d, k = _scale(d, v.normalise), _scale(k, v.normalise)
    weight = 1 - v.alpha
    if v.keyword_gate != "none" and v.gate_at > 0:
        weight *= min(1.0, _confidence(q, kw, dense, v.keyword_gate) / v.gate_at)
    return {cid: v.alpha * d[cid] + weight * k.get(cid, 0.0) for cid in d}


def document_ranking(q: Question, v: Variant) -> list[str]:
    scores = chunk_scores(q, v)
    by_id = {c.chunk: c for c in q.candidates}
    seen: dict[str, None] = {}
    for cid in sorted(scores, key=lambda cid: (-scores[cid], cid)):
        for doc in by_id[cid].docs:
            seen.setdefault(doc, None)
    return list(seen)


def ndcg(questions: Sequence[Question], v: Variant) -> float:
    scored = [ndcg_at_k(document_ranking(q, v), q.relevant, 10) for q in questions]
    return sum(scored) / len(scored) if scored else 0.0


Data = dict[str, dict[str, list[Question]]]  # corpus -> split -> answerable questions


def answerable(data: dict[str, list[Question]]) -> Data:
    out: Data = {}
    for corpus, qs in data.items():
        out[corpus] = {s: [q for q in qs if q.split == s and q.relevant] for s in ("tune", "test")}
    return out


Table = dict[Variant, dict[str, dict[str, float]]]  # variant -> corpus -> half -> nDCG@10


def score_table(data: Data, corpora: Sequence[str], variants: Iterable[Variant]) -> Table:
    """Every variant's nDCG@10 on every half of every corpus, computed once: choosing on any
    set of tune halves is then a look-up."""
    table: Table = {}
    for v in variants:
        if v not in table:
            table[v] = {c: {s: ndcg(data[c][s], v) for s in ("tune", "test")} for c in corpora}
    return table


def search(table: Table, corpora: Sequence[str], grid: Iterable[Variant]) -> tuple[Variant, float]:
    """The variant with the best macro nDCG@10 over the tune halves of `corpora`."""
    best: tuple[Variant, float] | None = None
    for v in grid:
        score = sum(table[v][c]["tune"] for c in corpora) / len(corpora)
        if best is None or score > best[1] + 1e-9:
            best = (v, score)
    assert best is not None
    return best


def chosen_and_loo(table: Table, corpora: Sequence[str], grid: Sequence[Variant]) -> dict[str, Any]:
    """Chosen on all tune halves -> each test half; and leave-one-corpus-out (chosen on the
    other corpora's tune halves, scored on this one's test half)."""
    chosen, tune = search(table, corpora, grid)
    test = {c: round(table[chosen][c]["test"], 4) for c in corpora}
    loo: dict[str, Any] = {}
    for held in corpora if len(corpora) > 1 else ():
        v, _ = search(table, [c for c in corpora if c != held], grid)
        loo[held] = {"variant": v.label(), "test": round(table[v][held]["test"], 4)}
    return {
        "chosen": chosen.label(),
        "variant": asdict(chosen),
        "tune_macro": round(tune, 4),
        "test": test,
        "test_macro": round(sum(test.values()) / len(test), 4),
        "leave_one_out": loo,
        "loo_macro": round(sum(x["test"] for x in loo.values()) / len(loo), 4) if loo else None,
    }


def grids() -> dict[str, list[Variant]]:
    """The families studied, each a grid of its own constants."""
    priors = dict(section_bonus=[0.0, 0.05, 0.1, 0.15, 0.2], length_penalty=[0.0, 0.01, 0.02, 0.04],
                  document_weight=[0.0, 0.1, 0.2, 0.3])  # fmt: skip
    convex = [
        Variant(alpha=a, section_bonus=b, length_penalty=g, document_weight=w)
        for a in (0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0)
        for b, g, w in itertools.product(*priors.values())
    ]
    dense = [
        Variant(method="dense", section_bonus=b, length_penalty=g, document_weight=w)
        for b, g, w in itertools.product(*priors.values())
    ]
    rrf = [
        Variant(
            method="rrf",
            rrf_k=k,
            keyword_weight=kw,
            section_bonus=b,
            length_penalty=0.0,
            document_weight=w,
        )
        for k in (5, 10, 20, 40, 60, 100)
        for kw in (0.25, 0.5, 0.75, 1.0)
        for b in (0.0, 0.1, 0.15)
        for w in (0.0, 0.2)
    ]
    normalised = [
        Variant(alpha=a, normalise=n, section_bonus=b, document_weight=w, length_penalty=0.0)
        for n in ("minmax", "z")
        for a in (0.6, 0.7, 0.8, 0.9, 0.95)
        for b in (0.0, 0.1, 0.15)
        for w in (0.0, 0.2)
    ]
    gated = [
        Variant(alpha=a, normalise=n, section_bonus=b, document_weight=w, length_penalty=0.0,
                keyword_gate=g, gate_at=t)
        for n in ("max", "z")
        for a in (0.5, 0.6, 0.7, 0.8, 0.9)
        for b in (0.0, 0.1, 0.2)
        for w in (0.0, 0.2)
        for g, ts in GATES.items()
        for t in ts
    ]  # fmt: skip
    return {
        "dense": dense,
        "convex": convex,
        "rrf": rrf,
        "normalised": normalised,
        "keyword confidence": gated,
    }


GATES = {  # the confidence signals and the values tried for full weight
    "ztop": (2.0, 3.0, 4.0, 5.0, 6.0),
    "margin": (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0),
    "agree": (0.1, 0.2, 0.3, 0.5),
    "idf": (0.4, 0.5, 0.6, 0.7, 0.8),
}


BASELINES = {
    "bm25": Variant(method="bm25"),
    "dense (plain)": Variant(method="dense", section_bonus=0, length_penalty=0, document_weight=0),
    "former defaults (alpha 0.95 + three priors, chosen on pyfaq dev)": Variant(),
    "alpha 0.8, no priors (chosen on debian-faq and fetchmail alone)": Variant(
        alpha=0.8, section_bonus=0, length_penalty=0, document_weight=0
    ),
    "convex alpha 0.9, section bonus 0.2 (chosen on three tune halves, max-normalised)": Variant(
        alpha=0.9, section_bonus=0.2, length_penalty=0, document_weight=0
    ),
    "z-scores, alpha 0.6, section bonus 0.1, document weight 0.2 (chosen on three tune halves)": (
        Variant(alpha=0.6, normalise="z", section_bonus=0.1, length_penalty=0, document_weight=0.2)
    ),
}


def prior_grids(convex: Sequence[Variant]) -> dict[str, tuple[list[Variant], list[Variant]]]:
    """Per prior: (the convex grid with it free, the same grid with it off)."""
    return {
        "section bonus": (list(convex), [v for v in convex if v.section_bonus == 0]),
        "length penalty": (list(convex), [v for v in convex if v.length_penalty == 0]),
        "document weight": (list(convex), [v for v in convex if v.document_weight == 0]),
        "fusion (alpha < 1)": (list(convex), [v for v in convex if v.alpha == 1.0]),
        "exact dense top 40 (ef_search -> inf)": (
            [replace(v, exact_dense=True) for v in convex],
            list(convex),
        ),
    }


def retrieval_report(data: Data, corpora: Sequence[str]) -> dict[str, Any]:
    """Baselines; per family chosen on tune halves -> test halves and leave-one-corpus-out; per
    prior the same with and without it."""
    families = grids()
    priors = prior_grids(families["convex"])
    every = [*BASELINES.values(), *(v for g in families.values() for v in g)]
    every += [v for with_, _ in priors.values() for v in with_]
    table = score_table(data, corpora, every)
    report: dict[str, Any] = {"baselines": {}, "families": {}, "priors": {}}
    for name, v in BASELINES.items():
        report["baselines"][name] = {
            c: {s: round(table[v][c][s], 4) for s in ("tune", "test")} for c in corpora
        }
    for family, grid in families.items():
        report["families"][family] = chosen_and_loo(table, corpora, grid)
        log(f"{family}: {report['families'][family]['chosen']}")
    for prior, (with_, without) in priors.items():
        report["priors"][prior] = {
            "with": chosen_and_loo(table, corpora, with_),
            "without": chosen_and_loo(table, corpora, without),
        }
    return report


def ablations(data: Data, corpora: Sequence[str], v: Variant) -> dict[str, dict[str, float]]:
    """Test-half nDCG@10 per corpus with `v`, and with each of its priors removed."""
    removed = {
        "as chosen": v,
        "no section bonus": replace(v, section_bonus=0.0),
        "no length penalty": replace(v, length_penalty=0.0),
        "no document weight": replace(v, document_weight=0.0),
        "no fusion (dense)": replace(v, method="dense"),
        "pool 200": replace(v, pool=200),
        "exact dense top 40": replace(v, exact_dense=True),
        "BM25-only chunks get their cosine": replace(v, exact_keyword_only=True),
    }
    return {
        name: {c: round(ndcg(data[c]["test"], var), 4) for c in corpora}
        for name, var in removed.items()
    }


GATE_ONLY = ("facts",)  # corpora with gate signals only (no ranking candidates)


def run_study(
    corpora: Sequence[str],
    json_path: str | None,
    *,
    gate_only: bool = False,
    markdown_path: str | None = None,
    benchmarks_path: str | None = None,
) -> dict[str, Any]:
    loaded = {c: load(c) for c in corpora}
    ranked = [c for c in corpora if c not in GATE_ONLY]
    report: dict[str, Any] = {}
    if ranked and not gate_only:
        data = answerable({c: loaded[c] for c in ranked})
        report = retrieval_report(data, ranked)
        best_family = max(report["families"], key=lambda f: report["families"][f]["tune_macro"])
        chosen = Variant(**report["families"][best_family]["variant"])
        report["ablations"] = ablations(data, ranked, chosen)
        report["ablated"] = f"{best_family}: {chosen.label()}"
    from bench.gate_study import gate_report

    report["gate"] = gate_report(loaded, corpora)
    text = json.dumps(report, indent=2)
    print(text)
    if json_path:
        with open(json_path, "w", encoding="utf-8") as fh:
            fh.write(text)
    if markdown_path or benchmarks_path:
        from bench.study_tables import markdown, write_into

        tables = markdown(report)
        if markdown_path:
            with open(markdown_path, "w", encoding="utf-8") as fh:
                fh.write(tables)
        if benchmarks_path:
            write_into(Path(benchmarks_path), tables)
    return report

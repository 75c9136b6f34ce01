"""Markdown tables of a study report (bench/retrieval_study.py study --markdown FILE), the form
docs/BENCHMARKS.md quotes: test halves and leave-one-corpus-out, tune figures beside them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    return [_row(head), _row(["---"] * len(head)), *(_row(r) for r in rows), ""]


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def retrieval_tables(report: dict[str, Any]) -> list[str]:
    corpora = list(next(iter(report["baselines"].values())))
    out = [
        "nDCG@10, test halves (tune halves in brackets, *tuned on* where constants were chosen):",
        "",
    ]
    rows = []
    for name, per in report["baselines"].items():
        cells = [f"{_f(per[c]['test'])} ({_f(per[c]['tune'])})" for c in corpora]
        macro = sum(per[c]["test"] for c in corpora) / len(corpora)
        rows.append([name, *cells, _f(macro)])
    out += _table(["ranking", *corpora, "macro"], rows)
    out += ["Each family's constants chosen on all tune halves (test halves), and leave-one-corpus-out "
            "(chosen on the other corpora's tune halves, scored on this corpus's test half):", ""]  # fmt: skip
    rows = []
    for family, r in report["families"].items():
        rows.append([f"{family}: chosen on all tune halves", *(_f(r["test"][c]) for c in corpora),
                     _f(r["test_macro"]), f"{_f(r['tune_macro'])} (tuned on)", r["chosen"]])  # fmt: skip
        loo = r["leave_one_out"]
        rows.append([f"{family}: leave-one-out", *(_f(loo[c]["test"]) for c in corpora),
                     _f(r["loo_macro"]), "", ""])  # fmt: skip
    out += _table(["family", *corpora, "macro", "tune macro", "chosen"], rows)
    out += [
        "Each prior with and without it (the other constants re-chosen on the tune halves each time):",
        "",
    ]
    rows = []
    for prior, r in report["priors"].items():
        for side in ("with", "without"):
            s = r[side]
            loo = s["leave_one_out"]
            rows.append([f"{prior}: {side}", *(f"{_f(s['test'][c])} / {_f(loo[c]['test'])}" for c in corpora),
                         f"{_f(s['test_macro'])} / {_f(s['loo_macro'])}"])  # fmt: skip
    out += _table(["prior (test half / leave-one-out)", *corpora, "macro"], rows)
    if "ablations" in report:
        rows = [[name, *(_f(v[c]) for c in corpora)] for name, v in report["ablations"].items()]
        which = report.get("ablated", "")
        out += [f"The best family's choice ({which}) with one thing changed (test halves):", ""]
        out += _table(["variant", *corpora], rows)
    return out


def _prf(s: dict[str, float]) -> str:
    return f"{s['precision']:.2f} / {s['recall']:.2f} / {s['answerable_refused']:.2f}"


def gate_tables(gate: dict[str, Any], top: int = 6) -> list[str]:
    corpora = list(gate["shipped"])
    out = ["Refusal precision / recall / share of answerable questions refused, test halves "
           "(facts: its test split):", ""]  # fmt: skip
    rows = [
        [name, *(_prf(gate[name][c]["test"]) for c in corpora)]
        for name in ("shipped", "shipped + override")
    ]
    out += _table(["gate", *corpora], rows)
    ranked = sorted(
        gate["fits"].items(),
        key=lambda kv: -kv[1]["leave_one_out"]["gate + override"]["macro"]["f1"],
    )
    rows = []
    for name, fit in ranked[:top]:
        loo = fit["leave_one_out"]["gate + override"]
        rows.append([name, *(_prf(loo[c]) for c in corpora), _prf(loo["macro"])])
    out += ["Leave-one-corpus-out (fitted on the other corpora's tune halves, with the answer-level "
            "override), the best feature sets by macro refusal F1:", ""]  # fmt: skip
    out += _table(["features; threshold rule", *corpora, "macro"], rows)
    return out


def markdown(report: dict[str, Any]) -> str:
    lines: list[str] = []
    if "baselines" in report:
        lines += retrieval_tables(report)
    if "gate" in report:
        lines += gate_tables(report["gate"])
    return "\n".join(lines)


BEGIN, END = "<!-- study tables: begin -->", "<!-- study tables: end -->"


def write_into(path: Path, tables: str) -> None:
    """Replace what lies between the study-table markers of `path` (docs/BENCHMARKS.md) with
    `tables`; everything else in the file stays as it is."""
    text = path.read_text(encoding="utf-8")
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(
            f"{path} has no '{BEGIN}' ... '{END}' block to write the study's tables into"
        )
    new = text[: start + len(BEGIN)] + "\n\n" + tables.strip() + "\n\n" + text[end:]
    path.write_text(new, encoding="utf-8")

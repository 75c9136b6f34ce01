"""What every benchmark shares: results with checked targets, timing helpers, the machine, the corpus.

A benchmark returns a `BenchResult`: a few table rows of figures and one or more `Check`s, each a
ratio (or absolute figure) measured in the same run, with its target and PASS/MISS.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rag_core.evaluation import BeirDataset, BeirDocument, document_names, percentile

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BEIR = ROOT.parent / "shared" / "eval" / "pyfaq"
CACHE = Path.home() / ".cache" / "ragchat" / "bench"

__all__ = [
    "CACHE",
    "DEFAULT_BEIR",
    "ROOT",
    "BenchResult",
    "Check",
    "alternate",
    "corpus_slice",
    "free_port",
    "machine_info",
    "median",
    "p",
    "percentile",
    "print_result",
    "write_corpus",
]


@dataclass(frozen=True)
class Check:
    """One target: `value` compared with `target` (at least, or at most)."""

    name: str
    value: float | None
    target: float
    at_most: bool = False  # True: the value must be <= target
    unit: str = "x"

    @property
    def passed(self) -> bool:
        if self.value is None:
            return False
        return self.value <= self.target if self.at_most else self.value >= self.target

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "NOT RUN"
        return "PASS" if self.passed else "MISS"

    def describe(self) -> str:
        op = "<=" if self.at_most else ">="
        value = "n/a" if self.value is None else fmt(self.value)
        return f"{self.name}: {value}{self.unit} (target {op} {fmt(self.target)}{self.unit})"


@dataclass(frozen=True)
class BenchResult:
    """A benchmark's outcome: its figures as table rows, its checks, and how to rerun it."""

    name: str
    title: str
    command: str
    rows: tuple[tuple[str, str], ...]  # (figure, value)
    checks: tuple[Check, ...]
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    data: Mapping[str, Any] = field(default_factory=dict)  # raw figures for --json


def fmt(value: float) -> str:
    """A number with about three significant digits."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def p(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of a non-empty sequence."""
    out = percentile(values, q)
    if out is None:
        raise ValueError("percentile of no values")
    return out


def alternate(sides: Mapping[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Run each side `repeats` times, interleaved (A B, B A, A B, ...) so that the machine's
    background load falls on both sides alike. Each callable returns its own figure."""
    names = list(sides)
    out: dict[str, list[float]] = {n: [] for n in names}
    for i in range(repeats):
        order = names if i % 2 == 0 else names[::-1]
        for name in order:
            out[name].append(sides[name]())
    return out


def machine_info() -> dict[str, str]:
    """CPU model, cores, RAM, load, OS, python and library versions, and the date (UTC)."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": ram,
        "load average (1/5/15 min) at start": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
        "os": platform.platform(),
        "python": sys.version.split()[0],
    }
    for module in ("torch", "transformers", "sentence_transformers", "chromadb", "gradio"):
        try:
            mod = __import__(module)
            info[module] = str(getattr(mod, "__version__", "?"))
        except ImportError:
            info[module] = "not installed"
    try:
        import torch

        info["torch threads"] = str(torch.get_num_threads())
    except ImportError:
        pass
    info["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return info


def corpus_slice(
    dataset: BeirDataset, n_docs: int, *, gold_first: bool = False
) -> dict[str, BeirDocument]:
    """`n_docs` corpus documents, evenly spread over the corpus (deterministic).

    With `gold_first`, every gold document of the split's qrels is in, and the rest are
    distractors spread over the remaining corpus.
    """
    ids = list(dataset.corpus)
    chosen: list[str] = []
    if gold_first:
        gold = {d for judged in dataset.qrels.values() for d, r in judged.items() if r > 0}
        chosen = [i for i in ids if i in gold]
        ids = [i for i in ids if i not in gold]
    rest = max(0, n_docs - len(chosen))
    if rest:
        chosen += [ids[(k * len(ids)) // rest] for k in range(min(rest, len(ids)))]
    return {i: dataset.corpus[i] for i in chosen}


def write_corpus(docs: Mapping[str, BeirDocument], folder: Path) -> dict[str, Path]:
    """Write each document as Markdown (`# title` then text); corpus id -> file."""
    folder.mkdir(parents=True, exist_ok=True)
    names = document_names(docs)
    out = {}
    for doc_id, doc in docs.items():
        path = folder / names[doc_id]
        path.write_text(doc.markdown, encoding="utf-8")
        out[doc_id] = path
    return out


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log(message: str) -> None:
    """Progress on stderr, so stdout stays the result."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def print_result(result: BenchResult, *, as_json: bool = False) -> None:
    """The result on stdout: a short table and the checks, or one JSON object."""
    if as_json:
        print(
            json.dumps(
                {
                    "name": result.name,
                    "title": result.title,
                    "command": result.command,
                    "figures": dict(result.rows),
                    "checks": [
                        {
                            "name": c.name,
                            "value": c.value,
                            "target": c.target,
                            "at_most": c.at_most,
                            "unit": c.unit,
                            "verdict": c.verdict,
                        }
                        for c in result.checks
                    ],
                    "notes": list(result.notes),
                    "seconds": round(result.seconds, 1),
                    "data": result.data,
                },
                indent=2,
                default=str,
            )
        )
        return
    print(f"== {result.title} ({result.seconds:.0f} s)")
    width = max((len(k) for k, _ in result.rows), default=0)
    for key, value in result.rows:
        print(f"  {key.ljust(width)}  {value}")
    for check in result.checks:
        print(f"  {check.verdict:7} {check.describe()}")
    for note in result.notes:
        print(f"  note: {note}")

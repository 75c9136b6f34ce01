"""Run every benchmark with its defaults and write docs/BENCHMARKS.md (`make bench`).

Each benchmark runs in its own subprocess (`python -m bench.NAME --json`), so one's models,
threads and memory do not colour the next one's figures, and a failure in one still leaves a
report of the others.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import ROOT, BenchResult, Check, log, machine_info, print_result
from bench.report import render_report, write_report

BENCHMARKS = ("ingest", "ingest_memory", "peer", "latency", "generation", "concurrency")
REPORT = ROOT / "docs" / "BENCHMARKS.md"


def result_from_json(data: dict[str, object]) -> BenchResult:
    """The inverse of print_result(as_json=True)."""
    figures = data["figures"]
    checks = data["checks"]
    assert isinstance(figures, dict) and isinstance(checks, list)
    return BenchResult(
        name=str(data["name"]),
        title=str(data["title"]),
        command=str(data["command"]),
        rows=tuple((str(k), str(v)) for k, v in figures.items()),
        checks=tuple(
            Check(
                str(c["name"]),
                c["value"],
                float(c["target"]),
                bool(c["at_most"]),
                str(c.get("unit", "x")),
            )
            for c in checks
        ),
        notes=tuple(str(n) for n in data.get("notes", []) or []),  # type: ignore[attr-defined]
        seconds=float(data.get("seconds", 0.0)),  # type: ignore[arg-type]
    )


def run_one(name: str, extra: Sequence[str] = ()) -> BenchResult | str:
    """Run one benchmark in a subprocess; its result, or why it failed."""
    cmd = [sys.executable, "-m", f"bench.{name}", "--json", *extra]
    log(f"run_all: {shlex.join(cmd)}")
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        return f"failed with exit code {proc.returncode} (see the log above)"
    start = proc.stdout.find("{")
    try:
        return result_from_json(json.loads(proc.stdout[start:]))
    except (ValueError, KeyError, AssertionError) as exc:
        return f"printed no readable result ({exc})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__)
    parser.add_argument(
        "--only",
        default=",".join(BENCHMARKS),
        help=f"comma-separated subset of {','.join(BENCHMARKS)}",
    )
    parser.add_argument("--report", type=Path, default=REPORT, help="where to write the report")
    parser.add_argument(
        "--note",
        action="append",
        default=[],
        help="a line to add under the machine table (e.g. that it was shared)",
    )
    parser.add_argument(
        "--latency-sizes",
        default=None,
        metavar="N,N,...",
        help="chunk counts of the latency benchmark's scaled indexes (its default: 100000; "
        "add 1000000 for 1M)",
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    machine = machine_info()
    started = time.perf_counter()
    results: list[BenchResult] = []
    failed: dict[str, str] = {}
    for name in names:
        extra = ["--sizes", args.latency_sizes] if name == "latency" and args.latency_sizes else []
        outcome = run_one(name, extra)
        if isinstance(outcome, str):
            failed[name] = outcome
            log(f"run_all: {name} {outcome}")
        else:
            results.append(outcome)
            print_result(outcome)
    machine["load average (1/5/15 min) at end"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    machine["total time"] = f"{(time.perf_counter() - started) / 60:.1f} min"
    given = list(sys.argv[1:] if argv is None else argv)
    command = "python -m bench.run_all " + shlex.join(given) if given else "make bench"
    notes = list(args.note)
    load = os.getloadavg()[1]
    cores = os.cpu_count() or 1
    if load > cores:
        notes.append(
            f"The machine was shared during the run (5-minute load average {load:.1f} on "
            f"{cores} cores at the end): absolute figures are lower than on a quiet machine; the "
            "ratios compare both sides under the same load."
        )
    text = render_report(results, machine, command=command, notes=notes, skipped=failed)
    write_report(args.report, text)
    log(f"run_all: wrote {args.report}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

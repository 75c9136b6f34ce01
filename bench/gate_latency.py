"""Engine.retrieve time with the default refusal gate and with the four-weight gate (which scores
the passages' sentences on every question), interleaved per question on one corpus's cached
evaluation index: `python -m bench.gate_latency [--corpus debian-faq]`."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

FOUR = ((0.8629, 0.2389, 1.5636, -0.3107), 0.5135)  # bench.gate_study's fit (docs/BENCHMARKS.md)


def main(argv: Sequence[str] | None = None) -> int:
    from bench.retrieval_study import DATA, _args
    from rag_core.config import Settings
    from rag_core.evaluation import load_beir, read_questions
    from rag_core.factory import offline_environment
    from webapp.eval_cli import _close, open_index

    parser = argparse.ArgumentParser(prog="python -m bench.gate_latency", description=__doc__)
    parser.add_argument("--corpus", default="debian-faq")
    args = parser.parse_args(argv)
    offline_environment()
    root = DATA / args.corpus
    data = load_beir(root, "test")
    questions = [*data.queries.values(), *read_questions(root / "unanswerable-test.txt")]
    engine, _, _ = open_index(_args(), Settings(), data)
    gates = {"default": (engine.settings.refusal_gate, engine.settings.refusal_threshold),
             "four weights": FOUR}  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in gates}
    try:
        for q in questions[:5]:
            engine.retrieve(q)  # warm
        for q in questions:
            for name, (weights, threshold) in gates.items():
                engine.settings.refusal_gate = weights
                engine.settings.refusal_threshold = threshold
                started = time.perf_counter()
                engine.retrieve(q)
                times[name].append((time.perf_counter() - started) * 1000)
    finally:
        _close(engine)
    for name, xs in times.items():
        xs.sort()
        p95 = xs[max(int(0.95 * len(xs)) - 1, 0)]
        print(f"{name}: p50 {statistics.median(xs):.1f} ms, p95 {p95:.1f} ms, {len(xs)} questions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What a scope costs a search: Retriever.search (hybrid, the chat's top_k and candidates) with no
scope and with scopes of several sizes, interleaved per question on one corpus's cached
evaluation index (both stores filter inside the scope: Chroma with a `where` on the document id,
BM25 by document slots). `python -m bench.scope_latency [--corpus sqlite]`; prints each scope's
median and its ratio to the unscoped search measured beside it."""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from bench.retrieval_study import DATA, _args
    from rag_core.config import Settings
    from rag_core.evaluation import load_beir
    from rag_core.factory import offline_environment
    from webapp.eval_cli import _close, open_index

    parser = argparse.ArgumentParser(prog="python -m bench.scope_latency", description=__doc__)
    parser.add_argument("--corpus", default="sqlite")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the questions")
    args = parser.parse_args(argv)
    offline_environment()
    data = load_beir(DATA / args.corpus, "test")
    questions = [*data.queries.values(), *load_beir(DATA / args.corpus, "tune").queries.values()]
    engine, _, _ = open_index(_args(), Settings(), data)
    try:
        documents = sorted(engine.registry.ready_chunk_counts())
        rng = random.Random(0)
        scopes: dict[str, list[str] | None] = {"no scope": None}
        for size in (10, len(documents) // 10, len(documents) // 2, len(documents) - 1):
            scopes[f"{size} of {len(documents)} documents"] = rng.sample(documents, size)
        settings = engine.settings
        times: dict[str, list[float]] = {name: [] for name in scopes}
        for q in questions[:3]:
            engine.retriever.search(q, k=settings.top_k, candidates=settings.candidates)  # warm
        for _ in range(args.rounds):
            for q in questions:
                for name, scope in scopes.items():
                    started = time.perf_counter()
                    engine.retriever.search(
                        q, k=settings.top_k, candidates=settings.candidates, document_ids=scope
                    )
                    times[name].append((time.perf_counter() - started) * 1000)
    finally:
        _close(engine)
    base = statistics.median(times["no scope"])
    print(f"Retriever.search on {args.corpus} ({len(questions)} questions x {args.rounds}):")
    for name, values in times.items():
        p50 = statistics.median(values)
        print(f"  {name:32s} p50 {p50:7.1f} ms  x{p50 / base:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Retrieval latency p50/p95 of hybrid retrieval (query embedding included) by index size.

Synthetic chunks: ~100-word texts drawn from the pyfaq corpus's word frequencies and random unit
vectors, written straight into ChromaStore and BM25Index (no encoding), 100 chunks a document.
Built indexes are cached under ~/.cache/ragchat/bench/ (building costs about 1 s per 1,000
chunks: Chroma inserts ~950 vectors/s here). The queries are the pyfaq dev questions, embedded by
the real default embedder; each query runs against every size in turn (rotating the order), so
the sizes are compared side by side.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import CACHE, DEFAULT_BEIR, BenchResult, Check, fmt, log, median, p, print_result

TARGET_P50_MS = 30.0
TARGET_SIZE = 100_000
WORDS_PER_CHUNK = 100
CHUNKS_PER_DOC = 100
DIM = 384
_FORMAT = "v1"


def _vocabulary(beir: Path) -> tuple[list[str], Any]:
    """Words of the corpus and their relative frequencies."""
    import numpy as np

    from rag_core.evaluation import load_beir

    counts: dict[str, int] = {}
    for doc in load_beir(beir).corpus.values():
        for word in re.findall(r"[A-Za-z][A-Za-z0-9_]+", doc.text):
            w = word.lower()
            counts[w] = counts.get(w, 0) + 1
    words = sorted(counts)
    freq = np.array([counts[w] for w in words], dtype=np.float64)
    return words, freq / freq.sum()


def index_dir(size: int) -> Path:
    return CACHE / f"latency-{_FORMAT}-{size}"


def build_index(size: int, beir: Path, batch: int = 5000) -> Path:
    """Build (once) a synthetic index of `size` chunks; its folder."""
    import numpy as np

    from rag_core.stores.chroma import ChromaStore
    from rag_core.stores.keyword import BM25Index
    from rag_core.types import Chunk

    folder = index_dir(size)
    marker = folder / "complete.json"
    if marker.is_file():
        return folder
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    log(f"latency: building a synthetic index of {size:,} chunks in {folder} (cached)")
    started = time.perf_counter()
    words, freq = _vocabulary(beir)
    rng = np.random.default_rng(size)
    store = ChromaStore(path=folder / "chroma", dimension=DIM)
    keyword = BM25Index(folder / "keyword")
    for start in range(0, size, batch):
        n = min(batch, size - start)
        ids = rng.choice(len(words), size=(n, WORDS_PER_CHUNK), p=freq)
        chunks = []
        for j in range(n):
            i = start + j
            doc = f"doc-{i // CHUNKS_PER_DOC:06d}"
            text = " ".join(words[k] for k in ids[j])
            chunks.append(
                Chunk(
                    id=f"syn-{i:08d}",
                    document_id=doc,
                    document_name=f"{doc}.md",
                    version="synthetic",
                    index=i % CHUNKS_PER_DOC,
                    text=text,
                    char_start=0,
                    char_end=len(text),
                )
            )
        vectors = rng.standard_normal((n, DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        store.add(chunks, vectors.tolist())
        keyword.add(chunks)
        if (start // batch) % 10 == 0:
            log(f"latency: {start + n:,} / {size:,} chunks")
    keyword.close()
    store.close()
    marker.write_text(json.dumps({"size": size, "seconds": time.perf_counter() - started}))
    return folder


def run(
    sizes: Sequence[int] = (10_000, 100_000), queries: int = 106, beir: Path = DEFAULT_BEIR
) -> BenchResult:
    from rag_core.config import Settings
    from rag_core.embedders.sentence_transformers import SentenceTransformerEmbedder
    from rag_core.evaluation import load_beir, spread
    from rag_core.factory import offline_environment
    from rag_core.retrieval import FusionParams, Retriever
    from rag_core.stores.chroma import ChromaStore
    from rag_core.stores.keyword import BM25Index

    offline_environment()
    started = time.perf_counter()
    sizes = sorted(set(sizes))
    built = {n: build_index(n, beir) for n in sizes}
    s = Settings(_env_file=None)
    embedder = SentenceTransformerEmbedder("default")
    embedder.load()
    params = FusionParams.from_settings(s)  # as the engine runs it: section bonus, length penalty
    retrievers: dict[int, Retriever] = {}
    for n, folder in built.items():
        store = ChromaStore(path=folder / "chroma", dimension=DIM, ef_search=s.hnsw_ef_search)
        keyword = BM25Index(folder / "keyword")
        # ready documents with their chunk counts, as the engine's registry gives them
        ready = {f"doc-{d:06d}": CHUNKS_PER_DOC for d in range(math.ceil(n / CHUNKS_PER_DOC))}
        # an index built before document vectors existed gets them now, as ingestion writes them
        store.document_vectors(sorted(ready))
        retrievers[n] = Retriever(embedder, store, keyword, lambda r=ready: r, params)  # type: ignore[misc]
    texts = spread(list(load_beir(beir).queries.values()), queries)
    for r in retrievers.values():  # warm-up: caches, first-query costs
        for q in texts[:3]:
            r.search(q, mode="hybrid", k=s.top_k, candidates=s.candidates)
    times: dict[int, list[float]] = {n: [] for n in sizes}
    embed_ms: list[float] = []
    for i, q in enumerate(texts):
        order = sizes[i % len(sizes) :] + sizes[: i % len(sizes)]
        for n in order:
            t0 = time.perf_counter()
            result = retrievers[n].search(q, mode="hybrid", k=s.top_k, candidates=s.candidates)
            times[n].append((time.perf_counter() - t0) * 1000)
            if not result.hits:
                raise RuntimeError(f"no hits at {n} chunks for {q!r}")
        t0 = time.perf_counter()
        embedder.embed_query(q)
        embed_ms.append((time.perf_counter() - t0) * 1000)

    rows: list[tuple[str, str]] = [
        (
            "queries",
            f"{len(texts)} pyfaq dev questions, hybrid, top {s.top_k} of "
            f"{s.candidates} candidates per retriever",
        ),
        ("query embedding alone p50", f"{fmt(median(embed_ms))} ms"),
    ]
    for n in sizes:
        rows.append(
            (f"{n:,} chunks p50 / p95", f"{fmt(p(times[n], 50))} / {fmt(p(times[n], 95))} ms")
        )
    checks: list[Check] = []
    if TARGET_SIZE in times:
        checks.append(
            Check(
                f"p50 at {TARGET_SIZE:,} chunks",
                p(times[TARGET_SIZE], 50),
                TARGET_P50_MS,
                at_most=True,
                unit=" ms",
            )
        )
    notes = []
    if len(sizes) >= 2:
        a, b = sizes[0], sizes[-1]
        exponent = math.log(p(times[b], 50) / p(times[a], 50)) / math.log(b / a)
        rows.append(
            (
                f"growth {a:,} -> {b:,}",
                f"p50 x{p(times[b], 50) / p(times[a], 50):.2f} for x{b / a:.0f} chunks",
            )
        )
        checks.append(
            Check("growth exponent of p50 (1 = linear)", exponent, 1.0, at_most=True, unit="")
        )
        notes.append("Growth exponent: log(p50 ratio) / log(size ratio); below 1 is sub-linear.")
    if 1_000_000 not in times:
        notes.append(
            "1M chunks not run by default (the build costs ~20 min once): "
            "`python -m bench.latency --sizes 10000,100000,1000000`."
        )
    return BenchResult(
        name="latency",
        title="Retrieval latency",
        command=f"python -m bench.latency --sizes {','.join(str(n) for n in sizes)} --queries {queries}",
        rows=tuple(rows),
        checks=tuple(checks),
        notes=tuple(notes),
        seconds=time.perf_counter() - started,
        data={"ms": {str(n): v for n, v in times.items()}, "embed_ms": embed_ms},
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sizes",
        default="10000,100000",
        help="comma-separated chunk counts (10000,100000; add 1000000 for 1M)",
    )
    parser.add_argument("--queries", type=int, default=106, help="questions per size (106)")
    parser.add_argument("--beir", type=Path, default=DEFAULT_BEIR, help="BEIR folder (pyfaq)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        sizes = [int(x.replace("_", "")) for x in args.sizes.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if not sizes or min(sizes) < CHUNKS_PER_DOC:
        parser.error(f"--sizes must name sizes of at least {CHUNKS_PER_DOC} chunks")
    print_result(run(sizes, args.queries, args.beir), as_json=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""ragchat vs a peer (LlamaIndex + Chroma + the same all-MiniLM-L6-v2): ingest time and nDCG@10.

The same pyfaq slice (every gold document of the dev qrels plus evenly spread distractors) is
written to Markdown files and ingested by both; then every dev question is asked. The peer is
installed from the package registry into bench/.peer-venv by this benchmark (torch 2.13.0 CPU
first, kept by a constraint) and runs in a subprocess (bench/peer_llamaindex.py) that prints
JSON. Both split into chunks of 200 embedder tokens with 16 overlap (the peer's SentenceSplitter
is given the embedder's tokenizer). nDCG@10 is computed for both with rag_core.evaluation, a
document ranking where its best chunk does.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    DEFAULT_BEIR,
    BenchResult,
    Check,
    alternate,
    corpus_slice,
    fmt,
    log,
    median,
    print_result,
    write_corpus,
)
from bench.ingest import ingest_files
from bench.peer_env import ensure_peer_venv

TARGET_TIME_RATIO = 0.8
PEER_SCRIPT = Path(__file__).resolve().parent / "peer_llamaindex.py"


def run_peer(
    python: Path, corpus: Path, queries: Path, persist: Path, chunk_size: int, overlap: int
) -> dict[str, Any]:
    from rag_core.models import default_embedder_path

    cmd = [
        str(python),
        str(PEER_SCRIPT),
        "--corpus",
        str(corpus),
        "--queries",
        str(queries),
        "--model",
        str(default_embedder_path()),
        "--persist",
        str(persist),
        "--chunk-size",
        str(chunk_size),
        "--chunk-overlap",
        str(overlap),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the peer failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"the peer printed no JSON:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(lines[-1])
    return data


def run(docs: int = 160, repeats: int = 1, beir: Path = DEFAULT_BEIR) -> BenchResult:
    from rag_core.embedders.sentence_transformers import SentenceTransformerEmbedder
    from rag_core.evaluation import CorpusMap, load_beir, ndcg_at_k, recall_at_k, search_documents
    from rag_core.factory import offline_environment

    offline_environment()
    started = time.perf_counter()
    log("peer: preparing bench/.peer-venv (installs once)")
    python = ensure_peer_venv(Path(tempfile.gettempdir()) / "ragchat-bench-peer-install.log")
    work = Path(tempfile.mkdtemp(prefix="ragchat-bench-peer-"))
    try:
        dataset = load_beir(beir)
        sliced = corpus_slice(dataset, docs, gold_first=True)
        paths = write_corpus(sliced, work / "corpus")
        name_to_id = {p.name: i for i, p in paths.items()}
        queries = {
            q: t
            for q, t in dataset.queries.items()
            if any(d in sliced for d, r in dataset.qrels[q].items() if r > 0)
        }
        qfile = work / "queries.json"
        qfile.write_text(json.dumps(queries), encoding="utf-8")
        embedder = SentenceTransformerEmbedder("default")
        embedder.load()
        from rag_core.config import Settings

        defaults = Settings(_env_file=None)
        size, overlap = defaults.chunk_size, defaults.chunk_overlap
        runs = iter(range(10_000))
        ours_out: dict[str, Any] = {}
        peer_out: dict[str, Any] = {}

        def ours() -> float:
            seconds, chunks, engine = ingest_files(
                work / f"ours-{next(runs)}", list(paths.values()), embedder
            )
            ours_out.update(seconds=seconds, chunks=chunks, engine=engine)
            log(f"peer: ragchat ingested {chunks} chunks in {seconds:.1f} s")
            return seconds

        def peer() -> float:
            data = run_peer(
                python, work / "corpus", qfile, work / f"peer-{next(runs)}", size, overlap
            )
            peer_out.update(data)
            log(
                f"peer: LlamaIndex ingested {data['chunks']} chunks in {data['ingest_seconds']:.1f} s"
            )
            return float(data["ingest_seconds"])

        times = alternate({"ragchat": ours, "peer": peer}, repeats)
        ratios = [a / b for a, b in zip(times["ragchat"], times["peer"], strict=True)]

        engine = ours_out["engine"]
        documents = CorpusMap(name_to_id)
        scores: dict[str, dict[str, float]] = {}
        for mode in ("hybrid", "dense"):
            ndcg, r10 = [], []
            for qid, text in queries.items():
                ranking = search_documents(engine, text, mode, 10, documents)
                ndcg.append(ndcg_at_k(ranking, dataset.qrels[qid], 10))
                r10.append(recall_at_k(ranking, dataset.qrels[qid], 10))
            scores[mode] = {"ndcg": sum(ndcg) / len(ndcg), "r10": sum(r10) / len(r10)}
        pndcg, pr10 = [], []
        for qid in queries:
            ranking = [name_to_id.get(n, n) for n in peer_out["rankings"].get(qid, [])]
            pndcg.append(ndcg_at_k(ranking, dataset.qrels[qid], 10))
            pr10.append(recall_at_k(ranking, dataset.qrels[qid], 10))
        scores["peer"] = {"ndcg": sum(pndcg) / len(pndcg), "r10": sum(pr10) / len(pr10)}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ratio = median(ratios)
    rows = (
        (
            "corpus",
            f"{len(sliced)} pyfaq sections (all {len(queries)} dev questions' gold "
            f"documents + distractors)",
        ),
        (
            "chunking",
            f"both {size} embedder tokens, overlap {overlap}; ragchat {ours_out['chunks']} "
            f"chunks, peer {peer_out['chunks']} chunks",
        ),
        (
            "ragchat embedder precision",
            f"{embedder.precision} (RAGCHAT_EMBED_PRECISION={embedder.requested_precision})",
        ),
        ("ragchat ingest (median)", f"{median(times['ragchat']):.1f} s"),
        ("peer ingest (median)", f"{median(times['peer']):.1f} s"),
        ("ragchat / peer time per round", ", ".join(f"{r:.3f}" for r in ratios)),
        ("nDCG@10 ragchat hybrid (default)", f"{scores['hybrid']['ndcg']:.3f}"),
        ("nDCG@10 ragchat dense", f"{scores['dense']['ndcg']:.3f}"),
        ("nDCG@10 peer (dense)", f"{scores['peer']['ndcg']:.3f}"),
        (
            "Recall@10 ragchat hybrid / peer",
            f"{scores['hybrid']['r10']:.3f} / {scores['peer']['r10']:.3f}",
        ),
        ("peer versions", ", ".join(f"{k} {v}" for k, v in peer_out.get("versions", {}).items())),
        ("peer query p50", f"{fmt(median(peer_out['latency_ms']))} ms"),
    )
    return BenchResult(
        name="peer",
        title="Peer: LlamaIndex + Chroma",
        command=f"python -m bench.peer --docs {docs} --repeats {repeats}",
        rows=rows,
        checks=(
            Check("ragchat ingest time / peer ingest time", ratio, TARGET_TIME_RATIO, at_most=True),
            Check(
                "nDCG@10 ragchat hybrid - peer",
                scores["hybrid"]["ndcg"] - scores["peer"]["ndcg"],
                0.0,
                unit="",
            ),
        ),
        notes=(
            "The peer runs its defaults otherwise: SimpleDirectoryReader metadata, "
            "HuggingFaceEmbedding's batch size and float32, Chroma through ChromaVectorStore; "
            "ragchat runs its own defaults (bfloat16 embeddings where the CPU computes them "
            "natively, the same model and chunk size). Both sides "
            "load the embedder before the clock starts; the peer's time is measured inside its "
            "process (imports and model load excluded).",
            "The nDCG check must be above 0 (ragchat better than the peer).",
        ),
        seconds=time.perf_counter() - started,
        data={"times": times, "ratios": ratios, "scores": scores},
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.peer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--docs",
        type=int,
        default=160,
        help="pyfaq sections: all dev gold documents, the rest distractors (160)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="ingest rounds per side (1)")
    parser.add_argument("--beir", type=Path, default=DEFAULT_BEIR, help="BEIR folder (pyfaq)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    print_result(run(args.docs, args.repeats, args.beir), as_json=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

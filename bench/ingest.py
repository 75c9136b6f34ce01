"""Ingestion speed: chunks/s through the whole ingest path vs the bare encoder on the same texts.

Ours: files on disk -> `IngestPipeline.ingest_many` (parse, chunk, count tokens, embed, Chroma,
BM25, registry) in a fresh data folder, the real default embedder already loaded. Encoder:
`SentenceTransformer.encode` of exactly the chunk texts the pipeline embedded
(`Chunk.embedding_text`), at its best batch size and in the pipeline's precision (bfloat16
through torch.autocast, the stock way, where the CPU computes it natively; the pipeline's
embedder converts its encoder's weights to bfloat16 instead), so the ratio is the pipeline's own
overhead less what that conversion gains; the encoder in float32 runs beside them, to show what
bfloat16 gains. Alternated, repeated; medians.

Also: a ~100-page Markdown document ingested whole, then again after a one-paragraph edit
(embeddings of unchanged chunks are reused by content hash).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
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

TARGET_RATIO = 0.90


def _engine(home: Path) -> Any:
    from rag_core.config import Settings
    from rag_core.factory import build_engine

    return build_engine(Settings(home=home, _env_file=None))


def ingest_files(home: Path, files: Sequence[Path], embedder: Any) -> tuple[float, int, Any]:
    """Ingest `files` into a fresh engine at `home` sharing `embedder`; (seconds, chunks, engine)."""
    engine = _engine(home)
    engine.embedder = embedder  # loaded once, like a running app
    engine.pipeline.embedder = embedder
    engine.retriever.embedder = embedder
    t0 = time.perf_counter()
    results = engine.pipeline.ingest_many((f.read_bytes(), f.name) for f in files)
    seconds = time.perf_counter() - t0
    bad = [r for r in results if r.status not in ("added", "duplicate")]
    if bad:
        raise RuntimeError(f"ingestion failed: {bad[0].name}: {bad[0].error}")
    return seconds, sum(r.chunks for r in results), engine


def chunk_texts(engine: Any) -> list[str]:
    """The embedding_text of every indexed chunk, in ingestion order."""
    texts: list[str] = []
    for record in engine.registry.list():
        texts += [c.embedding_text for c in engine.store.chunks_of(record.id)]
    return texts


def encode_rate(st: Any, texts: list[str], batch_size: int, context: Any) -> float:
    """Texts/s of `st.encode_document` over `texts` inside `context()` (a precision context)."""
    t0 = time.perf_counter()
    with context():
        st.encode_document(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
    return len(texts) / (time.perf_counter() - t0)


def best_batch_size(
    st: Any, texts: list[str], sizes: Sequence[int], context: Any, rounds: int = 1
) -> tuple[int, dict[int, float]]:
    """Encode a sample at each batch size (`rounds` times, interleaved); the fastest and texts/s
    per size (best of the rounds)."""
    sample = texts[: max(sizes) * 2]
    speeds: dict[int, list[float]] = {b: [] for b in sizes}
    for rnd in range(rounds):
        for b in sizes if rnd % 2 == 0 else list(sizes)[::-1]:
            speeds[b].append(encode_rate(st, sample, b, context))
    best = {b: max(v) for b, v in speeds.items()}
    return max(best, key=lambda b: best[b]), best


def hundred_pages(beir: Path, words: int) -> tuple[str, str]:
    """A ~`words`-word Markdown handbook from consecutive corpus sections, and a version of it
    with one paragraph in the middle rewritten."""
    from rag_core.evaluation import load_beir

    dataset = load_beir(beir)
    parts = ["# Python documentation handbook", ""]
    count = 0
    for doc in dataset.corpus.values():
        parts += [f"## {doc.title}", "", doc.text.strip(), ""]
        count += len(doc.text.split())
        if count >= words:
            break
    original = "\n".join(parts)
    paragraphs = original.split("\n\n")
    middle = len(paragraphs) // 2
    while len(paragraphs[middle].split()) < 20 and middle < len(paragraphs) - 1:
        middle += 1
    paragraphs[middle] = (
        "This paragraph was rewritten for the new version of the handbook: the retention period "
        "for archived build logs is now ninety days, and older logs are deleted every night."
    )
    return original, "\n\n".join(paragraphs)


def run(
    docs: int = 60,
    repeats: int = 3,
    pages_words: int = 50_000,
    pages_repeats: int = 1,
    beir: Path = DEFAULT_BEIR,
    batch_sizes: Sequence[int] = (16, 32, 64),
) -> BenchResult:
    from rag_core.embedders.sentence_transformers import SentenceTransformerEmbedder
    from rag_core.evaluation import load_beir
    from rag_core.factory import offline_environment
    from rag_core.models import default_embedder_path

    offline_environment()
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="ragchat-bench-ingest-"))
    try:
        dataset = load_beir(beir)
        files = list(write_corpus(corpus_slice(dataset, docs), work / "corpus").values())
        embedder = SentenceTransformerEmbedder("default")
        embedder.load()
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(default_embedder_path()), device="cpu", local_files_only=True)
        st.eval()

        log(f"ingest: warm-up, {len(files)} files")
        _, n_chunks, engine = ingest_files(work / "warm", files, embedder)
        texts = chunk_texts(engine)
        del engine
        if len(texts) != n_chunks:
            raise RuntimeError(f"pipeline reported {n_chunks} chunks, the store holds {len(texts)}")
        precision = embedder.precision
        best, speeds = best_batch_size(st, texts, batch_sizes, embedder.numeric_context)
        log(f"ingest: {n_chunks} chunks; encoder ({precision}) batch sizes {speeds}, best {best}")
        runs = iter(range(10_000))

        def ours() -> float:
            seconds, chunks, _ = ingest_files(work / f"run-{next(runs)}", files, embedder)
            log(f"ingest: pipeline {chunks / seconds:.1f} chunks/s")
            return chunks / seconds

        def encoder(context: Any, label: str) -> Callable[[], float]:
            def side() -> float:
                rate = encode_rate(st, texts, best, context)
                log(f"ingest: encoder ({label}) {rate:.1f} texts/s")
                return rate

            return side

        sides = {"pipeline": ours, "encoder": encoder(embedder.numeric_context, precision)}
        if precision != "float32":
            sides["encoder float32"] = encoder(contextlib.nullcontext, "float32")
        rates = alternate(sides, repeats)
        ratios = [a / b for a, b in zip(rates["pipeline"], rates["encoder"], strict=True)]
        ratio = median(ratios)

        # one-paragraph edit of a ~100-page document
        original, edited = hundred_pages(beir, pages_words)
        full_s, edit_s, reembedded, total = [], [], [], 0
        for i in range(max(1, pages_repeats)):
            home = work / f"pages-{i}"
            (work / "v1").mkdir(exist_ok=True)
            (work / "v2").mkdir(exist_ok=True)
            v1, v2 = work / "v1" / "handbook.md", work / "v2" / "handbook.md"
            v1.write_text(original, encoding="utf-8")
            v2.write_text(edited, encoding="utf-8")
            seconds, total, engine = ingest_files(home, [v1], embedder)
            full_s.append(seconds)
            t0 = time.perf_counter()
            result = engine.pipeline.ingest_path(v2)
            edit_s.append(time.perf_counter() - t0)
            if result.status != "replaced":
                raise RuntimeError(f"edited handbook was {result.status}: {result.error}")
            reembedded.append(result.chunks - result.reused_embeddings)
            log(
                f"ingest: handbook full {seconds:.1f} s, edit {edit_s[-1]:.2f} s, "
                f"{reembedded[-1]} of {result.chunks} chunks re-embedded"
            )
        speedup = median(full_s) / median(edit_s)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    words = len(original.split())
    rows = [
        ("corpus", f"{len(files)} pyfaq sections as Markdown files, {n_chunks} chunks"),
        ("pipeline chunks/s (median)", fmt(median(rates["pipeline"]))),
        ("embedder precision", precision),
        (f"encoder texts/s (median, batch {best})", fmt(median(rates["encoder"]))),
        (
            "encoder texts/s by batch size (sample)",
            ", ".join(f"{b}: {fmt(v)}" for b, v in speeds.items()),
        ),
    ]
    if "encoder float32" in rates:
        fp32 = median(rates["encoder float32"])
        rows.append(
            (
                "encoder float32 texts/s (median; precision speed-up)",
                f"{fmt(fp32)} ({median(rates['encoder']) / fp32:.2f}x)",
            )
        )
    rows += [
        ("pipeline / encoder per round", ", ".join(f"{r:.3f}" for r in ratios)),
        (
            "~100-page document",
            f"{words:,} words (~{words // 500} pages of 500 words), {total} chunks",
        ),
        ("full ingest (median)", f"{median(full_s):.1f} s"),
        ("re-ingest after a one-paragraph edit (median)", f"{median(edit_s):.2f} s"),
        ("chunks re-embedded after the edit", f"{median(reembedded):.0f} of {total}"),
        ("re-ingest speed-up", f"{speedup:.1f}x"),
    ]
    return BenchResult(
        name="ingest",
        title="Ingestion",
        command=f"python -m bench.ingest --docs {docs} --repeats {repeats} --pages-words {pages_words}",
        rows=tuple(rows),
        checks=(Check("pipeline chunks/s / encoder texts/s", ratio, TARGET_RATIO),),
        notes=(
            "The encoder side is sentence-transformers' encode_document on exactly the chunk "
            "texts the pipeline embedded, in the pipeline's precision (stock float32 model; "
            "bfloat16 through torch.autocast, while the pipeline's embedder holds bfloat16 "
            "weights: within a few percent of autocast measured alone), with the model already "
            "loaded; the pipeline side "
            "includes reading the files, parsing, chunking, token counting, Chroma and BM25 "
            "writes and the registry, in a fresh data folder each round.",
        ),
        seconds=time.perf_counter() - started,
        data={
            "rates": rates,
            "ratios": ratios,
            "speeds": speeds,
            "best_batch": best,
            "precision": precision,
            "full_s": full_s,
            "edit_s": edit_s,
            "reembedded": reembedded,
            "chunks": n_chunks,
        },
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--docs", type=int, default=60, help="pyfaq sections to ingest (60)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds per side (3)")
    parser.add_argument(
        "--pages-words",
        type=int,
        default=50_000,
        help="words in the long document (50,000 ~ 100 pages)",
    )
    parser.add_argument(
        "--pages-repeats",
        type=int,
        default=1,
        help="full + edited ingests of the long document (1)",
    )
    parser.add_argument("--beir", type=Path, default=DEFAULT_BEIR, help="BEIR folder (pyfaq)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = run(args.docs, args.repeats, args.pages_words, args.pages_repeats, args.beir)
    print_result(result, as_json=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

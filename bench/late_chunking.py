"""Late chunking, measured against the shipped chunk vectors on the evaluation corpora.

A chunk's shipped vector embeds its heading path and its own text. Late chunking (Günther et al.,
2024) runs the encoder over a longer window of the section (the chunk with up to `context`
characters of its neighbours on each side, at most 512 tokens, the encoder's positions) and
mean-pools only the tokens of the heading and the chunk: the same passage, read in its context.
A one-chunk section gets its shipped vector (its window is itself).

Both vector sets are searched exactly (every chunk), a document ranks where its best chunk does,
and nDCG@10 is reported per corpus half, plain dense without the engine's priors (the study's
"dense (plain)" row):

    python -m bench.late_chunking [--corpora debian-faq,fetchmail,sqlite,pyfaq] [--context 600]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Sequence
from typing import Any

from bench.common import log
from bench.retrieval_study import DATA, _args, _embeddings


def _document_text(chunks: Sequence[Any]) -> str:
    """The document's text rebuilt from its chunks' spans (gaps, if any, as spaces)."""
    end = max(c.char_end for c in chunks)
    text = [" "] * end
    for c in chunks:
        text[c.char_start : c.char_end] = list(c.text[: c.char_end - c.char_start])
    return "".join(text)


def late_vectors(st: Any, chunks: Sequence[Any], context: int, batch: int = 16) -> dict[str, Any]:
    """Each chunk's late-chunked vector (normalised), for one document's chunks."""
    import numpy as np
    import torch

    transformer = st[0]
    tokenizer, model = transformer.tokenizer, transformer.auto_model
    text = _document_text(chunks)
    windows: list[str] = []
    spans: list[tuple[int, int, int]] = []  # heading length, chunk start, chunk end in the window
    for c in chunks:
        heading = " > ".join(c.heading_path) + "\n" if c.heading_path else ""
        width = context
        while True:
            lo, hi = max(0, c.char_start - width), min(len(text), c.char_end + width)
            window = heading + text[lo:hi]
            if len(tokenizer(window)["input_ids"]) <= 512 or width == 0:
                break
            width = int(width * 0.6) if width > 40 else 0
        windows.append(window)
        spans.append(
            (len(heading), len(heading) + c.char_start - lo, len(heading) + c.char_end - lo)
        )
    out: dict[str, Any] = {}
    for first in range(0, len(chunks), batch):
        enc = tokenizer(
            windows[first : first + batch],
            return_offsets_mapping=True,
            padding=True,
            truncation=True,
            max_length=512,
            return_tensors="pt",
        )
        offsets = enc.pop("offset_mapping").tolist()
        with torch.inference_mode():
            hidden = model(**enc).last_hidden_state
        for row, c in enumerate(chunks[first : first + batch]):
            heading, start, end = spans[first + row]
            keep = [
                i
                for i, (a, b) in enumerate(offsets[row])
                if b > a and (b <= heading or (a >= start and b <= end))
            ]
            vector = hidden[row, keep].mean(dim=0).float().numpy()
            out[c.id] = vector / (np.linalg.norm(vector) or 1.0)
    return out


def measure(corpus: str, context: int) -> dict[str, dict[str, float]]:
    import numpy as np

    from rag_core.config import Settings
    from rag_core.evaluation import load_beir
    from rag_core.evaluation.metrics import ndcg_at_k
    from webapp.eval_cli import _close, open_index

    settings = Settings()
    engine, cmap, _ = open_index(_args(), settings, load_beir(DATA / corpus, "tune"))
    try:
        st = engine.embedder._load()
        docs: list[tuple[str, ...]] = []
        plain: list[Any] = []
        late: list[Any] = []
        t0 = time.perf_counter()
        cost = {"late": 0.0, "shipped": 0.0, "chunks": 0}
        documents = sorted(engine.registry.ready_chunk_counts())
        for n, document_id in enumerate(documents):
            chunks = sorted(engine.store.chunks_of(document_id), key=lambda c: c.index)
            shipped = _embeddings(engine, [c.id for c in chunks])
            lated: dict[str, Any] = {}
            if len(chunks) > 1:  # the cost, side by side: late chunking, then the shipped way
                t1 = time.perf_counter()
                lated = late_vectors(st, chunks, context)
                t2 = time.perf_counter()
                engine.embedder.embed_documents_array([c.embedding_text for c in chunks])
                cost["late"] += t2 - t1
                cost["shipped"] += time.perf_counter() - t2
                cost["chunks"] += len(chunks)
            for c in chunks:
                docs.append(tuple(cmap.doc_ids(c)))
                vector = shipped[c.id]
                plain.append(vector)
                late.append(lated.get(c.id, vector))
            if n % 500 == 0:
                log(f"{corpus}: {n}/{len(documents)} documents ({time.perf_counter() - t0:.0f} s)")
        matrices = {"shipped": np.vstack(plain), "late": np.vstack(late)}
        out: dict[str, dict[str, float]] = {}
        for split in ("tune", "test"):
            data = load_beir(DATA / corpus, split)
            scores: dict[str, list[float]] = {"shipped": [], "late": []}
            for qid, text in data.queries.items():
                q = np.asarray(engine.embedder.embed_query(text), dtype=np.float32)
                for name, matrix in matrices.items():
                    sims = matrix @ q
                    ranking: dict[str, None] = {}
                    for i in np.argsort(-sims)[:200]:
                        ranking.update(dict.fromkeys(docs[i]))
                    scores[name].append(ndcg_at_k(list(ranking), data.qrels[qid], 10))
            out[split] = {k: round(sum(v) / len(v), 3) for k, v in scores.items()}
        log(
            f"{corpus}: {cost['chunks']} chunks of multi-chunk sections embedded in"
            f" {cost['late']:.0f} s late, {cost['shipped']:.0f} s the shipped way"
            f" (x{cost['late'] / max(cost['shipped'], 1e-9):.1f})"
        )
        return out
    finally:
        _close(engine)


def main(argv: Iterable[str] | None = None) -> int:
    from rag_core.factory import offline_environment

    parser = argparse.ArgumentParser(prog="python -m bench.late_chunking", description=__doc__)
    parser.add_argument("--corpora", default="debian-faq,fetchmail,sqlite,pyfaq")
    parser.add_argument("--context", type=int, default=600, help="characters on each side")
    args = parser.parse_args(list(argv) if argv is not None else None)
    offline_environment()
    rows = {}
    for corpus in [c.strip() for c in args.corpora.split(",") if c.strip()]:
        rows[corpus] = measure(corpus, args.context)
        log(f"{corpus}: {rows[corpus]}")
    print("| corpus | half | shipped vectors | late chunking |")
    print("| --- | --- | --- | --- |")
    for corpus, halves in rows.items():
        for split, r in halves.items():
            print(f"| {corpus} | {split} | {r['shipped']:.3f} | {r['late']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

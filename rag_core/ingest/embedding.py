"""Embedding chunks for a vector store, reusing the vectors the store already holds for the same
texts (by text hash, from the same embedder): one path for ingestion and for re-embedding."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rag_core.protocols import Embedder, VectorStore
from rag_core.stores import text_hash
from rag_core.types import Chunk


@dataclass(frozen=True)
class Embedded:
    """The vectors of a batch of chunks, in order, with their text hashes and the hashes that
    had to be embedded now (the others were found in the store)."""

    vectors: list[list[float]]
    hashes: list[str]
    fresh: frozenset[str]


def embed_chunks(
    embedder: Embedder,
    store: VectorStore,
    chunks: Sequence[Chunk],
    batch_size: int,
    touch: Callable[[], None] | None = None,
) -> Embedded:
    """Vectors for `chunks`: each distinct text embedded once, and not at all when the store
    holds its embedding already (a store bound to an embedder key returns only that embedder's
    vectors). `touch` is called before each encoder batch (a heartbeat for long batches)."""
    texts = [c.embedding_text for c in chunks]
    hashes = [text_hash(t) for t in texts]
    vectors: dict[str, list[float]] = dict(store.embeddings_by_text_hash(sorted(set(hashes))))
    todo: dict[str, str] = {}  # hash -> text, each distinct text embedded once
    for h, t in zip(hashes, texts, strict=True):
        if h not in vectors:
            todo.setdefault(h, t)
    # similar lengths share a batch: less padding through the encoder (order is irrelevant)
    pending = sorted(todo.items(), key=lambda item: len(item[1]))
    step = max(batch_size, 1)
    for start in range(0, len(pending), step):
        if touch is not None:
            touch()
        part = pending[start : start + step]
        embedded = embedder.embed_documents([t for _, t in part])
        for (h, _), vec in zip(part, embedded, strict=True):
            vectors[h] = vec
    return Embedded([vectors[h] for h in hashes], hashes, frozenset(todo))

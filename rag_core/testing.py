"""Deterministic fakes for fast unit tests. Integration tests use the real backends instead."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from rag_core.errors import GenerationError
from rag_core.generators.base import BaseGenerator, Request
from rag_core.stores import text_hash
from rag_core.types import Chunk, Message

if TYPE_CHECKING:
    from rag_core.config import Settings
    from rag_core.engine import Engine
    from rag_core.protocols import Embedder, Generator, KeywordIndex, VectorStore

_WORD = re.compile(r"\w+")


class FakeEmbedder:
    """Hashed bag of words: texts sharing words get similar vectors. Deterministic and instant."""

    name = "fake"
    max_tokens = 512

    def __init__(self, dimension: int = 64, *, name: str = "fake") -> None:
        self.dimension = dimension
        self.name = name
        self.embedded = 0  # texts embedded so far (tests count reuse with it)

    def _vector(self, text: str) -> list[float]:
        vec = [0.0] * self.dimension
        for word in _WORD.findall(text.lower()):
            h = int(hashlib.md5(word.encode()).hexdigest(), 16)
            vec[h % self.dimension] += 1.0
        norm = math.sqrt(sum(v * v for v in vec)) or 1.0
        return [v / norm for v in vec]

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        self.embedded += len(texts)
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(_WORD.findall(t)) for t in texts]


class FakeGenerator(BaseGenerator):
    """Streams a scripted reply word by word; can be told to fail mid-way."""

    name = "fake"

    def __init__(self, reply: str = "", fail_after: int | None = None) -> None:
        self.reply = reply
        self.fail_after = fail_after
        self.calls: list[Sequence[Message]] = []

    def _stream(self, request: Request) -> Iterator[str]:
        self.calls.append(request.messages)
        pieces = re.findall(r"\S+\s*", self.reply)[: request.max_new_tokens]
        for i, piece in enumerate(pieces):
            if request.stop is not None and request.stop.is_set():
                return
            if self.fail_after is not None and i >= self.fail_after:
                raise GenerationError("fake generator failed")
            yield piece

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        return sum(len(m.content.split()) + 1 for m in messages)


class InMemoryStore:
    """A VectorStore in a dict, cosine similarity by brute force."""

    def __init__(self, dimension: int | None = None, *, embedder_key: str | None = None) -> None:
        self.chunks: dict[str, Chunk] = {}
        self.vectors: dict[str, list[float]] = {}
        self.keys: dict[str, str | None] = {}  # chunk id -> key of the embedder that made it
        self.dimension = dimension
        self.embedder_key = embedder_key

    def add(self, chunks: Sequence[Chunk], embeddings: Sequence[Sequence[float]]) -> None:
        if len(chunks) != len(embeddings):
            raise ValueError(f"{len(chunks)} chunks but {len(embeddings)} embeddings")
        ids = [c.id for c in chunks]
        if len(set(ids)) != len(ids):
            dups = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"duplicate chunk ids in one add: {dups[:5]}")
        for e in embeddings:
            if self.dimension is None:
                self.dimension = len(e)
            elif len(e) != self.dimension:
                raise ValueError(
                    f"embedding dimension {len(e)} does not match the store's {self.dimension}"
                )
        for c, e in zip(chunks, embeddings, strict=True):
            self.chunks[c.id] = c
            self.vectors[c.id] = list(e)
            self.keys[c.id] = self.embedder_key

    def close(self) -> None:
        """Nothing to release (the contract suite closes every store)."""

    def delete_document(self, document_id: str) -> int:
        ids = [cid for cid, c in self.chunks.items() if c.document_id == document_id]
        self.delete_chunks(ids)
        return len(ids)

    def delete_chunks(self, chunk_ids: Sequence[str]) -> None:
        for cid in chunk_ids:
            self.chunks.pop(cid, None)
            self.vectors.pop(cid, None)
            self.keys.pop(cid, None)

    def query(
        self, embedding: Sequence[float], k: int, document_ids: Sequence[str] | None = None
    ) -> list[tuple[Chunk, float]]:
        allowed = set(document_ids) if document_ids is not None else None
        scored = [
            (c, sum(a * b for a, b in zip(embedding, self.vectors[cid], strict=True)))
            for cid, c in self.chunks.items()
            if allowed is None or c.document_id in allowed
        ]
        scored.sort(key=lambda t: -t[1])
        return scored[: max(k, 0)]

    def get(self, chunk_ids: Sequence[str]) -> list[Chunk]:
        return [self.chunks[c] for c in chunk_ids if c in self.chunks]

    def chunks_of(self, document_id: str) -> list[Chunk]:
        return sorted(
            (c for c in self.chunks.values() if c.document_id == document_id), key=lambda c: c.index
        )

    def embeddings_by_text_hash(self, text_hashes: Sequence[str]) -> dict[str, list[float]]:
        wanted = set(text_hashes)
        out = {}
        for cid, c in self.chunks.items():
            h = text_hash(c.embedding_text)
            if self.embedder_key is not None and self.keys.get(cid) != self.embedder_key:
                continue
            if h in wanted:
                out[h] = self.vectors[cid]
        return out

    def document_vectors(self, document_ids: Sequence[str]) -> dict[str, list[float]]:
        wanted = set(document_ids)
        sums: dict[str, list[float]] = {}
        for cid, c in self.chunks.items():
            if c.document_id in wanted:
                vec = self.vectors[cid]
                acc = sums.setdefault(c.document_id, [0.0] * len(vec))
                sums[c.document_id] = [a + b for a, b in zip(acc, vec, strict=True)]
        out = {}
        for doc, acc in sums.items():
            norm = sum(x * x for x in acc) ** 0.5
            if norm > 0:
                out[doc] = [x / norm for x in acc]
        return out

    def document_ids(self) -> set[str]:
        return {c.document_id for c in self.chunks.values()}

    def count(self) -> int:
        return len(self.chunks)


def fake_engine(
    settings: Settings,
    *,
    reply: str = "",
    embedder: Embedder | None = None,
    store: VectorStore | None = None,
    keyword: KeywordIndex | None = None,
    generator: Generator | None = None,
) -> Engine:
    """An engine on `settings` (its database migrated) with fast fakes wherever no backend is
    given: FakeEmbedder, InMemoryStore, a BM25 index in settings.keyword_path, FakeGenerator."""
    from rag_core.db.database import Database
    from rag_core.factory import compose_engine
    from rag_core.stores.keyword import BM25Index

    if settings.answer_strategy is None and settings.answer_mode == "generate":
        # the fake generator's replies are what these engines exist to check: generate
        settings = settings.model_copy(update={"answer_strategy": "concat"})
    settings.home.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_url)
    db.migrate()
    return compose_engine(
        settings,
        db=db,
        embedder=embedder or FakeEmbedder(),
        store=store if store is not None else InMemoryStore(),
        keyword=keyword if keyword is not None else BM25Index(settings.keyword_path),
        generator=generator or FakeGenerator(reply),
    )

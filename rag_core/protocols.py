"""The interfaces between the engine and its backends. Each backend is one module; factory.py picks."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from rag_core.types import Chunk, Message, ParsedDocument


@runtime_checkable
class Embedder(Protocol):
    name: str
    dimension: int
    max_tokens: int

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


@runtime_checkable
class VectorStore(Protocol):
    def add(self, chunks: Sequence[Chunk], embeddings: Sequence[Sequence[float]]) -> None: ...

    def delete_document(self, document_id: str) -> int: ...

    def delete_chunks(self, chunk_ids: Sequence[str]) -> None: ...

    def query(
        self, embedding: Sequence[float], k: int, document_ids: Sequence[str] | None = None
    ) -> list[tuple[Chunk, float]]: ...

    def get(self, chunk_ids: Sequence[str]) -> list[Chunk]: ...

    def chunks_of(self, document_id: str) -> list[Chunk]: ...

    def embeddings_by_text_hash(self, text_hashes: Sequence[str]) -> dict[str, list[float]]: ...

    def document_vectors(self, document_ids: Sequence[str]) -> dict[str, list[float]]: ...

    def document_ids(self) -> set[str]: ...

    def count(self) -> int: ...


@runtime_checkable
class KeywordIndex(Protocol):
    def add(self, chunks: Sequence[Chunk]) -> None: ...

    def delete_document(self, document_id: str) -> int: ...

    def search(
        self, query: str, k: int, document_ids: Sequence[str] | None = None
    ) -> list[tuple[str, float]]: ...

    def document_ids(self) -> set[str]: ...

    def chunk_ids_of(self, document_id: str) -> list[str]: ...

    def count(self) -> int: ...


@runtime_checkable
class Generator(Protocol):
    name: str

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        stop: threading.Event | None = None,
    ) -> Iterator[str]: ...

    def count_tokens(self, text: str) -> int: ...

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int: ...


@runtime_checkable
class Loader(Protocol):
    def __call__(self, data: bytes, name: str) -> ParsedDocument: ...

"""The interfaces between the engine and its backends. Each backend is one module; factory.py picks.

Every method states its contract: what it returns, what it raises, and what it does with
duplicates. One contract test suite runs each implementation (tests/integration/
test_store_contract.py runs Chroma, embedded and server, and the in-memory fake).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from rag_core.types import Chunk, Message


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit vectors of `dimension` floats; `max_tokens` is its window."""

    name: str
    dimension: int
    max_tokens: int

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """One normalised vector per text, in order (an empty list for no texts). Raises
        ModelLoadError if the model cannot be loaded."""
        ...

    def embed_query(self, text: str) -> list[float]:
        """The normalised vector of a search query (models with a query prefix add it)."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text in this model's tokenizer, special tokens excluded; one count
        per text, in order."""
        ...


@runtime_checkable
class VectorStore(Protocol):
    """Chunks and their embeddings, searched by cosine similarity."""

    def add(self, chunks: Sequence[Chunk], embeddings: Sequence[Sequence[float]]) -> None:
        """Store chunks with their embeddings (same length, same order; ValueError otherwise).
        A chunk id already stored is overwritten (an upsert), never duplicated. Also refreshes
        the document vectors of the documents the chunks belong to."""
        ...

    def delete_document(self, document_id: str) -> int:
        """Remove every chunk of a document and its document vector; how many chunks went
        (0 for an unknown document, never an error)."""
        ...

    def delete_chunks(self, chunk_ids: Sequence[str]) -> None:
        """Remove these chunks (unknown ids are ignored) and refresh their documents' vectors."""
        ...

    def query(
        self, embedding: Sequence[float], k: int, document_ids: Sequence[str] | None = None
    ) -> list[tuple[Chunk, float]]:
        """The k chunks most similar to `embedding`, best first, with their cosine similarity;
        only chunks of `document_ids` when given (an empty list: nothing). Each chunk at most
        once; fewer than k when the store holds fewer."""
        ...

    def get(self, chunk_ids: Sequence[str]) -> list[Chunk]:
        """The stored chunks among `chunk_ids`, in the order asked; unknown ids are skipped."""
        ...

    def chunks_of(self, document_id: str) -> list[Chunk]:
        """Every chunk of a document in document order (index); empty for an unknown one."""
        ...

    def embeddings_by_text_hash(self, text_hashes: Sequence[str]) -> dict[str, list[float]]:
        """Stored embeddings of chunks whose text hash (rag_core.stores.text_hash of their
        embedding text) is asked for, so the same text is never embedded twice; one per hash."""
        ...

    def document_vectors(self, document_ids: Sequence[str]) -> dict[str, list[float]]:
        """The normalised mean of each document's chunk embeddings, for the documents that have
        chunks (computed and saved on first use for a store written without them)."""
        ...

    def document_ids(self) -> set[str]:
        """Ids of the documents with at least one stored chunk."""
        ...

    def count(self) -> int:
        """Number of stored chunks."""
        ...


@runtime_checkable
class KeywordIndex(Protocol):
    """BM25 over chunk texts (tokenized by rag_core.stores.tokenize)."""

    def add(self, chunks: Sequence[Chunk]) -> None:
        """Index chunks; a chunk id already indexed is replaced (re-indexed), not duplicated."""
        ...

    def delete_document(self, document_id: str) -> int:
        """Remove a document's chunks; how many went (0 for an unknown document)."""
        ...

    def search(
        self, query: str, k: int, document_ids: Sequence[str] | None = None
    ) -> list[tuple[str, float]]:
        """The k best chunks for `query` as (chunk id, score > 0), best first; only chunks of
        `document_ids` when given. No match, an empty query or k <= 0: an empty list."""
        ...

    def document_frequency(
        self, terms: Sequence[str], document_ids: Sequence[str] | None = None
    ) -> dict[str, int]:
        """How many indexed chunks contain each term (as `tokenize` emits it); 0 if none. With
        `document_ids`, only chunks of those documents count."""
        ...

    def chunk_counts(self) -> dict[str, int]:
        """Indexed chunks per document id."""
        ...

    def document_ids(self) -> set[str]:
        """Ids of the documents with at least one indexed chunk."""
        ...

    def chunk_ids_of(self, document_id: str) -> list[str]:
        """Ids of a document's indexed chunks, in the order they were added."""
        ...

    def count(self) -> int:
        """Number of indexed chunks."""
        ...


@runtime_checkable
class Generator(Protocol):
    """Writes an answer from chat messages, streamed in pieces (see generators/base.py)."""

    name: str

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        stop: threading.Event | None = None,
    ) -> Iterator[str]:
        """New text as it is generated. Bad arguments raise ConfigError at the call, before
        any text; a failure while generating raises GenerationError from the iterator. Setting
        `stop`, or closing the iterator, ends generation after the current token."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` as this generator counts them (an estimate where it cannot know)."""
        ...

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens of the prompt the generator reads for `messages`, template included."""
        ...

"""Vector store (Chroma) and keyword index (BM25) backends, plus the chunk text hash they share.

The backends are imported lazily (``from rag_core.stores import ChromaStore`` imports chromadb
only then), so importing this package stays cheap.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rag_core.stores.chroma import ChromaStore
    from rag_core.stores.keyword import BM25Index

__all__ = ["BM25Index", "ChromaStore", "text_hash"]


def text_hash(text: str) -> str:
    """sha256 hex digest of an embedder input (`Chunk.embedding_text`): the key for reusing the
    stored embeddings of unchanged chunks (`VectorStore.embeddings_by_text_hash`)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def __getattr__(name: str) -> Any:
    if name == "ChromaStore":
        from rag_core.stores.chroma import ChromaStore

        return ChromaStore
    if name == "BM25Index":
        from rag_core.stores.keyword import BM25Index

        return BM25Index
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

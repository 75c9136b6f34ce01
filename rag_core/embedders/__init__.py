"""Embedding backends (see rag_core.protocols.Embedder); factory.py picks one."""

from rag_core.embedders.sentence_transformers import SentenceTransformerEmbedder

__all__ = ["SentenceTransformerEmbedder"]

"""Plain text: one block (the chunker splits it at paragraphs and sentences)."""

from __future__ import annotations

from rag_core.ingest.detect import (
    decode_text,
)
from rag_core.ingest.loaders.common import LoadLimits, _finish, normalize_text
from rag_core.types import Block, ParsedDocument


def load_text(data: bytes, name: str, limits: LoadLimits) -> ParsedDocument:
    """A plain-text file as one block (the chunker splits it at paragraphs and sentences)."""
    text = normalize_text(decode_text(data, name))
    blocks = (Block(0, len(text)),) if text else ()
    return _finish(name, "text", text, blocks, limits.max_text_chars)

"""Format loaders: bytes of a PDF, DOCX, HTML, Markdown, text or PNG/JPEG file -> ParsedDocument.

Every loader returns normalised text (no NUL or stray control characters, \\n line ends, at most
one blank line in a row) and blocks that tile that text exactly: block i covers
``text[block.char_start:block.char_end]``, the blocks are contiguous from 0 to ``len(text)``, and
each carries its PDF page (1-based) and heading path. Failures raise IngestError subclasses whose
message names the file and says what is wrong; no third-party exception type escapes.
"""

from __future__ import annotations

from rag_core.ingest.detect import detect_type
from rag_core.ingest.loaders.common import (
    DEFAULT_LIMITS,
    DEFAULT_MAX_UNPACKED_MB,
    LoaderFn,
    LoadLimits,
    normalize_text,
)
from rag_core.ingest.loaders.docx import check_zip_bomb, load_docx
from rag_core.ingest.loaders.html import load_html
from rag_core.ingest.loaders.image import load_image
from rag_core.ingest.loaders.markdown import load_markdown
from rag_core.ingest.loaders.pdf import load_pdf
from rag_core.ingest.loaders.text import load_text
from rag_core.types import DocType, ParsedDocument

__all__ = [
    "DEFAULT_MAX_UNPACKED_MB",
    "LOADERS",
    "LoadLimits",
    "LoaderFn",
    "check_zip_bomb",
    "load_document",
    "load_docx",
    "load_html",
    "load_image",
    "load_markdown",
    "load_pdf",
    "load_text",
    "normalize_text",
]


def load_document(data: bytes, name: str, limits: LoadLimits = DEFAULT_LIMITS) -> ParsedDocument:
    """Detect the format of `data` and parse it within `limits`; the single entry point here.

    The limits (`Settings.load_limits()`: RAGCHAT_MAX_PAGES, _MAX_TEXT_CHARS, _MAX_UNPACKED_MB,
    RAGCHAT_OCR*) bound the work and memory one file can cost; each error that enforces one names
    the setting and its value, and says how scanned pages and pictures are read.
    """
    return LOADERS[detect_type(data, name)](data, name, limits)


LOADERS: dict[DocType, LoaderFn] = {
    "pdf": load_pdf,
    "docx": load_docx,
    "html": load_html,
    "markdown": load_markdown,
    "text": load_text,
    "image": load_image,
}

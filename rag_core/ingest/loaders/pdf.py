"""PDF: text per page (pypdf), pages as blocks, limits on pages checked before parsing."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from rag_core.errors import EmptyDocumentError, IngestError
from rag_core.ingest.loaders.common import (
    _PARSER_ERRORS,
    DEFAULT_MAX_UNPACKED_MB,
    _assemble,
    _finish,
    _Piece,
)
from rag_core.types import ParsedDocument


def load_pdf(
    data: bytes,
    name: str,
    *,
    max_pages: int,
    max_text_chars: int,
    max_unpacked_mb: float = DEFAULT_MAX_UNPACKED_MB,
) -> ParsedDocument:
    """Text of each page of a PDF (pypdf), pages joined by a blank line, page numbers kept."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PyPdfError

    pdf_errors: tuple[type[BaseException], ...] = (PyPdfError, *_PARSER_ERRORS)

    def corrupt(exc: BaseException, where: str = "") -> IngestError:
        detail = str(exc).strip() or type(exc).__name__
        return IngestError(name, f"corrupt or truncated PDF: {where}{detail}")

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except DependencyError as exc:
                raise IngestError(
                    name,
                    "encrypted PDF (password protected, or AES-encrypted, which needs the "
                    "'cryptography' package)",
                ) from exc
            if not opened:
                raise IngestError(name, "encrypted PDF (password protected)")
        _check_declared_pages(reader, name, max_pages)
        page_count = len(reader.pages)
    except IngestError:
        raise
    except FileNotDecryptedError as exc:
        raise IngestError(name, "encrypted PDF (password protected)") from exc
    except DependencyError as exc:  # pypdf tries the empty password while opening the file
        raise IngestError(
            name,
            "encrypted PDF (password protected, or AES-encrypted, which needs the "
            "'cryptography' package)",
        ) from exc
    except pdf_errors as exc:
        raise corrupt(exc) from exc

    if page_count == 0:
        raise EmptyDocumentError(name, "the PDF has no pages")
    if page_count > max_pages:
        raise _too_many_pages(name, page_count, max_pages)

    def pages() -> Iterator[_Piece]:
        for number in range(1, page_count + 1):
            try:
                text = reader.pages[number - 1].extract_text() or ""
            except FileNotDecryptedError as exc:
                raise IngestError(name, "encrypted PDF (password protected)") from exc
            except pdf_errors as exc:
                raise corrupt(exc, f"page {number}: ") from exc
            yield _Piece(text, page=number)

    text, blocks = _assemble(pages(), name, max_text_chars)
    return _finish(
        name,
        "pdf",
        text,
        blocks,
        max_text_chars,
        page_count=page_count,
        title=_pdf_title(reader, pdf_errors),
        empty_reason=f"no extractable text in {page_count} page(s); it may be scanned images, "
        "which need OCR first (not supported)",
    )


def _too_many_pages(name: str, count: int, max_pages: int) -> IngestError:
    return IngestError(
        name, f"has {count:,} pages, more than the limit of {max_pages:,} (RAGCHAT_MAX_PAGES)"
    )


def _check_declared_pages(reader: Any, name: str, max_pages: int) -> None:
    """Refuse at once a PDF whose page tree declares too many pages, before pypdf walks it
    (walking 10,000 pages takes seconds). A missing or lying count is caught after the walk."""
    try:
        declared = reader.root_object["/Pages"].get_object().get("/Count")
        count = int(declared) if declared is not None else 0
    except _PARSER_ERRORS:
        return
    if count > max_pages:
        raise _too_many_pages(name, count, max_pages)


def _pdf_title(reader: Any, errors: tuple[type[BaseException], ...]) -> str | None:
    """The title in the PDF's info dictionary; a broken one is ignored rather than fatal."""
    try:
        meta = reader.metadata
        title = meta.title if meta is not None else None
    except errors:
        return None
    return str(title) if title else None

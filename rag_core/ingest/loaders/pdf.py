"""PDF: text per page (pypdf), scanned pages read by OCR, ruled tables as rows with headers,
pages as blocks, limits checked early."""

from __future__ import annotations

import io
import itertools
from typing import Any

from rag_core.errors import EmptyDocumentError, IngestError
from rag_core.ingest.loaders.common import (
    _PARSER_ERRORS,
    LoadLimits,
    _assemble,
    _finish,
    _Piece,
    _too_long,
)
from rag_core.ingest.loaders.pdf_tables import ruled_pages, table_page_pieces
from rag_core.ingest.ocr import MIN_TEXT_LAYER_CHARS, needs_ocr, ocr_pdf_pages
from rag_core.types import ParsedDocument, page_ranges


def load_pdf(data: bytes, name: str, limits: LoadLimits) -> ParsedDocument:
    """Text of each page of a PDF (pypdf), pages joined by a blank line, page numbers kept.

    A page without a text layer (a scan) is read by OCR unless RAGCHAT_OCR=off; its blocks are
    marked `ocr`. The number of such pages is checked against RAGCHAT_OCR_MAX_PAGES before the
    first one is read. A page with ruled tables is read by pdf_tables: rows with headers.
    """
    from pypdf.errors import PyPdfError

    options = limits.ocr
    pdf_errors: tuple[type[BaseException], ...] = (PyPdfError, *_PARSER_ERRORS)
    reader, page_count = _open_pdf(data, name, limits.max_pages, pdf_errors)
    layers = _text_layers(reader, name, page_count, limits.max_text_chars, pdf_errors)
    scanned = [
        n
        for n, text in enumerate(layers, 1)
        if options.on and needs_ocr(text) and _draws_image(reader.pages[n - 1])
    ]
    if len(scanned) > options.max_pages:
        raise IngestError(
            name,
            f"has {len(scanned):,} pages without a text layer to read by OCR, more than the limit "
            f"of {options.max_pages:,} (RAGCHAT_OCR_MAX_PAGES); raise the limit, split the file, "
            "or set RAGCHAT_OCR=off to skip scanned pages",
        )
    read = ocr_pdf_pages(data, scanned, name, options)
    typed = [n for n, layer in enumerate(layers, 1) if n not in read and layer.strip()]
    tables = table_page_pieces(data, ruled_pages(data, typed))
    pieces = itertools.chain.from_iterable(
        tables.pieces.get(number)
        or [_Piece(read.get(number, layer), page=number, ocr=number in read)]
        for number, layer in enumerate(layers, 1)
    )
    text, blocks = _assemble(pieces, name, limits.max_text_chars)
    if scanned:
        empty = "OCR found no text in its scanned images"
    elif options.on:
        empty = "no scanned images in it for OCR to read either"
    else:
        empty = "it may be scanned images, which need OCR, and RAGCHAT_OCR is off"
    return _finish(
        name,
        "pdf",
        text,
        blocks,
        limits.max_text_chars,
        page_count=page_count,
        title=_pdf_title(reader, pdf_errors),
        empty_reason=f"no extractable text in {page_count} page(s): {empty}",
        ocr_pages=tuple(sorted(read)),
        warnings=(*_page_warnings(reader, layers, scanned, read, options.on), *tables.warnings),
    )


def _page_warnings(
    reader: Any, layers: list[str], scanned: list[int], read: dict[int, str], ocr_on: bool
) -> list[str]:
    """What the document's report says about pages whose text is missing or thin: empty pages,
    pages with almost no text, scans OCR found nothing in, scans skipped with OCR off. Pages of
    one kind share a sentence ('pages 3, 7-9 have no text')."""
    kinds: dict[str, list[int]] = {"unread": [], "skipped": [], "empty": [], "thin": []}
    chars: dict[int, int] = {}
    for number, layer in enumerate(layers, 1):
        if number in read:
            continue  # OCR read it
        chars[number] = sum(1 for ch in layer if not ch.isspace())
        if number in scanned:
            kinds["unread"].append(number)
        elif (
            chars[number] < MIN_TEXT_LAYER_CHARS
            and not ocr_on
            and _draws_image(reader.pages[number - 1])
        ):
            kinds["skipped"].append(number)
        elif chars[number] == 0:
            kinds["empty"].append(number)
        elif chars[number] < MIN_TEXT_LAYER_CHARS:
            kinds["thin"].append(number)
    sentences = {
        "unread": lambda p: f"{_pages(p)}: OCR found no text in the scanned image",
        "skipped": lambda p: (
            f"{_pages(p)} {_verb(p, 'looks', 'look')} scanned (an image without a text layer)"
            " and not read: OCR is off (RAGCHAT_OCR=off)"
        ),
        "empty": lambda p: f"{_pages(p)} {_verb(p, 'has', 'have')} no text",
        "thin": lambda p: (
            f"{_pages(p)} {_verb(p, 'has', 'have')} almost no text"
            f" ({', '.join(str(chars[n]) for n in p[:10])}{', ...' if len(p) > 10 else ''}"
            f" character{'' if len(p) == 1 and chars[p[0]] == 1 else 's'})"
        ),
    }
    found = sorted((pages[0], sentences[kind](pages)) for kind, pages in kinds.items() if pages)
    return [sentence for _, sentence in found]


def _pages(numbers: list[int]) -> str:
    return f"page{'s' if len(numbers) > 1 else ''} {page_ranges(numbers)}"


def _verb(numbers: list[int], one: str, many: str) -> str:
    return one if len(numbers) == 1 else many


def _draws_image(page: Any, depth: int = 0) -> bool:
    """Whether a page (or a form it draws, three levels deep) uses an image: a scan is one, a
    blank or drawing-only page is not worth rendering for OCR. Unsure (broken resources): yes."""
    try:
        resources = page.get("/Resources")
        resources = resources.get_object() if resources is not None else None
        xobjects = resources.get("/XObject") if resources is not None else None
        if xobjects is None:
            return False
        for ref in xobjects.get_object().values():
            obj = ref.get_object()
            kind = obj.get("/Subtype")
            if kind == "/Image" or (kind == "/Form" and depth < 3 and _draws_image(obj, depth + 1)):
                return True
    except _PARSER_ERRORS:
        return True
    return False


def _open_pdf(
    data: bytes, name: str, max_pages: int, pdf_errors: tuple[type[BaseException], ...]
) -> tuple[Any, int]:
    """The pypdf reader (decrypted with the empty password if need be) and its page count,
    checked against RAGCHAT_MAX_PAGES."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except DependencyError as exc:
                raise IngestError(name, _ENCRYPTED_AES) from exc
            if not opened:
                raise IngestError(name, "encrypted PDF (password protected)")
        _check_declared_pages(reader, name, max_pages)
        page_count = len(reader.pages)
    except IngestError:
        raise
    except FileNotDecryptedError as exc:
        raise IngestError(name, "encrypted PDF (password protected)") from exc
    except DependencyError as exc:  # pypdf tries the empty password while opening the file
        raise IngestError(name, _ENCRYPTED_AES) from exc
    except pdf_errors as exc:
        raise _corrupt(name, exc) from exc
    if page_count == 0:
        raise EmptyDocumentError(name, "the PDF has no pages")
    if page_count > max_pages:
        raise _too_many_pages(name, page_count, max_pages)
    return reader, page_count


_ENCRYPTED_AES = (
    "encrypted PDF (password protected, or AES-encrypted, which needs the 'cryptography' package)"
)


def _corrupt(name: str, exc: BaseException, where: str = "") -> IngestError:
    detail = str(exc).strip() or type(exc).__name__
    return IngestError(name, f"corrupt or truncated PDF: {where}{detail}")


def _text_layers(
    reader: Any,
    name: str,
    page_count: int,
    max_text_chars: int,
    pdf_errors: tuple[type[BaseException], ...],
) -> list[str]:
    """The text layer of every page (empty for a scan), the total checked against
    RAGCHAT_MAX_TEXT_CHARS as it grows."""
    from pypdf.errors import FileNotDecryptedError

    layers: list[str] = []
    total = 0
    for number in range(1, page_count + 1):
        try:
            text = reader.pages[number - 1].extract_text() or ""
        except FileNotDecryptedError as exc:
            raise IngestError(name, "encrypted PDF (password protected)") from exc
        except pdf_errors as exc:
            raise _corrupt(name, exc, f"page {number}: ") from exc
        total += len(text)
        if total > max_text_chars:
            raise _too_long(name, max_text_chars)
        layers.append(text)
    return layers


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

"""Tables in PDF pages: found by their ruling lines (pdfplumber), each row kept as text with its
column headers, the rest of the page read around them.

Looking for tables costs about 0.1 s a page, so only pages that draw enough lines or rectangles
(counted with pypdfium2 in well under a millisecond a page) are looked at; a page without ruled
tables keeps pypdf's text. Tables are a refinement: a page pdfplumber cannot read keeps its
plain text rather than failing the file.
"""

from __future__ import annotations

import io
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rag_core.ingest.loaders.common import _PARSER_ERRORS, _Piece
from rag_core.ingest.loaders.tables import table_lines, table_pieces

log = logging.getLogger(__name__)

MIN_RULES = 4  # lines and rectangles a page must draw before its tables are looked for
# ...and at most: a page of more paths is a drawing (a map, a plan), where pdfplumber's search
# for ruled cells grows with the square of the paths and finds no table worth the time
MAX_RULES = 3000
_PATH_OBJECT = 2  # FPDF_PAGEOBJ_PATH


def ruled_pages(data: bytes, pages: Sequence[int]) -> list[int]:
    """The pages among `pages` that draw MIN_RULES to MAX_RULES paths: where a ruled table may
    be."""
    if not pages:
        return []
    import pypdfium2 as pdfium

    found: list[int] = []
    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError:
        return []
    try:
        for number in pages:
            page = pdf[number - 1]
            paths = page.get_objects(filter=[_PATH_OBJECT], max_depth=2)
            if MIN_RULES <= sum(1 for _ in itertools.islice(paths, MAX_RULES + 1)) <= MAX_RULES:
                found.append(number)
            page.close()
    except (pdfium.PdfiumError, *_PARSER_ERRORS) as exc:
        log.warning("looking for tables stopped: %s", exc)
    finally:
        pdf.close()
    return found


@dataclass(frozen=True)
class PageTables:
    """The pages read with their tables (page number -> pieces), and the pages whose tables
    could not be read (they keep their plain text), a sentence each for the document's report."""

    pieces: dict[int, list[_Piece]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def table_page_pieces(data: bytes, pages: Sequence[int]) -> PageTables:
    """For each page of `pages` that holds a ruled table (two rows and two columns at least):
    its text above each table, the table's rows, the text beside it, and the text below."""
    if not pages:
        return PageTables()
    import pdfplumber
    from pdfminer.pdfparser import PDFSyntaxError
    from pdfminer.psparser import PSException

    errors: tuple[type[BaseException], ...] = (PDFSyntaxError, PSException, *_PARSER_ERRORS)
    found: dict[int, list[_Piece]] = {}
    warnings: list[str] = []
    try:
        with pdfplumber.open(io.BytesIO(data)) as doc:
            for number in pages:
                try:
                    pieces = _page_pieces(doc.pages[number - 1], number)
                except errors as exc:  # this page keeps its plain text
                    log.warning("tables of page %d not read: %s", number, exc)
                    warnings.append(
                        f"tables on page {number} could not be read ({_detail(exc)});"
                        " the page keeps its plain text"
                    )
                    continue
                if pieces is not None:
                    found[number] = pieces
    except errors as exc:
        log.warning("tables not read: %s", exc)
        warnings.append(
            f"tables could not be looked for ({_detail(exc)}); the pages keep their plain text"
        )
    return PageTables(found, tuple(warnings))


def _detail(exc: BaseException) -> str:
    return (str(exc).strip() or type(exc).__name__)[:120]


def _page_pieces(page: Any, number: int) -> list[_Piece] | None:
    tables = [
        t
        for t in page.find_tables()
        if len(t.rows) >= 2 and max((len(r.cells) for r in t.rows), default=0) >= 2
    ]
    if not tables:
        return None
    boxes = [t.bbox for t in tables]

    def outside(obj: dict[str, Any]) -> bool:
        if obj.get("object_type") != "char":
            return True
        x, y = (obj["x0"] + obj["x1"]) / 2, (obj["top"] + obj["bottom"]) / 2
        return not any(x0 <= x <= x1 and top <= y <= bottom for x0, top, x1, bottom in boxes)

    rest = page.filter(outside)
    left, page_top, right, page_bottom = page.bbox

    def text(top: float, bottom: float) -> str:
        top, bottom = max(top, page_top), min(bottom, page_bottom)
        if bottom <= top:
            return ""
        return str(rest.crop((left, top, right, bottom)).extract_text() or "")

    pieces: list[_Piece] = []
    above = page_top
    for table in sorted(tables, key=lambda t: t.bbox[1]):
        _, top, _, bottom = table.bbox
        pieces.append(_Piece(text(above, top), page=number))
        rows = [[cell or "" for cell in row] for row in table.extract()]
        pieces += table_pieces(table_lines(rows), page=number)
        pieces.append(_Piece(text(top, bottom), page=number))  # beside the table
        above = max(above, bottom)
    pieces.append(_Piece(text(above, page_bottom), page=number))
    return pieces

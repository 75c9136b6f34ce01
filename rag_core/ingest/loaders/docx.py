"""Word (.docx): paragraphs and tables with their heading styles; a zip-bomb guard first."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from typing import Any

from rag_core.errors import IngestError
from rag_core.ingest.loaders.common import (
    _BIG_MEMBER_BYTES,
    _MAX_ZIP_MEMBERS,
    _PARSER_ERRORS,
    DEFAULT_MAX_UNPACKED_MB,
    MAX_COMPRESSION_RATIO,
    LoadLimits,
    _assemble,
    _finish,
    _HeadingStack,
    _Piece,
)
from rag_core.ingest.loaders.tables import table_lines, table_pieces
from rag_core.types import ParsedDocument


def check_zip_bomb(
    data: bytes, name: str, max_unpacked_mb: float = DEFAULT_MAX_UNPACKED_MB
) -> None:
    """Refuse a ZIP whose declared unpacked size or compression ratio is out of proportion.

    Python's zipfile never inflates past a member's declared size, so checking the declared sizes
    bounds what python-docx can unpack.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except _PARSER_ERRORS as exc:
        raise IngestError(name, f"corrupt or truncated Word document: {exc}") from exc
    if len(infos) > _MAX_ZIP_MEMBERS:
        raise IngestError(
            name,
            f"has {len(infos):,} parts inside, more than the limit of {_MAX_ZIP_MEMBERS:,}; "
            "it looks like a zip bomb",
        )
    total = sum(info.file_size for info in infos)
    if total > max_unpacked_mb * 2**20:
        raise IngestError(
            name,
            f"unpacks to {total / 2**20:,.0f} MB, more than the limit of {max_unpacked_mb:g} MB "
            "(RAGCHAT_MAX_UNPACKED_MB); it looks like a zip bomb",
        )
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _BIG_MEMBER_BYTES and ratio > MAX_COMPRESSION_RATIO:
            raise IngestError(
                name,
                f"part {info.filename} is compressed {ratio:,.0f}:1 "
                f"(limit {MAX_COMPRESSION_RATIO}:1); it looks like a zip bomb",
            )


_HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.I)


def load_docx(data: bytes, name: str, limits: LoadLimits) -> ParsedDocument:
    """Paragraphs and table rows of a Word document in order; Heading n styles give the path."""
    check_zip_bomb(data, name, limits.max_unpacked_mb)
    import docx
    from docx.opc.exceptions import OpcError
    from lxml.etree import LxmlError

    docx_errors: tuple[type[BaseException], ...] = (OpcError, LxmlError, *_PARSER_ERRORS)

    try:
        document = docx.Document(io.BytesIO(data))
        core_title = document.core_properties.title
    except docx_errors as exc:
        raise IngestError(name, f"corrupt Word document: {exc}") from exc

    headings = _HeadingStack()
    titles: list[str] = []

    def pieces() -> Iterator[_Piece]:
        for item in document.iter_inner_content():
            if hasattr(item, "rows"):  # a Table
                rows, marked = _table_rows(item)
                lines = table_lines(rows, header=True if marked else None)
                yield from table_pieces(lines, headings.path)
                continue
            text = item.text
            level = _docx_heading_level(item)
            if level == 0 and text.strip():
                titles.append(text.strip())
            elif level and text.strip():
                headings.push(level, " ".join(text.split()))
            yield _Piece(text, heading_path=headings.path)

    try:
        text, blocks = _assemble(pieces(), name, limits.max_text_chars)
    except IngestError:
        raise
    except docx_errors as exc:
        raise IngestError(name, f"corrupt Word document: {exc}") from exc
    return _finish(
        name,
        "docx",
        text,
        blocks,
        limits.max_text_chars,
        title=core_title or next(iter(titles), None),
        warnings=_picture_warnings(document, docx_errors),
    )


def _picture_warnings(document: Any, errors: tuple[type[BaseException], ...]) -> tuple[str, ...]:
    """A sentence for the report when the document holds pictures: any text in them is not
    read (OCR reads scanned PDFs and picture files, not pictures inside Word documents)."""
    try:
        count = len(document.inline_shapes)
    except errors:
        return ()
    if not count:
        return ()
    what = "1 picture" if count == 1 else f"{count} pictures"
    return (f"{what} in the document: text inside pictures is not read",)


def _table_rows(table: Any) -> tuple[list[list[str]], bool]:
    """The cell texts of a Word table, row by row (a horizontally merged cell fills each column
    it spans, so cells stay under their headers), and whether its first row is marked as a
    header row ('Repeat as header row')."""
    rows: list[list[str]] = []
    for row in table.rows:
        rows.append([" ".join(cell.text.split()) for cell in row.cells])
    first = table.rows[0]._tr if rows else None
    marked = first is not None and bool(first.xpath("./w:trPr/w:tblHeader"))
    return rows, marked


def _docx_heading_level(paragraph: Any) -> int | None:
    """1..9 for 'Heading n' paragraphs, 0 for the 'Title' style, None otherwise."""
    try:
        style = paragraph.style
    except _PARSER_ERRORS:
        return None
    for _ in range(16):  # base styles can (wrongly) form a cycle
        if style is None:
            break
        for label in (style.name or "", style.style_id or ""):
            m = _HEADING_STYLE.match(label.strip())
            if m:
                return int(m.group(1))
            if label.strip().lower() == "title":
                return 0
        style = style.base_style  # custom styles based on a heading style count as headings
    return None

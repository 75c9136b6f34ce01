"""Table rows as text lines that keep each cell with its column header, as one table block."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from rag_core.ingest.loaders.common import _Piece

_MAX_HEADER_CELL = 60  # a longer first-row cell is text, not a column header
_NUMBER = re.compile(r"^[\s\d.,:%/+()-]+$")


def _looks_like_header(row: list[str], rows: int) -> bool:
    """A first row taken as column headers when nothing marks it: a table of two rows or more
    whose first row has two or more cells, all short, none empty and none a number."""
    return (
        rows >= 2
        and len(row) >= 2
        and all(cell and len(cell) <= _MAX_HEADER_CELL and not _NUMBER.match(cell) for cell in row)
    )


def table_lines(rows: Sequence[Sequence[str]], *, header: bool | None = None) -> list[str]:
    """A table as lines of text, one per row, each cell with its column header:
    'Model: X200 | Ethernet ports: four 2.5 Gbit ports'. Every line carries its headers, so any
    run of rows (a chunk) is understood without the header row.

    `header` True: the first row holds the column headers (th cells, a Markdown table, a Word
    header row); None: it does when it looks like it (see _looks_like_header); False: no headers,
    cells joined by ' | '. Empty cells are left out; a cell repeated by a merged cell once.
    """
    cleaned = [[" ".join(cell.split()) for cell in row] for row in rows]
    cleaned = [row for row in cleaned if any(row)]
    if not cleaned:
        return []
    has_header = header if header is not None else _looks_like_header(cleaned[0], len(cleaned))
    if not has_header or len(cleaned) == 1:
        return [" | ".join(_unique(c for c in row if c)) for row in cleaned]
    names = cleaned[0]
    lines = []
    for row in cleaned[1:]:
        filled = [cell for cell in row if cell]
        if len(filled) > 1 and len(set(filled)) == 1:  # one cell across the row: a label
            lines.append(filled[0])
            continue
        cells = []
        for i, cell in enumerate(row):
            name = names[i] if i < len(names) else ""
            if cell:
                cells.append(f"{name}: {cell}" if name and name != cell else cell)
        if cells:
            lines.append(" | ".join(_unique(cells)))
    return lines


def _unique(items: Iterable[str]) -> list[str]:
    """`items` without a repeat of the item just before (a merged cell spans columns)."""
    out: list[str] = []
    for item in items:
        if not out or out[-1] != item:
            out.append(item)
    return out


def table_pieces(
    lines: Sequence[str], heading_path: tuple[str, ...] = (), page: int | None = None
) -> list[_Piece]:
    """Table lines as pieces of one table block: a blank line before the table, a line break
    between its rows."""
    return [
        _Piece(line, page=page, heading_path=heading_path, sep="\n" if i else "\n\n", table=True)
        for i, line in enumerate(lines)
    ]

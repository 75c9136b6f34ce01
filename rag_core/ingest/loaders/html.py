"""HTML: visible text with headings, paragraphs, list items and table rows; scripts dropped."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from rag_core.errors import IngestError
from rag_core.ingest.detect import (
    decode_text,
    html_declared_charset,
)
from rag_core.ingest.loaders.common import (
    _PARSER_ERRORS,
    LoadLimits,
    _assemble,
    _finish,
    _HeadingStack,
    _Piece,
)
from rag_core.ingest.loaders.tables import table_lines, table_pieces
from rag_core.types import ParsedDocument

_DROP_TAGS = frozenset(
    {"script", "style", "noscript", "template", "head", "svg", "math", "iframe", "object",
     "embed", "canvas", "select", "datalist"}
)  # fmt: skip
_PARAGRAPH_TAGS = frozenset(
    {"p", "div", "section", "article", "main", "header", "footer", "nav", "aside", "blockquote",
     "pre", "table", "ul", "ol", "dl", "figure", "form", "fieldset", "address", "details",
     "hr", "body", "html", "h1", "h2", "h3", "h4", "h5", "h6", "center", "hgroup", "menu"}
)  # fmt: skip
_LINE_TAGS = frozenset(
    {"li", "tr", "dt", "dd", "br", "caption", "figcaption", "summary", "legend", "option",
     "thead", "tbody", "tfoot", "label"}
)  # fmt: skip
_CELL_TAGS = frozenset({"td", "th"})
_HEADING_TAGS = {f"h{n}": n for n in range(1, 7)}
_WS = re.compile(r"\s+")


def load_html(data: bytes, name: str, limits: LoadLimits) -> ParsedDocument:
    """Visible text of an HTML page, one line per block element, headings h1..h6 tracked."""
    from bs4 import BeautifulSoup, CData, FeatureNotFound, Tag
    from bs4.builder import ParserRejectedMarkup
    from bs4.element import NavigableString

    html_errors: tuple[type[BaseException], ...] = (ParserRejectedMarkup, *_PARSER_ERRORS)
    source = _decode_html(data, name)
    try:
        try:
            soup = BeautifulSoup(source, "lxml")
        except FeatureNotFound:  # no lxml: the pure-Python parser is slower but fine
            soup = BeautifulSoup(source, "html.parser")
    except html_errors as exc:
        raise IngestError(name, f"could not parse the HTML: {exc}") from exc
    title_tag = soup.find("title")
    title = title_tag.get_text(" ", strip=True) if isinstance(title_tag, Tag) else None
    walk = _Walk()
    walk.run(soup, Tag, (NavigableString, CData))
    pieces = walk.pieces
    text, blocks = _assemble(pieces, name, limits.max_text_chars)
    return _finish(name, "html", text, blocks, limits.max_text_chars, title=title)


class _Walk:
    """The visible text of a parsed page as pieces: one per block element, headings tracked,
    table cells of a row joined by " | ". Iterative, so deep nesting cannot hit the recursion
    limit."""

    def __init__(self) -> None:
        self.pieces: list[_Piece] = []
        self.headings = _HeadingStack()
        self.buf: list[str] = []
        self.pending = ""  # the strongest break asked for since the last piece: "", \n, \n\n
        self.pre_depth = 0
        self.heading_level = 0
        self.heading_buf: list[str] = []  # text of the current h1..h6, even across inner blocks
        self.cell_sep = False  # a cell began after other text on its row: " | " before its text

    def flush(self) -> None:
        self.cell_sep = False
        raw = "".join(self.buf)
        self.buf.clear()
        text = raw.strip("\n") if self.pre_depth else _WS.sub(" ", raw).strip()
        if text.strip():
            sep = self.pending or "\n"
            self.pieces.append(_Piece(text, heading_path=self.headings.path, sep=sep))
            self.pending = ""

    def brk(self, kind: str) -> None:
        self.flush()
        if len(kind) > len(self.pending):
            self.pending = kind

    def run(self, soup: Any, tag_type: Any, text_types: tuple[Any, ...]) -> None:
        stack: list[tuple[Any, Iterator[Any]]] = [(soup, iter(soup.contents))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                self.leave(node.name if isinstance(node, tag_type) else "")
            elif isinstance(child, tag_type):
                if self.enter(child):
                    stack.append((child, iter(child.contents)))
            elif type(child) in text_types:
                self.text(str(child))
        self.flush()

    def enter(self, tag: Any) -> bool:
        """An element opens; False when its content is skipped."""
        name = str(tag.name)
        if name in _DROP_TAGS or _hidden(tag):
            return False
        if name == "table":
            data = _data_table(tag)
            if data is not None:  # rows with their column headers; a layout table is walked
                caption, rows, marked = data
                lines = table_lines(rows, header=marked)
                self.brk("\n\n")
                self.pieces += table_pieces(
                    [caption, *lines] if caption else lines, self.headings.path
                )
                self.pending = "\n\n"
                return False
        if name in _PARAGRAPH_TAGS:
            self.brk("\n\n")
        elif name in _LINE_TAGS:
            self.brk("\n")
        elif name in _CELL_TAGS:
            self.cell_sep = any(part.strip() for part in self.buf)
        if name in _HEADING_TAGS and not self.heading_level:
            self.heading_level = _HEADING_TAGS[name]
        if name == "pre":
            self.pre_depth += 1
        return name != "br"

    def leave(self, name: str) -> None:
        if name in _HEADING_TAGS and self.heading_level == _HEADING_TAGS[name]:
            heading = _WS.sub(" ", "".join(self.heading_buf)).strip()
            if heading:
                self.headings.push(self.heading_level, heading)
            self.heading_level = 0
            self.heading_buf.clear()
        if name in _PARAGRAPH_TAGS:
            self.brk("\n\n")
        elif name in _LINE_TAGS:
            self.brk("\n")
        if name == "pre":
            self.pre_depth -= 1

    def text(self, text: str) -> None:
        if self.cell_sep and text.strip():
            self.buf.append(" | ")
            self.cell_sep = False
        self.buf.append(text)
        if self.heading_level:
            self.heading_buf.append(text)


_LAYOUT_TAGS = ["table", "h1", "h2", "h3", "h4", "h5", "h6", "p", "ul", "ol", "pre", "blockquote"]
_MAX_SPAN = 50  # colspan beyond this is taken as 1 (a hostile page cannot blow a row up)


def _data_table(table: Any) -> tuple[str, list[list[str]], bool | None] | None:
    """A data table's caption, its rows as cell texts (a cell spanning n columns fills each of
    them), and whether its first row holds column headers: True when marked (all <th>, or in
    <thead>), False when <th> cells are elsewhere (they head rows, not columns), None when there
    are none (table_lines guesses). None for a layout table (one holding tables, headings,
    paragraphs or lists), whose content is walked as text instead, as is a table that holds
    anything the walk leaves out (scripts, hidden elements...)."""
    if table.find([*_LAYOUT_TAGS, *_DROP_TAGS]) is not None or table.find(_hidden) is not None:
        return None
    rows: list[list[str]] = []
    marked: bool | None = None
    caption = table.find("caption")
    for i, tr in enumerate(table.find_all("tr")):
        cells = [c for c in tr.find_all(["td", "th"], recursive=False) if not _hidden(c)]
        row: list[str] = []
        for cell in cells:
            span = str(cell.get("colspan") or "1").strip()
            repeat = int(span) if span.isdigit() and 0 < int(span) <= _MAX_SPAN else 1
            row += [_WS.sub(" ", cell.get_text(" ")).strip()] * repeat
        if (
            i == 0
            and cells
            and (tr.find_parent("thead") is not None or all(c.name == "th" for c in cells))
        ):
            marked = True
        rows.append(row)
    if marked is None and table.find("th") is not None:
        marked = False
    title = _WS.sub(" ", caption.get_text(" ")).strip() if caption is not None else ""
    return title, rows, marked


def _hidden(tag: Any) -> bool:
    """True for elements the browser would not show: `hidden` or an inline display:none."""
    style = str(tag.get("style") or "").replace(" ", "").lower()
    return bool(tag.has_attr("hidden") or "display:none" in style)


def _decode_html(data: bytes, name: str) -> str:
    """HTML bytes as text: BOM / UTF-8 first, then the charset the page declares, else the
    careful Windows-1252 fallback of decode_text."""
    try:
        return decode_text(data, name, fallback=False)
    except IngestError:
        charset = html_declared_charset(data)
        if charset is None or charset == "utf-8":
            return decode_text(data, name)
    try:
        return data.decode(charset)
    except (UnicodeDecodeError, LookupError) as exc:
        raise IngestError(name, f"declares charset {charset} but is not valid {charset}") from exc

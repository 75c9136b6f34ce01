"""Format loaders: bytes of a PDF, DOCX, HTML, Markdown or text file -> ParsedDocument.

Every loader returns normalised text (no NUL or stray control characters, \\n line ends, at most
one blank line in a row) and blocks that tile that text exactly: block i covers
``text[block.char_start:block.char_end]``, the blocks are contiguous from 0 to ``len(text)``, and
each carries its PDF page (1-based) and heading path. Failures raise IngestError subclasses whose
message names the file and says what is wrong; no third-party exception type escapes.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from rag_core.errors import EmptyDocumentError, IngestError
from rag_core.ingest.detect import (
    ANSI_ESCAPE_TEXT,
    decode_text,
    detect_type,
    html_declared_charset,
)
from rag_core.types import Block, DocType, ParsedDocument

DEFAULT_MAX_UNPACKED_MB = 200.0  # a DOCX bigger than this when unzipped is refused (setting)
MAX_COMPRESSION_RATIO = 100  # ...as is one whose big members shrink more than this
_BIG_MEMBER_BYTES = 10 * 1024 * 1024
_MAX_ZIP_MEMBERS = 10_000

LoaderFn = Callable[..., ParsedDocument]

# Exceptions that pypdf / python-docx / zipfile raise on malformed input. Narrow enough that a
# programming error (NameError, MemoryError, KeyboardInterrupt...) still surfaces as itself.
_PARSER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,  # includes UnicodeError
    LookupError,  # KeyError, IndexError
    TypeError,
    AttributeError,
    AssertionError,
    RecursionError,
    OverflowError,
    EOFError,
    OSError,
    struct.error,
    zlib.error,
    zipfile.BadZipFile,
    NotImplementedError,
)


def load_document(
    data: bytes,
    name: str,
    *,
    max_pages: int,
    max_text_chars: int,
    max_unpacked_mb: float = DEFAULT_MAX_UNPACKED_MB,
) -> ParsedDocument:
    """Detect the format of `data` and parse it; the single entry point of this module.

    The limits (RAGCHAT_MAX_PAGES, _MAX_TEXT_CHARS, _MAX_UNPACKED_MB) bound the work and memory
    one file can cost; each error that enforces one names the setting and its value.
    """
    doc_type = detect_type(data, name)
    return LOADERS[doc_type](
        data,
        name,
        max_pages=max_pages,
        max_text_chars=max_text_chars,
        max_unpacked_mb=max_unpacked_mb,
    )


# --------------------------------------------------------------------------- text assembly


_CONTROL_CHARS: dict[int, str | None] = {
    c: None for c in (*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F)
}
_CONTROL_CHARS[0x0C] = "\n"  # form feed: a page break inside extracted text
_CONTROL_CHARS[0x0B] = "\n"  # vertical tab: Word's manual line break in some exports
_BLANK_RUN = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\n)+")


def normalize_text(text: str) -> str:
    """Drop NUL and control characters (and terminal colour codes), unify line ends, collapse
    runs of blank lines to one."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n")
    if "\x1b" in text:
        text = ANSI_ESCAPE_TEXT.sub("", text)
    text = text.translate(_CONTROL_CHARS)
    return _BLANK_RUN.sub("\n\n", text)


@dataclass(frozen=True)
class _Piece:
    """A run of extracted text with its origin, and the separator that goes before it."""

    text: str
    page: int | None = None
    heading_path: tuple[str, ...] = ()
    sep: str = "\n\n"


def _assemble(
    pieces: Iterable[_Piece], name: str, max_text_chars: int
) -> tuple[str, tuple[Block, ...]]:
    """Join normalised pieces into one text and tile it with blocks of equal page and headings.

    Each piece is normalised and stripped of surrounding blank lines on its own, so separators are
    never doubled and every offset refers to the final text.
    """
    parts: list[str] = []
    starts: list[tuple[int, int | None, tuple[str, ...]]] = []  # (offset, page, heading_path)
    pos = 0
    for piece in pieces:
        text = _LEADING_BLANK_LINES.sub("", normalize_text(piece.text)).rstrip()
        if not text.strip():
            continue
        if parts:
            parts.append(piece.sep)
            pos += len(piece.sep)
        key = (piece.page, piece.heading_path)
        if not starts or (starts[-1][1], starts[-1][2]) != key:
            # The separator belongs to the block before it; the new block starts at its text.
            starts.append((pos, piece.page, piece.heading_path))
        parts.append(text)
        pos += len(text)
        if pos > max_text_chars:
            raise _too_long(name, max_text_chars)
    return "".join(parts), _tile(starts, pos)


def _tile(starts: list[tuple[int, int | None, tuple[str, ...]]], end: int) -> tuple[Block, ...]:
    """Blocks from their start offsets: each runs to the next one's start, the last to `end`."""
    blocks = []
    for i, (start, page, path) in enumerate(starts):
        stop = starts[i + 1][0] if i + 1 < len(starts) else end
        blocks.append(Block(0 if i == 0 else start, stop, page, path))
    return tuple(blocks)


def _too_long(name: str, max_text_chars: int) -> IngestError:
    return IngestError(
        name,
        f"has more than {max_text_chars:,} characters of text, the limit set by "
        "RAGCHAT_MAX_TEXT_CHARS; split the file or raise the limit",
    )


def _finish(
    name: str,
    doc_type: DocType,
    text: str,
    blocks: tuple[Block, ...],
    max_text_chars: int,
    *,
    page_count: int | None = None,
    title: str | None = None,
    empty_reason: str = "has no text (it is empty or only whitespace)",
) -> ParsedDocument:
    if not text.strip():
        raise EmptyDocumentError(name, empty_reason)
    if len(text) > max_text_chars:
        raise _too_long(name, max_text_chars)
    title = " ".join(title.split()) if title else None
    return ParsedDocument(text, blocks, doc_type, page_count, title or None)


class _HeadingStack:
    """The path of headings above the current position: a new heading of level n replaces n..6."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []

    def push(self, level: int, title: str) -> tuple[str, ...]:
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, title))
        return self.path

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(title for _, title in self._stack)


# --------------------------------------------------------------------------- PDF


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


# --------------------------------------------------------------------------- DOCX


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


def load_docx(
    data: bytes,
    name: str,
    *,
    max_pages: int,
    max_text_chars: int,
    max_unpacked_mb: float = DEFAULT_MAX_UNPACKED_MB,
) -> ParsedDocument:
    """Paragraphs and table rows of a Word document in order; Heading n styles give the path."""
    check_zip_bomb(data, name, max_unpacked_mb)
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
                sep = "\n\n"
                for row in item.rows:
                    cells: list[str] = []
                    seen: set[int] = set()
                    for cell in row.cells:  # merged cells repeat: keep each once
                        if id(cell._tc) in seen:
                            continue
                        seen.add(id(cell._tc))
                        cells.append(" ".join(cell.text.split()))
                    line = " | ".join(c for c in cells if c)
                    if line:
                        yield _Piece(line, heading_path=headings.path, sep=sep)
                        sep = "\n"
                continue
            text = item.text
            level = _docx_heading_level(item)
            if level == 0 and text.strip():
                titles.append(text.strip())
            elif level and text.strip():
                headings.push(level, " ".join(text.split()))
            yield _Piece(text, heading_path=headings.path)

    try:
        text, blocks = _assemble(pieces(), name, max_text_chars)
    except IngestError:
        raise
    except docx_errors as exc:
        raise IngestError(name, f"corrupt Word document: {exc}") from exc
    return _finish(
        name, "docx", text, blocks, max_text_chars, title=core_title or next(iter(titles), None)
    )


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


# --------------------------------------------------------------------------- HTML

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


def load_html(
    data: bytes,
    name: str,
    *,
    max_pages: int,
    max_text_chars: int,
    max_unpacked_mb: float = DEFAULT_MAX_UNPACKED_MB,
) -> ParsedDocument:
    """Visible text of an HTML page, one line per block element, headings h1..h6 tracked.

    The walk over the tree is iterative, so deeply nested markup cannot hit the recursion limit.
    """
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

    pieces: list[_Piece] = []
    headings = _HeadingStack()
    buf: list[str] = []
    pending = ""  # the strongest break asked for since the last piece: "", "\n" or "\n\n"
    pre_depth = 0
    heading_level = 0
    heading_buf: list[str] = []  # text seen inside the current h1..h6, even across inner blocks
    cell_sep = False  # a table cell began after other text on its row: " | " before its text

    def flush() -> None:
        nonlocal pending, cell_sep
        cell_sep = False
        raw = "".join(buf)
        buf.clear()
        text = raw.strip("\n") if pre_depth else _WS.sub(" ", raw).strip()
        if text.strip():
            pieces.append(_Piece(text, heading_path=headings.path, sep=pending or "\n"))
            pending = ""

    def brk(kind: str) -> None:
        nonlocal pending
        flush()
        if len(kind) > len(pending):
            pending = kind

    stack: list[tuple[Any, Iterator[Any]]] = [(soup, iter(soup.contents))]
    while stack:
        node, children = stack[-1]
        child = next(children, None)
        if child is None:  # leaving `node`
            stack.pop()
            tag = node.name if isinstance(node, Tag) else ""
            if tag in _HEADING_TAGS and heading_level == _HEADING_TAGS[tag]:
                heading = _WS.sub(" ", "".join(heading_buf)).strip()
                if heading:
                    headings.push(heading_level, heading)
                heading_level = 0
                heading_buf.clear()
            if tag in _PARAGRAPH_TAGS:
                brk("\n\n")
            elif tag in _LINE_TAGS:
                brk("\n")
            if tag == "pre":
                pre_depth -= 1
            continue
        if isinstance(child, Tag):
            tag = child.name
            if tag in _DROP_TAGS or _hidden(child):
                continue
            if tag in _PARAGRAPH_TAGS:
                brk("\n\n")
            elif tag in _LINE_TAGS:
                brk("\n")
            elif tag in _CELL_TAGS:
                cell_sep = any(part.strip() for part in buf)
            if tag in _HEADING_TAGS and not heading_level:
                heading_level = _HEADING_TAGS[tag]
            if tag == "pre":
                pre_depth += 1
            if tag == "br":
                continue
            stack.append((child, iter(child.contents)))
        elif type(child) is NavigableString or isinstance(child, CData):
            if cell_sep and child.strip():
                buf.append(" | ")
                cell_sep = False
            buf.append(str(child))
            if heading_level:
                heading_buf.append(str(child))
    flush()

    text, blocks = _assemble(pieces, name, max_text_chars)
    return _finish(name, "html", text, blocks, max_text_chars, title=title)


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


# --------------------------------------------------------------------------- Markdown

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_EMPHASIS = re.compile(r"(?<!\w)(\*\*|__|\*|_)(\S|\S.*?\S)\1(?!\w)")


def load_markdown(
    data: bytes,
    name: str,
    *,
    max_pages: int,
    max_text_chars: int,
    max_unpacked_mb: float = DEFAULT_MAX_UNPACKED_MB,
) -> ParsedDocument:
    """Markdown kept as written; blocks start at ATX (#) and setext headings outside code fences."""
    text = normalize_text(decode_text(data, name))
    if len(text) > max_text_chars:
        raise _too_long(name, max_text_chars)
    headings = _HeadingStack()
    starts: list[tuple[int, int | None, tuple[str, ...]]] = [(0, None, ())]
    title: str | None = None
    fence: str | None = None
    para_start: int | None = None  # offset of the first line of the current paragraph
    para_lines: list[str] = []
    pos = 0
    lines = text.split("\n")
    first = _front_matter_end(lines)
    for i, line in enumerate(lines):
        line_start = pos
        pos += len(line) + 1
        if i < first:
            continue
        if fence is not None:
            if re.match(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", line):
                fence = None
            continue
        m = _FENCE.match(line)
        if m:
            fence, para_start, para_lines = m.group(1), None, []
            continue
        heading: tuple[int, str, int] | None = None  # (level, title, offset where it starts)
        m = _ATX.match(line)
        setext = _SETEXT.match(line)
        if m:
            heading = (len(m.group(1)), m.group(2) or "", line_start)
        elif setext and para_start is not None and para_lines:
            level = 1 if setext.group(1).startswith("=") else 2
            heading = (level, " ".join(" ".join(para_lines).split()), para_start)
        if heading is not None:
            level, raw_title, offset = heading
            clean = _clean_md_heading(raw_title)
            if clean:
                path = headings.push(level, clean)
                if title is None and level == 1:
                    title = clean
                if not text[starts[-1][0] : offset].strip():  # nothing before it: take over
                    starts[-1] = (starts[-1][0], None, path)
                else:
                    starts.append((offset, None, path))
            para_start, para_lines = None, []
            continue
        if line.strip():
            if para_start is None:
                para_start = line_start
            para_lines.append(line)
        else:
            para_start, para_lines = None, []
    blocks = _tile(starts, len(text))
    return _finish(name, "markdown", text, blocks, max_text_chars, title=title)


def _front_matter_end(lines: list[str]) -> int:
    """Index of the first line after a leading YAML front-matter block (0 if there is none)."""
    if not lines or lines[0].strip() != "---":
        return 0
    for i in range(1, min(len(lines), 200)):
        if lines[i].strip() in ("---", "..."):
            return i + 1
    return 0


def _clean_md_heading(raw: str) -> str:
    """Heading text without link syntax, code ticks or emphasis markers."""
    text = _MD_LINK.sub(r"\1", raw).replace("`", "")
    text = _MD_EMPHASIS.sub(r"\2", text)
    return " ".join(text.split())


# --------------------------------------------------------------------------- plain text


def load_text(
    data: bytes,
    name: str,
    *,
    max_pages: int,
    max_text_chars: int,
    max_unpacked_mb: float = DEFAULT_MAX_UNPACKED_MB,
) -> ParsedDocument:
    """A plain-text file as one block (the chunker splits it at paragraphs and sentences)."""
    text = normalize_text(decode_text(data, name))
    blocks = (Block(0, len(text)),) if text else ()
    return _finish(name, "text", text, blocks, max_text_chars)


LOADERS: dict[DocType, LoaderFn] = {
    "pdf": load_pdf,
    "docx": load_docx,
    "html": load_html,
    "markdown": load_markdown,
    "text": load_text,
}

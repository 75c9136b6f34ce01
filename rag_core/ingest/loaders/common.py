"""Text assembly shared by the loaders: normalising text, blocks that tile it, limits."""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from rag_core.errors import EmptyDocumentError, IngestError
from rag_core.ingest.detect import (
    ANSI_ESCAPE_TEXT,
)
from rag_core.ingest.ocr import OcrOptions
from rag_core.text import CONTROL_TABLE
from rag_core.types import Block, DocType, ParsedDocument

DEFAULT_MAX_UNPACKED_MB = 200.0  # a DOCX bigger than this when unzipped is refused (setting)
MAX_COMPRESSION_RATIO = 100  # ...as is one whose big members shrink more than this
_BIG_MEMBER_BYTES = 10 * 1024 * 1024
_MAX_ZIP_MEMBERS = 10_000


@dataclass(frozen=True)
class LoadLimits:
    """What one file may cost, and how its scans are read; every loader takes one.

    The defaults are the settings' defaults (RAGCHAT_MAX_PAGES, _MAX_TEXT_CHARS, _MAX_UNPACKED_MB,
    RAGCHAT_OCR*); `Settings.load_limits()` builds the configured ones. Each error that enforces a
    limit names its setting and value.
    """

    max_pages: int = 5000
    max_text_chars: int = 20_000_000
    max_unpacked_mb: float = DEFAULT_MAX_UNPACKED_MB
    ocr: OcrOptions = field(default_factory=OcrOptions)


DEFAULT_LIMITS = LoadLimits()

# A loader: the file's bytes, its name (for errors and titles), its limits -> the parsed document.
LoaderFn = Callable[[bytes, str, LoadLimits], ParsedDocument]

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


_BLANK_RUN = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\n)+")


def normalize_text(text: str) -> str:
    """Drop NUL and control characters (and terminal colour codes), unify line ends, collapse
    runs of blank lines to one."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n")
    if "\x1b" in text:
        text = ANSI_ESCAPE_TEXT.sub("", text)
    text = text.translate(CONTROL_TABLE)
    return _BLANK_RUN.sub("\n\n", text)


@dataclass(frozen=True)
class _Piece:
    """A run of extracted text with its origin, and the separator that goes before it."""

    text: str
    page: int | None = None
    heading_path: tuple[str, ...] = ()
    sep: str = "\n\n"
    ocr: bool = False  # read from an image by OCR
    table: bool = False  # table rows, one per line (see table_lines)


# Where a block starts: (offset, page, heading path, ocr, table).
_Start = tuple[int, int | None, tuple[str, ...], bool, bool]


def _assemble(
    pieces: Iterable[_Piece], name: str, max_text_chars: int
) -> tuple[str, tuple[Block, ...]]:
    """Join normalised pieces into one text and tile it with blocks of equal page and headings.

    Each piece is normalised and stripped of surrounding blank lines on its own, so separators are
    never doubled and every offset refers to the final text.
    """
    parts: list[str] = []
    starts: list[_Start] = []
    pos = 0
    for piece in pieces:
        text = _LEADING_BLANK_LINES.sub("", normalize_text(piece.text)).rstrip()
        if not text.strip():
            continue
        if parts:
            parts.append(piece.sep)
            pos += len(piece.sep)
        key = (piece.page, piece.heading_path, piece.ocr, piece.table)
        if not starts or starts[-1][1:] != key:
            # The separator belongs to the block before it; the new block starts at its text.
            starts.append((pos, *key))
        parts.append(text)
        pos += len(text)
        if pos > max_text_chars:
            raise _too_long(name, max_text_chars)
    return "".join(parts), _tile(starts, pos)


def _tile(starts: list[_Start], end: int) -> tuple[Block, ...]:
    """Blocks from their start offsets: each runs to the next one's start, the last to `end`."""
    blocks = []
    for i, (start, page, path, ocr, table) in enumerate(starts):
        stop = starts[i + 1][0] if i + 1 < len(starts) else end
        blocks.append(Block(0 if i == 0 else start, stop, page, path, ocr, table))
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
    ocr_pages: tuple[int, ...] = (),
    warnings: tuple[str, ...] = (),
) -> ParsedDocument:
    if not text.strip():
        raise EmptyDocumentError(name, empty_reason)
    if len(text) > max_text_chars:
        raise _too_long(name, max_text_chars)
    title = " ".join(title.split()) if title else None
    # a table's blocks sit between other blocks: each run of table blocks is one table
    tables = sum(1 for i, b in enumerate(blocks) if b.table and (i == 0 or not blocks[i - 1].table))
    return ParsedDocument(
        text, blocks, doc_type, page_count, title or None, ocr_pages, tables, warnings
    )


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

"""Markdown: ATX and setext headings become heading paths; fenced code kept as text."""

from __future__ import annotations

import re

from rag_core.ingest.detect import (
    decode_text,
)
from rag_core.ingest.loaders.common import (
    DEFAULT_MAX_UNPACKED_MB,
    _finish,
    _HeadingStack,
    _Start,
    _tile,
    _too_long,
    normalize_text,
)
from rag_core.types import ParsedDocument

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
    starts: list[_Start] = [(0, None, (), False, False)]
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
                    starts[-1] = (starts[-1][0], None, path, False, False)
                else:
                    starts.append((offset, None, path, False, False))
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

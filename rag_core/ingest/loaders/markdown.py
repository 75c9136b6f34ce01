"""Markdown: ATX and setext headings become heading paths; fenced code kept as text."""

from __future__ import annotations

import re

from rag_core.ingest.detect import (
    decode_text,
)
from rag_core.ingest.loaders.common import (
    LoadLimits,
    _finish,
    _HeadingStack,
    _Start,
    _tile,
    _too_long,
    normalize_text,
)
from rag_core.ingest.loaders.tables import table_lines
from rag_core.types import ParsedDocument

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_EMPHASIS = re.compile(r"(?<!\w)(\*\*|__|\*|_)(\S|\S.*?\S)\1(?!\w)")


def load_markdown(data: bytes, name: str, limits: LoadLimits) -> ParsedDocument:
    """Markdown kept as written, but for tables (rows rewritten as text that keeps each cell
    with its column header); blocks start at ATX (#) and setext headings outside code fences,
    and a table is a block of its own."""
    text, tables = _rewrite_tables(normalize_text(decode_text(data, name)))
    if len(text) > limits.max_text_chars:
        raise _too_long(name, limits.max_text_chars)
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
    blocks = _tile(_mark_tables(starts, tables, len(text)), len(text))
    return _finish(name, "markdown", text, blocks, limits.max_text_chars, title=title)


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


_DELIMITER_CELL = re.compile(r":?-+:?")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def _is_delimiter(line: str) -> bool:
    """Whether `line` is a table's delimiter row (|:---|---:|). Checked cell by cell in linear
    time: one regular expression for the whole row backtracks quadratically on long lines."""
    if len(line) - len(line.lstrip(" ")) > 3:
        return False
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") else inner
    return all(_DELIMITER_CELL.fullmatch(cell.strip(" \t")) for cell in inner.split("|"))


def _cells(line: str) -> list[str]:
    """The cells of a Markdown table row: split at unescaped pipes, inline markup removed."""
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [_clean_cell(cell.replace("\\|", "|")) for cell in _CELL_SPLIT.split(inner)]


_CELL_LINK = re.compile(r"!?\[([^\[\]]*)\]\([^()]{0,2000}\)")  # no [ inside: linear
_CELL_EMPHASIS = re.compile(r"(?<![\w*_])[*_]{1,3}(?=\S)|(?<=\S)[*_]{1,3}(?![\w*_])")


def _clean_cell(raw: str) -> str:
    """A table cell without link syntax, code ticks or emphasis markers, in linear time (a
    hostile cell may be long: no pairing of markers, which backtracks)."""
    text = _CELL_LINK.sub(r"\1", raw).replace("`", "")
    return " ".join(_CELL_EMPHASIS.sub("", text).split())


def _rewrite_tables(text: str) -> tuple[str, list[tuple[int, int]]]:
    """`text` with each pipe table (a header row, a delimiter row, then rows with pipes; outside
    code fences) replaced by table_lines, and the (start, end) of each in the new text."""
    lines = text.split("\n")
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    pos = 0
    fence: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _FENCE.match(line)
        if fence is not None:
            if re.match(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", line):
                fence = None
        elif m:
            fence = m.group(1)
        elif (
            "|" in line
            and i + 1 < len(lines)
            and "|" in lines[i + 1]
            and _is_delimiter(lines[i + 1])
            and len(_cells(lines[i + 1])) == len(_cells(line))
        ):
            end = i + 2
            while end < len(lines) and lines[end].strip() and "|" in lines[end]:
                end += 1
            rows = [_cells(line)] + [_cells(row) for row in lines[i + 2 : end]]
            rewritten = table_lines(rows, header=True)
            if rewritten:
                spans.append((pos, pos + len("\n".join(rewritten))))
                for row in rewritten:
                    out.append(row)
                    pos += len(row) + 1
                i = end
                continue
        out.append(line)
        pos += len(line) + 1
        i += 1
    return "\n".join(out), spans


def _mark_tables(starts: list[_Start], tables: list[tuple[int, int]], length: int) -> list[_Start]:
    """Block starts with each table made a block of its own, under the headings above it."""
    if not tables:
        return starts
    marked = list(starts)
    for start, end in tables:
        path = [s for s in marked if s[0] <= start][-1][2]
        marked.append((start, None, path, False, True))
        if end < length:
            marked.append((end, None, path, False, False))
    marked.sort(key=lambda s: s[0])  # stable: at one offset the table's own start comes last
    return [s for i, s in enumerate(marked) if i + 1 == len(marked) or marked[i + 1][0] != s[0]]

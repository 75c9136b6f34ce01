"""Split a parsed document into chunks of at most `chunk_size` embedder tokens, with exact offsets.

Chunks are packed from whole sentences (paragraphs first, then sentences, then words for a sentence
longer than a chunk), overlap by whole trailing sentences, start afresh at a new section, and
satisfy ``parsed.text[chunk.char_start:chunk.char_end] == chunk.text``. Token counts come from the
embedder's own tokenizer, asked in batches: once for all sentences, then once per repair round for
the rare chunk whose real count exceeds the estimate.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rag_core.types import Block, Chunk, ParsedDocument

CountTokens = Callable[[Sequence[str]], list[int]]

_COUNT_BATCH = 1024

# --------------------------------------------------------------------------- sentences

# A period after these never ends a sentence ("e.g. this", "Mr. Smith").
_ABBREVIATIONS = frozenset(
    {"e.g", "i.e", "eg", "ie", "cf", "mr", "mrs", "ms", "mx", "dr", "prof", "sr", "jr", "st", "mt",
     "ft", "vs", "viz", "approx", "ca", "al", "resp", "incl", "excl", "dept", "univ", "assoc", "lt",
     "sgt", "capt", "rev", "jan", "feb", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov",
     "dec", "tue", "thu", "fri"}
)  # fmt: skip
# ...and these only when a number follows ("No. 5", "Fig. 3", "pp. 10-12").
_NUMBER_ABBREVIATIONS = frozenset(
    {"no", "nos", "nr", "vol", "vols", "p", "pp", "fig", "figs", "eq", "eqs", "sec", "ch", "art",
     "ref", "tab"}
)  # fmt: skip
_DOTTED = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]")  # U.S, p.m, e.g
_TERMINAL = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s)|[。！？]+[」』”’)）]*")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
# A line that is a list item or a Markdown heading starts a new sentence even without punctuation.
_LINE_START = re.compile(r"\n(?=[ \t]*(?:[-*+•‣◦▪]|\d{1,3}[.)])[ \t]+\S| {0,3}#{1,6}[ \t])")
_HEADING_LINE = re.compile(r"^ {0,3}#{1,6}[ \t].*$", re.M)
_OPENERS = "([{\"'“‘«"


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of `text`, each stripped of surrounding whitespace.

    A simple rule-based splitter: a sentence ends at . ! ? or … followed by whitespace and a
    character that is not a lower-case letter, unless the word before the period is an
    abbreviation ("e.g.", "Mr.", "U.S."), an initial, or a list number at the start of a line.
    Periods inside tokens ("3.14", "v1.2.3", "setup.py") never split. Blank lines, list items and
    Markdown heading lines always start a new sentence.
    """
    cuts: list[int] = []
    for m in _TERMINAL.finditer(text):
        if m.group().startswith(("。", "！", "？")) or _ends_sentence(text, m):
            cuts.append(m.end())
    cuts.extend(m.start() for m in _PARAGRAPH_BREAK.finditer(text))
    cuts.extend(m.start() for m in _LINE_START.finditer(text))
    cuts.extend(m.end() for m in _HEADING_LINE.finditer(text))
    spans: list[tuple[int, int]] = []
    prev = 0
    for cut in [*sorted(set(cuts)), len(text)]:
        if cut < prev:
            continue
        span = _strip_span(text, prev, cut)
        if span is not None:
            spans.append(span)
        prev = cut
    return spans


def _ends_sentence(text: str, m: re.Match[str]) -> bool:
    k = m.end()
    n = len(text)
    while k < n and text[k].isspace():
        k += 1
    if k < n and text[k].islower():
        return False
    punct = m.group()
    if punct.rstrip("\"'”’»)]") != ".":
        return True  # "?", "!", "...": always an end before a non-lower-case character
    begin = m.start()
    while begin > 0 and not text[begin - 1].isspace():
        begin -= 1
    token = text[begin : m.start()].lstrip(_OPENERS)
    lower = token.lower()
    if lower in _ABBREVIATIONS or _DOTTED.fullmatch(token):
        return False
    if len(token) == 1 and token.isupper():
        return False  # an initial: "J. Smith"
    if lower in _NUMBER_ABBREVIATIONS and k < n and text[k].isdigit():
        return False
    if token.isdigit() and len(token) <= 3:
        line_start = text.rfind("\n", 0, begin) + 1
        if not text[line_start:begin].strip():
            return False  # "1. Install" - a numbered list item, not a sentence "1."
    return True


def _strip_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


# --------------------------------------------------------------------------- chunks


@dataclass(frozen=True)
class _Unit:
    """The smallest piece a chunk is made of: a sentence, or part of one that was too long."""

    start: int
    end: int
    block: int
    para: int
    cost: int  # estimated tokens (without the tokenizer's fixed per-text overhead)


def chunk_document(
    parsed: ParsedDocument,
    *,
    document_id: str,
    document_name: str,
    version: str,
    count_tokens: CountTokens,
    chunk_size: int,
    chunk_overlap: int,
) -> list[Chunk]:
    """Chunks of `parsed` of at most `chunk_size` tokens as `count_tokens` counts them.

    Neighbouring chunks of one section share about `chunk_overlap` tokens of whole sentences. A
    chunk starts at a new heading once it has some content, and always at a new PDF page, so a
    citation's page is exact (page_end stays for loaders whose blocks span pages).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if not 0 <= chunk_overlap < chunk_size:
        raise ValueError(
            f"chunk_overlap must be in [0, chunk_size={chunk_size}), got {chunk_overlap}"
        )
    text = parsed.text
    blocks = parsed.blocks or (Block(0, len(text)),)
    counter = _Counter(count_tokens)
    spans = _sentence_spans(text, blocks)
    if not spans:
        return []
    counts = counter(["", *(text[s:e] for s, e, _, _ in spans)])
    overhead, counts = counts[0], counts[1:]
    budget = max(1, chunk_size - overhead)
    units = [
        _Unit(s, e, b, p, max(0, c - overhead))
        for (s, e, b, p), c in zip(spans, counts, strict=True)
    ]
    units = _split_long_units(text, units, budget, overhead, counter)
    drafts = _pack(units, blocks, budget, chunk_overlap)
    drafts = _enforce_limit(text, drafts, chunk_size, counter)

    chunks: list[Chunk] = []
    for draft_units, _ in drafts:
        start, end = draft_units[0].start, draft_units[-1].end
        if not text[start:end].strip():
            continue
        first, last = blocks[draft_units[0].block], blocks[draft_units[-1].block]
        index = len(chunks)
        chunks.append(
            Chunk(
                id=f"{document_id}:{version[:12]}:{index:05d}",
                document_id=document_id,
                document_name=document_name,
                version=version,
                index=index,
                text=text[start:end],
                char_start=start,
                char_end=end,
                page=first.page,
                page_end=last.page if first.page is not None else None,
                heading_path=first.heading_path,
            )
        )
    return chunks


class _Counter:
    """count_tokens called in batches of bounded size, checked to answer one count per text."""

    def __init__(self, count_tokens: CountTokens) -> None:
        self._count = count_tokens

    def __call__(self, texts: Sequence[str]) -> list[int]:
        out: list[int] = []
        for i in range(0, len(texts), _COUNT_BATCH):
            batch = list(texts[i : i + _COUNT_BATCH])
            counts = list(self._count(batch))
            if len(counts) != len(batch):
                raise ValueError(
                    f"count_tokens returned {len(counts)} counts for {len(batch)} texts"
                )
            out.extend(int(c) for c in counts)
        return out


def _sentence_spans(text: str, blocks: Sequence[Block]) -> list[tuple[int, int, int, int]]:
    """(start, end, block index, paragraph number) of every sentence, block by block."""
    spans: list[tuple[int, int, int, int]] = []
    para = 0
    for b, block in enumerate(blocks):
        segment = text[block.char_start : block.char_end]
        breaks = [m.start() for m in _PARAGRAPH_BREAK.finditer(segment)]
        for s, e in split_sentences(segment):
            spans.append(
                (block.char_start + s, block.char_start + e, b, para + bisect.bisect(breaks, s))
            )
        para += len(breaks) + 1
    return spans


def _split_long_units(
    text: str, units: list[_Unit], budget: int, overhead: int, counter: _Counter
) -> list[_Unit]:
    """Sentences over the budget become word-boundary pieces that fit (words counted in a batch)."""
    long_ids = [i for i, u in enumerate(units) if u.cost > budget]
    if not long_ids:
        return units
    words: dict[int, list[tuple[int, int]]] = {
        i: [m.span() for m in re.finditer(r"\S+", text[units[i].start : units[i].end])]
        for i in long_ids
    }
    flat = [text[units[i].start + s : units[i].start + e] for i in long_ids for s, e in words[i]]
    costs = iter(counter(flat))
    out: list[_Unit] = []
    for i, unit in enumerate(units):
        if i not in words:
            out.append(unit)
            continue
        piece_start: int | None = None
        piece_end, piece_cost = 0, 0
        for s, e in words[i]:
            s, e = unit.start + s, unit.start + e
            cost = max(1, next(costs) - overhead)
            if cost > budget:  # one "word" longer than a chunk (a URL, base64...): cut by chars
                if piece_start is not None:
                    out.append(_Unit(piece_start, piece_end, unit.block, unit.para, piece_cost))
                    piece_start, piece_cost = None, 0
                out.extend(_split_chars(s, e, cost, budget, unit))
                continue
            if piece_start is not None and piece_cost + cost > budget:
                out.append(_Unit(piece_start, piece_end, unit.block, unit.para, piece_cost))
                piece_start, piece_cost = None, 0
            if piece_start is None:
                piece_start = s
            piece_end, piece_cost = e, piece_cost + cost
        if piece_start is not None:
            out.append(_Unit(piece_start, piece_end, unit.block, unit.para, piece_cost))
    return out


def _split_chars(start: int, end: int, cost: int, budget: int, unit: _Unit) -> list[_Unit]:
    """Equal character slices of an over-long word, sized from its token count (with margin)."""
    length = end - start
    step = max(1, int(length * budget / (cost * 1.25)))
    return [
        _Unit(
            s,
            min(s + step, end),
            unit.block,
            unit.para,
            -(-cost * (min(s + step, end) - s) // length),
        )
        for s in range(start, end, step)
    ]


_Draft = tuple[list[_Unit], int]  # (units, how many leading units are overlap)


def _pack(units: list[_Unit], blocks: Sequence[Block], budget: int, overlap: int) -> list[_Draft]:
    """Greedy packing of units into drafts, preferring breaks at sections and paragraphs."""
    para_cost: dict[int, int] = {}
    for u in units:
        para_cost[u.para] = para_cost.get(u.para, 0) + u.cost
    min_content = max(1, budget // 8)

    def section(k: int) -> tuple[str, ...]:
        return blocks[units[k].block].heading_path

    def page(k: int) -> int | None:
        return blocks[units[k].block].page

    drafts: list[_Draft] = []
    prev_new = 0  # first non-overlap unit of the previous draft
    i, n = 0, len(units)
    while i < n:
        start = i
        if drafts and overlap > 0 and section(i - 1) == section(i) and page(i - 1) == page(i):
            start = _overlap_start(units, prev_new, i, overlap, section)
        total = sum(u.cost for u in units[start:i])
        while start < i and total + units[i].cost > budget:
            total -= units[start].cost
            start += 1
        j, new = i, 0
        while j < n:
            cost = units[j].cost
            if j > i:
                if total + cost > budget or page(j) != page(j - 1):
                    break
                if section(j) != section(j - 1) and new >= min_content:
                    break
                if (
                    units[j].para != units[j - 1].para
                    and total >= budget // 2
                    and total + para_cost[units[j].para] > budget
                ):
                    break
            total += cost
            new += cost
            j += 1
        drafts.append((units[start:j], i - start))
        prev_new, i = i, j
    return drafts


def _overlap_start(
    units: list[_Unit],
    prev_new: int,
    i: int,
    overlap: int,
    section: Callable[[int], tuple[str, ...]],
) -> int:
    """First unit of the overlap: the trailing sentences of the last draft whose total is closest
    to `overlap` tokens (at most twice it), never reaching into that draft's own overlap or into
    another section."""
    best, best_gap = i, overlap
    total = 0
    k = i - 1
    while k >= prev_new and section(k) == section(i):
        total += units[k].cost
        if total > 2 * overlap:
            break
        gap = abs(total - overlap)
        if gap < best_gap:
            best, best_gap = k, gap
        k -= 1
    return best


def _enforce_limit(
    text: str, drafts: list[_Draft], chunk_size: int, counter: _Counter
) -> list[_Draft]:
    """Count every draft for real and repair any over `chunk_size` until all fit.

    A draft over the limit first loses its overlap; one without overlap is halved (by units, or
    at the whitespace nearest the middle of a single unit). Each round is one batched count.
    """
    todo = list(drafts)
    checked = [False] * len(todo)
    while not all(checked):
        idx = [k for k, ok in enumerate(checked) if not ok]
        counts = counter([text[todo[k][0][0].start : todo[k][0][-1].end] for k in idx])
        over = {k for k, c in zip(idx, counts, strict=True) if c > chunk_size}
        next_todo: list[_Draft] = []
        next_checked: list[bool] = []
        for k, draft in enumerate(todo):
            parts = _shrink(text, draft) if k in over else [draft]
            next_todo.extend(parts)
            # A draft that cannot shrink (one character) is kept as is rather than loop forever.
            next_checked.extend([k not in over or parts == [draft]] * len(parts))
        todo, checked = next_todo, next_checked
    return todo


def _shrink(text: str, draft: _Draft) -> list[_Draft]:
    units, n_overlap = draft
    if n_overlap:
        return [(units[n_overlap:], 0)]
    if len(units) > 1:
        mid = len(units) // 2
        return [(units[:mid], 0), (units[mid:], 0)]
    unit = units[0]
    middle = (unit.start + unit.end) // 2
    cut = _nearest_space(text, unit.start, unit.end, middle)
    halves = [_strip_span(text, unit.start, cut), _strip_span(text, cut, unit.end)]
    parts: list[_Draft] = [
        ([_Unit(h[0], h[1], unit.block, unit.para, unit.cost // 2)], 0)
        for h in halves
        if h is not None
    ]
    return parts if len(parts) == 2 else [draft]


def _nearest_space(text: str, start: int, end: int, middle: int) -> int:
    """The whitespace position nearest to `middle` inside (start, end), else `middle` itself."""
    for delta in range(0, (end - start) // 2 + 1):
        for pos in (middle - delta, middle + delta):
            if start < pos < end and text[pos].isspace():
                return pos
    return middle

"""Split a parsed document into chunks of at most `chunk_size` embedder tokens, with exact offsets.

Chunks are packed from whole sentences (paragraphs first, then sentences, then words for a sentence
longer than a chunk; a table's rows whole, each carrying its column headers, so a chunk of rows
never loses its header), overlap by whole trailing sentences, start afresh at a new section, and
satisfy ``parsed.text[chunk.char_start:chunk.char_end] == chunk.text``. A table is not cut off
from the paragraph that introduces it: that chunk opens its section, which ranking favours
(fact questions answered by a table cell, top-1: 2/18 with a break before tables, 10/18
without). Token counts come from the embedder's own tokenizer, asked in batches: for the
sentences as they are found, then per group of drafted chunks, once per repair round for the
rare chunk whose real count exceeds the estimate.

Everything streams (`iter_chunks`): sentences, their counts, the words of an over-long sentence and
the drafted chunks are produced as they are needed and dropped once used, so memory does not grow
with the document whatever its shape (a 20 MB text of one line and no sentence end included).
A batch of texts to count is bounded in number and in characters, and a text longer than
`_PIECE_CHARS` is counted as the sum of pieces cut at whitespace (exact for tokenizers that split
at whitespace first, as BERT's WordPiece does), so the tokenizer never sees a huge string at once.
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from rag_core.text import PARAGRAPH_BREAK, iter_sentences, strip_span
from rag_core.types import Block, Chunk, ParsedDocument

CountTokens = Callable[[Sequence[str]], list[int]]

T = TypeVar("T")

_COUNT_BATCH = 1024  # texts per count_tokens call at most...
_COUNT_CHARS = 1 << 18  # ...and characters (a fast tokenizer holds ~100 bytes per character)
_PIECE_CHARS = 1 << 16  # a longer text is counted piece by piece (sentences are far shorter)
_DRAFT_WINDOW = 512  # drafted chunks checked against the limit together
_DROP_AT = 1024  # used units kept before they are dropped
_WORD = re.compile(r"\S+")
_SPACE = (" ", "\n", "\t")

# --------------------------------------------------------------------------- chunks


@dataclass(frozen=True, slots=True)
class _Unit:
    """The smallest piece a chunk is made of: a sentence, or part of one that was too long."""

    start: int
    end: int
    block: int
    para: int
    cost: int  # estimated tokens (without the tokenizer's fixed per-text overhead)


def iter_chunks(
    parsed: ParsedDocument,
    *,
    document_id: str,
    document_name: str,
    version: str,
    count_tokens: CountTokens,
    chunk_size: int,
    chunk_overlap: int,
) -> Iterator[Chunk]:
    """Chunks of `parsed` of at most `chunk_size` tokens as `count_tokens` counts them, in order.

    Neighbouring chunks of one section share about `chunk_overlap` tokens of whole sentences. A
    chunk starts at a new heading once it has some content, and always at a new PDF page, so a
    citation's page is exact (page_end stays for loaders whose blocks span pages). Memory stays
    bounded by a few chunks' worth of sentences whatever the size and shape of the document; the
    arguments are checked at once, before the first chunk is asked for.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if not 0 <= chunk_overlap < chunk_size:
        raise ValueError(
            f"chunk_overlap must be in [0, chunk_size={chunk_size}), got {chunk_overlap}"
        )
    return _chunks(
        parsed, document_id, document_name, version, _Counter(count_tokens), chunk_size,
        chunk_overlap,
    )  # fmt: skip


def _chunks(
    parsed: ParsedDocument,
    document_id: str,
    document_name: str,
    version: str,
    counter: _Counter,
    chunk_size: int,
    chunk_overlap: int,
) -> Iterator[Chunk]:
    text = parsed.text
    blocks = parsed.blocks or (Block(0, len(text)),)
    spans = _sentence_spans(text, blocks)
    first = next(spans, None)
    if first is None:
        return  # nothing to count: the tokenizer is not even asked for its overhead
    overhead = counter([""])[0]
    budget = max(1, chunk_size - overhead)
    counted = counter.counted(itertools.chain((first,), spans), lambda sp: text[sp[0] : sp[1]])
    units = _units(text, counted, budget, overhead, counter)
    drafts = _pack(units, blocks, budget, chunk_overlap)
    index = 0
    for draft_units, _ in _enforce_limit(text, drafts, chunk_size, counter):
        start, end = draft_units[0].start, draft_units[-1].end
        if not text[start:end].strip():
            continue
        head, last = blocks[draft_units[0].block], blocks[draft_units[-1].block]
        yield Chunk(
            id=f"{document_id}:{version[:12]}:{index:05d}",
            document_id=document_id,
            document_name=document_name,
            version=version,
            index=index,
            text=text[start:end],
            char_start=start,
            char_end=end,
            page=head.page,
            page_end=last.page if head.page is not None else None,
            heading_path=head.heading_path,
            ocr=head.ocr or last.ocr,
        )
        index += 1


class _Counter:
    """count_tokens called in batches bounded in texts and characters, checked to answer one
    count per text; a text longer than _PIECE_CHARS is counted as the sum of its pieces."""

    def __init__(self, count_tokens: CountTokens) -> None:
        self._count = count_tokens

    def __call__(self, texts: Sequence[str]) -> list[int]:
        return [n for _, n in self.counted(texts, str)]

    def counted(self, items: Iterable[T], text_of: Callable[[T], str]) -> Iterator[tuple[T, int]]:
        """(item, token count of text_of(item)) for each item, in order; items are read ahead
        only as far as the batch being counted."""
        waiting: deque[tuple[T, int]] = deque()  # (item, number of pieces), not yet answered
        piece_counts: deque[int] = deque()
        batch: list[str] = []
        chars = 0
        for item in items:
            pieces = 0
            for piece in _pieces(text_of(item)):
                batch.append(piece)
                chars += len(piece)
                pieces += 1
                if len(batch) >= _COUNT_BATCH or chars >= _COUNT_CHARS:
                    piece_counts.extend(self._batch(batch))
                    batch, chars = [], 0
            waiting.append((item, pieces))
            while waiting and len(piece_counts) >= waiting[0][1]:
                done, k = waiting.popleft()
                yield done, sum(piece_counts.popleft() for _ in range(k))
        if batch:
            piece_counts.extend(self._batch(batch))
        while waiting:
            done, k = waiting.popleft()
            yield done, sum(piece_counts.popleft() for _ in range(k))

    def _batch(self, batch: list[str]) -> list[int]:
        counts = list(self._count(batch))
        if len(counts) != len(batch):
            raise ValueError(f"count_tokens returned {len(counts)} counts for {len(batch)} texts")
        return [int(c) for c in counts]


def _pieces(text: str, limit: int = _PIECE_CHARS) -> Iterator[str]:
    """`text` itself, or when longer than `limit` consecutive pieces of at most `limit`
    characters, each cut before the last space, tab or newline of its second half (else hard)."""
    if len(text) <= limit:
        yield text
        return
    pos, n = 0, len(text)
    while n - pos > limit:
        cut = max(text.rfind(sp, pos + limit // 2, pos + limit) for sp in _SPACE)
        cut = cut if cut > pos else pos + limit
        yield text[pos:cut]
        pos = cut
    yield text[pos:]


def _lines(segment: str) -> Iterator[tuple[int, int]]:
    """The span of every non-blank line: a table's rows, each one unit that is never cut at a
    sentence end (a cell would lose its header)."""
    pos = 0
    for line in segment.split("\n"):
        span = strip_span(segment, pos, pos + len(line))
        if span is not None:
            yield span
        pos += len(line) + 1


def _sentence_spans(text: str, blocks: Sequence[Block]) -> Iterator[tuple[int, int, int, int]]:
    """(start, end, block index, paragraph number) of every sentence (of a table: every row),
    block by block."""
    para = 0
    for b, block in enumerate(blocks):
        segment = text[block.char_start : block.char_end]
        breaks = (m.start() for m in PARAGRAPH_BREAK.finditer(segment))
        upcoming = next(breaks, None)
        before = 0  # paragraph breaks at or before the sentence's start
        for s, e in _lines(segment) if block.table else iter_sentences(segment):
            while upcoming is not None and upcoming <= s:
                before += 1
                upcoming = next(breaks, None)
            yield block.char_start + s, block.char_start + e, b, para + before
        if upcoming is not None:
            before += 1 + sum(1 for _ in breaks)
        para += before + 1


def _units(
    text: str,
    counted: Iterable[tuple[tuple[int, int, int, int], int]],
    budget: int,
    overhead: int,
    counter: _Counter,
) -> Iterator[_Unit]:
    """A unit per counted sentence; one over the budget becomes word-boundary pieces that fit."""
    for (s, e, b, p), count in counted:
        unit = _Unit(s, e, b, p, max(0, count - overhead))
        if unit.cost > budget:
            yield from _split_long_unit(text, unit, budget, overhead, counter)
        else:
            yield unit


def _split_long_unit(
    text: str, unit: _Unit, budget: int, overhead: int, counter: _Counter
) -> Iterator[_Unit]:
    """Pieces of a sentence over the budget: greedy runs of whole words (counted in batches as
    they are read) that fit, an over-long word cut by characters."""
    words = (m.span() for m in _WORD.finditer(text, unit.start, unit.end))
    piece_start: int | None = None
    piece_end, piece_cost = 0, 0
    for (s, e), count in counter.counted(words, lambda span: text[span[0] : span[1]]):
        cost = max(1, count - overhead)
        if cost > budget:  # one "word" longer than a chunk (a URL, base64...): cut by chars
            if piece_start is not None:
                yield _Unit(piece_start, piece_end, unit.block, unit.para, piece_cost)
                piece_start, piece_cost = None, 0
            yield from _split_chars(s, e, cost, budget, unit)
            continue
        if piece_start is not None and piece_cost + cost > budget:
            yield _Unit(piece_start, piece_end, unit.block, unit.para, piece_cost)
            piece_start, piece_cost = None, 0
        if piece_start is None:
            piece_start = s
        piece_end, piece_cost = e, piece_cost + cost
    if piece_start is not None:
        yield _Unit(piece_start, piece_end, unit.block, unit.para, piece_cost)


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


class _Lookahead:
    """Units by absolute position, read from a stream as far as asked; the ones before a
    position the caller no longer needs are dropped."""

    def __init__(self, units: Iterator[_Unit]) -> None:
        self._source = units
        self._buffer: list[_Unit] = []
        self._base = 0  # absolute position of _buffer[0]

    def get(self, k: int) -> _Unit | None:
        """The unit at position k, None past the end."""
        while k - self._base >= len(self._buffer):
            unit = next(self._source, None)
            if unit is None:
                return None
            self._buffer.append(unit)
        return self._buffer[k - self._base]

    def __getitem__(self, k: int) -> _Unit:
        unit = self.get(k)
        assert unit is not None
        return unit

    def slice(self, start: int, stop: int) -> list[_Unit]:
        self.get(stop - 1)
        return self._buffer[start - self._base : stop - self._base]

    def drop_before(self, k: int) -> None:
        if k - self._base > max(_DROP_AT, len(self._buffer) // 2):  # amortised: O(1) per unit
            del self._buffer[: k - self._base]
            self._base = k


def _pack(
    stream: Iterator[_Unit], blocks: Sequence[Block], budget: int, overlap: int
) -> Iterator[_Draft]:
    """Greedy packing of units into drafts, preferring breaks at sections and paragraphs."""
    units = _Lookahead(stream)
    min_content = max(1, budget // 8)

    def section(k: int) -> tuple[str, ...]:
        return blocks[units[k].block].heading_path

    def page(k: int) -> int | None:
        return blocks[units[k].block].page

    def paragraph_over(j: int, room: int) -> bool:
        """Whether the paragraph starting at unit j costs more than `room` tokens (read ahead
        only until it does)."""
        para, total, k = units[j].para, 0, j
        while (unit := units.get(k)) is not None and unit.para == para:
            total += unit.cost
            if total > room:
                return True
            k += 1
        return False

    first = True
    prev_new = 0  # first non-overlap unit of the previous draft
    i = 0
    while units.get(i) is not None:
        start = i
        if not first and overlap > 0 and section(i - 1) == section(i) and page(i - 1) == page(i):
            start = _overlap_start(units, prev_new, i, overlap, section)
        total = sum(u.cost for u in units.slice(start, i))
        while start < i and total + units[i].cost > budget:
            total -= units[start].cost
            start += 1
        j, new = i, 0
        while (unit := units.get(j)) is not None:
            cost = unit.cost
            if j > i:
                if total + cost > budget or page(j) != page(j - 1):
                    break
                if section(j) != section(j - 1) and new >= min_content:
                    break
                if (
                    unit.para != units[j - 1].para
                    and total >= budget // 2
                    and paragraph_over(j, budget - total)
                ):
                    break
            total += cost
            new += cost
            j += 1
        yield units.slice(start, j), i - start
        first = False
        prev_new, i = i, j
        units.drop_before(prev_new)


def _overlap_start(
    units: _Lookahead,
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
    text: str, drafts: Iterable[_Draft], chunk_size: int, counter: _Counter
) -> Iterator[_Draft]:
    """Count every draft for real and repair any over `chunk_size` until all fit, a window of
    drafts (bounded in number and characters) at a time: each draft is repaired on its own."""
    window: list[_Draft] = []
    chars = 0
    for draft in drafts:
        window.append(draft)
        chars += draft[0][-1].end - draft[0][0].start
        if len(window) >= _DRAFT_WINDOW or chars >= _COUNT_CHARS:
            yield from _enforce_window(text, window, chunk_size, counter)
            window, chars = [], 0
    yield from _enforce_window(text, window, chunk_size, counter)


def _enforce_window(
    text: str, drafts: list[_Draft], chunk_size: int, counter: _Counter
) -> list[_Draft]:
    """A draft over the limit first loses its overlap; one without overlap is halved (by units,
    or at the whitespace nearest the middle of a single unit). Each round is one batched count.
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
    halves = [strip_span(text, unit.start, cut), strip_span(text, cut, unit.end)]
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

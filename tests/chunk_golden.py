"""Representative documents and a compact digest of their chunks, to pin chunking down exactly.

`documents()` parses a fixed set of files (prose, Markdown, PDF, DOCX, HTML, a text with no
sentence boundary on one line or in short lines, an over-long "word", CJK) made in code with fixed
seeds. `digest(chunks)` hashes every field of every chunk that the pipeline stores (id, index,
text, offsets, pages, heading path). The expected digests in tests/unit/test_chunk_golden.py and
tests/integration/test_chunking_real.py were taken from the chunker before its streaming rewrite:
a change of the output for these documents is a change of behaviour, not a refactoring.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
from collections.abc import Sequence

from rag_core.ingest.loaders import LoadLimits, load_document
from rag_core.types import Chunk, ParsedDocument
from tests import docmaker as dm

_WORD_LIST = (
    "the valve pump opens closes pressure at kilopascals and of in a to is for with on filter "
    "seal gasket turbine blade bearing inspected every days cracks greased compound after each "
    "inspection manual section record marker gauge reads units calibration logged twice week "
    "leak ledger operator must never exceed rated flow litres per minute housing stainless steel "
    "impeller bronze light panel means cleaning service technician certified months"
)
_WORDS = _WORD_LIST.split()


def _sentence(rng: random.Random, n: int | None = None) -> str:
    words = [rng.choice(_WORDS) for _ in range(n or rng.randint(4, 28))]
    extra = rng.random()
    if extra < 0.1:
        words.insert(rng.randrange(len(words)), "e.g.")
    elif extra < 0.2:
        words.insert(rng.randrange(len(words)), f"{rng.randint(1, 99)}.{rng.randint(0, 9)}")
    elif extra < 0.25:
        words.insert(rng.randrange(len(words)), "Dr.")
    end = rng.choice([".", ".", ".", "?", "!", "..."])
    return " ".join(words).capitalize() + end


def _paragraph(rng: random.Random, sentences: int | None = None) -> str:
    return " ".join(_sentence(rng) for _ in range(sentences or rng.randint(1, 9)))


def _prose_text(seed: int) -> bytes:
    rng = random.Random(seed)
    parts = []
    for i in range(40):
        kind = rng.random()
        if kind < 0.1:
            parts.append("\n".join(f"- {_sentence(rng, 6)}" for _ in range(rng.randint(2, 5))))
        elif kind < 0.15:
            parts.append("\n".join(f"{k}. {_sentence(rng, 5)}" for k in range(1, 5)))
        elif kind < 0.2:
            parts.append(f"Step {i} No. 5 see Fig. 3 and pp. 10-12 of the U.S. manual by J. Smith")
        else:
            parts.append(_paragraph(rng))
    return dm.make_text(parts)


def _markdown(seed: int) -> bytes:
    rng = random.Random(seed)
    items: list[str] = ["# Pump handbook"]
    for s in range(6):
        items.append(f"## Part {s}: {rng.choice(_WORDS)} {rng.choice(_WORDS)}")
        for sub in range(rng.randint(1, 3)):
            items.append(f"### Topic {s}.{sub}")
            items += [_paragraph(rng) for _ in range(rng.randint(1, 5))]
            if rng.random() < 0.3:
                items.append("```\npump --start --pressure 42\nvalve.close()\n```")
            if rng.random() < 0.3:
                items.append("\n".join(f"* {_sentence(rng, 5)}" for _ in range(3)))
    items.append("Setext title\n============")
    items += [_paragraph(rng) for _ in range(3)]
    return dm.make_markdown(items)


def _pdf(seed: int) -> bytes:
    rng = random.Random(seed)
    pages = []
    for _ in range(6):
        pages.append("\n\n".join(_paragraph(rng) for _ in range(rng.randint(2, 6))))
    pages.append(" ".join(rng.choice(_WORDS) for _ in range(400)))  # a page with no sentence end
    return dm.make_pdf(pages, title="Golden")


def _docx(seed: int) -> bytes:
    rng = random.Random(seed)
    items: list[str | list[list[str]]] = ["# Service guide"]
    for s in range(4):
        items.append(f"## Chapter {s}")
        items += [_paragraph(rng) for _ in range(rng.randint(2, 5))]
        items.append([[f"{rng.choice(_WORDS)} {r}.{c}" for c in range(3)] for r in range(3)])
    return dm.make_docx(items, title="Guide")


def _html(seed: int) -> bytes:
    rng = random.Random(seed)
    items = ["# Web manual"]
    for s in range(5):
        items.append(f"## Area {s}")
        items += [_paragraph(rng) for _ in range(rng.randint(1, 4))]
    return dm.make_html(items)


def _one_line(seed: int, n_words: int) -> bytes:
    rng = random.Random(seed)
    return " ".join(rng.choice(_WORDS) for _ in range(n_words)).encode()


def _short_lines(seed: int, n_words: int) -> bytes:
    rng = random.Random(seed)
    lines, line = [], ""
    for _ in range(n_words):
        word = rng.choice(_WORDS)
        if line and len(line) + 1 + len(word) > 80:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return ("\n".join([*lines, line]) + "\n").encode()


def _blob(seed: int) -> bytes:
    rng = random.Random(seed)
    blob = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
                   for _ in range(30_000))  # fmt: skip
    return dm.make_text([_paragraph(rng), f"Key: {blob} ends here.", _paragraph(rng)])


def _cjk() -> bytes:
    sentence = "泵的压力是四十二千帕。阀门每周检查两次！过滤器需要清洁吗？"
    return dm.make_text([sentence * 20, "Mixed English text. " + sentence * 5])


SOURCES = {
    "prose.txt": lambda: _prose_text(1),
    "handbook.md": lambda: _markdown(2),
    "report.pdf": lambda: _pdf(3),
    "guide.docx": lambda: _docx(4),
    "page.html": lambda: _html(5),
    "one-line.txt": lambda: _one_line(6, 12_000),
    "short-lines.txt": lambda: _short_lines(7, 12_000),
    "blob.txt": lambda: _blob(8),
    "cjk.txt": _cjk,
}


@functools.cache
def documents() -> dict[str, ParsedDocument]:
    """The parsed documents, by file name."""
    return {
        name: load_document(make(), name, LoadLimits(100, 10_000_000))
        for name, make in SOURCES.items()
    }


def digest(chunks: Sequence[Chunk]) -> str:
    """sha256 (first 16 hex digits) of every stored field of every chunk, in order."""
    h = hashlib.sha256()
    for c in chunks:
        row = [c.id, c.document_id, c.document_name, c.version, c.index, c.text, c.char_start,
               c.char_end, c.page, c.page_end, list(c.heading_path)]  # fmt: skip
        h.update(json.dumps(row, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]

"""Sentence splitting and chunking: sizes, overlap, exact offsets, pages and heading paths."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest

from rag_core.ingest import chunking
from rag_core.ingest.chunking import CountTokens, iter_chunks
from rag_core.ingest.loaders import LoadLimits, load_document
from rag_core.text import split_sentences
from rag_core.types import Block, Chunk, ParsedDocument
from tests import docmaker as dm

LIMITS = LoadLimits(max_pages=10, max_text_chars=10**6)


def words(texts: Sequence[str]) -> list[int]:
    """A trivial tokenizer: one token per whitespace-separated word."""
    return [len(t.split()) for t in texts]


class CountingTokenizer:
    """`words` plus a record of how often it was called, and a fixed per-text overhead like the
    [CLS]/[SEP] tokens a BERT tokenizer adds."""

    def __init__(self, overhead: int = 0) -> None:
        self.calls = 0
        self.overhead = overhead

    def __call__(self, texts: Sequence[str]) -> list[int]:
        self.calls += 1
        return [len(t.split()) + self.overhead for t in texts]


def chunk(
    parsed: ParsedDocument, size: int = 50, overlap: int = 10, count: CountTokens = words
) -> list[Chunk]:
    return list(
        iter_chunks(
            parsed,
            document_id="doc1",
            document_name="test",
            version="0123456789abcdef",
            count_tokens=count,
            chunk_size=size,
            chunk_overlap=overlap,
        )
    )


def check_invariants(
    parsed: ParsedDocument, chunks: list[Chunk], size: int, count: CountTokens = words
) -> None:
    assert chunks
    for i, c in enumerate(chunks):
        assert parsed.text[c.char_start : c.char_end] == c.text
        assert c.text.strip() and c.text == c.text.strip()
        assert count([c.text])[0] <= size, f"chunk {i} is over {size} tokens"
        assert c.index == i
        assert c.id == f"doc1:0123456789ab:{i:05d}"
    # every word of the document is in some chunk
    covered = sorted((c.char_start, c.char_end) for c in chunks)
    reach = 0
    for start, end in covered:
        assert not parsed.text[reach:start].strip(), "text between chunks was lost"
        reach = max(reach, end)
    assert not parsed.text[reach:].strip()


def prose(n: int, prefix: str = "Sentence") -> str:
    return " ".join(f"{prefix} {i} has exactly seven words here." for i in range(n))


# --------------------------------------------------------------------------- sentences


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


def test_split_sentences_keeps_abbreviations_numbers_and_file_names() -> None:
    text = (
        "Mr. Smith uses tools, e.g. hammers, i.e. hand tools. Pi is about 3.14 today. "
        "Version v1.2.3 ships setup.py and config.yaml! Did it work? See Fig. 2 and No. 7. "
        "The U.S. team met J. R. R. Tolkien. Prices rose etc. Then it ended..."
    )
    assert sentences(text) == [
        "Mr. Smith uses tools, e.g. hammers, i.e. hand tools.",
        "Pi is about 3.14 today.",
        "Version v1.2.3 ships setup.py and config.yaml!",
        "Did it work?",
        "See Fig. 2 and No. 7.",
        "The U.S. team met J. R. R. Tolkien.",
        "Prices rose etc.",
        "Then it ended...",
    ]


def test_split_sentences_structure() -> None:
    text = '# Title\nHe said "Stop." Then left.\n\nSteps:\n1. Install it.\n2. Run it.\n- a bullet\n'
    assert sentences(text) == [
        "# Title",
        'He said "Stop."',
        "Then left.",
        "Steps:",
        "1. Install it.",
        "2. Run it.",
        "- a bullet",
    ]


def test_split_sentences_spans_are_exact_and_stripped() -> None:
    text = "  One here.   Two there.\n\n\tThree "
    spans = split_sentences(text)
    assert [text[s:e] for s, e in spans] == ["One here.", "Two there.", "Three"]
    assert split_sentences("") == [] and split_sentences("  \n ") == []


def test_split_sentences_lowercase_continuation_and_cjk() -> None:
    assert sentences("It costs 5 dollars. and more. Real end.") == [
        "It costs 5 dollars. and more.",
        "Real end.",
    ]
    assert sentences("这是第一句。这是第二句！") == ["这是第一句。", "这是第二句！"]


# --------------------------------------------------------------------------- chunks


def test_chunks_respect_size_and_overlap() -> None:
    text = prose(40)
    parsed = ParsedDocument(text, (Block(0, len(text)),), "text")
    chunks = chunk(parsed, size=50, overlap=10)
    check_invariants(parsed, chunks, 50)
    assert len(chunks) >= 6
    for a, b in itertools.pairwise(chunks):
        assert b.char_start < a.char_end, "neighbouring chunks overlap"
        shared = text[b.char_start : a.char_end]
        assert shared in a.text and b.text.startswith(shared)
        assert 1 <= len(shared.split()) <= 20  # about 10 tokens of whole sentences
        assert shared.startswith("Sentence") and shared.endswith("here.")


def test_no_overlap_when_zero() -> None:
    text = prose(30)
    parsed = ParsedDocument(text, (Block(0, len(text)),), "text")
    chunks = chunk(parsed, size=40, overlap=0)
    check_invariants(parsed, chunks, 40)
    for a, b in itertools.pairwise(chunks):
        assert b.char_start > a.char_end


def test_long_sentence_is_split_at_words() -> None:
    text = "Intro sentence. " + " ".join(f"w{i}" for i in range(130)) + ". Outro sentence."
    parsed = ParsedDocument(text, (Block(0, len(text)),), "text")
    chunks = chunk(parsed, size=30, overlap=5)
    check_invariants(parsed, chunks, 30)
    for c in chunks:  # splits only at whitespace
        assert c.char_start == 0 or text[c.char_start - 1].isspace()
        assert c.char_end == len(text) or text[c.char_end].isspace()


def test_over_long_word_is_cut_by_characters() -> None:
    def chars(texts: Sequence[str]) -> list[int]:  # a tokenizer with one token per 4 chars
        return [-(-len(t) // 4) for t in texts]

    text = "Short start. " + "x" * 1000 + " short end."
    parsed = ParsedDocument(text, (Block(0, len(text)),), "text")
    chunks = chunk(parsed, size=32, overlap=4, count=chars)
    check_invariants(parsed, chunks, 32, count=chars)


def test_real_count_overhead_is_respected() -> None:
    counter = CountingTokenizer(overhead=2)
    text = prose(60)
    parsed = ParsedDocument(text, (Block(0, len(text)),), "text")
    chunks = chunk(parsed, size=40, overlap=8, count=counter)
    check_invariants(parsed, chunks, 40, count=counter)
    assert max(counter([c.text])[0] for c in chunks) >= 30  # chunks are not needlessly small


def test_pdf_chunks_carry_pages() -> None:
    pages = [prose(12, f"Page{p}") for p in (1, 2, 3)]
    parsed = load_document(dm.make_pdf(pages), "three.pdf", LIMITS)
    chunks = chunk(parsed, size=40, overlap=8)
    check_invariants(parsed, chunks, 40)
    assert chunks[0].page == 1
    assert chunks[-1].page_end == 3
    for c in chunks:
        # Each sentence names its page ("Page2 5 has ..."): first and last must match the chunk.
        assert c.text.split()[0] == f"Page{c.page}"
        assert c.text.rsplit("Page", 1)[1].split()[0] == str(c.page_end)
    # no chunk crosses a page break, so the page of every cited passage is exact
    assert all(c.page == c.page_end for c in chunks)
    assert {c.page for c in chunks} == {1, 2, 3}


def test_markdown_chunks_start_at_sections() -> None:
    md = dm.make_markdown(
        ["# Guide", prose(6, "Intro"), "## Install", prose(6, "Setup"), "# FAQ", prose(3, "Ask")]
    )
    parsed = load_document(md, "guide.md", LIMITS)
    chunks = chunk(parsed, size=100, overlap=10)
    check_invariants(parsed, chunks, 100)
    assert [c.heading_path for c in chunks] == [("Guide",), ("Guide", "Install"), ("FAQ",)]
    assert chunks[1].text.startswith("## Install")
    assert chunks[2].text.startswith("# FAQ")
    for c in chunks:  # no overlap across a section boundary
        assert "Intro" not in c.text or c.heading_path == ("Guide",)


def test_tiny_heading_does_not_make_its_own_chunk() -> None:
    md = dm.make_markdown(["# Title", "## First", prose(3, "One")])
    parsed = load_document(md, "t.md", LIMITS)
    chunks = chunk(parsed, size=100, overlap=10)
    assert len(chunks) == 1
    assert chunks[0].heading_path == ("Title",)
    assert chunks[0].text.startswith("# Title")


def test_html_and_docx_heading_paths_reach_chunks() -> None:
    items = ["# Alpha", prose(8, "A"), "## Beta", prose(8, "B"), "# Gamma", prose(8, "C")]
    for data, name in ((dm.make_html(items), "x.html"), (dm.make_docx(items), "x.docx")):
        parsed = load_document(data, name, LIMITS)
        chunks = chunk(parsed, size=40, overlap=8)
        check_invariants(parsed, chunks, 40)
        expected = {"Alpha": ("Alpha",), "A": ("Alpha",), "Beta": ("Alpha", "Beta")}
        expected |= {"B": ("Alpha", "Beta"), "Gamma": ("Gamma",), "C": ("Gamma",)}
        for c in chunks:
            assert c.heading_path == expected[c.text.split()[0]], (name, c.text[:30])
        assert {c.heading_path for c in chunks} == {("Alpha",), ("Alpha", "Beta"), ("Gamma",)}


def test_paragraph_boundaries_preferred() -> None:
    paragraphs = [prose(3, f"P{i}") for i in range(8)]  # 21 words each
    text = "\n\n".join(paragraphs)
    parsed = ParsedDocument(text, (Block(0, len(text)),), "text")
    chunks = chunk(parsed, size=50, overlap=0)
    check_invariants(parsed, chunks, 50)
    assert len(chunks) == 4
    for c in chunks:  # 2 paragraphs of 21 words fit in 50 tokens, 3 do not: whole paragraphs
        assert c.text.startswith("P") and c.text.count("\n\n") == 1
        assert c.char_end == len(text) or text[c.char_end : c.char_end + 2] == "\n\n"


def test_whitespace_only_blocks_give_no_chunks() -> None:
    text = "   \n\n  "
    assert chunk(ParsedDocument(text, (Block(0, len(text)),), "text")) == []


def test_large_document_is_fast_and_batched() -> None:
    counter = CountingTokenizer(overhead=2)
    paragraphs = [prose(8, f"Para{i}") for i in range(1500)]  # ~100 pages of text
    text = "\n\n".join(paragraphs)
    parsed = ParsedDocument(text, (Block(0, len(text)),), "text")
    chunks = chunk(parsed, size=200, overlap=16, count=counter)
    assert len(chunks) > 300
    assert counter.calls <= 20  # batched: not one call per sentence


def test_one_line_text_is_counted_in_bounded_batches_and_streamed() -> None:
    """A text with no sentence boundary (one line of 150,000 words): the tokenizer never gets a
    text longer than _PIECE_CHARS nor a batch much over _COUNT_CHARS, and the first chunk comes
    before the later words have been counted."""
    text = " ".join(f"word{i % 50}" for i in range(150_000))
    calls: list[tuple[int, int, int]] = []  # (texts, longest, characters) per call

    def count(texts: Sequence[str]) -> list[int]:
        calls.append((len(texts), max(map(len, texts)), sum(map(len, texts))))
        return words(texts)

    parsed = ParsedDocument(text, (Block(0, len(text)),), "text")
    stream = iter_chunks(
        parsed, document_id="doc1", document_name="test", version="0123456789abcdef",
        count_tokens=count, chunk_size=64, chunk_overlap=8,
    )  # fmt: skip
    first = next(stream)
    before_first = len(calls)
    chunks = [first, *stream]
    assert before_first < len(calls) / 2
    assert all(n <= 1024 for n, _, _ in calls)
    assert max(longest for _, longest, _ in calls) <= chunking._PIECE_CHARS
    assert max(total for _, _, total in calls) < chunking._COUNT_CHARS + chunking._PIECE_CHARS
    check_invariants(parsed, chunks, 64)
    assert chunks == chunk(parsed, size=64, overlap=8)


def test_bad_arguments() -> None:
    parsed = ParsedDocument("x", (Block(0, 1),), "text")
    with pytest.raises(ValueError, match="chunk_overlap"):
        chunk(parsed, size=10, overlap=10)
    with pytest.raises(ValueError, match="chunk_size"):
        chunk(parsed, size=0, overlap=0)
    with pytest.raises(ValueError, match="chunk_overlap"):  # at the call, not the first chunk
        iter_chunks(parsed, document_id="d", document_name="n", version="v", count_tokens=words,
                    chunk_size=10, chunk_overlap=10)  # fmt: skip

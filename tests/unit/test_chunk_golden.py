"""iter_chunks pinned down on representative documents: the same chunks (ids, text, offsets,
pages, heading paths) as the chunker gave before its streaming rewrite, for several token counters
and sizes (tests/chunk_golden.py builds the documents and the digest)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from rag_core.ingest import chunking
from rag_core.ingest.chunking import CountTokens, iter_chunks
from rag_core.testing import FakeEmbedder
from rag_core.types import Chunk
from tests.chunk_golden import digest, documents


def _quarter(texts: Sequence[str]) -> list[int]:
    """One token per four characters, rounded down: a count that is not additive, so chunks
    estimated to fit are often over and must be repaired by the real count."""
    return [len(t) // 4 for t in texts]


def _overhead(texts: Sequence[str]) -> list[int]:
    """Words plus two tokens per text, like the [CLS]/[SEP] a BERT tokenizer adds."""
    return [len(t.split()) + 2 for t in texts]


COUNTERS: dict[str, CountTokens] = {
    "words": FakeEmbedder().count_tokens,
    "quarter": _quarter,
    "overhead": _overhead,
}

# name -> {"counter-size-overlap": (chunk count, digest)}, recorded before the rewrite
EXPECTED = {
    "prose.txt": {
        "words-64-8": (60, "fdc11ee9d5c47483"),
        "words-224-16": (17, "ede607b475477b9f"),
        "quarter-48-0": (138, "401fc020ee340051"),
        "overhead-64-8": (61, "cae2d60439b5c57b"),
    },
    "handbook.md": {
        "words-64-8": (91, "e1cfd33331928c9c"),
        "words-224-16": (25, "3eaade031eac7ee1"),
        "quarter-48-0": (205, "3f9a8f03f88e65f4"),
        "overhead-64-8": (94, "5bca5797e5820296"),
    },
    "report.pdf": {
        "words-64-8": (36, "9635067199242af7"),
        "words-224-16": (11, "d71b69fdd659864b"),
        "quarter-48-0": (87, "fd14727cc37d9a76"),
        "overhead-64-8": (36, "7833f78c969b9dcc"),
    },
    "guide.docx": {  # its tables: rows with their column headers, each row whole (issue 17)
        "words-64-8": (20, "1b48a99bdbccc8e1"),
        "words-224-16": (6, "b735f279a5536be4"),
        "quarter-48-0": (43, "685d64d787cd746b"),
        "overhead-64-8": (20, "1b48a99bdbccc8e1"),
    },
    "page.html": {
        "words-64-8": (15, "473d15b8155fb6a3"),
        "words-224-16": (6, "4f6c58e055690c12"),
        "quarter-48-0": (31, "b854282307c2b44d"),
        "overhead-64-8": (15, "473d15b8155fb6a3"),
    },
    "one-line.txt": {
        "words-64-8": (188, "447f8b5e1f431160"),
        "words-224-16": (54, "85911bd6c20867b8"),
        "quarter-48-0": (591, "6a33d8ddc08d70d9"),
        "overhead-64-8": (194, "592ab83169d57309"),
    },
    "short-lines.txt": {
        "words-64-8": (188, "94d8fa28ca8f7490"),
        "words-224-16": (54, "29a8d81718e986f3"),
        "quarter-48-0": (593, "a8fe8c244183cc78"),
        "overhead-64-8": (194, "39ae7626fe8c6ebc"),
    },
    "blob.txt": {
        "words-64-8": (24, "9852a486eec75ac1"),
        "words-224-16": (7, "840dcc25f2465d4b"),
        "quarter-48-0": (208, "e3ee6caf19068f9c"),
        "overhead-64-8": (5, "b4105dc300c50449"),
    },
    "cjk.txt": {
        "words-64-8": (2, "b775ccd156a08f9c"),
        "words-224-16": (1, "35721ec2fc13c324"),
        "quarter-48-0": (6, "750995136a6d6bb7"),
        "overhead-64-8": (2, "b775ccd156a08f9c"),
    },
}

# (index, char_start, char_end, page, heading_path) of the first, middle and last chunk at words-64-8
SPOTS = {
    "prose.txt": [(0, 0, 414, None, ()), (30, 9829, 10246, None, ()), (59, 19181, 19599, None, ())],
    "handbook.md": [
        (0, 0, 429, None, ("Pump handbook",)),
        (45, 13388, 13626, None, ("Pump handbook", "Part 3: week at", "Topic 3.1")),
        (90, 27163, 27381, None, ("Setext title",)),
    ],
    "report.pdf": [(0, 0, 384, 1, ()), (18, 5888, 6206, 4, ()), (35, 11872, 11970, 7, ())],
    "guide.docx": [
        (0, 0, 267, None, ("Service guide",)),
        (10, 2904, 3179, None, ("Service guide", "Chapter 2")),
        (19, 5545, 5816, None, ("Service guide", "Chapter 3")),
    ],
    "page.html": [
        (0, 0, 292, None, ("Web manual",)),
        (7, 2011, 2345, None, ("Web manual", "Area 1")),
        (14, 4105, 4284, None, ("Web manual", "Area 4")),
    ],
    "one-line.txt": [
        (0, 0, 406, None, ()),
        (94, 39337, 39751, None, ()),
        (187, 78222, 78451, None, ()),
    ],
    "short-lines.txt": [
        (0, 0, 432, None, ()),
        (94, 39338, 39737, None, ()),
        (187, 78182, 78410, None, ()),
    ],
    "blob.txt": [(0, 0, 301, None, ()), (12, 16131, 17839, None, ()), (23, 31177, 31599, None, ())],
    "cjk.txt": [(0, 0, 580, None, ()), (1, 504, 747, None, ()), (1, 504, 747, None, ())],
}


def _chunks(name: str, config: str) -> list[Chunk]:
    counter, size, overlap = config.split("-")
    return list(
        iter_chunks(
            documents()[name],
            document_id="doc",
            document_name=name,
            version="0123456789abcdef" * 4,
            count_tokens=COUNTERS[counter],
            chunk_size=int(size),
            chunk_overlap=int(overlap),
        )
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_chunks_are_unchanged(name: str) -> None:
    got = {config: _chunks(name, config) for config in EXPECTED[name]}
    assert {c: (len(chunks), digest(chunks)) for c, chunks in got.items()} == EXPECTED[name]
    chunks = got["words-64-8"]
    spots = [chunks[0], chunks[len(chunks) // 2], chunks[-1]]
    assert [(c.index, c.char_start, c.char_end, c.page, c.heading_path) for c in spots] == SPOTS[
        name
    ]


def test_small_windows_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny windows everywhere (count batches, pieces of long texts, draft windows, dropping
    used units) give the very chunks the defaults give."""

    def all_chunks() -> dict[str, list[Chunk]]:
        return {
            name: list(
                iter_chunks(
                    parsed,
                    document_id="d",
                    document_name=name,
                    version="v" * 64,
                    count_tokens=FakeEmbedder().count_tokens,
                    chunk_size=48,
                    chunk_overlap=8,
                )
            )
            for name, parsed in documents().items()
        }

    expected = all_chunks()
    monkeypatch.setattr(chunking, "_COUNT_BATCH", 3)
    monkeypatch.setattr(chunking, "_COUNT_CHARS", 500)
    monkeypatch.setattr(chunking, "_DRAFT_WINDOW", 2)
    monkeypatch.setattr(chunking, "_DROP_AT", 1)
    # texts over 40,000 characters counted in pieces cut at whitespace (the counter is additive
    # there): the one-line texts (~80,000), not the 30,000-character "word" of blob.txt
    monkeypatch.setattr(chunking._pieces, "__defaults__", (40_000,))
    assert all_chunks() == expected

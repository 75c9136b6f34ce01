"""iter_chunks with the real default tokenizer pinned down on representative documents: the
same chunks as before the chunker's streaming rewrite (see tests/chunk_golden.py)."""

from __future__ import annotations

from typing import Any

import pytest

from rag_core.ingest.chunking import iter_chunks
from tests.chunk_golden import digest, documents

pytestmark = pytest.mark.integration

# name -> {"real-size-overlap": (chunk count, digest)}, recorded before the rewrite
EXPECTED = {
    "prose.txt": {
        "real-224-16": (24, "c7bd5d6401f786f8"),
        "real-48-0": (111, "ff53ff91f437d5e5"),
        "real-96-24": (73, "bb6888b83288a0e0"),
    },
    "handbook.md": {
        "real-224-16": (35, "05a9816aacde1944"),
        "real-48-0": (161, "ac8d9022580ac170"),
        "real-96-24": (99, "b16278a5e6759963"),
    },
    "report.pdf": {
        "real-224-16": (13, "34577666085410f4"),
        "real-48-0": (60, "9377778a8329b9ff"),
        "real-96-24": (35, "69c9eece2595ee3c"),
    },
    "guide.docx": {  # its tables: rows with their column headers, each row whole (issue 17)
        "real-224-16": (9, "6222d67ffa1182fe"),
        "real-48-0": (40, "e42a4d22c4b20a20"),
        "real-96-24": (21, "42bda2f8d6c0ea07"),
    },
    "page.html": {
        "real-224-16": (7, "5feb70903905db6b"),
        "real-48-0": (21, "88adb9e618adfd35"),
        "real-96-24": (13, "81504e0f2224d394"),
    },
    "one-line.txt": {
        "real-224-16": (62, "300b263505a9387c"),
        "real-48-0": (288, "9ea4b282a99cfae5"),
        "real-96-24": (144, "8a4a2b3e67ce4510"),
    },
    "short-lines.txt": {
        "real-224-16": (62, "197e03e86d8680a8"),
        "real-48-0": (290, "386ea518b9125667"),
        "real-96-24": (145, "504ef067c316e1c4"),
    },
    "blob.txt": {
        "real-224-16": (103, "492b7991592ca73f"),
        "real-48-0": (532, "29059bab3d95bd59"),
        "real-96-24": (256, "993e2dbc36b23ca0"),
    },
    "cjk.txt": {
        "real-224-16": (4, "71e192e2e4f4ea1b"),
        "real-48-0": (17, "34a53608996fd630"),
        "real-96-24": (13, "1fee7f41fb8435ed"),
    },
}

# (index, char_start, char_end, page, heading_path) of the first, middle and last chunk at 224/16
SPOTS = {
    "prose.txt": [
        (0, 0, 1098, None, ()),
        (12, 9711, 10477, None, ()),
        (23, 18355, 19599, None, ()),
    ],
    "handbook.md": [
        (0, 0, 917, None, ("Pump handbook",)),
        (17, 13628, 14677, None, ("Pump handbook", "Part 3: week at", "Topic 3.2")),
        (34, 27023, 27381, None, ("Setext title",)),
    ],
    "report.pdf": [(0, 0, 1106, 1, ()), (6, 4573, 5727, 4, ()), (12, 10679, 11970, 7, ())],
    "guide.docx": [
        (0, 0, 1105, None, ("Service guide",)),
        (4, 2904, 3549, None, ("Service guide", "Chapter 2")),
        (8, 5545, 5816, None, ("Service guide", "Chapter 3")),
    ],
    "page.html": [
        (0, 0, 580, None, ("Web manual",)),
        (3, 1839, 2904, None, ("Web manual", "Area 1")),
        (6, 4105, 4284, None, ("Web manual", "Area 4")),
    ],
    "one-line.txt": [
        (0, 0, 1304, None, ()),
        (31, 39379, 40700, None, ()),
        (61, 77854, 78451, None, ()),
    ],
    "short-lines.txt": [
        (0, 0, 1125, None, ()),
        (31, 39222, 40494, None, ()),
        (61, 77441, 78410, None, ()),
    ],
    "blob.txt": [
        (0, 0, 752, None, ()),
        (51, 15859, 16161, None, ()),
        (102, 31373, 31599, None, ()),
    ],
    "cjk.txt": [(0, 0, 223, None, ()), (2, 406, 580, None, ()), (3, 562, 747, None, ())],
}


def test_chunks_with_the_real_tokenizer_are_unchanged(real_embedder: Any) -> None:
    for name, configs in EXPECTED.items():
        got = {}
        for config in configs:
            _, size, overlap = config.split("-")
            chunks = list(
                iter_chunks(
                    documents()[name],
                    document_id="doc",
                    document_name=name,
                    version="0123456789abcdef" * 4,
                    count_tokens=real_embedder.count_tokens,
                    chunk_size=int(size),
                    chunk_overlap=int(overlap),
                )
            )
            got[config] = (len(chunks), digest(chunks))
            if config == "real-224-16":
                spots = [chunks[0], chunks[len(chunks) // 2], chunks[-1]]
                assert [
                    (c.index, c.char_start, c.char_end, c.page, c.heading_path) for c in spots
                ] == SPOTS[name], name
        assert got == configs, name

"""`ragchat ingest` of a 3 MB text of one line (no newline, no sentence end) stays within a small
margin of the memory the process needs for a tiny file.

Both run as real `python -m webapp.cli ingest FILE` children (bench/ingest_memory.py), with
their own empty RAGCHAT_HOME, side by side; peak RSS is each child's ru_maxrss. Chunks of 8,192
tokens keep the embedding short (65 chunks); the memory that grew with the text (the whole text,
then every word of it, counted in one tokenizer call) does not depend on the chunk size. Measured
on the development machine (2 cores): the tiny file peaks at ~692 MiB, the one-line file at ~707
MiB (+15 MiB); before ingestion streamed, the one-line file peaked at ~918 MiB (+226 MiB).

With the libraries pip resolved on 2026-11-30 (transformers 5.24, tokenizers 0.23.3, numpy 2.4.6)
the same code measures +137 to +158 MiB (tiny ~624 MiB, one-line 762-781 MiB), at this stop's
first commit as at its last: the growth moved with the libraries, not the code. The margin
sits between that and the +226 MiB of the non-streaming path, which it still catches.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.ingest_memory import input_file, make_one_line, measure

pytestmark = pytest.mark.integration

MARGIN_MIB = 200  # over the tiny file's peak: the one-line file must stay below this


def test_one_line_text_ingest_memory_stays_bounded(tmp_path: Path) -> None:
    settings = {"RAGCHAT_CHUNK_SIZE": "8192"}
    path = make_one_line(tmp_path / "one-line.txt", 3.0, seed=7)
    with ThreadPoolExecutor(2) as pool:
        small = pool.submit(measure, "tiny", input_file("tiny", 0, 0, 0), settings=settings)
        big = measure("one-line", path, settings=settings)
        tiny = small.result()
    assert tiny.returncode == 0, tiny.output
    assert big.returncode == 0, big.output
    assert big.chunks is not None and big.chunks > 50
    growth = big.peak_mib - tiny.peak_mib
    assert growth < MARGIN_MIB, (
        f"ingesting 3 MB of one line peaked at {big.peak_mib:.0f} MiB, {growth:.0f} MiB over the"
        f" {tiny.peak_mib:.0f} MiB of a tiny file (allowed: {MARGIN_MIB} MiB)"
    )

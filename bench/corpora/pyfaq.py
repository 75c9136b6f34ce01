"""pyfaq: the existing dev set, split tune/test by FAQ chapter without rebuilding it.

The source folder (shared/eval/pyfaq) is read-only: corpus.jsonl and queries.jsonl are linked,
qrels/dev.tsv is copied, and qrels/tune.tsv and qrels/test.tsv are derived from it, whole chapters
(the `faq/<chapter>` of the query id `q:faq/<chapter>#n`) to each half.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from bench.corpora.common import (
    SEED,
    BuildError,
    id_key,
    qrels_tsv,
    split_chapters,
    write_text,
)

NAME = "pyfaq"
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SOURCE = ROOT.parent / "shared" / "eval" / "pyfaq"
LINKED = ("corpus.jsonl", "queries.jsonl")


def chapter_of(query_id: str) -> str:
    """'q:faq/programming#12' -> 'faq/programming'."""
    return query_id.removeprefix("q:").rpartition("#")[0]


def read_dev(text: str) -> list[tuple[str, str]]:
    rows = list(csv.reader(io.StringIO(text), delimiter="\t"))
    if not rows or [c.strip() for c in rows[0][:3]] != ["query-id", "corpus-id", "score"]:
        raise BuildError("pyfaq qrels/dev.tsv lacks the header query-id<TAB>corpus-id<TAB>score")
    return [(r[0].strip(), r[1].strip()) for r in rows[1:] if len(r) >= 3 and r[2].strip() != "0"]


def _link(target: Path, link: Path) -> None:
    if link.is_symlink() and os.readlink(link) == str(target):
        return
    if link.exists() or link.is_symlink():
        link.unlink()
    link.symlink_to(target)


def build(out: Path, source: Path = DEFAULT_SOURCE, seed: int = SEED) -> dict[str, Any]:
    """Write out/pyfaq's links and qrels; returns its manifest (build.py adds and writes it)."""
    source = source.resolve()
    dev_file = source / "qrels" / "dev.tsv"
    for needed in (*[source / n for n in LINKED], dev_file):
        if not needed.is_file():
            raise BuildError(f"pyfaq: {needed} is missing (pass --pyfaq DIR)")
    dev_text = dev_file.read_text(encoding="utf-8")
    pairs = sorted(read_dev(dev_text), key=lambda p: (id_key(p[0].removeprefix("q:")), p[1]))
    sizes: dict[str, int] = {}
    for qid in dict.fromkeys(q for q, _ in pairs):
        sizes[chapter_of(qid)] = sizes.get(chapter_of(qid), 0) + 1
    tune_ch, test_ch = split_chapters(sizes, seed)
    folder = out / NAME
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        _link(source / name, folder / name)
    write_text(folder / "qrels" / "dev.tsv", dev_text)
    split_pairs = {
        "tune": [p for p in pairs if chapter_of(p[0]) in tune_ch],
        "test": [p for p in pairs if chapter_of(p[0]) in test_ch],
    }
    for split, members in split_pairs.items():
        write_text(folder / "qrels" / f"{split}.tsv", qrels_tsv(members))

    def count(chapters: list[str]) -> int:
        return sum(sizes[c] for c in chapters)

    manifest = {
        "name": NAME,
        "source": str(source),
        "linked": list(LINKED),
        "seed": seed,
        "questions": {"dev": sum(sizes.values()), "tune": count(tune_ch), "test": count(test_ch)},
        "chapters": {"tune": tune_ch, "test": test_ch, "sizes": dict(sorted(sizes.items()))},
    }
    return manifest

"""BEIR-format datasets: corpus.jsonl, queries.jsonl, qrels/<split>.tsv, and question lists."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag_core.errors import UserError


@dataclass(frozen=True)
class BeirDocument:
    id: str
    title: str
    text: str

    @property
    def markdown(self) -> str:
        """The document as ingested: the title becomes the heading of the text."""
        return f"# {self.title}\n\n{self.text}" if self.title.strip() else self.text


@dataclass(frozen=True)
class BeirDataset:
    """A BEIR dataset split: corpus, the queries that have judgements, and the judgements."""

    path: Path
    split: str
    corpus: Mapping[str, BeirDocument]
    queries: Mapping[str, str]  # only queries with at least one relevant document
    qrels: Mapping[str, Mapping[str, int]]  # query id -> corpus id -> graded relevance

    @property
    def corpus_file(self) -> Path:
        return self.path / "corpus.jsonl"


def _read_jsonl(path: Path, required: Sequence[str]) -> list[dict[str, Any]]:
    if not path.is_file():
        raise UserError(f"BEIR dataset: {path} is missing")
    rows = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(
                    f"BEIR dataset: {path} line {lineno} is not JSON ({exc.msg})"
                ) from exc
            if not isinstance(row, dict) or any(key not in row for key in required):
                raise UserError(
                    f"BEIR dataset: {path} line {lineno} lacks one of the fields {list(required)}"
                )
            rows.append(row)
    if not rows:
        raise UserError(f"BEIR dataset: {path} is empty")
    return rows


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    if not path.is_file():
        raise UserError(f"BEIR dataset: {path} is missing (qrels of the split)")
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:3]] != ["query-id", "corpus-id", "score"]:
            raise UserError(
                f"BEIR dataset: {path} must start with the header "
                "'query-id<TAB>corpus-id<TAB>score'"
            )
        for lineno, row in enumerate(reader, start=2):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 3:
                raise UserError(f"BEIR dataset: {path} line {lineno} has fewer than 3 columns")
            try:
                score = int(float(row[2]))
            except ValueError as exc:
                raise UserError(
                    f"BEIR dataset: {path} line {lineno}: score {row[2]!r} is not a number"
                ) from exc
            qrels.setdefault(row[0].strip(), {})[row[1].strip()] = score
    return qrels


def load_beir(path: str | Path, split: str = "dev") -> BeirDataset:
    """Read corpus.jsonl, queries.jsonl and qrels/<split>.tsv; UserError names a bad file."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise UserError(f"BEIR dataset: {root} is not a folder")
    corpus: dict[str, BeirDocument] = {}
    for row in _read_jsonl(root / "corpus.jsonl", ("_id", "text")):
        doc_id = str(row["_id"])
        corpus[doc_id] = BeirDocument(doc_id, str(row.get("title") or ""), str(row["text"] or ""))
    all_queries = {
        str(r["_id"]): str(r["text"]) for r in _read_jsonl(root / "queries.jsonl", ("_id", "text"))
    }
    qrels_all = _read_qrels(root / "qrels" / f"{split}.tsv")
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for qid, judged in qrels_all.items():
        if qid in all_queries and any(score > 0 for score in judged.values()):
            queries[qid] = all_queries[qid]
            qrels[qid] = judged
    if not queries:
        raise UserError(
            f"BEIR dataset: no query of {root / 'queries.jsonl'} has a relevant document in "
            f"{root / 'qrels' / f'{split}.tsv'}"
        )
    return BeirDataset(root, split, corpus, queries, qrels)


def read_questions(path: str | Path) -> list[str]:
    """One question a line; blank lines and lines starting with '#' are skipped."""
    file = Path(path).expanduser()
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read questions from {file}: {exc.strerror or exc}") from exc
    questions = [
        line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")
    ]
    if not questions:
        raise UserError(f"{file} holds no questions (one a line)")
    return questions


def spread(items: Sequence[Any], limit: int | None) -> list[Any]:
    """At most `limit` items, evenly spaced over the sequence (deterministic, not the first N)."""
    if limit is None or limit >= len(items):
        return list(items)
    if limit <= 0:
        return []
    return [items[(i * len(items)) // limit] for i in range(limit)]

"""The facts benchmark set (bench/data/facts): well-formed, complete, and true to its documents.

The quick invariants are checked here directly; the full check (evidence in every format, on the
right PDF page, also in the text ragchat's loaders give; answers in their evidence; hard-case
tags that can be verified; unanswerable questions' absent patterns) is bench/data/facts/
check_set.py, run here on both splits (about a second).
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

FACTS = Path(__file__).resolve().parents[2] / "bench" / "data" / "facts"
SPLITS = ("dev", "test")
MINIMUMS = {
    "dev": {"documents": 7, "answerable": 64, "unanswerable": 18},
    "test": {"documents": 5, "answerable": 36, "unanswerable": 12},
}
FORMATS = {".pdf", ".docx", ".html", ".md", ".txt"}
TYPES = {"number", "date", "name", "duration", "money", "yesno", "text"}
FIELDS = ("id", "question", "answerable", "answers", "document", "page", "type", "hard")


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"facts_{name}", FACTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while building classes
    spec.loader.exec_module(module)
    return module


def _questions(split: str) -> list[dict[str, Any]]:
    lines = (FACTS / split / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _documents(split: str) -> dict[str, Path]:
    return {p.name: p for p in (FACTS / split / "documents").iterdir() if p.suffix in FORMATS}


def _norm(text: str) -> str:
    return " ".join(text.replace("|", " ").split())


@pytest.mark.parametrize("split", SPLITS)
def test_questions_are_well_formed(split: str) -> None:
    rows = _questions(split)
    ids = Counter(r["id"] for r in rows)
    assert [i for i, n in ids.items() if n > 1] == []
    for row in rows:
        assert all(key in row for key in FIELDS), row["id"]
        assert row["id"].startswith(f"{split}-")
        assert row["type"] in TYPES, row["id"]
        assert row["question"].strip().endswith("?"), row["id"]
        if row["answerable"]:
            assert row["answers"] and all(isinstance(a, str) and a for a in row["answers"])
            assert isinstance(row["evidence"], str) and row["evidence"].strip(), row["id"]
            if row["type"] == "yesno":
                assert set(a.lower() for a in row["answers"]) <= {"yes", "no"}, row["id"]
                assert row["reason_terms"], row["id"]
        else:
            assert row["answerable"] is False
            assert row["answers"] == [] and row["document"] is None, row["id"]
            assert row["near"], row["id"]


@pytest.mark.parametrize("split", SPLITS)
def test_documents_exist_and_counts_meet_the_minimums(split: str) -> None:
    rows, docs = _questions(split), _documents(split)
    for row in rows:
        name = row["document"] if row["answerable"] else row["near"]
        assert name in docs, f"{row['id']}: {name} is not in {split}/documents"
        if row["answerable"]:
            is_pdf = name.endswith(".pdf")
            assert (row["page"] is not None) == is_pdf, row["id"]
    assert {p.suffix for p in docs.values()} == FORMATS  # every format in every split
    kinds = Counter("answerable" if r["answerable"] else "unanswerable" for r in rows)
    mins = MINIMUMS[split]
    assert len(docs) >= mins["documents"]
    assert kinds["answerable"] >= mins["answerable"]
    assert kinds["unanswerable"] >= mins["unanswerable"]
    assert {r["document"] or r["near"] for r in rows} == set(docs)  # no document left unasked


def test_splits_use_different_documents() -> None:
    assert not set(_documents("dev")) & set(_documents("test"))


@pytest.mark.parametrize("split", SPLITS)
def test_evidence_is_in_text_like_documents(split: str) -> None:
    """Markdown and text as written, HTML without its script and style blocks."""
    from bs4 import BeautifulSoup

    texts = {}
    for name, path in _documents(split).items():
        raw = path.read_text(encoding="utf-8") if path.suffix in {".md", ".txt", ".html"} else ""
        if path.suffix == ".html":
            soup = BeautifulSoup(raw, "html.parser")
            for tag in soup.find_all(["script", "style", "head"]):
                tag.decompose()
            raw = soup.get_text(" ")
        texts[name] = _norm(raw)
    checked = 0
    for row in _questions(split):
        if row["answerable"] and texts.get(row["document"]):
            assert _norm(row["evidence"]) in texts[row["document"]], row["id"]
            if row["type"] != "yesno":
                answer = re.escape(_norm(row["answers"][0]).casefold())
                found = re.search(rf"(?<!\w){answer}(?!\w)", _norm(row["evidence"]).casefold())
                assert found, row["id"]
            checked += 1
    assert checked >= 30


@pytest.mark.parametrize("split", SPLITS)
def test_full_check_is_clean(split: str) -> None:
    """check_set.py: every format (PDF per page, DOCX paragraphs and tables), ragchat's loaders,
    hard-case tags, unanswerable questions' absent patterns."""
    report = _module("check_set").check_split(split, best_matches=False)
    assert report.errors == []
    assert report.loader_checked


def test_binary_documents_are_regenerated_byte_for_byte() -> None:
    """The committed PDFs and DOCX files are what make_documents.py builds from the sources."""
    make = _module("make_documents")
    pairs = make.targets()
    assert {out.suffix for _, out in pairs} == {".pdf", ".docx"}
    for source, output in pairs:
        assert output.read_bytes() == make.build(source, output), output.name

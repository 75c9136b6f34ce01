"""A few corpus files through the engine with the real embedder (all-MiniLM-L6-v2), real Chroma,
real keyword index and SQLite: decoded text is embedded and found again by a question, and a
rejected file leaves every store unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.hostile.conftest import make_engine, snapshot
from tests.hostile.corpus import Case, shared_corpus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

FOUND_BY = {
    "utf16-le-no-bom": "When does the Østerby bridge open?",
    "utf16-be-bom-md": "Where is Fjordvik?",
    "html-scripts": "Pellam paragraph",
    "cp1252-text": "How much is a café crème at Dornath station?",
    "html-nested-10000": "Deep Yarrow text",
}
REJECTED = ["docx-zip-bomb", "pdf-encrypted-aes256", "invalid-utf8", "one-gigabyte"]


@pytest.fixture(scope="module")
def cases() -> tuple[Path, dict[str, Case]]:
    folder, all_cases = shared_corpus()
    return folder, {c.key: c for c in all_cases}


def test_real_embedder_indexes_decoded_text(
    real_embedder: Any, cases: tuple[Path, dict[str, Case]], tmp_path: Path
) -> None:
    folder, by_key = cases
    engine = make_engine(tmp_path / "home", embedder=real_embedder)
    for key in REJECTED:
        before = snapshot(engine)
        result = engine.ingest_path(folder / by_key[key].filename)
        assert result.status == "error", key
        assert snapshot(engine) == before, key
    for key in FOUND_BY:
        result = engine.ingest_path(folder / by_key[key].filename)
        assert result.status == "added", (key, result.error)
    for key, question in FOUND_BY.items():
        hits = engine.retriever.search(question, mode="dense", k=1, candidates=10).hits
        assert hits and hits[0].chunk.document_name == by_key[key].disk_shown, (key, hits)
    assert engine.pipeline.check() == []

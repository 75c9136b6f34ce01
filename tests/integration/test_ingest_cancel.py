"""Cancelling an ingest: the files added before the cancel stay, nothing of the others is kept in
the registry, the Chroma store or the keyword index, and `check()` (what `ragchat doctor` runs)
finds nothing wrong. Real default embedder, real Chroma, BM25 index, SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rag_core.config import Settings
from rag_core.db.database import Database
from rag_core.engine import Engine
from rag_core.factory import compose_engine
from rag_core.stores.chroma import ChromaStore
from rag_core.stores.keyword import BM25Index
from rag_core.testing import FakeGenerator

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(tmp_path: Path, db_url: str, real_embedder: Any) -> Iterator[Engine]:
    settings = Settings(home=tmp_path / "home", db_url=db_url)
    db = Database(db_url)
    db.migrate()
    built = compose_engine(
        settings,
        db=db,
        embedder=real_embedder,
        store=ChromaStore(path=settings.chroma_path),
        keyword=BM25Index(settings.keyword_path),
        generator=FakeGenerator(),
    )
    built.pipeline.batch_chunks = 4  # the long file takes several batches
    yield built
    db.dispose()


def _long_text(word: str) -> str:
    return "\n\n".join(
        f"Section {i}. The {word} valve number {i} is checked every {i + 2} weeks by the crew."
        for i in range(250)
    )


def test_a_cancelled_ingest_keeps_the_files_added_before_and_nothing_else(
    engine: Engine, tmp_path: Path
) -> None:
    short = tmp_path / "short.txt"
    short.write_text("The Quillon pump is primed with two litres of seawater.\n")
    long = tmp_path / "long.txt"
    long.write_text(_long_text("Brastow"))
    never = tmp_path / "never.txt"
    never.write_text("The Ostrel gauge reads in fathoms.\n")
    cancel = threading.Event()
    batches: list[float] = []

    def progress(stage: str, fraction: float) -> None:
        if stage == "embedding":
            batches.append(fraction)
            if len(batches) == 3:  # the long file is part written: stop here
                cancel.set()

    results = engine.ingest([short, long, never], progress, cancel=cancel)
    assert [(r.name, r.status) for r in results] == [
        ("short.txt", "added"),
        ("long.txt", "cancelled"),
        ("never.txt", "cancelled"),
    ]
    assert "cancelled" in (results[1].error or "")
    assert [d.name for d in engine.documents()] == ["short.txt"]
    kept = {engine.documents()[0].id}
    assert engine.store.document_ids() == kept and engine.keyword.document_ids() == kept
    assert engine.keyword.count() == engine.store.count() == engine.documents()[0].chunk_count
    assert engine.check() == []
    # the cancelled files go in whole when sent again
    again = engine.ingest([long, never])
    assert [r.status for r in again] == ["added", "added"]
    assert engine.check() == []


def test_a_cancel_before_the_first_file_adds_nothing(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("The Harl lantern burns whale oil.\n")
    cancel = threading.Event()
    cancel.set()
    results = engine.ingest([path, (b"Plain text of the Vesk crane.\n", "b.txt")], cancel=cancel)
    assert [r.status for r in results] == ["cancelled", "cancelled"]
    assert engine.documents() == [] and engine.check() == []

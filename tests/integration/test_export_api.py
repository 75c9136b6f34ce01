"""GET /api/conversations/{id}/export and GET /api/insights on SQLite and PostgreSQL, with
accounts: each export format holds the cited passages even after their document is deleted and
only the owner can export; only an admin reads the insights."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rag_core.config import Settings
from rag_core.db.apikeys import ApiKeys
from rag_core.engine import Engine
from rag_core.testing import fake_engine
from webapp.api import create_app
from webapp.auth import pbkdf2_hash

pytestmark = pytest.mark.integration

NOTE = (
    "# Night shift\n\nThe Ostrava night shift starts at 22 o'clock sharp. Badges are "
    "collected at the south gate.\n"
)
QUESTION = "When does the Ostrava night shift start?"


@pytest.fixture
def engine(db_url: str, tmp_path: Path) -> Iterator[Engine]:
    settings = Settings(home=tmp_path, database_url=db_url, refusal_threshold=0.0, admins="alice")
    built = fake_engine(settings, reply="The night shift starts at 22 o'clock [1].")
    yield built
    built.log.db.dispose()


@pytest.fixture
def clients(engine: Engine) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    users = {u: pbkdf2_hash(u, iterations=1000) for u in ("alice", "bob")}
    keys = ApiKeys(engine.log.db)
    headers = {u: {"Authorization": f"Bearer {keys.create(u, 'test')[1]}"} for u in users}
    with TestClient(create_app(engine, engine.settings, users=users)) as client:
        yield client, headers


def test_export_formats_keep_deleted_passages_and_stay_private(
    clients: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    from pypdf import PdfReader

    client, h = clients
    up = client.post(
        "/api/documents", files=[("files", ("rota ü.md", NOTE.encode()))], headers=h["alice"]
    )
    doc = up.json()["results"][0]["document"]
    body = client.post("/api/ask", json={"question": QUESTION}, headers=h["alice"]).json()
    conv = body["conversation_id"]
    assert body["citations"], body  # the fake generator cites [1]
    passage = body["citations"][0]["text"]
    client.patch(
        f"/api/conversations/{conv}", json={"title": "Shifts/../Ostrava ü"}, headers=h["alice"]
    )
    assert client.delete(f"/api/documents/{doc['id']}", headers=h["alice"]).status_code == 200

    path = f"/api/conversations/{conv}/export"
    files = {
        f: client.get(path, params={"format": f}, headers=h["alice"]) for f in ("json", "md", "pdf")
    }
    for fmt, r in files.items():
        assert r.status_code == 200, (fmt, r.text)
        disposition = r.headers["content-disposition"]
        name = re.fullmatch(r'attachment; filename="([^"]+)"', disposition)
        assert name and name.group(1) == f"shifts-ostrava-u-{conv[:8]}.{fmt}", disposition
    assert client.get(path, headers=h["alice"]).content.startswith(b"{")  # json by default

    data = json.loads(files["json"].content)
    cite = data["conversation"]["turns"][0]["citations"][0]
    assert cite["text"] == passage and cite["document"] == "rota ü.md"
    assert cite["version"] == doc["content_hash"] and cite["heading_path"] == ["Night shift"]
    assert cite["document_available"] is False
    md = files["md"].content.decode()
    assert "> " + passage.splitlines()[0] in md and "this version since deleted or replaced" in md
    pdf = PdfReader(io.BytesIO(files["pdf"].content))
    text = " ".join(" ".join((p.extract_text() or "").split()) for p in pdf.pages)
    assert "22 o'clock sharp" in text and QUESTION in text

    # bob: 404 in every format, exactly like a conversation that does not exist
    for fmt in ("json", "md", "pdf"):
        theirs = client.get(path, params={"format": fmt}, headers=h["bob"])
        missing = client.get(path.replace(conv, "0" * 32), params={"format": fmt}, headers=h["bob"])
        assert theirs.status_code == missing.status_code == 404
        assert theirs.json()["detail"].replace(conv, "0" * 32) == missing.json()["detail"]
    bad = client.get(path, params={"format": "docx"}, headers=h["alice"])
    assert bad.status_code == 422 and "format" in bad.json()["detail"]
    assert client.get(path).status_code == 401


def test_insights_are_for_admins_only(
    clients: tuple[TestClient, dict[str, dict[str, str]]], engine: Engine
) -> None:
    client, h = clients
    client.post("/api/documents", files=[("files", ("rota.md", NOTE.encode()))], headers=h["alice"])
    client.post("/api/ask", json={"question": QUESTION}, headers=h["bob"])
    client.post("/api/ask", json={"question": "Who painted the moon?"}, headers=h["alice"])
    assert client.get("/api/insights").status_code == 401
    denied = client.get("/api/insights", headers=h["bob"])
    assert denied.status_code == 403 and "admin" in denied.json()["detail"]
    data = client.get("/api/insights", params={"days": 7}, headers=h["alice"]).json()
    assert data["questions"] == 2 and len(data["days"]) == 1  # both users' questions, today
    day = data["days"][0]
    assert day["questions"] == 2 and day["refusal_rate"] == day["refused"] / 2
    assert {t["metric"] for t in data["times"]} >= {"total"}
    assert [c["document"] for c in data["most_cited"]] == ["rota.md"]
    assert data["never_cited"] == []
    bad = client.get("/api/insights", params={"days": 0}, headers=h["alice"])
    assert bad.status_code == 422 and "days" in bad.json()["detail"]

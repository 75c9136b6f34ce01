"""/api/collections and scoped questions with fake models: every bad request gets a specific 4xx
with a message (bad visibility, empty or taken name, '/', members without 'shared', unknown
collection or document), and what the operator (accounts off) sees."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rag_core.config import Settings
from rag_core.db.apikeys import ApiKeys
from rag_core.engine import Engine
from rag_core.testing import fake_engine
from webapp.api import create_app
from webapp.auth import pbkdf2_hash

DOC = b"# Pumps\n\nThe Vellor pump needs a new membrane every 1400 operating hours.\n"


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return fake_engine(Settings(home=tmp_path, refusal_threshold=0.0), reply="Every 1400 h [1].")


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine, engine.settings)) as c:
        yield c


def create(client: TestClient, **body: Any) -> Any:
    return client.post("/api/collections", json=body)


def upload(client: TestClient, name: str, data: bytes, **form: str) -> Any:
    return client.post("/api/documents", files=[("files", (name, data, "text/plain"))], data=form)


def refused(response: Any, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    detail: str = response.json()["detail"]
    for w in words:
        assert w in detail, detail
    return detail


def test_bad_collections_get_specific_errors(client: TestClient) -> None:
    assert create(client, name="Manuals").status_code == 201
    refused(create(client, name="manuals"), 409, "already exists")
    refused(create(client, name=""), 422, "name")
    refused(create(client, name="   "), 422, "needs a name")
    refused(create(client, name="a/b"), 422, "'/'")
    refused(create(client, name="x" * 101), 422, "name")
    refused(create(client, name="Pub", visibility="public"), 422, "visibility", "everyone")
    refused(create(client, name="Team", visibility="shared"), 422, "shared with")
    refused(create(client, name="Solo", members=["bob"]), 422, "'shared'")
    refused(create(client, name="Odd", owner="me"), 422, "owner")
    refused(client.patch("/api/collections/Manuals", json={"visibility": "nope"}), 422)
    refused(client.patch("/api/collections/Default", json={"name": "manuals"}), 409, "exists")
    refused(client.patch("/api/collections/Default", json={"visibility": "private"}), 409)
    refused(client.delete("/api/collections/Default"), 409, "cannot be deleted")
    refused(client.get("/api/collections/Nope"), 404, "No collection 'Nope'", "'Default'")
    refused(client.delete("/api/collections/Nope"), 404, "Nope")


def test_documents_in_collections_and_their_errors(client: TestClient) -> None:
    refused(upload(client, "p.md", DOC, collection="Nope"), 404, "No collection 'Nope'")
    assert client.get("/api/documents").json() == []  # nothing was read
    made = create(client, name="Pumps", description="pump manuals").json()
    added = upload(client, "p.md", DOC, collection="pumps").json()["results"][0]
    assert added["status"] == "added" and added["document"]["collections"] == ["Pumps"]
    # the same bytes again without a collection: a duplicate, left where it is
    again = upload(client, "copy.md", DOC).json()["results"][0]
    assert again["status"] == "duplicate" and again["document"]["collections"] == ["Pumps"]
    # ... and named into Default: it joins Default too
    again = upload(client, "copy.md", DOC, collection="Default").json()["results"][0]
    assert again["status"] == "duplicate"
    assert again["document"]["collections"] == ["Default", "Pumps"]

    refused(client.delete("/api/collections/Pumps/documents/nope.md"), 404, "nope.md")
    assert client.delete("/api/collections/Default/documents/p.md").json()["changed"] == 1
    refused(client.delete("/api/collections/Default/documents/p.md"), 404, "not in collection")
    refused(client.delete("/api/collections/Pumps/documents/p.md"), 409, "no other collection")
    body = {"documents": ["p.md", "missing.md"]}
    refused(client.post("/api/collections/Default/documents", json=body), 404, "missing.md")
    refused(client.post("/api/collections/Default/documents", json={"documents": []}), 422)
    filed = client.post("/api/collections/Default/documents", json={"documents": ["p.md"]})
    assert filed.status_code == 200 and filed.json()["changed"] == 1
    assert filed.json()["collection"]["document_count"] == 1
    shown = client.get(f"/api/collections/{made['id']}").json()
    assert shown["description"] == "pump manuals" and shown["owner"] is None  # the operator's
    assert [d["name"] for d in shown["documents"]] == ["p.md"]
    # in Default as well: deleting Pumps strands nothing and deletes nothing
    deleted = client.delete("/api/collections/Pumps")
    assert deleted.status_code == 200 and deleted.json()["deleted_documents"] == []
    assert client.get("/api/documents/p.md").json()["collections"] == ["Default"]
    # a collection holding the only copy: refused, unless its documents go with it
    assert create(client, name="Scratch").status_code == 201
    upload(client, "q.md", b"Scratch notes about nothing in particular.", collection="Scratch")
    refused(client.delete("/api/collections/Scratch"), 409, "1 document")
    deleted = client.delete("/api/collections/Scratch", params={"delete_documents": "true"})
    assert [d["name"] for d in deleted.json()["deleted_documents"]] == ["q.md"]
    assert [d["name"] for d in client.get("/api/documents").json()] == ["p.md"]


def test_scoped_questions_and_models_with_bad_scopes(client: TestClient) -> None:
    upload(client, "p.md", DOC)
    ask = {"question": "How often is the membrane changed?"}
    refused(client.post("/api/ask", json={**ask, "collections": ["Nope"]}), 404, "Nope")
    refused(client.post("/api/ask", json={**ask, "documents": ["nope.md"]}), 404, "nope.md")
    refused(client.post("/api/ask", json={**ask, "collections": [""]}), 422, "collections")
    refused(client.post("/api/ask", json={**ask, "collections": "Default"}), 422, "collections")
    stream = client.post("/api/ask/stream", json={**ask, "collections": ["Nope"]})
    refused(stream, 404, "Nope")
    answer = client.post("/api/ask", json={**ask, "collections": ["default"]}).json()
    assert answer["scope"] == {"collections": ["default"], "documents": []}
    assert {p["document"] for p in answer["passages"]} == {"p.md"}
    # a remembered collection that is gone: the next question says so, a new scope goes on
    assert create(client, name="Tmp").status_code == 201
    conv = client.post("/api/ask", json={**ask, "collections": ["Tmp"]}).json()["conversation_id"]
    assert client.get(f"/api/conversations/{conv}").json()["scope"]["collections"] == ["Tmp"]
    assert client.delete("/api/collections/Tmp").status_code == 200
    refused(client.post("/api/ask", json={**ask, "conversation_id": conv}), 404, "Tmp")
    again = client.post("/api/ask", json={**ask, "conversation_id": conv, "collections": []})
    assert again.status_code == 200 and again.json()["scope"]["collections"] == []
    models = client.get("/v1/models").json()["data"]
    assert [m["id"] for m in models] == ["ragchat", "ragchat/Default"]
    body = {"model": "ragchat/Nope", "messages": [{"role": "user", "content": ask["question"]}]}
    missing = client.post("/v1/chat/completions", json=body)
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert "ragchat/Nope" in missing.json()["error"]["message"]
    ok = client.post("/v1/chat/completions", json={**body, "model": "ragchat/default"})
    assert ok.status_code == 200 and ok.json()["model"] == "ragchat/default"
    assert [c["document"] for c in ok.json()["citations"]] == ["p.md"]


def test_only_owners_change_their_collections_and_file_their_documents(engine: Engine) -> None:
    users = {u: pbkdf2_hash(u, iterations=1000) for u in ("alice", "bob")}
    keys = ApiKeys(engine.log.db)
    a, b = ({"Authorization": f"Bearer {keys.create(u, 't')[1]}"} for u in ("alice", "bob"))
    with TestClient(create_app(engine, engine.settings, users=users)) as client:
        assert client.get("/api/collections").status_code == 401
        team = {"name": "Team", "visibility": "shared", "members": ["bob"]}
        assert client.post("/api/collections", json=team, headers=a).status_code == 201
        files = [("files", ("p.md", DOC, "text/plain"))]
        client.post("/api/documents", files=files, data={"collection": "Team"}, headers=a)
        # bob sees Team but may not change it, nor file alice's document (which not everyone
        # may see) anywhere
        refused(client.patch("/api/collections/Team", json={"name": "T"}, headers=b), 403, "alice")
        filing = {"documents": ["p.md"]}
        r = client.post("/api/collections/Team/documents", json=filing, headers=b)
        refused(r, 403, "belongs to alice")
        mine = client.post("/api/collections", json={"name": "Bob's"}, headers=b)
        assert mine.json()["owner"] == "bob"
        r = client.post("/api/collections/Bob's/documents", json=filing, headers=b)
        refused(r, 403, "belongs to alice")
        r = client.post("/api/collections/Default/documents", json=filing, headers=a)
        assert r.status_code == 200 and r.json()["changed"] == 1
        # now everyone may see it: bob may file it in his own collection
        r = client.post("/api/collections/Bob's/documents", json=filing, headers=b)
        assert r.status_code == 200 and r.json()["changed"] == 1

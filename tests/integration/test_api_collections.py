"""Collections and scoped questions through the HTTP API, with accounts on, the default embedder,
a real Chroma store and SQLite and PostgreSQL: what bob can reach of alice's private collection
(nothing, by any door: listing, showing, deleting, /api/ask, /api/ask/stream, /v1) until she
shares it, who may delete it, refusals in a scope without the answer, and a conversation that
remembers its scope."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from rag_core.config import Settings
from rag_core.db.apikeys import ApiKeys
from rag_core.engine import Engine
from rag_core.stores.chroma import ChromaStore
from rag_core.testing import fake_engine
from tests.sse import sse_events
from webapp.api import create_app
from webapp.auth import pbkdf2_hash

pytestmark = pytest.mark.integration

PUBLIC = b"# Office\n\nThe office coffee machine is descaled every Friday at noon.\n"
SECRET = b"# Salaries\n\nThe Zorblat project budget for 2027 is 4.2 million euros.\n"
QUESTION = "What is the Zorblat project budget for 2027?"
COFFEE = "When is the office coffee machine descaled?"
Headers = dict[str, str]


@pytest.fixture
def engine(real_embedder, db_url: str, tmp_path: Path) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    store = ChromaStore(path=home / "chroma")
    settings = Settings(home=home, database_url=db_url, answer_strategy="extractive")
    yield fake_engine(settings, embedder=real_embedder, store=store)
    store.close()


@pytest.fixture
def api(engine: Engine) -> Iterator[tuple[TestClient, Headers, Headers]]:
    """A client of the API with accounts on, and alice's and bob's key headers."""
    users = {u: pbkdf2_hash(u, iterations=1000) for u in ("alice", "bob")}
    keys = ApiKeys(engine.log.db)
    alice, bob = ({"Authorization": f"Bearer {keys.create(u, 't')[1]}"} for u in ("alice", "bob"))
    with TestClient(create_app(engine, engine.settings, users=users)) as client:
        yield client, alice, bob


def upload(client: TestClient, who: Headers, name: str, data: bytes, **form: str) -> Any:
    r = client.post(
        "/api/documents", files=[("files", (name, data, "text/markdown"))], data=form, headers=who
    )
    assert r.status_code == 200, r.text
    (result,) = r.json()["results"]
    assert result["status"] == "added", result
    return result["document"]


def ask(client: TestClient, who: Headers, question: str = QUESTION, **body: Any) -> Any:
    r = client.post("/api/ask", json={"question": question, **body}, headers=who)
    assert r.status_code == 200, r.text
    return r.json()


def sources(answer: dict[str, Any]) -> set[str]:
    return {p["document"] for p in answer["passages"]} | {
        c["document"] for c in answer["citations"]
    }


def streamed(client: TestClient, who: Headers, **body: Any) -> dict[str, Any]:
    """The `done` event of /api/ask/stream, having checked every passage it streamed."""
    events: list[tuple[str, Any]] = []
    payload = {"question": QUESTION, **body}
    with client.stream("POST", "/api/ask/stream", json=payload, headers=who) as r:
        assert r.status_code == 200
        events = sse_events(r)
    kinds = [k for k, _ in events]
    assert kinds[0] == "retrieved" and kinds[-1] == "done", kinds
    done: dict[str, Any] = events[-1][1]
    done["streamed"] = {p["document"] for p in events[0][1]["passages"]}
    return done


def completion(client: TestClient, who: Headers, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": QUESTION}]}
    return client.post("/v1/chat/completions", json=body, headers=who)


def test_a_private_collection_is_out_of_bobs_reach_until_alice_shares_it(
    api: tuple[TestClient, Headers, Headers],
) -> None:
    client, alice, bob = api
    assert upload(client, bob, "office.md", PUBLIC)["collections"] == ["Default"]
    made = client.post("/api/collections", json={"name": "Alice notes"}, headers=alice)
    assert made.status_code == 201, made.text
    assert made.json()["owner"] == "alice" and made.json()["visibility"] == "private"
    secret = upload(client, alice, "salaries.md", SECRET, collection="alice notes")
    assert secret["collections"] == ["Alice notes"] and secret["owner"] == "alice"

    # listing and showing: bob sees the Default collection and the public document only
    assert [c["name"] for c in client.get("/api/collections", headers=bob).json()] == ["Default"]
    listed = client.get("/api/collections", headers=alice).json()
    assert [(c["name"], c["document_count"]) for c in listed] == [
        ("Default", 1),
        ("Alice notes", 1),
    ]
    assert [d["name"] for d in client.get("/api/documents", headers=bob).json()] == ["office.md"]
    hidden = client.get("/api/collections/Alice notes", headers=bob)
    missing = client.get("/api/collections/Nothing here", headers=bob)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"].replace("Alice notes", "X") == missing.json()["detail"].replace(
        "Nothing here", "X"
    )
    for method, path in (
        ("GET", "/api/documents/salaries.md"),
        ("GET", f"/api/documents/{secret['id']}"),
        ("DELETE", "/api/documents/salaries.md"),
        ("PATCH", "/api/collections/Alice notes"),
        ("DELETE", "/api/collections/Alice notes"),
        ("DELETE", "/api/collections/Alice notes/documents/salaries.md"),
    ):
        body = {"description": "mine"} if method == "PATCH" else None
        r = client.request(method, path, json=body, headers=bob)
        assert r.status_code == 404, (method, path, r.text)
    into = client.post(
        "/api/collections/Default/documents", json={"documents": ["salaries.md"]}, headers=bob
    )
    assert into.status_code == 404
    files = [("files", ("mine.md", b"Bob's notes.", "text/markdown"))]
    r = client.post("/api/documents", files=files, data={"collection": "Alice notes"}, headers=bob)
    assert r.status_code == 404, r.text  # and nothing was read: alice sees only her two
    assert [d["name"] for d in client.get("/api/documents", headers=alice).json()] == [
        "office.md",
        "salaries.md",
    ]

    # retrieval: no door gives bob the passage
    assert "salaries.md" not in sources(ask(client, bob))
    assert "4.2" not in ask(client, bob)["answer"]
    scoped = client.post(
        "/api/ask", json={"question": QUESTION, "collections": ["Alice notes"]}, headers=bob
    )
    assert scoped.status_code == 404 and "Alice notes" in scoped.json()["detail"]
    by_name = client.post(
        "/api/ask", json={"question": QUESTION, "documents": ["salaries.md"]}, headers=bob
    )
    assert by_name.status_code == 404
    done = streamed(client, bob)
    assert "salaries.md" not in done["streamed"] | sources(done)
    models = client.get("/v1/models", headers=bob).json()
    assert [m["id"] for m in models["data"]] == ["ragchat", "ragchat/Default"]
    plain = completion(client, bob, "ragchat")
    assert plain.status_code == 200, plain.text
    assert "salaries.md" not in {c["document"] for c in plain.json()["citations"]}
    assert "4.2" not in plain.json()["choices"][0]["message"]["content"]
    refused = completion(client, bob, "ragchat/Alice notes")
    assert refused.status_code == 404
    assert refused.json()["error"]["type"] == "invalid_request_error"
    assert "ragchat/Alice notes" in refused.json()["error"]["message"]

    # alice, of course, gets her answer
    hers = ask(client, alice)
    assert not hers["refused"] and "salaries.md" in sources(hers) and "4.2" in hers["answer"]
    assert hers["scope"] == {"collections": [], "documents": []}

    # shared with bob: every door opens
    shared = client.patch(
        "/api/collections/Alice notes",
        json={"visibility": "shared", "members": ["bob"]},
        headers=alice,
    )
    assert shared.status_code == 200 and shared.json()["members"] == ["bob"], shared.text
    shown = client.get("/api/collections/alice notes", headers=bob).json()
    assert [d["name"] for d in shown["documents"]] == ["salaries.md"]
    assert client.get("/api/documents/salaries.md", headers=bob).json()["collections"] == [
        "Alice notes"
    ]
    his = ask(client, bob, collections=["Alice notes"])
    assert not his["refused"] and sources(his) == {"salaries.md"} and "4.2" in his["answer"]
    assert "salaries.md" in sources(streamed(client, bob))
    assert "ragchat/Alice notes" in [
        m["id"] for m in client.get("/v1/models", headers=bob).json()["data"]
    ]
    via_v1 = completion(client, bob, "ragchat/Alice notes")
    assert via_v1.status_code == 200, via_v1.text
    assert {c["document"] for c in via_v1.json()["citations"]} == {"salaries.md"}

    # only alice deletes it (and its document only when asked to)
    for path in ("/api/collections/Alice notes", "/api/documents/salaries.md"):
        r = client.delete(path, headers=bob)
        assert r.status_code == 403 and "alice" in r.json()["detail"], r.text
    kept = client.delete("/api/collections/Alice notes", headers=alice)
    assert kept.status_code == 409 and "1 document" in kept.json()["detail"]
    gone = client.delete(
        "/api/collections/Alice notes", params={"delete_documents": "true"}, headers=alice
    )
    assert gone.status_code == 200, gone.text
    assert [d["name"] for d in gone.json()["deleted_documents"]] == ["salaries.md"]
    assert [d["name"] for d in client.get("/api/documents", headers=alice).json()] == ["office.md"]
    assert client.get("/api/collections/Alice notes", headers=alice).status_code == 404


def test_scoped_questions_refuse_outside_their_scope_and_conversations_remember_it(
    api: tuple[TestClient, Headers, Headers],
) -> None:
    client, alice, _ = api
    upload(client, alice, "office.md", PUBLIC)
    made = client.post("/api/collections", json={"name": "Budgets"}, headers=alice)
    assert made.status_code == 201
    upload(client, alice, "salaries.md", SECRET, collection=made.json()["id"])

    # the Default collection does not hold the answer: refused, and the scope is said
    outside = ask(client, alice, collections=["Default"])
    assert outside["refused"] and "4.2" not in outside["answer"]
    assert outside["scope"] == {"collections": ["Default"], "documents": []}
    assert "salaries.md" not in sources(outside)

    first = ask(client, alice, collections=["Budgets"])
    assert not first["refused"] and sources(first) == {"salaries.md"}
    conv = first["conversation_id"]
    # the next question names no scope: the conversation's is searched again
    second = ask(client, alice, COFFEE, conversation_id=conv)
    assert second["scope"] == {"collections": ["Budgets"], "documents": []}
    assert sources(second) <= {"salaries.md"} and "Friday" not in second["answer"]
    detail = client.get(f"/api/conversations/{conv}", headers=alice).json()
    assert detail["scope"] == {"collections": ["Budgets"], "documents": []}
    assert [t["scope"]["collections"] for t in detail["turns"]] == [["Budgets"], ["Budgets"]]

    # empty lists: everything again, remembered too
    third = ask(client, alice, COFFEE, conversation_id=conv, collections=[], documents=[])
    assert third["scope"] == {"collections": [], "documents": []}
    assert "office.md" in sources(third) and "Friday" in third["answer"]
    detail = client.get(f"/api/conversations/{conv}", headers=alice).json()
    assert detail["scope"] == {"collections": [], "documents": []}

    # one document as the scope
    single = ask(client, alice, documents=["office.md"])
    assert sources(single) == {"office.md"} and single["refused"]

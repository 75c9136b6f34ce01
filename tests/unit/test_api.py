"""The REST and OpenAI-compatible API (webapp/api.py) with fake models, through FastAPI's client.

Fast: every endpoint, its errors, and accounts (API keys, 401, another user's ids -> 404).
The same endpoints run against a real server with the real models in
tests/integration/test_api.py.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rag_core.config import Settings
from rag_core.db.apikeys import ApiKeys
from rag_core.engine import Engine
from rag_core.errors import ConfigError
from rag_core.testing import FakeGenerator, fake_engine
from webapp.api import create_app
from webapp.auth import pbkdf2_hash
from webapp.server import check_open_host

ACME = (
    "# Billing\n\nAcme Cloud offers monthly and annual plans. Annual plans can be refunded in full "
    "within 30 days of purchase. Monthly plans are not refundable.\n\n# Limits\n\nThe maximum "
    "upload size of Acme Cloud is 2 GB per file.\n"
)
REPLY = "The maximum upload size of Acme Cloud is 2 GB per file [1]."
QUESTION = "What is the maximum upload size of Acme Cloud?"


def make_engine(tmp_path: Path, reply: str = REPLY) -> Engine:
    # threshold 0: the gate never refuses when something is retrieved (fake embeddings)
    return fake_engine(Settings(home=tmp_path, refusal_threshold=0.0, max_file_mb=1), reply=reply)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return make_engine(tmp_path)


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine, engine.settings)) as c:
        yield c


def upload(client: TestClient, *files: tuple[str, bytes], **kw: Any) -> Any:
    parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
    return client.post("/api/documents", files=parts, **kw)


def sse(text: str) -> list[tuple[str, Any]]:
    """(event, data) pairs of a server-sent event stream."""
    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        out.append((fields.get("event", "message"), fields.get("data")))
    return out


def test_health_openapi_and_offline_docs(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "documents": 0, "accounts": False}
    spec = client.get("/openapi.json").json()
    for path in [
        "/api/documents", "/api/documents/{document}", "/api/ask", "/api/ask/stream",
        "/api/conversations", "/api/conversations/{conversation_id}",
        "/api/conversations/{conversation_id}/export", "/api/turns/{turn_id}",
        "/api/turns/{turn_id}/citations", "/api/turns/{turn_id}/passages",
        "/api/turns/{turn_id}/replay", "/api/turns/{turn_id}/feedback",
        "/api/insights",
        "/v1/chat/completions", "/v1/models", "/healthz",
    ]:  # fmt: skip
        assert path in spec["paths"], path
    schemas = spec["components"]["schemas"]
    assert {"CitationOut", "AskResponse", "ChatCompletion", "UploadResponse"} <= set(schemas)
    assert "citations" in schemas["ChatCompletion"]["properties"]
    assert client.get("/docs").status_code == 404  # FastAPI's CDN-loading pages are off
    assert client.get("/redoc").status_code == 404
    page = client.get("/api/docs").text
    assert "/openapi.json" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "external asset"


def test_documents_upload_list_show_delete(client: TestClient) -> None:
    r = upload(
        client,
        ("acme.md", ACME.encode()),
        ("copy.md", ACME.encode()),
        ("empty.txt", b"   "),
        ("big.txt", b"a" * (1024 * 1024 + 10)),
    )
    assert r.status_code == 200
    results = {x["name"]: x for x in r.json()["results"]}
    assert [x["name"] for x in r.json()["results"]] == [
        "acme.md",
        "copy.md",
        "empty.txt",
        "big.txt",
    ]
    assert results["acme.md"]["status"] == "added" and results["acme.md"]["chunks"] >= 1
    assert results["copy.md"]["status"] == "duplicate"
    assert results["copy.md"]["document"]["name"] == "acme.md"
    assert (
        results["empty.txt"]["status"] == "error" and "empty.txt" in results["empty.txt"]["error"]
    )
    assert (
        results["big.txt"]["status"] == "error"
        and "RAGCHAT_MAX_FILE_MB" in results["big.txt"]["error"]
    )

    docs = client.get("/api/documents").json()
    assert [d["name"] for d in docs] == ["acme.md"]
    assert client.get("/healthz").json()["documents"] == 1
    shown = client.get("/api/documents/acme.md").json()
    report = shown["report"]  # the ingest report (docs/API.md)
    assert report["recorded"] and report["chunks"] == len(shown["chunks"]) == shown["chunk_count"]
    assert (report["tables"], report["warnings"], report["embedder"]) == (0, [], "fake")
    assert shown["id"] == docs[0]["id"] and "2 GB per file" in " ".join(
        c["text"] for c in shown["chunks"]
    )
    replaced = upload(client, ("acme.md", ACME.replace("2 GB", "5 GB").encode())).json()
    assert replaced["results"][0]["status"] == "replaced"
    assert replaced["results"][0]["document"]["version"] == 2

    assert client.get("/api/documents/nope.md").status_code == 404
    assert client.delete("/api/documents/nope.md").status_code == 404
    new_id = replaced["results"][0]["document"]["id"]
    deleted = client.delete(f"/api/documents/{new_id[:12]}")
    assert deleted.status_code == 200 and deleted.json()["name"] == "acme.md"
    assert client.get("/api/documents").json() == []
    assert upload(client).status_code == 422  # no files at all


def test_ask_json_and_conversation_endpoints(client: TestClient) -> None:
    upload(client, ("acme.md", ACME.encode()))
    r = client.post("/api/ask", json={"question": QUESTION})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "2 GB per file" in body["answer"] and "[1]" in body["answer"]
    assert not body["refused"]
    assert body["citations"][0]["number"] == 1
    assert body["citations"][0]["document"] == "acme.md"
    assert "2 GB per file" in body["citations"][0]["support"]
    assert body["passages"][0]["number"] == 1 and body["passages"][0]["cited"]
    conv, turn = body["conversation_id"], body["turn_id"]

    follow = client.post("/api/ask", json={"question": "And per file?", "conversation_id": conv})
    assert follow.json()["conversation_id"] == conv

    listed = client.get("/api/conversations").json()
    assert [(c["id"], c["turn_count"]) for c in listed] == [(conv, 2)]
    detail = client.get(f"/api/conversations/{conv}").json()
    assert [t["question"] for t in detail["turns"]] == [QUESTION, "And per file?"]
    assert detail["turns"][0]["citations"][0]["support"]

    t = client.get(f"/api/turns/{turn}").json()
    assert t["id"] == turn and t["status"] == "complete"
    cites = client.get(f"/api/turns/{turn}/citations").json()
    assert cites == body["citations"]
    passages = client.get(f"/api/turns/{turn}/passages").json()
    assert [p["number"] for p in passages] == list(range(1, len(passages) + 1))

    renamed = client.patch(f"/api/conversations/{conv}", json={"title": "  Acme   limits "})
    assert renamed.json()["title"] == "Acme limits"
    assert client.patch(f"/api/conversations/{conv}", json={"title": ""}).status_code == 422

    export = client.get(f"/api/conversations/{conv}/export")
    assert "attachment" in export.headers["content-disposition"]
    data = export.json()
    assert data["format"] == "ragchat-conversation"
    assert data["conversation"]["title"] == "Acme limits"
    assert len(data["conversation"]["turns"]) == 2

    huge = client.get("/api/turns/99999999999999999999999")
    assert huge.status_code == 404 and "not found" in huge.json()["detail"]
    assert client.get(f"/api/turns/{-turn}").status_code == 404

    assert client.delete(f"/api/conversations/{conv}").status_code == 204
    assert client.get(f"/api/conversations/{conv}").status_code == 404
    assert client.get(f"/api/turns/{turn}").status_code == 404
    assert client.delete(f"/api/conversations/{conv}").status_code == 404


def test_ask_errors(client: TestClient) -> None:
    r = client.post("/api/ask", json={"question": "   "})
    assert r.status_code == 422 and "empty" in r.json()["detail"]
    r = client.post("/api/ask", json={"question": "x" * 5000})
    assert r.status_code == 422 and "limit is 4,000" in r.json()["detail"]
    r = client.post("/api/ask", json={"question": "hi", "conversation_id": "f" * 32})
    assert r.status_code == 404
    r = client.post("/api/ask", json={"question": "hi", "mode": "magic"})
    assert r.status_code == 422 and "mode" in r.json()["detail"]
    assert client.get("/api/conversations").json() == []  # nothing was logged
    # an empty knowledge base: a refusal, as a normal answer
    refused = client.post("/api/ask", json={"question": QUESTION}).json()
    assert refused["refused"] and "Your documents don" in refused["answer"]


def test_ask_stream_events(client: TestClient) -> None:
    upload(client, ("acme.md", ACME.encode()))
    with client.stream("POST", "/api/ask/stream", json={"question": QUESTION}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse(r.read().decode())
    names = [e for e, _ in events]
    assert names[0] == "retrieved" and names[-1] == "done"
    assert names.count("token") >= 3 and "sentence" in names
    retrieved = json.loads(events[0][1])
    assert retrieved["passages"][0]["document"] == "acme.md"
    tokens = "".join(json.loads(d)["text"] for e, d in events if e == "token")
    assert tokens.strip() == REPLY
    sentence = json.loads(next(d for e, d in events if e == "sentence"))
    assert sentence["supported"] and sentence["citation"] == 1
    done = json.loads(events[-1][1])
    assert done["turn_id"] and done["citations"][0]["document"] == "acme.md"
    logged = client.get(f"/api/turns/{done['turn_id']}").json()
    assert logged["answer"] == done["answer"]
    bad = client.post("/api/ask/stream", json={"question": ""})
    assert bad.status_code == 422  # checked before the stream starts


def test_openai_chat_completions(client: TestClient) -> None:
    upload(client, ("acme.md", ACME.encode()))
    models = client.get("/v1/models").json()
    assert models["data"][0]["id"] == "ragchat"
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "What plans are there?"},
        {"role": "assistant", "content": "Monthly and annual plans [1]."},
        {"role": "user", "content": [{"type": "text", "text": QUESTION}]},
    ]
    r = client.post("/v1/chat/completions", json={"model": "ragchat", "messages": messages})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert re.search(r"2 GB per file\.? ?\[1\]", body["choices"][0]["message"]["content"])
    assert body["choices"][0]["finish_reason"] == "stop"
    cite = body["citations"][0]
    assert cite["number"] == 1 and cite["document"] == "acme.md"
    assert "2 GB per file" in cite["support"] and "2 GB per file" in cite["text"]
    turn = client.get(f"/api/turns/{body['ragchat']['turn_id']}").json()
    assert turn["question"] == QUESTION  # logged like any other answer
    # the real prompt: system text, passages, two history messages and the question
    usage = body["usage"]
    assert usage["prompt_tokens"] == turn["timings"]["prompt_tokens"] > 40
    assert usage["completion_tokens"] == len(REPLY.split())
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

    with client.stream(
        "POST", "/v1/chat/completions", json={"messages": messages[-1:], "stream": True}
    ) as s:
        lines = [ln[6:] for ln in s.read().decode().splitlines() if ln.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(x) for x in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    final = chunks[-1]
    assert text == final["ragchat"]["answer"]  # the checked answer, not the raw draft
    assert re.search(r"2 GB per file\.? ?\[1\]", text)
    assert final["usage"]["prompt_tokens"] > 20
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["citations"][0]["document"] == "acme.md"
    assert final["ragchat"]["answer"].startswith("The maximum upload size")

    bad = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "assistant", "content": "x"}]}
    )
    assert bad.status_code == 400 and "last message" in bad.json()["error"]["message"]
    bad = client.post("/v1/chat/completions", json={"messages": []})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"


def test_openai_refusal_is_a_normal_answer(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    with TestClient(create_app(engine, engine.settings)) as client:
        body = client.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": QUESTION}]}
        ).json()
    assert body["choices"][0]["message"]["content"].startswith("Your documents don't say")
    assert body["citations"] == [] and body["ragchat"]["refused"] is True


def test_openai_not_found_is_not_streamed_raw(tmp_path: Path) -> None:
    """A generator's NOT FOUND is held back; the client gets the checked answer instead."""
    engine = make_engine(tmp_path, reply="NOT FOUND")
    engine.ingest_bytes(ACME.encode(), "acme.md")
    body = {"messages": [{"role": "user", "content": QUESTION}], "stream": True}
    with (
        TestClient(create_app(engine, engine.settings)) as client,
        client.stream("POST", "/v1/chat/completions", json=body) as s,
    ):
        lines = [ln[6:] for ln in s.read().decode().splitlines() if ln.startswith("data: ")]
    chunks = [json.loads(x) for x in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert "NOT FOUND" not in text
    assert text == chunks[-1]["ragchat"]["answer"]


# -- accounts -------------------------------------------------------------------------------------


@pytest.fixture
def accounts(engine: Engine) -> Iterator[tuple[TestClient, dict[str, str]]]:
    users = {"alice": pbkdf2_hash("a", iterations=1000), "bob": pbkdf2_hash("b", iterations=1000)}
    keys = ApiKeys(engine.log.db)
    tokens = {u: keys.create(u, "test")[1] for u in ("alice", "bob", "carol")}
    app = create_app(engine, engine.settings, users=users)
    with TestClient(app) as c:
        yield c, tokens


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_api_keys_are_required_with_accounts(
    accounts: tuple[TestClient, dict[str, str]], engine: Engine
) -> None:
    client, tokens = accounts
    assert client.get("/healthz").status_code == 200  # the health check needs no key
    for path in ("/api/documents", "/api/conversations", "/v1/models"):
        r = client.get(path)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", path
        assert client.get(path, headers=auth("rck_wrong")).status_code == 401
    assert "apikey create" in client.get("/api/conversations").json()["detail"]
    assert client.get("/v1/models").json()["error"]["type"] == "authentication_error"
    # a key of a user who is no longer in RAGCHAT_AUTH does not work
    assert client.get("/api/conversations", headers=auth(tokens["carol"])).status_code == 401
    assert client.get("/api/conversations", headers=auth(tokens["alice"])).status_code == 200
    keys = ApiKeys(engine.log.db)
    alice_key = next(k for k in keys.list("alice"))
    keys.revoke("alice", alice_key.prefix)
    assert client.get("/api/conversations", headers=auth(tokens["alice"])).status_code == 401


def test_users_cannot_reach_each_others_conversations(
    accounts: tuple[TestClient, dict[str, str]],
) -> None:
    client, tokens = accounts
    a, b = auth(tokens["alice"]), auth(tokens["bob"])
    upload(client, ("acme.md", ACME.encode()), headers=a)
    body = client.post("/api/ask", json={"question": QUESTION}, headers=a).json()
    conv, turn = body["conversation_id"], body["turn_id"]
    ids = [
        ("GET", f"/api/conversations/{conv}", None),
        ("GET", f"/api/conversations/{conv}/export", None),
        ("PATCH", f"/api/conversations/{conv}", {"title": "mine now"}),
        ("DELETE", f"/api/conversations/{conv}", None),
        ("GET", f"/api/turns/{turn}", None),
        ("GET", f"/api/turns/{turn}/citations", None),
        ("GET", f"/api/turns/{turn}/passages", None),
        ("POST", f"/api/turns/{turn}/replay", None),
        ("PUT", f"/api/turns/{turn}/feedback", {"rating": -1}),
        ("POST", "/api/ask", {"question": QUESTION, "conversation_id": conv}),
        ("POST", "/api/ask/stream", {"question": QUESTION, "conversation_id": conv}),
    ]
    for method, path, payload in ids:
        r = client.request(method, path, json=payload, headers=b)
        assert r.status_code == 404, (method, path, r.status_code)
        # exactly what a made-up id gets: nothing tells that the id exists
        fake = path.replace(conv, "0" * 32).replace(f"/turns/{turn}", "/turns/999999")
        if payload and "conversation_id" in payload:
            payload = {**payload, "conversation_id": "0" * 32}
        assert client.request(method, fake, json=payload, headers=b).json() == {
            "detail": r.json()["detail"].replace(conv, "0" * 32).replace(str(turn), "999999")
        }
    r = client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": QUESTION}], "conversation_id": conv},
        headers=b,
    )
    assert r.status_code == 404
    assert client.get("/api/conversations", headers=b).json() == []
    mine = client.get(f"/api/conversations/{conv}", headers=a).json()
    assert mine["title"] != "mine now" and len(mine["turns"]) == 1  # nothing changed or added
    assert client.get(f"/api/turns/{turn}", headers=a).status_code == 200


def test_a_turn_is_replayed_by_its_owner_only(
    accounts: tuple[TestClient, dict[str, str]], engine: Engine
) -> None:
    client, tokens = accounts
    a, b = auth(tokens["alice"]), auth(tokens["bob"])
    upload(client, ("acme.md", ACME.encode()), headers=a)
    turn = client.post("/api/ask", json={"question": QUESTION}, headers=a).json()["turn_id"]
    same = client.post(f"/api/turns/{turn}/replay", headers=a)
    assert same.status_code == 200, same.text
    body = same.json()
    assert body["turn_id"] == turn and body["changed"]["answer"] is False
    assert body["before"]["gate_score"] == body["after"]["gate_score"] is not None
    assert {p["change"] for p in body["passages"]} == {"same"} and body["documents"] == []
    upload(client, ("acme.md", ACME.replace("2 GB", "5 GB").encode()), headers=a)
    assert isinstance(engine.generator, FakeGenerator)
    engine.generator.reply = "The maximum upload size of Acme Cloud is 5 GB per file [1]."
    changed = client.post(f"/api/turns/{turn}/replay", headers=a).json()
    assert changed["changed"]["answer"] and changed["changed"]["citations"]
    assert "5 GB" in changed["after"]["answer"] and "2 GB" in changed["before"]["answer"]
    assert [(d["name"], d["status"], d["current_version"]) for d in changed["documents"]] == [
        ("acme.md", "replaced", 2)
    ]
    assert {"in", "out"} <= {p["change"] for p in changed["passages"]}
    assert any(s["changed"] for s in changed["sentences"])
    assert client.post(f"/api/turns/{turn}/replay", headers=b).status_code == 404
    assert client.post("/api/turns/0/replay", headers=a).status_code == 404
    # a replay logs nothing: alice still has one turn
    conv = client.get(f"/api/turns/{turn}", headers=a).json()["conversation_id"]
    assert len(client.get(f"/api/conversations/{conv}", headers=a).json()["turns"]) == 1


def test_feedback_says_what_was_wrong_and_marks_a_passage(
    accounts: tuple[TestClient, dict[str, str]],
) -> None:
    client, tokens = accounts
    a, b = auth(tokens["alice"]), auth(tokens["bob"])
    upload(client, ("acme.md", ACME.encode()), headers=a)
    turn = client.post("/api/ask", json={"question": QUESTION}, headers=a).json()["turn_id"]
    passages = client.get(f"/api/turns/{turn}/passages", headers=a).json()
    body = {"rating": -1, "reason": "wrong_citation", "passage": 1, "comment": "see the limits"}
    r = client.put(f"/api/turns/{turn}/feedback", json=body, headers=a)
    assert r.status_code == 200, r.text
    rated = r.json()
    assert (rated["feedback_rating"], rated["feedback_reason"]) == (-1, "wrong_citation")
    assert rated["feedback_passage"] == passages[0]["chunk_id"] and not rated["feedback_no_passage"]
    assert rated["feedback_comment"] == "see the limits" and rated["gate_score"] is not None
    bad = [
        {"rating": -1, "reason": "boring"},
        {"rating": -1, "passage": len(passages) + 1},
        {"rating": -1, "passage": 1, "none_of_these": True},
        {"rating": 1, "reason": "wrong_fact"},
        {"rating": 0},
        {"rating": -1, "unknown": 1},
    ]
    for payload in bad:
        r = client.put(f"/api/turns/{turn}/feedback", json=payload, headers=a)
        assert r.status_code == 422, (payload, r.text)
    assert (
        client.get(f"/api/turns/{turn}", headers=a).json()["feedback_passage"]
        == (passages[0]["chunk_id"])
    )  # a refused rating changed nothing
    r = client.put(
        f"/api/turns/{turn}/feedback",
        json={"rating": -1, "reason": "should_refuse", "none_of_these": True},
        headers=a,
    )
    assert r.json()["feedback_no_passage"] and r.json()["feedback_passage"] is None
    assert (
        client.put(f"/api/turns/{turn}/feedback", json={"rating": -1}, headers=b).status_code == 404
    )
    up = client.put(f"/api/turns/{turn}/feedback", json={"rating": 1}, headers=a).json()
    assert (up["feedback_rating"], up["feedback_reason"], up["feedback_no_passage"]) == (
        1,
        None,
        False,
    )


def test_open_host_needs_accounts_or_consent(tmp_path: Path) -> None:
    check_open_host(Settings(home=tmp_path), "127.0.0.1")
    check_open_host(Settings(home=tmp_path), "localhost")
    with pytest.raises(ConfigError, match="RAGCHAT_ALLOW_OPEN=1"):
        check_open_host(Settings(home=tmp_path), "0.0.0.0")
    check_open_host(Settings(home=tmp_path, allow_open=True), "0.0.0.0")
    check_open_host(Settings(home=tmp_path, auth="alice:x"), "0.0.0.0")


class SlowGenerator(FakeGenerator):
    """A fake generator that takes its time, so a client can leave mid-answer."""

    def stream(self, messages: Any, **kw: Any) -> Iterator[str]:
        for piece in super().stream(messages, **kw):
            time.sleep(0.05)
            yield piece


def test_a_client_that_leaves_stops_the_answer_and_the_turn_is_logged(tmp_path: Path) -> None:
    import httpx
    import uvicorn

    engine = make_engine(tmp_path)
    engine.generator = SlowGenerator(
        " ".join(["Annual plans can be refunded."] * 2 + ["word"] * 200)
    )
    engine.ingest_bytes(ACME.encode(), "acme.md")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(engine, engine.settings), port=port, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/api/ask/stream"
        with httpx.stream("POST", url, json={"question": QUESTION}, timeout=30) as r:
            tokens = 0
            for line in r.iter_lines():
                tokens += line == "event: token"
                if tokens >= 3:
                    break  # the client goes away
        deadline = time.monotonic() + 20
        turns: list[Any] = []
        while not turns and time.monotonic() < deadline:
            convs = engine.log.list_conversations("local")
            turns = engine.log.turns(convs[0].id, "local") if convs else []
            time.sleep(0.1)
        assert turns and turns[0].status == "stopped", turns
        assert turns[0].raw_answer.count("word") < 150  # it did stop early
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_writes_from_another_web_origin_and_huge_uploads_are_refused(client: TestClient) -> None:
    evil = {"Origin": "https://evil.example"}
    r = upload(client, ("acme.md", ACME.encode()), headers=evil)
    assert r.status_code == 403 and "cross-origin" in r.json()["detail"]
    assert client.post("/api/ask", json={"question": QUESTION}, headers=evil).status_code == 403
    assert client.get("/api/documents").json() == []  # nothing was added
    same = {"Origin": "http://testserver"}  # the app's own pages may write
    assert upload(client, ("acme.md", ACME.encode()), headers=same).status_code == 200
    huge = {"Content-Length": str(60 * 2**20 * 1024)}
    r = client.post("/api/documents", content=b"x", headers=huge)
    assert r.status_code == 413 and "RAGCHAT_MAX_FILE_MB" in r.json()["detail"]


def test_an_open_server_answers_only_to_loopback_names(engine: Engine) -> None:
    """Against DNS rebinding: a page on evil.example resolving to 127.0.0.1 gets nothing."""
    app = create_app(engine, engine.settings, trusted_hosts={"127.0.0.1", "localhost", "::1"})
    with TestClient(app, base_url="http://127.0.0.1:7860") as client:
        assert client.get("/api/documents").status_code == 200
        assert client.get("/healthz", headers={"Host": "localhost:7860"}).status_code == 200
        assert client.get("/healthz", headers={"Host": "[::1]:7860"}).status_code == 200
        r = client.get("/api/conversations", headers={"Host": "evil.example:7860"})
        assert r.status_code == 403 and "RAGCHAT_ALLOW_OPEN" in r.json()["detail"]
        assert client.get("/", headers={"Host": "evil.example"}).status_code == 403


def test_conversations_are_listed_a_page_at_a_time(client: TestClient, engine: Engine) -> None:
    log = engine.log
    ids = [log.create_conversation("local", f"Pump question {i}").id for i in range(7)]
    log.create_conversation("local", "Something else 100%_")
    first = client.get("/api/conversations", params={"limit": 3})
    assert first.status_code == 200 and len(first.json()) == 3
    cursor = first.headers["X-Next-Cursor"]
    assert first.headers["Link"].endswith('rel="next"') and cursor in first.headers["Link"]
    seen = [c["id"] for c in first.json()]
    while cursor:
        page = client.get("/api/conversations", params={"limit": 3, "cursor": cursor})
        seen += [c["id"] for c in page.json()]
        cursor = page.headers.get("X-Next-Cursor", "")
    assert len(seen) == 8 and set(ids) <= set(seen) and len(set(seen)) == 8
    assert seen == [c["id"] for c in client.get("/api/conversations").json()]
    found = client.get("/api/conversations", params={"q": "PUMP  question"}).json()
    assert len(found) == 7 and "X-Next-Cursor" not in client.get("/api/conversations").headers
    assert [c["title"] for c in client.get("/api/conversations", params={"q": "100%_"}).json()] == [
        "Something else 100%_"
    ]
    assert client.get("/api/conversations", params={"q": "%"}).json()[0]["title"].endswith("%_")
    bad = client.get("/api/conversations", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422 and "cursor" in bad.json()["detail"]
    assert client.get("/api/conversations", params={"limit": 0}).status_code == 422


def test_only_owners_and_admins_change_documents(engine: Engine) -> None:
    users = {u: pbkdf2_hash(u, iterations=1000) for u in ("alice", "bob", "carol")}
    keys = ApiKeys(engine.log.db)
    a, b, c = (auth(keys.create(u, "test")[1]) for u in ("alice", "bob", "carol"))
    settings = engine.settings.model_copy(update={"admins": "carol"})
    with TestClient(create_app(engine, settings, users=users)) as client:
        added = upload(client, ("acme.md", ACME.encode()), headers=a).json()["results"][0]
        assert added["status"] == "added"
        assert added["document"]["owner"] == added["document"]["added_by"] == "alice"
        # bob cannot replace or delete alice's document; nothing changes
        theirs = upload(client, ("acme.md", b"Bob's own acme notes."), headers=b).json()
        result = theirs["results"][0]
        assert result["status"] == "error" and "belongs to alice" in result["error"]
        assert "RAGCHAT_ADMINS" in result["error"]
        refused = client.delete("/api/documents/acme.md", headers=b)
        assert refused.status_code == 403 and "belongs to alice" in refused.json()["detail"]
        (doc,) = client.get("/api/documents", headers=b).json()
        assert doc["version"] == 1 and doc["owner"] == "alice"
        # alice makes a new version; the admin makes another one; the owner stays alice
        v2 = upload(client, ("acme.md", ACME.encode() + b"\nMore.\n"), headers=a).json()
        assert v2["results"][0]["status"] == "replaced"
        v3 = upload(client, ("acme.md", ACME.encode() + b"\nCarol's.\n"), headers=c).json()
        record = v3["results"][0]["document"]
        assert (record["version"], record["owner"], record["added_by"]) == (3, "alice", "carol")
        bobs = upload(client, ("bob.md", b"# Bob\n\nBob's notes."), headers=b).json()
        assert bobs["results"][0]["document"]["owner"] == "bob"
        assert client.delete("/api/documents/bob.md", headers=b).status_code == 200
        assert client.delete("/api/documents/acme.md", headers=c).status_code == 200
        assert client.get("/api/documents", headers=a).json() == []


def test_without_accounts_the_operator_changes_everything(client: TestClient) -> None:
    upload(client, ("acme.md", ACME.encode()))
    (doc,) = client.get("/api/documents").json()
    assert doc["owner"] is None and doc["added_by"] is None
    assert client.delete("/api/documents/acme.md").status_code == 200


def test_a_picture_upload_reports_its_ocr_pages_and_ocr_chunks(client: TestClient) -> None:
    from tests import docmaker as dm

    picture = dm.make_text_image(["The spare boiler key hangs in the garage."])
    result = upload(client, ("key-note.png", picture)).json()["results"][0]
    assert result["status"] == "added", result
    assert result["document"]["doc_type"] == "image" and result["document"]["ocr_pages"] == [1]
    shown = client.get("/api/documents/key-note.png").json()
    assert shown["ocr_pages"] == [1]
    assert shown["chunks"] and all(c["ocr"] for c in shown["chunks"])
    assert "spare boiler key" in shown["chunks"][0]["text"]
    listed = client.get("/api/documents").json()
    assert [d["ocr_pages"] for d in listed] == [[1]]

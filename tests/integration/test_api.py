"""The REST API, the OpenAI-compatible endpoint and accounts against a real `ragchat serve`.

Real default models, Chroma and SQLite (the server shared with the web app tests), the `openai`
Python client, API keys made with `ragchat apikey create`, and the access control of both the
REST API and the Gradio app's endpoints with two accounts. Also: migration 0002 on an empty
database and on an existing 0001 database with data (SQLite and PostgreSQL).
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from gradio_client import Client

from rag_core.db.apikeys import ApiKeys
from rag_core.db.database import Database, alembic_config
from rag_core.db.log import ConversationLog
from tests.sse import sse_events
from tests.webapp_server import ROOT, RunningServer, start_server
from webapp.auth import hash_password

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()

VELLOR = """# Vellor pump manual

## Maintenance

The Vellor pump needs a new membrane every 1400 operating hours.

## Origin

The Vellor pump was built by Odile Marchetti in Trieste.
"""
QUESTION = "How often does the Vellor pump need a new membrane?"
SLOW = 300


@pytest.fixture(scope="module")
def server() -> RunningServer:
    return start_server()


@pytest.fixture(scope="module")
def http(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=SLOW)


@pytest.fixture(scope="module")
def vellor(http: httpx.Client) -> dict[str, Any]:
    name = f"vellor-{uuid.uuid4().hex[:6]}.md"
    files = [("files", (name, VELLOR.encode(), "text/markdown"))]
    r = http.post("/api/documents", files=files)
    assert r.status_code == 200, r.text
    result = r.json()["results"][0]
    assert result["status"] == "added", result
    document: dict[str, Any] = result["document"]
    return document


def test_health_documents_and_upload_results(http: httpx.Client, vellor: dict[str, Any]) -> None:
    health = http.get("/healthz").json()
    assert health["status"] == "ok" and health["documents"] >= 1 and health["accounts"] is False
    files = [
        ("files", ("again.md", VELLOR.encode(), "text/markdown")),
        ("files", ("blank.txt", b"  \n ", "text/plain")),
        ("files", ("noise.txt", bytes(range(256)) * 4, "text/plain")),
    ]
    results = http.post("/api/documents", files=files).json()["results"]
    assert [r["status"] for r in results] == ["duplicate", "error", "error"]
    assert results[0]["document"]["id"] == vellor["id"]
    assert "blank.txt" in results[1]["error"] and "noise.txt" in results[2]["error"]
    listed = {d["id"]: d for d in http.get("/api/documents").json()}
    assert listed[vellor["id"]]["name"] == vellor["name"]
    shown = http.get(f"/api/documents/{vellor['id']}").json()
    assert any("1400 operating hours" in c["text"] for c in shown["chunks"])
    assert "/api/ask/stream" in http.get("/openapi.json").json()["paths"]
    assert http.get("/docs").status_code == 404


def test_ask_streams_events_and_the_turn_is_logged(
    http: httpx.Client, vellor: dict[str, Any]
) -> None:
    body = {"question": QUESTION, "max_new_tokens": 40}
    with http.stream("POST", "/api/ask/stream", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)
    names = [e for e, _ in events]
    assert names[0] == "retrieved" and names[-1] == "done", names
    assert names.count("token") >= 3
    assert events[0][1]["passages"][0]["document"] == vellor["name"]
    done = events[-1][1]
    assert "1400" in done["answer"] and done["status"] == "complete"
    cite = done["citations"][0]
    assert cite["document"] == vellor["name"] and "1400" in (cite["support"] or cite["text"])
    conv, turn = done["conversation_id"], done["turn_id"]

    follow = http.post(
        "/api/ask",
        json={"question": "Who built it?", "conversation_id": conv, "answer_mode": "extractive"},
    ).json()
    assert follow["conversation_id"] == conv and "Odile Marchetti" in follow["answer"]

    detail = http.get(f"/api/conversations/{conv}").json()
    assert [t["id"] for t in detail["turns"]] == [turn, follow["turn_id"]]
    assert http.get(f"/api/turns/{turn}/citations").json() == done["citations"]
    passages = http.get(f"/api/turns/{turn}/passages").json()
    assert any(p["cited"] for p in passages)
    exported = http.get(f"/api/conversations/{conv}/export").json()
    assert exported["conversation"]["turns"][1]["question"] == "Who built it?"
    assert http.patch(f"/api/conversations/{conv}", json={"title": "Vellor"}).json()["title"] == (
        "Vellor"
    )
    assert http.delete(f"/api/conversations/{conv}").status_code == 204
    assert http.get(f"/api/turns/{turn}").status_code == 404


def test_openai_client_gets_answers_with_citations(
    server: RunningServer, vellor: dict[str, Any]
) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=server.url + "v1", api_key="unused-without-accounts", timeout=SLOW)
    assert [m.id for m in client.models.list()] == ["ragchat", "ragchat/Default"]
    messages: list[Any] = [{"role": "user", "content": QUESTION}]
    reply = client.chat.completions.create(model="ragchat", messages=messages, max_tokens=40)
    content = reply.choices[0].message.content or ""
    assert "1400" in content and "[1]" in content
    extra = reply.model_extra or {}
    citation = extra["citations"][0]
    assert citation["number"] == 1 and citation["document"] == vellor["name"]
    assert "1400" in citation["text"] and citation["support"]

    history = [*messages, {"role": "assistant", "content": content}]
    stream = client.chat.completions.create(
        model="ragchat",
        messages=[*history, {"role": "user", "content": "Who built the Vellor pump?"}],
        stream=True,
        extra_body={"answer_mode": "extractive"},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    last = chunks[-1].model_extra or {}
    assert "Odile Marchetti" in text
    assert last["citations"] and last["citations"][0]["document"] == vellor["name"]
    assert last["ragchat"]["turn_id"] and chunks[-1].choices[0].finish_reason == "stop"

    refusal = client.chat.completions.create(
        model="ragchat",
        messages=[{"role": "user", "content": "Which football team won the 1998 World Cup?"}],
    )
    assert (refusal.choices[0].message.content or "").startswith("Your documents don't say")
    assert (refusal.model_extra or {})["citations"] == []


# -- accounts ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_server() -> RunningServer:
    # the same server as tests/integration/test_webapp_api.py (same name and users): this
    # module uses carol and dave, that one alice and bob, so neither sees the other's data
    users = ",".join(
        f"{u}:{hash_password(p)}"
        for u, p in [("alice", "wonderland"), ("bob", "builder"), ("carol", "cellar"),
                     ("dave", "diver")]
    )  # fmt: skip
    return start_server("auth", auth=users)


def apikey(server: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webapp.cli", "apikey", *args],
        cwd=ROOT, env=server.env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_accounts_keys_cookies_and_isolation(auth_server: RunningServer, tmp_path: Path) -> None:
    from openai import AuthenticationError, NotFoundError, OpenAI

    url = auth_server.url
    made = apikey(auth_server, "create", "--user", "carol", "--name", "tests")
    assert made.returncode == 0, made.stderr
    carol_key = made.stdout.strip()
    assert carol_key.startswith("rck_") and "shown only now" in made.stderr
    dave_key = apikey(auth_server, "create", "--user", "dave").stdout.strip()
    nobody = apikey(auth_server, "create", "--user", "mallory")
    assert nobody.returncode == 1 and "not in RAGCHAT_AUTH" in nobody.stderr
    listed = apikey(auth_server, "list", "--user", "carol").stdout
    assert carol_key[:12] in listed and carol_key not in listed

    a = httpx.Client(base_url=url, timeout=SLOW, headers={"Authorization": f"Bearer {carol_key}"})
    b = httpx.Client(base_url=url, timeout=SLOW, headers={"Authorization": f"Bearer {dave_key}"})
    assert httpx.get(url + "api/conversations").status_code == 401
    assert httpx.get(url + "healthz").json()["accounts"] is True
    with pytest.raises(AuthenticationError):
        OpenAI(base_url=url + "v1", api_key="rck_wrong").models.list()

    # the login cookies gradio sets are HttpOnly
    login = httpx.post(url + "login", data={"username": "carol", "password": "cellar"})
    cookies = login.headers.get_list("set-cookie")
    assert login.status_code == 200 and cookies
    assert all("httponly" in c.lower() for c in cookies), cookies

    # carol: a document, a conversation through the REST API and one through the UI's API
    note = tmp_path / "carol-rota.txt"
    note.write_text("The Ostrava night shift starts at 22 o'clock sharp.", encoding="utf-8")
    assert a.post("/api/documents", files=[("files", (note.name, note.read_bytes()))]).json()
    body = {"question": "When does the Ostrava night shift start?", "answer_mode": "extractive"}
    rest = a.post("/api/ask", json=body).json()
    conv, turn = rest["conversation_id"], rest["turn_id"]
    carol = Client(url, auth=("carol", "cellar"), verbose=False)
    ui_final = carol.submit(body["question"], "hybrid", 5, "Short", "extractive",
                            api_name="/ask").result(timeout=SLOW)  # fmt: skip
    ui_conv = next(c["id"] for c in carol.predict(api_name="/conversations") if c["id"] != conv)
    ui_turn = max(int(t) for t in re.findall(r'data-turn-id="(\d+)"', ui_final[1]))

    # dave, through every REST endpoint that takes an id: 404, like an id that does not exist
    for c_id, t_id in ((conv, turn), (ui_conv, ui_turn)):
        for method, path, payload in [
            ("GET", f"/api/conversations/{c_id}", None),
            ("GET", f"/api/conversations/{c_id}/export", None),
            ("PATCH", f"/api/conversations/{c_id}", {"title": "taken"}),
            ("DELETE", f"/api/conversations/{c_id}", None),
            ("GET", f"/api/turns/{t_id}", None),
            ("GET", f"/api/turns/{t_id}/citations", None),
            ("GET", f"/api/turns/{t_id}/passages", None),
            ("POST", "/api/ask", {**body, "conversation_id": c_id}),
            ("POST", "/api/ask/stream", {**body, "conversation_id": c_id}),
        ]:
            r = b.request(method, path, json=payload)
            assert r.status_code == 404, (method, path, r.status_code, r.text)
    assert b.get("/api/conversations").json() == []
    with pytest.raises(NotFoundError):
        OpenAI(base_url=url + "v1", api_key=dave_key).chat.completions.create(
            model="ragchat",
            messages=[{"role": "user", "content": body["question"]}],
            extra_body={"conversation_id": conv},
        )

    # dave, through the Gradio app's endpoints that take an id
    dave = Client(url, auth=("dave", "diver"), verbose=False)
    for c_id in (conv, ui_conv):
        transcript, sources, _history, title, saved = dave.predict(
            c_id, api_name="/open_conversation"
        )
        assert "Ostrava" not in transcript + sources and title == "" and saved == ""
    dave.predict("taken", api_name="/rename_conversation")  # nothing open: nothing renamed
    dave.predict(api_name="/delete_conversation")
    dave.predict(turn, -1, "mine", api_name="/feedback")
    assert "Ostrava" not in str(dave.predict(turn, 1, api_name="/show_source"))
    with pytest.raises(Exception, match="not found"):
        dave.predict(ui_turn, api_name="/turn")
    dave_answer = dave.submit(body["question"], "hybrid", 5, "Short", "extractive",
                              api_name="/ask").result(timeout=SLOW)  # fmt: skip
    assert len(re.findall(r'data-turn-id="', dave_answer[1])) == 1  # a new one
    assert [c["turns"] for c in dave.predict(api_name="/conversations")] == [1]

    # carol's conversations, turns and feedback are untouched
    mine = {c["id"]: c for c in a.get("/api/conversations").json()}
    assert mine[conv]["turn_count"] == 1 and mine[ui_conv]["turn_count"] == 1
    assert mine[conv]["title"] != "taken"
    assert a.get(f"/api/turns/{turn}").json()["feedback_rating"] is None
    assert a.get(f"/api/conversations/{ui_conv}/export").status_code == 200
    assert apikey(auth_server, "revoke", "--user", "carol", carol_key[:12]).returncode == 0
    assert a.get("/api/conversations").status_code == 401


# -- migration 0002 ------------------------------------------------------------------------------


def test_migration_0002_on_empty_and_on_existing_database(db_url: str) -> None:
    db = Database(db_url)
    try:
        db.migrate()  # an empty database: every migration, 0002 among them
        with db.engine.connect() as conn:
            assert "api_keys" in sa.inspect(conn).get_table_names()
        _, key = ApiKeys(db).create("alice")
        assert ApiKeys(db).authenticate(key) == "alice"

        with db.engine.begin() as conn:  # back to an empty database, then to 0001 with data
            command.downgrade(alembic_config(conn), "base")
            assert "conversations" not in sa.inspect(conn).get_table_names()
            command.upgrade(alembic_config(conn), "0001")
            conn.execute(
                sa.text(
                    'INSERT INTO conversations (id, "user", title, created_at, updated_at) '
                    "VALUES ('c1', 'alice', 'Kept', :now, :now)"
                ),
                {"now": datetime(2025, 1, 2, 3, 4, 5)},
            )
        assert db.revision() == "0001"
        db.migrate()  # an existing 0001 database with data
        assert db.revision() == HEAD
        with db.engine.connect() as conn:
            assert "api_keys" in sa.inspect(conn).get_table_names()
            rows = conn.execute(sa.text('SELECT id, "user", title FROM conversations')).all()
        assert [tuple(r) for r in rows] == [("c1", "alice", "Kept")]
        assert ConversationLog(db).get_conversation("c1", "alice").title == "Kept"
        _, key = ApiKeys(db).create("alice", "after upgrade")
        assert ApiKeys(db).authenticate(key) == "alice"
    finally:
        db.dispose()

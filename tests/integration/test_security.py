"""What a probe with two accounts found, each reproduced against a real `ragchat serve`.

Gradio's upload step must never open, read or copy a server path that did not come from the
caller's own upload (/dev/zero hung the server; the SQLite file copied through Gradio broke its
locks and lost conversations). Event results and queue sessions belong to their user. Logins
are throttled and logged, off the event loop; /logout only by POST; cookies SameSite=Lax.
"""

from __future__ import annotations

import concurrent.futures
import json
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.webapp_server import ROOT, RunningServer, launch
from webapp.auth import hash_password

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

USERS = {"alice": "wonderland", "bob": "builder", "mallory": "sneaky-1"}
FAST = 5.0  # seconds within which a refused request must answer


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("secure-home")
    users = ",".join(f"{u}:{hash_password(p)}" for u, p in USERS.items())
    server = launch(home, {"RAGCHAT_AUTH": users, "RAGCHAT_MAX_NEW_TOKENS": "40"})
    yield server
    server.stop()


def login(server: RunningServer, user: str) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=120)
    r = client.post("login", data={"username": user, "password": USERS[user]})
    assert r.status_code == 200, r.text
    return client


def healthz_seconds(server: RunningServer) -> float:
    started = time.monotonic()
    r = httpx.get(server.url + "healthz", timeout=10)
    assert r.status_code == 200
    return time.monotonic() - started


def file_data(path: str, name: str = "z.txt") -> dict[str, Any]:
    return {"path": path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def call_upload(client: httpx.Client, path: str) -> tuple[str, float]:
    """/gradio_api/call/upload naming `path`: (the event stream's text, seconds it took)."""
    started = time.monotonic()
    call = client.post("gradio_api/call/upload", json={"data": [[file_data(path)]]})
    assert call.status_code == 200, call.text
    stream = client.get(f"gradio_api/call/upload/{call.json()['event_id']}", timeout=30)
    return stream.text, time.monotonic() - started


def fn_index(client: httpx.Client, api_name: str) -> int:
    config = client.get("config").json()
    for dep in config["dependencies"]:
        if dep.get("api_name") == api_name:
            return int(dep["id"])
    raise AssertionError(f"no event {api_name!r}")


def queue_upload(client: httpx.Client, path: str, fn: int) -> tuple[str, float]:
    """The same through the browser's door: /gradio_api/queue/join and its event stream."""
    session = uuid.uuid4().hex[:11]
    started = time.monotonic()
    body = {"data": [[file_data(path)]], "fn_index": fn, "session_hash": session,
            "event_data": None, "trigger_id": None}  # fmt: skip
    join = client.post("gradio_api/queue/join", json=body)
    assert join.status_code == 200, join.text
    messages = []
    with client.stream("GET", f"gradio_api/queue/data?session_hash={session}", timeout=30) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                msg = json.loads(line[6:])
                messages.append(msg)
                if msg.get("msg") == "process_completed":
                    break
    return json.dumps(messages), time.monotonic() - started


def stored_files(home: Path) -> list[Path]:
    return sorted(p for p in (home / "uploads").rglob("*") if p.is_file())


def sqlite_report(home: Path) -> dict[str, Any]:
    """PRAGMA integrity_check and row counts, read by a second process."""
    code = (
        "import json, sqlite3, sys; db = sqlite3.connect(sys.argv[1]);"
        "print(json.dumps({'integrity': db.execute('PRAGMA integrity_check').fetchone()[0],"
        "'conversations': db.execute('select count(*) from conversations').fetchone()[0],"
        "'turns': db.execute('select count(*) from turns').fetchone()[0]}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(home / "ragchat.sqlite")],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    report: dict[str, Any] = json.loads(out.stdout)
    return report


def test_server_paths_are_never_read_and_the_database_stays_intact(
    secure: RunningServer,
) -> None:
    alice, bob = login(secure, "alice"), login(secure, "bob")
    # alice's knowledge base and two conversations, before anything else
    doc = ("vellor.md", b"# Vellor\n\nThe Vellor pump needs a new membrane every 1400 hours.\n")
    sent = alice.post("gradio_api/upload", files={"files": doc})
    assert sent.status_code == 200, sent.text
    text, _ = call_upload_named(alice, sent.json()[0], "vellor.md")
    assert "added" in text, text
    for q in ("How often does the Vellor pump need a new membrane?", "Who built the Vellor pump?"):
        ask = alice.post("gradio_api/call/ask",
                         json={"data": [q, "hybrid", 5, "Short", "extractive"]})  # fmt: skip
        assert ask.status_code == 200, ask.text
        assert "complete" in alice.get(f"gradio_api/call/ask/{ask.json()['event_id']}").text
    before = sqlite_report(secure.home)
    assert before["integrity"] == "ok" and before["conversations"] == 2

    # bob's pending upload: a real upload of his, not yet submitted
    pending = bob.post("gradio_api/upload", files={"files": ("bob.txt", b"Bob's own notes.")})
    bob_path = pending.json()[0]
    home = secure.home
    targets = ["/dev/zero", "/etc/passwd", str(home / "ragchat.sqlite"),
               str(home / "webapp.secret"), bob_path]  # fmt: skip
    fn = fn_index(alice, "upload")
    for target in targets:
        for door in (call_upload, lambda c, p: queue_upload(c, p, fn)):
            text, seconds = door(alice, target)
            assert "not an uploaded file" in text, (target, text)
            assert seconds < FAST, (target, seconds)
            assert healthz_seconds(secure) < 2.0
    # nothing was copied anywhere: only bob's own pending upload is stored
    assert stored_files(home) == [Path(bob_path)]
    log = secure.log_tail(200_000)
    assert "passwd" not in "".join(p.name for p in stored_files(home))
    assert log.count("did not upload") >= 2 * len(targets)
    # bob may still use his own upload
    text, _ = call_upload_named(bob, bob_path, "bob.txt")
    assert "added" in text, text

    # the CLI on the same folder, then many requests at once: nothing breaks or is lost
    created = subprocess.run(
        [sys.executable, "-m", "webapp.cli", "apikey", "create", "--user", "alice"],
        cwd=ROOT, env=secure.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[0]
    api = httpx.Client(base_url=secure.url, headers={"Authorization": f"Bearer {key}"},
                       timeout=300)  # fmt: skip

    def one(i: int) -> int:
        if i % 4 == 0:
            body = {"question": "How often does the Vellor pump need a new membrane?",
                    "answer_mode": "extractive"}  # fmt: skip
            return api.post("api/ask", json=body).status_code
        return api.get("api/conversations").status_code

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(one, range(40)))
    assert statuses == [200] * 40, statuses
    after = sqlite_report(home)
    assert after == {"integrity": "ok", "conversations": 12, "turns": 12}, after
    conversations = api.get("api/conversations").json()
    assert len(conversations) == 12


def call_upload_named(client: httpx.Client, path: str, name: str) -> tuple[str, float]:
    started = time.monotonic()
    call = client.post("gradio_api/call/upload", json={"data": [[file_data(path, name)]]})
    assert call.status_code == 200, call.text
    stream = client.get(f"gradio_api/call/upload/{call.json()['event_id']}", timeout=300)
    return stream.text, time.monotonic() - started


def test_event_results_and_queue_sessions_belong_to_their_user(secure: RunningServer) -> None:
    alice, bob = login(secure, "alice"), login(secure, "bob")
    call = alice.post("gradio_api/call/conversations", json={"data": []})
    event = call.json()["event_id"]
    assert bob.get(f"gradio_api/call/conversations/{event}").status_code == 404
    assert "complete" in alice.get(f"gradio_api/call/conversations/{event}").text  # not emptied
    session = uuid.uuid4().hex[:11]
    body = {"data": [], "fn_index": fn_index(alice, "conversations"), "session_hash": session,
            "event_data": None, "trigger_id": None}  # fmt: skip
    assert alice.post("gradio_api/queue/join", json=body).status_code == 200
    assert bob.get(f"gradio_api/queue/data?session_hash={session}").status_code == 404
    assert bob.post("gradio_api/queue/join", json=body).status_code == 404
    cancel = {"session_hash": session, "fn_index": 0, "event_id": "x"}
    assert bob.post("gradio_api/cancel", json=cancel).status_code == 404
    assert httpx.post(secure.url + "gradio_api/cancel", json=cancel).status_code == 401
    with alice.stream("GET", f"gradio_api/queue/data?session_hash={session}") as r:
        assert r.status_code == 200
        assert any("process_completed" in line for line in r.iter_lines())


def test_logins_are_throttled_logged_and_off_the_event_loop(secure: RunningServer) -> None:
    url = secure.url + "login"
    wrong = {"username": "mallory", "password": "guess"}
    statuses = [httpx.post(url, data=wrong, timeout=30).status_code for _ in range(6)]
    assert statuses == [400] * 6
    locked = httpx.post(url, data={"username": "mallory", "password": USERS["mallory"]})
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) >= 1
    assert "Too many failed logins" in locked.json()["detail"]
    assert "failed login for 'mallory'" in secure.log_tail(100_000)
    # 14 wrong passwords at once for other names: the server keeps answering meanwhile
    health: list[float] = []
    with concurrent.futures.ThreadPoolExecutor(14) as pool:
        futures = [
            pool.submit(httpx.post, url, data={"username": f"u{i}", "password": "x"}, timeout=60)
            for i in range(14)
        ]
        while not all(f.done() for f in futures):
            health.append(healthz_seconds(secure))
        assert {f.result().status_code for f in futures} <= {400, 429}
    # before: 20 checks on the event loop held /healthz for 5.5 s (14 would hold it ~3.9 s); now
    # the loop stays free. The hashing threads still share the cores with /healthz, so the bounds
    # leave room for that and for a machine busy with other work (CI saw a median of 0.31 s).
    assert health and statistics.median(health) < 1.0 and max(health) < 2.5, health
    # 20 failures from one address so far: below its own limit, so others still log in from it
    login(secure, "bob")


def test_logout_needs_post_and_cookies_are_lax(secure: RunningServer) -> None:
    r = httpx.post(secure.url + "login", data={"username": "bob", "password": USERS["bob"]})
    cookies = r.headers.get_list("set-cookie")
    assert cookies and all("SameSite=Lax" in c and "SameSite=none" not in c for c in cookies)
    assert all("Max-Age=" in c for c in cookies)
    bob = login(secure, "bob")
    assert bob.get("logout", follow_redirects=False).status_code == 405
    assert bob.get("gradio_api/info").status_code == 200  # still signed in
    evil = bob.post("logout", headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403
    out = bob.post("logout", headers={"Origin": secure.url.rstrip("/")}, follow_redirects=False)
    assert out.status_code == 302
    assert bob.get("gradio_api/info").status_code == 401
    csrf = httpx.post(secure.url + "login", data={"username": "bob", "password": USERS["bob"]},
                      headers={"Origin": "https://evil.example"})  # fmt: skip
    assert csrf.status_code == 403 and "set-cookie" not in csrf.headers


def test_only_the_owner_deletes_through_the_page(secure: RunningServer) -> None:
    alice, bob = login(secure, "alice"), login(secure, "bob")
    body = b"# Quillon\n\nThe Quillon reactor was commissioned by the Harbin Trust.\n"
    sent = alice.post("gradio_api/upload", files={"files": ("quillon.md", body)}).json()[0]
    text, _ = call_upload_named(alice, sent, "quillon.md")
    assert "added" in text, text

    def documents(client: httpx.Client) -> str:
        call = client.post("gradio_api/call/documents", json={"data": [None]})
        return client.get(f"gradio_api/call/documents/{call.json()['event_id']}").text

    table = documents(bob)
    assert "quillon.md" in table and "alice" in table  # the table says who added it
    call = bob.post("gradio_api/call/delete_document", json={"data": ["quillon.md"]})
    bob.get(f"gradio_api/call/delete_document/{call.json()['event_id']}")
    assert "quillon.md" in documents(bob)
    # a same-named upload of bob's does not replace alice's document
    sent = bob.post("gradio_api/upload", files={"files": ("quillon.md", b"Bob's text.")}).json()
    text, _ = call_upload_named(bob, sent[0], "quillon.md")
    assert "belongs to alice" in text, text
    call = alice.post("gradio_api/call/delete_document", json={"data": ["quillon.md"]})
    assert (
        "complete" in alice.get(f"gradio_api/call/delete_document/{call.json()['event_id']}").text
    )
    assert "quillon.md" not in documents(alice)

"""The web guards (webapp/security) in isolation, and in front of the app with fake models."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rag_core.config import Settings
from tests.unit.test_api import make_engine
from webapp.api import create_app
from webapp.security import (
    LoginLimiter,
    SessionTokens,
    UploadLedger,
    _lax_cookie,
    file_paths,
    parse_origins,
    same_origin,
)
from webapp.ui.knowledge import clean_stale_uploads


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(time, "monotonic", c)  # the guards read time.monotonic()
    return c


def test_session_tokens_expire(clock: Clock) -> None:
    tokens = SessionTokens(max_age_s=60)
    tokens["t1"] = "alice"
    assert tokens.get("t1") == "alice" and "t1" in tokens and tokens["t1"] == "alice"
    clock.now += 59
    tokens["t2"] = "bob"
    assert tokens.get("t1") == "alice"
    clock.now += 2
    assert tokens.get("t1") is None and "t1" not in tokens
    with pytest.raises(KeyError):
        _ = tokens["t1"]
    assert list(tokens.keys()) == ["t2"]
    del tokens["t2"]
    assert tokens.get("t2") is None


def test_login_limiter_backs_off_per_account_and_client(clock: Clock) -> None:
    limiter = LoginLimiter(free=5, client_free=8, max_lock_s=60)
    for _ in range(5):
        assert limiter.failed("Alice", "10.0.0.1") == 0
    assert limiter.retry_after("alice", "10.0.0.1") == 0
    assert limiter.failed("alice", "10.0.0.1") == 2  # the 6th failure: 2 s
    assert limiter.retry_after("ALICE ", "10.0.0.2") == 2  # the account, from anywhere
    clock.now += 2
    assert limiter.failed("alice", "10.0.0.1") == 4
    assert limiter.failed("alice", "10.0.0.1") == 8
    for _ in range(10):
        limiter.failed("alice", "10.0.0.1")
    assert limiter.retry_after("alice", "10.0.0.1") == 60  # capped
    # the address: other accounts from it are locked once it passes its own, larger limit
    assert limiter.retry_after("bob", "10.0.0.1") == 60
    assert limiter.retry_after("bob", "10.0.0.9") == 0
    limiter.succeeded("alice", "10.0.0.1")
    assert limiter.retry_after("alice", "10.0.0.1") == 0


def test_upload_ledger_binds_paths_to_their_uploaders(clock: Clock, tmp_path: Path) -> None:
    ledger = UploadLedger(ttl_s=100)
    shared = str(tmp_path / "a" / "note.txt")
    ledger.record("alice", [shared])
    ledger.record("bob", [shared, str(tmp_path / "b.txt")])
    assert ledger.owned_by(shared, "alice") and ledger.owned_by(shared, "bob")
    assert not ledger.owned_by(str(tmp_path / "b.txt"), "alice")
    assert not ledger.owned_by("/dev/zero", "alice")
    clock.now += 101
    assert not ledger.owned_by(shared, "bob")


def test_file_paths_finds_every_file_payload() -> None:
    data = [[{"path": "/a", "meta": {"_type": "gradio.FileData"}}, {"path": "/b"}], "x",
            {"value": {"nested": [{"path": "/c"}]}}, {"path": 3}]  # fmt: skip
    assert file_paths(data) == ["/a", "/b", "/c"]
    assert file_paths("plain text") == []


def test_origins_and_cookies() -> None:
    assert parse_origins(" https://a.example:8443/, http://b.example ") == {
        "https://a.example:8443",
        "http://b.example",
    }
    for bad in ("a.example", "https://a.example/path", "ftp://x"):
        with pytest.raises(ValueError, match="not an origin"):
            parse_origins(bad)
    with pytest.raises(ValueError, match="not an origin"):
        Settings(allowed_origins="evil.example")
    assert same_origin("https://ragchat.test", {"host": "ragchat.test"}, "https")
    assert same_origin("https://ragchat.test:443", {"host": "ragchat.test"}, "https")
    assert same_origin("http://127.0.0.1:7860", {"host": "127.0.0.1:7860"}, "http")
    assert same_origin("https://ragchat.test", {"host": "app:7860", "x-forwarded-host": "ragchat.test"}, "https")  # fmt: skip
    assert not same_origin("https://evil.test", {"host": "ragchat.test"}, "https")
    assert not same_origin("null", {"host": "ragchat.test"}, "https")
    assert not same_origin("https://ragchat.test:8443", {"host": "ragchat.test"}, "https")
    lax = _lax_cookie("access-token-x=abc; HttpOnly; Path=/; SameSite=none; Secure", 3600)
    assert lax == "access-token-x=abc; HttpOnly; Path=/; Secure; SameSite=Lax; Max-Age=3600"
    gone = _lax_cookie('t=""; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/', 3600)
    assert gone.endswith("SameSite=Lax") and gone.count("Max-Age") == 1


def test_stale_uploads_are_cleaned(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    incoming = settings.uploads_path / "incoming" / "abc"
    incoming.mkdir(parents=True)
    old, new = incoming / "old.pdf", settings.uploads_path / "fresh.txt"
    old.write_bytes(b"x" * 100)
    new.write_bytes(b"y")
    fresh_folder = settings.uploads_path / "incoming" / "def"  # an upload may be moving in
    fresh_folder.mkdir()
    past = time.time() - 7200
    os.utime(old, (past, past))
    os.utime(incoming, (past, past))
    assert clean_stale_uploads(settings, 3600) == 1
    assert not old.exists() and not incoming.exists() and new.exists()
    assert fresh_folder.is_dir() and (settings.uploads_path / "incoming").is_dir()


@pytest.fixture
def guarded(tmp_path: Path) -> Any:
    engine = make_engine(tmp_path)
    settings = engine.settings.model_copy(update={"allowed_origins": "https://portal.example"})
    return create_app(engine, settings)


def test_cors_only_for_listed_origins_and_writes_only_from_home(guarded: Any) -> None:
    with TestClient(guarded, base_url="https://ragchat.test") as client:
        evil = client.get("/api/documents", headers={"Origin": "https://evil.test"})
        assert evil.status_code == 200 and "access-control-allow-origin" not in evil.headers
        portal = client.get("/api/documents", headers={"Origin": "https://portal.example"})
        assert portal.headers["access-control-allow-origin"] == "https://portal.example"
        preflight = client.options(
            "/api/ask",
            headers={"Origin": "https://evil.test", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in preflight.headers
        body = {"question": "What is the maximum upload size?"}
        refused = client.post("/api/ask", json=body, headers={"Origin": "https://evil.test"})
        assert refused.status_code == 403 and "RAGCHAT_ALLOWED_ORIGINS" in refused.text
        site = client.post("/api/ask", json=body, headers={"Sec-Fetch-Site": "cross-site"})
        assert site.status_code == 403
        assert client.post("/api/ask", json=body, headers={"Origin": "https://portal.example"}).status_code == 200  # fmt: skip
        assert client.post("/api/ask", json=body, headers={"Origin": "https://ragchat.test"}).status_code == 200  # fmt: skip
        assert client.get("/logout").status_code == 405

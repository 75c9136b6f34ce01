"""Accounts: argon2id password hashes (older PBKDF2 hashes still accepted) and API keys."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from rag_core.db.apikeys import ApiKeys, hash_key
from rag_core.db.database import Database
from rag_core.errors import ConfigError, UserError
from webapp import auth
from webapp.auth import authenticator, hash_password, parse_users, pbkdf2_hash, verify_password


def test_new_hashes_are_argon2id_and_old_pbkdf2_ones_still_verify() -> None:
    encoded = hash_password("s3cret")
    assert encoded.startswith("$argon2id$v=19$")
    assert verify_password("s3cret", encoded) and not verify_password("wrong", encoded)
    assert hash_password("s3cret") != encoded  # salted
    old = pbkdf2_hash("legacy", iterations=1000)
    assert old.startswith("pbkdf2_sha256$1000$")
    assert verify_password("legacy", old) and not verify_password("s3cret", old)
    assert not verify_password("s3cret", "$argon2id$v=19$garbage")
    assert not verify_password("s3cret", "")


def test_user_files_mix_both_kinds_of_hash(tmp_path: Path) -> None:
    a, b = hash_password("wonderland"), pbkdf2_hash("builder", iterations=1000)
    # argon2 hashes hold commas (m=65536,t=3,p=4): inline pairs still split per user
    users = parse_users(f"alice:{a},bob:{b}, carol:{hash_password('c')}")
    assert list(users) == ["alice", "bob", "carol"] and users["alice"] == a
    check = authenticator(users)
    assert check("alice", "wonderland") and check("bob", "builder") and check("carol", "c")
    assert not check("alice", "builder") and not check("dave", "wonderland")
    path = tmp_path / "users"
    path.write_text(f"# team\nalice:{a}\nbob:{b}\n", encoding="utf-8")
    assert parse_users(str(path)) == {"alice": a, "bob": b}
    with pytest.raises(ConfigError, match="argon2id hash of user 'alice' is malformed"):
        parse_users("alice:$argon2id$v=19$nonsense")
    with pytest.raises(ConfigError, match="neither argon2id"):
        parse_users("alice:plaintext")


def test_hash_command_prints_an_argon2id_hash(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("correct horse\n"))
    assert auth.main(["hash", "--user", "alice"]) == 0
    line = capsys.readouterr().out.strip()
    user, encoded = line.split(":", 1)
    assert user == "alice" and encoded.startswith("$argon2id$")
    assert verify_password("correct horse", encoded)
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    assert auth.main(["hash"]) == 1


def test_api_keys_are_stored_only_as_hashes(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'k.sqlite'}")
    db.migrate()
    keys = ApiKeys(db)
    record, key = keys.create("alice", "  laptop   script ")
    assert key.startswith("rck_") and len(key) > 40 and record.name == "laptop script"
    assert record.prefix == key[:12] and record.active
    with db.engine.connect() as conn:
        stored = [tuple(r) for r in conn.execute(sa.text("SELECT * FROM api_keys"))]
    assert key not in str(stored) and hash_key(key) in str(stored)

    assert keys.authenticate(key) == "alice"
    assert keys.list("alice")[0].last_used_at is not None
    assert keys.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert keys.authenticate("not-a-key") is None
    _, bob_key = keys.create("bob")
    assert keys.authenticate(bob_key) == "bob"
    assert [k.user for k in keys.list()] == ["alice", "bob"]

    with pytest.raises(UserError, match="has no API key"):
        keys.revoke("bob", record.prefix)  # alice's key: bob cannot revoke it
    revoked = keys.revoke("alice", str(record.id))
    assert not revoked.active and keys.authenticate(key) is None
    assert keys.authenticate(bob_key) == "bob"
    with pytest.raises(UserError, match="needs a user"):
        keys.create("  ")
    db.dispose()

"""ApiKeys: per-user keys for the HTTP API, stored only as SHA-256 hashes.

A key is ``rck_`` followed by 43 random URL-safe characters (256 bits). It is shown once, when
created; the database keeps its hash and a short non-secret prefix to tell keys apart.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from rag_core.db.database import Database
from rag_core.db.models import ApiKeyRow, from_row, utcnow
from rag_core.errors import UserError

KEY_PREFIX = "rck_"
SHOWN_PREFIX = 12  # characters of the key kept in clear: "rck_" + 8 random ones
TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per key


def hash_key(key: str) -> str:
    """The stored form of a key: SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKeyRecord:
    """An API key as listed: never the key itself."""

    id: int
    user: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _record(row: ApiKeyRow) -> ApiKeyRecord:
    return from_row(ApiKeyRecord, row)


class ApiKeys:
    """Create, list, revoke and check API keys."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, user: str, name: str = "") -> tuple[ApiKeyRecord, str]:
        """A new key for `user`: its record and the key itself (shown once, never stored)."""
        user = user.strip()
        if not user:
            raise UserError("An API key needs a user name")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self.db.session() as s:
            row = ApiKeyRow(
                user=user,
                name=" ".join(name.split())[:255],
                prefix=key[:SHOWN_PREFIX],
                key_hash=hash_key(key),
                created_at=utcnow(),
            )
            s.add(row)
            s.flush()
            return _record(row), key

    def list(self, user: str | None = None) -> list[ApiKeyRecord]:
        """Keys of one user (or of everyone), oldest first, revoked ones included."""
        stmt = sa.select(ApiKeyRow).order_by(ApiKeyRow.id)
        if user is not None:
            stmt = stmt.where(ApiKeyRow.user == user)
        with self.db.read_session() as s:
            return [_record(r) for r in s.scalars(stmt)]

    def revoke(self, user: str, key: str) -> ApiKeyRecord:
        """Revoke one of `user`'s keys, named by id, by its shown prefix or by the key itself."""
        key = key.strip()
        cond = [ApiKeyRow.prefix == key, ApiKeyRow.key_hash == hash_key(key)]
        if key.isdigit():
            cond.append(ApiKeyRow.id == int(key))
        with self.db.session() as s:
            rows = s.scalars(
                sa.select(ApiKeyRow).where(ApiKeyRow.user == user, sa.or_(*cond))
            ).all()
            if not rows:
                raise UserError(f"user {user!r} has no API key {key!r} (see `ragchat apikey list`)")
            if len(rows) > 1:
                raise UserError(f"{key!r} names several keys of {user!r}: give the key's id")
            row = rows[0]
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return _record(row)

    def authenticate(self, key: str) -> str | None:
        """The user an active key belongs to, or None. Records when the key was last used."""
        if not key.startswith(KEY_PREFIX):
            return None
        digest = hash_key(key)
        with self.db.read_session() as s:
            row = s.scalars(sa.select(ApiKeyRow).where(ApiKeyRow.key_hash == digest)).first()
            if row is None or row.revoked_at is not None:
                return None
            if not hmac.compare_digest(row.key_hash, digest):
                return None
            user, key_id, last = row.user, row.id, row.last_used_at
        now = utcnow()
        if last is None or now - last > TOUCH_EVERY:
            with self.db.session() as s:
                s.execute(
                    sa.update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(last_used_at=now)
                )
        return user

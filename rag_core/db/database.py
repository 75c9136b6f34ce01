"""Database: the engine, sessions and Alembic migrations for SQLite and PostgreSQL.

SQLite gets WAL, a 30 s busy timeout, foreign keys, and write transactions that take the write
lock up front (BEGIN IMMEDIATE), so concurrent writers wait for each other instead of failing
with 'database is locked'. Both backends get a connection pool sized for the web server's
concurrency (POOL_SIZE + POOL_OVERFLOW).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from rag_core.errors import ConfigError

MIGRATIONS_PATH = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Connection pool: the web server runs up to 40 requests at once (Gradio's worker threads), each
# holding at most one connection; a request waits up to POOL_TIMEOUT_S for one, never fails early.
POOL_SIZE = 10
POOL_OVERFLOW = 40
POOL_TIMEOUT_S = 60
_BEGIN_OPTION = "ragchat_sqlite_begin"  # execution option: the BEGIN flavour on SQLite
_PG_MIGRATION_LOCK = 0x7261_6763  # pg_advisory_xact_lock key: one migrating process at a time


def _parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"database URL {url!r} is not a valid SQLAlchemy URL") from exc
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        shown = parsed.render_as_string(hide_password=True)
        raise ConfigError(f"database URL {shown!r}: only sqlite and postgresql are supported")
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # the driver we ship
    return parsed


def _sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None for an in-memory database."""
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or url.query.get("mode"):
        return None
    return Path(database).expanduser()


def private_folder(folder: Path) -> Path:
    """Create `folder` readable by its owner only (0700); a folder that exists is left as is."""
    if not folder.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with suppress(OSError):
            folder.chmod(0o700)
    return folder


def _private_file(path: Path) -> None:
    """Create the SQLite file (and make an existing one) readable by its owner only (0600):
    it holds every question, answer and API key hash. SQLite's -wal and -shm files take the
    database file's permissions."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    except OSError:
        pass  # a read-only or foreign file: connecting reports the real problem


def alembic_config(connection: sa.Connection | None = None) -> Any:
    """An Alembic Config built in code (no alembic.ini needed), bound to `connection` if given."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_PATH).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


class Database:
    """The engine and session factory for one database URL (sqlite:/// or postgresql+psycopg://)."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = _parse_url(url)
        self.dialect = self.url.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": self.dialect == "postgresql"}
        if self.dialect == "sqlite":
            path = _sqlite_file(self.url)
            if path is None:  # one shared in-memory database for every thread
                kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
            else:
                private_folder(path.parent)
                _private_file(path)
                kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        if self.dialect == "postgresql" or "poolclass" not in kwargs:
            kwargs.update(
                pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW, pool_timeout=POOL_TIMEOUT_S
            )
        self.engine: Engine = sa.create_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_on_connect)
            event.listen(self.engine, "begin", _sqlite_on_begin)
        self._read_engine = self.engine.execution_options(**{_BEGIN_OPTION: "BEGIN"})
        self._writer = sessionmaker(self.engine, expire_on_commit=False)
        self._reader = sessionmaker(self._read_engine, expire_on_commit=False)

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    def migrate(self) -> None:
        """Upgrade the schema to the newest migration; a no-op when it is already there.

        Safe at every start-up and from several processes at once: the upgrade runs in one
        transaction that holds the write lock (SQLite) or an advisory lock (PostgreSQL).
        """
        from alembic import command

        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
                )
            command.upgrade(alembic_config(conn), "head")

    def revision(self) -> str | None:
        """The migration the database is at, or None before the first migrate()."""
        from alembic.runtime.migration import MigrationContext

        with self._read_engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A write session: commits when the block ends, rolls back if it raises."""
        with self._writer() as session, session.begin():
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A read-only session that never blocks writers on SQLite (plain deferred BEGIN)."""
        with self._reader() as session, session.begin():
            yield session

    def dispose(self) -> None:
        """Close every pooled connection (call at shutdown, and in tests between databases)."""
        self.engine.dispose()


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    """Per connection: let SQLAlchemy emit BEGIN itself, wait on locks, WAL, foreign keys."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _enable_wal(cursor: Any) -> None:
    """Switch a new database file to WAL (it stays WAL). The switch can fail with 'database is
    locked' without waiting on the busy timeout when another connection is starting up at the
    same moment, so it is retried until the timeout."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() in ("wal", "memory"):
            return
        try:
            cursor.execute("PRAGMA journal_mode = WAL").fetchone()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.02)


def _sqlite_on_begin(conn: sa.Connection) -> None:
    """BEGIN IMMEDIATE for writes: a deferred read that later writes can fail at once with
    SQLITE_BUSY (no busy wait) when another writer committed in between."""
    begin = conn.get_execution_options().get(_BEGIN_OPTION, "BEGIN IMMEDIATE")
    conn.exec_driver_sql(begin)

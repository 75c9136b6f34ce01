"""Fast checks of the SQL layer that need no server: URL validation, in-memory SQLite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from rag_core.db import ConversationLog, Database, DocumentRegistry
from rag_core.db.models import UTCDateTime
from rag_core.errors import ConfigError


@pytest.mark.parametrize("url", ["mysql://db/x", "not a url"])
def test_rejects_unsupported_urls(url: str) -> None:
    with pytest.raises(ConfigError, match="database URL"):
        Database(url)


def test_plain_postgresql_url_uses_psycopg() -> None:
    db = Database("postgresql://user:secret@localhost/app")
    assert db.url.drivername == "postgresql+psycopg"
    assert "secret" not in repr(db)
    db.dispose()


def test_in_memory_sqlite_works_end_to_end() -> None:
    db = Database("sqlite://")
    db.migrate()
    db.migrate()
    reg = DocumentRegistry(db)
    doc = reg.commit(reg.begin("a.txt", "a" * 64, 1, "text", None).id, 1)
    assert reg.ready_ids() == {doc.id}
    log = ConversationLog(db)
    conv = log.create_conversation("me", "Hello")
    assert [c.id for c in log.list_conversations("me")] == [conv.id]
    db.dispose()


def test_utc_datetime_normalises_and_rejects_naive() -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    t = UTCDateTime()
    local = datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert t.process_bind_param(local, sqlite.dialect()) == datetime(2024, 5, 1, 10, 0)
    assert t.process_bind_param(local, postgresql.dialect()) == datetime(
        2024, 5, 1, 10, 0, tzinfo=UTC
    )
    assert t.process_result_value(datetime(2024, 5, 1, 10, 0), sqlite.dialect()) == datetime(
        2024, 5, 1, 10, 0, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="naive"):
        t.process_bind_param(datetime(2024, 5, 1), sqlite.dialect())

"""Writes to an embedded Chroma wait for another client of the same folder to let go."""

from __future__ import annotations

import pytest
from chromadb.errors import InternalError

from rag_core.stores import chroma


def test_a_locked_database_is_retried_until_it_is_free() -> None:
    calls: list[int] = []

    def write() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise InternalError("Database error: (code: 5) database is locked")

    chroma._when_unlocked(write)
    assert len(calls) == 3


def test_other_errors_and_a_lock_that_stays_are_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise InternalError("Database error: disk I/O error")

    with pytest.raises(InternalError, match="disk I/O"):
        chroma._when_unlocked(broken)

    monkeypatch.setattr(chroma, "_LOCK_WAIT_S", 0.2)

    def locked() -> None:
        raise InternalError("database is locked")

    with pytest.raises(InternalError, match="database is locked"):
        chroma._when_unlocked(locked)

"""The vector index records on SQLite and PostgreSQL: one active and one building index at most,
a swap that refuses when documents changed since the caller caught up, a commit into an index
swapped out meanwhile refused, a stalled run seen as stalled."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rag_core.db.database import Database
from rag_core.db.indexes import STALLED_AFTER_S, IndexRegistry
from rag_core.db.registry import DocumentRegistry
from rag_core.embedders.identity import EmbedderIdentity
from rag_core.errors import ConfigError, IndexChangedError
from rag_core.types import IngestReport

pytestmark = pytest.mark.integration

OLD = EmbedderIdentity("old", "default", "a" * 64, "float32", 384)
NEW = EmbedderIdentity("new", "/models/new", "b" * 64, "float32", 32)


def test_one_active_and_one_building_index(db: Database) -> None:
    indexes = IndexRegistry(db)
    first = indexes.adopt("ragchat", OLD)
    assert indexes.adopt("ragchat", NEW) == first  # a second start finds the first one's record
    assert indexes.active() == first and first.identity == OLD
    building = indexes.start_building("ragchat", NEW)
    assert building.collection == f"ragchat-{building.id[:12]}" and building.status == "building"
    with pytest.raises(ConfigError, match="another re-embedding"):
        indexes.start_building("ragchat", NEW)
    indexes.progress(building.id, 5, 9)
    status = indexes.status()
    assert status.active == first and not status.stalled
    assert status.building is not None and (
        status.building.chunks_done,
        status.building.chunks_total,
    ) == (5, 9)
    later = status.building.updated_at + timedelta(seconds=STALLED_AFTER_S + 1)
    assert indexes.status(now=later).stalled


def test_swap_only_when_nothing_changed_since_the_catch_up(db: Database) -> None:
    indexes, registry = IndexRegistry(db), DocumentRegistry(db)
    old = indexes.adopt("ragchat", OLD)
    building = indexes.start_building("ragchat", NEW)
    token = registry.change_token()
    doc = registry.begin("a.txt", "c" * 64, 10, "txt", None)
    registry.commit(doc.id, 1, index_id=old.id)  # a replica commits after the catch-up began
    assert not indexes.swap(building.id, token)
    assert indexes.active() == old
    token = registry.change_token()
    assert indexes.swap(building.id, token)
    assert registry.change_token() != token  # every replica notices
    active = indexes.active()
    assert active is not None and active.id == building.id and active.status == "active"
    assert [r.id for r in indexes.retired()] == [old.id] and indexes.building() is None
    indexes.remove(old.id)
    assert indexes.retired() == []


def test_a_swap_names_the_new_embedder_in_every_report(db: Database) -> None:
    indexes, registry = IndexRegistry(db), DocumentRegistry(db)
    old = indexes.adopt("ragchat", OLD)
    report = IngestReport(2, ("page 3 has no text",), OLD.name, OLD.fingerprint, 1.5, 0.5)
    doc = registry.begin("a.pdf", "c" * 64, 10, "pdf", 3)
    registry.commit(doc.id, 4, index_id=old.id, report=report)
    unrecorded = registry.begin("b.txt", "d" * 64, 10, "text", None)
    registry.commit(unrecorded.id, 1, index_id=old.id)  # no report: stays 'not recorded'
    assert registry.get(doc.id).report == report
    building = indexes.start_building("ragchat", NEW)
    assert indexes.swap(building.id, registry.change_token())
    swapped = registry.get(doc.id).report
    assert swapped is not None and (swapped.embedder, swapped.embedder_fingerprint) == (
        NEW.name,
        NEW.fingerprint,
    )
    assert (swapped.tables, swapped.warnings, swapped.seconds) == (2, report.warnings, 1.5)
    assert registry.get(unrecorded.id).report is None


def test_a_commit_into_a_swapped_out_index_is_refused(db: Database) -> None:
    indexes, registry = IndexRegistry(db), DocumentRegistry(db)
    old = indexes.adopt("ragchat", OLD)
    building = indexes.start_building("ragchat", NEW)
    doc = registry.begin("a.txt", "c" * 64, 10, "txt", None)
    assert indexes.swap(building.id, registry.change_token())
    token = registry.change_token()
    with pytest.raises(IndexChangedError, match="re-embedded while"):
        registry.commit(doc.id, 1, index_id=old.id)
    assert registry.get(doc.id).status == "ingesting"  # rolled back: recovery removes it
    assert registry.change_token() == token
    assert registry.commit(doc.id, 1, index_id=building.id).status == "ready"

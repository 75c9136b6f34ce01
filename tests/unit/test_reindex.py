"""Index identity and re-embedding with fast fakes: FakeEmbedder of two sizes, InMemoryStore
collections, SQLite. The real models, Chroma and PostgreSQL: tests/integration/test_reindex_*.py."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rag_core.config import Settings
from rag_core.db.database import Database
from rag_core.db.indexes import LEGACY_COLLECTION, IndexRegistry
from rag_core.db.registry import DocumentRegistry
from rag_core.embedders.identity import EmbedderIdentity, embedder_identity, folder_fingerprint
from rag_core.engine import Engine, IndexWatch
from rag_core.errors import IndexMismatchError
from rag_core.factory import check_embedder, compose_engine
from rag_core.reindex import Reindexer
from rag_core.stores.keyword import BM25Index
from rag_core.testing import FakeEmbedder, FakeGenerator, InMemoryStore
from rag_core.types import IndexRecord, IndexStatus
from webapp.api import create_app
from webapp.render import render_index_banner

DOCS = {
    f"doc-{i}.txt": f"Part {i}: the cogwheel {i} turns {i + 2} times. Oil it weekly."
    for i in range(5)
}


class Kb:
    """A knowledge base on fakes with recorded indexes, wired as factory.build_engine does."""

    def __init__(self, home: Path) -> None:
        self.settings = Settings(home=home, refusal_threshold=0.0)
        home.mkdir(parents=True, exist_ok=True)
        self.db = Database(self.settings.db_url)
        self.db.migrate()
        self.registry = DocumentRegistry(self.db)
        self.indexes = IndexRegistry(self.db)
        self.keyword = BM25Index(self.settings.keyword_path)
        self.stores: dict[str, InMemoryStore] = {}
        self.embedders: dict[str, FakeEmbedder] = {}

    def store(self, record: IndexRecord) -> InMemoryStore:
        key = record.identity.fingerprint[:32]
        return self.stores.setdefault(record.collection, InMemoryStore(embedder_key=key))

    def engine(self, embedder: FakeEmbedder, record: IndexRecord | None = None) -> Engine:
        identity = embedder_identity(embedder)
        self.embedders[identity.fingerprint] = embedder
        if record is None:
            record = self.indexes.active() or self.indexes.adopt(LEGACY_COLLECTION, identity)
        engine = compose_engine(
            self.settings, db=self.db, embedder=embedder, store=self.store(record),
            keyword=self.keyword, generator=FakeGenerator("ok"),
        )  # fmt: skip
        engine.pipeline.index_id = record.id
        engine.index = IndexWatch(record, self.indexes.status, self.follow)
        return engine

    def follow(self, record: IndexRecord) -> Engine:
        embedder = self.embedders.get(record.identity.fingerprint)
        if embedder is None:  # as factory's follow says when it cannot load the model
            raise IndexMismatchError(f"this server cannot load {record.identity.name}")
        return self.engine(embedder, record)

    def reindexer(self, embedder: FakeEmbedder, engine: Engine) -> Reindexer:
        self.embedders[embedder_identity(embedder).fingerprint] = embedder
        return Reindexer(
            self.settings, self.registry, self.indexes, embedder, self.store,
            engine.pipeline.exclusive,
        )  # fmt: skip


@pytest.fixture
def kb(tmp_path: Path) -> Kb:
    return Kb(tmp_path / "home")


def _ingest(engine: Engine, docs: dict[str, str]) -> None:
    results = engine.ingest([(t.encode(), n) for n, t in docs.items()])
    assert [r.status for r in results] == ["added"] * len(docs), results


def test_folder_fingerprint_follows_the_files_not_the_folder(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "weights.bin").write_bytes(b"\x00\x01" * 1000)
    (model / "sub" / "config.json").write_text('{"hidden": 32}')
    (model / "README.md").write_text("notes")
    first = folder_fingerprint(model)
    copy = tmp_path / "copy"
    shutil.copytree(model, copy)
    (copy / "README.md").write_text("other notes")  # notes do not change what it computes
    (copy / ".cache").write_text("x")
    assert folder_fingerprint(copy) == first and len(first) == 64
    (copy / "sub" / "config.json").write_text('{"hidden": 64}')
    assert folder_fingerprint(copy) != first


def test_a_start_with_another_embedder_names_both_and_the_way_out(kb: Kb) -> None:
    engine = kb.engine(FakeEmbedder(64))
    record = kb.indexes.active()
    assert record is not None and record.collection == LEGACY_COLLECTION
    with pytest.raises(IndexMismatchError) as caught:
        check_embedder(record, FakeEmbedder(32, name="fake-small"))
    message = str(caught.value)
    assert "fake (weights" in message and "64 dimensions" in message
    assert "fake-small" in message and "32 dimensions" in message
    assert "`ragchat reindex`" in message and "RAGCHAT_EMBEDDER=fake again" in message
    check_embedder(record, engine.embedder)  # the same embedder: no error


def test_a_precision_alone_is_a_warning(kb: Kb, caplog: pytest.LogCaptureFixture) -> None:
    emb = FakeEmbedder(64)
    kb.engine(emb)
    record = kb.indexes.active()
    assert record is not None
    emb.precision = "bfloat16"  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING):
        check_embedder(record, emb)
    assert "embedded in float32, questions are embedded in bfloat16" in caplog.text


def test_reindex_swaps_and_a_running_engine_follows(kb: Kb) -> None:
    engine = kb.engine(FakeEmbedder(64))
    _ingest(engine, DOCS)
    small = FakeEmbedder(32, name="fake-small")
    seen: list[tuple[int, int]] = []
    result = kb.reindexer(small, engine).run(progress=lambda d, t: seen.append((d, t)))
    assert result.status == "swapped" and not result.resumed
    assert result.previous is not None and result.previous.dimension == 64
    assert result.identity.dimension == 32 and result.documents == len(DOCS)
    assert result.embedded == result.chunks == len(DOCS)
    assert seen[-1] == (len(DOCS), len(DOCS))
    active = kb.indexes.active()
    assert active is not None and active.collection.startswith("ragchat-")
    new = kb.stores[active.collection]
    for chunk_id, chunk in new.chunks.items():
        assert new.vectors[chunk_id] == small.embed_documents([chunk.embedding_text])[0]
    # the engine built before follows the swap at its next request
    hits = engine.retrieve("cogwheel 3 turns").hits
    assert engine.embedder is small and engine.store is new
    assert hits[0].chunk.document_name == "doc-3.txt"
    # and ingests into the new index
    _ingest(engine, {"extra.txt": "The sandpiper gauge reads low tide."})
    assert new.count() == len(DOCS) + 1
    assert [r.collection for r in kb.indexes.retired()] == [LEGACY_COLLECTION]
    assert kb.reindexer(small, engine).run().status == "unchanged"


def test_reindex_resumes_after_a_failure(kb: Kb, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = kb.engine(FakeEmbedder(64))
    _ingest(engine, DOCS)
    small = FakeEmbedder(32, name="fake-small")
    reindexer = kb.reindexer(small, engine)
    reindexer.batch_chunks = 2
    calls = [0]
    original = small.embed_documents

    def dies(texts):  # type: ignore[no-untyped-def]
        calls[0] += 1
        if calls[0] == 2:
            raise RuntimeError("killed")
        return original(texts)

    monkeypatch.setattr(small, "embed_documents", dies)
    with pytest.raises(RuntimeError, match="killed"):
        reindexer.run()
    building = kb.indexes.building()
    assert building is not None and building.chunks_done == 2 and building.chunks_total == 5
    assert kb.indexes.active().collection == LEGACY_COLLECTION  # type: ignore[union-attr]
    monkeypatch.setattr(small, "embed_documents", original)
    small.embedded = 0
    result = kb.reindexer(small, engine).run()
    assert result.status == "swapped" and result.resumed and result.embedded == 3
    assert small.embedded == 3 and kb.indexes.active().id == building.id  # type: ignore[union-attr]


def test_an_unfinished_run_for_another_embedder_is_dropped(kb: Kb) -> None:
    engine = kb.engine(FakeEmbedder(64))
    _ingest(engine, DOCS)
    stale = kb.indexes.start_building("ragchat", embedder_identity(FakeEmbedder(16, name="x")))
    result = kb.reindexer(FakeEmbedder(32, name="fake-small"), engine).run()
    assert result.status == "swapped" and not result.resumed
    assert stale.id not in {r.id for r in kb.indexes.retired()}
    assert kb.indexes.building() is None


def test_reused_embeddings_come_from_the_same_embedder(tmp_path: Path) -> None:
    store = InMemoryStore(embedder_key="a")
    kb = Kb(tmp_path / "home")
    emb = FakeEmbedder(64)
    engine = compose_engine(
        kb.settings, db=kb.db, embedder=emb, store=store, keyword=kb.keyword,
        generator=FakeGenerator("ok"),
    )  # fmt: skip
    _ingest(engine, {"a.txt": "The brassmoth engine runs on seawater."})
    assert emb.embedded == 1
    _ingest(engine, {"b.txt": "The brassmoth engine runs on seawater.\n\n"})  # same text again
    assert emb.embedded == 1  # reused
    store.embedder_key = "b"  # as if another embedder wrote to this store now
    _ingest(engine, {"c.txt": "The brassmoth engine runs on seawater.\n\n\n"})
    assert emb.embedded == 2  # not reused: the stored vector is another embedder's


def test_banner() -> None:
    ident = EmbedderIdentity("small-model", "/m", "ab" * 32, "float32", 32)
    old = EmbedderIdentity("old-model", "default", "cd" * 32, "float32", 384)
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    active = IndexRecord("1", "ragchat", "active", old, 0, 0, now, now)
    building = IndexRecord("2", "ragchat-2", "building", ident, 250, 1000, now, now)
    assert render_index_banner(None) == ""
    assert render_index_banner(IndexStatus(active, None)) == ""
    running = render_index_banner(IndexStatus(active, building))
    assert "small-model" in running and "250 of 1,000 passages (25%)" in running
    assert "old-model" in running and "until the new one is complete" in running
    stalled = render_index_banner(IndexStatus(active, building, stalled=True))
    assert "stopped at 250 of 1,000" in stalled and "ragchat reindex" in stalled
    problem = render_index_banner(None, "cannot load <x>")
    assert "cannot load &lt;x&gt;" in problem and 'role="alert"' in problem


def test_api_index_status(kb: Kb) -> None:
    engine = kb.engine(FakeEmbedder(64))
    _ingest(engine, DOCS)
    kb.indexes.start_building("ragchat", embedder_identity(FakeEmbedder(32, name="small")))
    with TestClient(create_app(engine, engine.settings)) as client:
        body = client.get("/api/index").json()
    assert body["active"]["collection"] == "ragchat"
    assert body["active"]["embedder"]["dimension"] == 64
    assert body["building"]["embedder"]["name"] == "small"
    assert body["building"]["chunks_done"] == 0 and body["stalled"] is False


def test_the_page_banner_polls_and_follows(kb: Kb) -> None:
    from webapp.ui.knowledge import KnowledgeController

    engine = kb.engine(FakeEmbedder(64))
    _ingest(engine, DOCS)
    knowledge = KnowledgeController(engine, kb.settings)
    assert knowledge.index_banner() == ""
    small = FakeEmbedder(32, name="fake-small")
    building = kb.indexes.start_building("ragchat", embedder_identity(small))
    kb.indexes.progress(building.id, 2, 5)
    assert "fake-small</b>: 2 of 5 passages (40%)" in knowledge.index_banner()
    kb.indexes.remove(building.id)
    assert kb.reindexer(small, engine).run().status == "swapped"
    assert knowledge.index_banner() == ""
    assert engine.embedder is small  # the poll switched the server to the new index
    assert kb.reindexer(FakeEmbedder(16, name="fake-tiny"), engine).run().status == "swapped"
    kb.embedders.clear()  # a server that cannot load the new embedder says so
    banner = knowledge.index_banner()
    assert 'role="alert"' in banner and "cannot load fake-tiny" in banner
    assert engine.embedder is small


def test_a_server_that_cannot_load_the_swapped_in_model_says_how_to_fix_it(kb: Kb) -> None:
    from rag_core.factory import _Backends

    gone = EmbedderIdentity("e5-small", "/nowhere/e5-small", "f" * 64, "float32", 384)
    record = kb.indexes.adopt("ragchat", gone)
    backends = _Backends(kb.settings, kb.db, kb.indexes, kb.keyword, FakeGenerator("ok"))
    with pytest.raises(IndexMismatchError) as caught:
        backends.follow(record)
    assert "re-embedded with e5-small" in str(caught.value)
    assert "restart it with RAGCHAT_EMBEDDER" in str(caught.value)

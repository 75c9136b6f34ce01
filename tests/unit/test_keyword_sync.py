"""KeywordSync: a replica's local BM25 index follows the shared registry and vector store.

Fakes for the registry and the store (fast); at the end two engines with their own index folders
share one SQLite registry and one in-memory store, as two replicas share PostgreSQL and Chroma.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from rag_core.config import Settings
from rag_core.db.database import Database
from rag_core.db.registry import DocumentRegistry
from rag_core.engine import Engine
from rag_core.factory import compose_engine
from rag_core.stores.keyword import BM25Index
from rag_core.stores.keyword_sync import KeywordSync
from rag_core.testing import FakeEmbedder, FakeGenerator, InMemoryStore
from rag_core.types import Chunk, DocumentRecord, Done


def chunk(doc: str, index: int, text: str, version: str = "v1") -> Chunk:
    return Chunk(f"{doc}#{index}@{version}", doc, f"{doc}.md", version, index, text, 0, len(text))


def record(doc: str, chunks: int, version: str = "v1", status: str = "ready") -> DocumentRecord:
    return DocumentRecord(
        doc, f"{doc}.md", version, 1, 100, "markdown", None, chunks, datetime.now(UTC), status
    )


class FakeRegistry:
    """The shared registry as KeywordSync sees it: a change token and the documents."""

    def __init__(self) -> None:
        self.generation = 0
        self.docs: dict[str, DocumentRecord] = {}
        self.reads = 0

    def put(self, rec: DocumentRecord) -> None:
        self.docs[rec.id] = rec
        self.generation += 1

    def drop(self, doc_id: str) -> None:
        del self.docs[doc_id]
        self.generation += 1

    def token(self) -> str:
        return f"reg:{self.generation}"

    def ready(self) -> Sequence[DocumentRecord]:
        self.reads += 1
        return [r for r in self.docs.values() if r.status == "ready"]

    def ingesting(self) -> set[str]:
        return {r.id for r in self.docs.values() if r.status == "ingesting"}


def make_sync(index: BM25Index, store: InMemoryStore, reg: FakeRegistry) -> KeywordSync:
    return KeywordSync(
        index, store, change_token=reg.token, ready=reg.ready, unfinished=reg.ingesting
    )


def add_doc(store: InMemoryStore, reg: FakeRegistry, doc: str, texts: Sequence[str]) -> None:
    chunks = [chunk(doc, i, t) for i, t in enumerate(texts)]
    store.add(chunks, [[1.0, 0.0]] * len(chunks))
    reg.put(record(doc, len(chunks)))


def test_indexes_ready_documents_from_the_store_then_costs_one_token_read() -> None:
    store, reg, index = InMemoryStore(), FakeRegistry(), BM25Index()
    add_doc(store, reg, "fruit", ["apples grow in the orchard", "bananas are yellow"])
    add_doc(store, reg, "space", ["rockets launch satellites"])
    sync = make_sync(index, store, reg)
    report = sync()
    assert report.changed and sorted(report.added) == ["fruit", "space"]
    assert report.chunks_added == 3 and report.removed == () and report.incomplete == ()
    assert index.chunk_counts() == {"fruit": 2, "space": 1}
    assert [cid for cid, _ in index.search("orchard apples", 5)] == ["fruit#0@v1"]
    assert index.synced_token() == "reg:2"
    reads = reg.reads
    again = sync()
    assert not again.changed and reg.reads == reads  # nothing changed: the registry is not read


def test_deleted_and_replaced_documents_are_dropped() -> None:
    store, reg, index = InMemoryStore(), FakeRegistry(), BM25Index()
    add_doc(store, reg, "old", ["the refund window is 30 days"])
    add_doc(store, reg, "other", ["unrelated text about trains"])
    sync = make_sync(index, store, reg)
    sync()
    # another replica replaces 'old' by 'new' (a new id) and deletes 'other'
    store.delete_document("old")
    reg.drop("old")
    add_doc(store, reg, "new", ["the refund window is 60 days"])
    store.delete_document("other")
    reg.drop("other")
    report = sync()
    assert report.added == ("new",) and report.removed == ("old", "other")
    assert index.document_ids() == {"new"}
    assert [cid for cid, _ in index.search("refund window", 5)] == ["new#0@v1"]
    assert index.search("trains", 5) == []


def test_documents_being_ingested_are_kept_and_orphans_removed() -> None:
    store, reg, index = InMemoryStore(), FakeRegistry(), BM25Index()
    # this replica's pipeline indexed 'busy' before committing it; 'ghost' is known to nobody
    index.add([chunk("busy", 0, "work in progress"), chunk("ghost", 0, "left over")])
    reg.put(record("busy", 1, status="ingesting"))
    report = make_sync(index, store, reg)()
    assert report.removed == ("ghost",)
    assert index.document_ids() == {"busy"}


def test_a_document_with_the_wrong_chunk_count_is_reindexed_from_its_version() -> None:
    store, reg, index = InMemoryStore(), FakeRegistry(), BM25Index()
    texts = ["alpha beta", "gamma delta", "epsilon zeta"]
    add_doc(store, reg, "doc", texts)
    store.add([chunk("doc", 0, "stale text of an older version", "v0")], [[1.0, 0.0]])
    index.add([chunk("doc", 0, "alpha beta")])  # a partial copy (a crash, say)
    report = make_sync(index, store, reg)()
    assert report.added == ("doc",) and report.chunks_added == 3
    assert sorted(index.chunk_ids_of("doc")) == sorted(f"doc#{i}@v1" for i in range(3))
    assert index.search("stale older", 5) == []  # chunks of another version are not indexed


def test_chunks_missing_from_the_store_are_reported_not_retried_forever() -> None:
    store, reg, index = InMemoryStore(), FakeRegistry(), BM25Index()
    add_doc(store, reg, "doc", ["one", "two"])
    store.delete_chunks(["doc#1@v1"])
    sync = make_sync(index, store, reg)
    report = sync()
    assert report.incomplete == ("doc",) and index.chunk_counts() == {"doc": 1}
    assert not sync().changed


def test_the_synced_token_persists_and_a_new_registry_is_checked_again(tmp_path: Path) -> None:
    store, reg = InMemoryStore(), FakeRegistry()
    add_doc(store, reg, "doc", ["persistent words"])
    with BM25Index(tmp_path / "kw") as index:
        assert make_sync(index, store, reg)().changed
    with BM25Index(tmp_path / "kw") as reopened:
        assert reopened.synced_token() == "reg:1"
        assert not make_sync(reopened, store, reg)().changed  # a restart re-reads nothing
        other = FakeRegistry()  # pointed at another database: same generation, other id
        other.generation = 1
        report = KeywordSync(
            reopened, store, change_token=lambda: "other:1", ready=other.ready,
            unfinished=other.ingesting,
        )()  # fmt: skip
        assert report.changed and report.removed == ("doc",) and reopened.count() == 0


def test_an_index_of_an_older_tokenizer_starts_empty_and_is_refilled_with_new_terms(
    tmp_path: Path,
) -> None:
    """An upgrade that changes the tokenizer (version 2: "PDFs" is "pdf", not "pd" + "fs")
    drops the keyword index it finds, and the next sync indexes every ready document again
    from the store's chunk texts, with the new terms (nothing is embedded again)."""
    import sqlite3

    store, reg = InMemoryStore(), FakeRegistry()
    add_doc(store, reg, "scans", ["Merge the scanned PDFs into one file."])
    with BM25Index(tmp_path / "kw") as index:
        make_sync(index, store, reg)()
        assert index.document_frequency(["pdf"]) == {"pdf": 1}
    db = sqlite3.connect(tmp_path / "kw" / "bm25.sqlite3")
    with db:  # what the previous release wrote: its tokenizer version, its terms
        db.execute("UPDATE meta SET value = '1' WHERE key = 'tokenizer'")
        db.execute("UPDATE terms SET term = 'pd' WHERE term = 'pdf'")
    db.close()
    with BM25Index(tmp_path / "kw") as upgraded:
        assert upgraded.count() == 0 and upgraded.synced_token() is None
        report = make_sync(upgraded, store, reg)()
        assert report.changed and report.added == ("scans",) and report.chunks_added == 1
        assert upgraded.document_frequency(["pdf", "pd"]) == {"pdf": 1, "pd": 0}
        assert [cid for cid, _ in upgraded.search("a PDF", 5)] == ["scans#0@v1"]


# -- two replicas: two engines, one registry database, one store, separate keyword indexes ---------


def replica(tmp_path: Path, name: str, db: Database, store: InMemoryStore) -> Engine:
    """An engine as build_engine wires one: its keyword index follows the shared registry."""
    settings = Settings(home=tmp_path / name, refusal_threshold=0.0, answer_mode="extractive")
    return compose_engine(
        settings,
        db=db,
        embedder=FakeEmbedder(),
        store=store,
        keyword=BM25Index(tmp_path / name / "keyword"),
        generator=FakeGenerator(""),
        follow_registry=True,
    )


def bm25_hits(engine: Engine, question: str) -> list[tuple[str, float]]:
    events = engine.answer(question, (), engine.options(mode="bm25"))
    done = next(e for e in events if isinstance(e, Done))
    return [(h.chunk.id, round(h.keyword_score or 0.0, 6)) for h in done.hits]


def test_two_replicas_rank_the_same_after_uploads_and_deletes_on_either(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'shared.sqlite'}")
    db.migrate()
    store = InMemoryStore()
    a, b = replica(tmp_path, "a", db, store), replica(tmp_path, "b", db, store)
    first = a.ingest_bytes(b"# Ferries\n\nThe harbour ferry leaves every 40 minutes.\n", "f.md")
    b.ingest_bytes(b"# Trams\n\nThe tram to the harbour runs every 10 minutes.\n", "t.md")
    assert first.document is not None
    question = "how often does the harbour ferry leave"
    on_a, on_b = bm25_hits(a, question), bm25_hits(b, question)
    assert on_a == on_b and len(on_a) == 2  # both documents, identical BM25 scores
    assert b.keyword.document_ids() == a.keyword.document_ids()
    b.delete_document("f.md")
    assert bm25_hits(a, question) == bm25_hits(b, question)
    assert first.document.id not in a.keyword.document_ids()  # dropped from A's local index
    assert all(not cid.startswith(first.document.id) for cid, _ in bm25_hits(a, question))


def test_registry_change_token_moves_with_every_change(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'r.sqlite'}")
    db.migrate()
    reg = DocumentRegistry(db)
    t0 = reg.change_token()
    rec = reg.begin("a.md", "h" * 64, 10, "markdown", None)
    assert reg.change_token() == t0  # an ingesting row changes nothing retrievable
    reg.commit(rec.id, 1)
    t1 = reg.change_token()
    assert t1 != t0
    reg.list(), reg.ready_ids()
    assert reg.change_token() == t1  # reads do not count
    reg.mark_deleting(rec.id)
    t2 = reg.change_token()
    reg.remove(rec.id)
    t3 = reg.change_token()
    assert len({t0, t1, t2, t3}) == 4
    reg.remove(rec.id)  # already gone: no change
    assert reg.change_token() == t3
    registry_id = t0.split(":")[0]
    assert len(registry_id) == 32 and all(t.startswith(registry_id) for t in (t1, t2, t3))


def test_the_engine_syncs_before_retrieving(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'e.sqlite'}")
    db.migrate()
    seen: list[int] = []
    engine = replica(tmp_path, "e", db, InMemoryStore())
    engine.keyword_sync = lambda: seen.append(1)
    list(engine.answer("anything at all?"))
    assert len(seen) == 1

"""Collections and scoped questions in the engine, with the default embedder, a real Chroma store
and SQLite and PostgreSQL: who sees which document, what a scoped question retrieves, what a
conversation remembers, and what deleting a collection does to the stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from rag_core.config import Settings
from rag_core.db.database import Database, alembic_config
from rag_core.engine import Engine
from rag_core.errors import (
    CollectionError,
    CollectionNotFoundError,
    DocumentNotFoundError,
    PermissionDeniedError,
)
from rag_core.stores.chroma import ChromaStore
from rag_core.testing import fake_engine
from rag_core.types import DEFAULT_COLLECTION, Actor, Done, Retrieved, Scope

pytestmark = pytest.mark.integration

ALICE, BOB, ADMIN = Actor("alice"), Actor("bob"), Actor("root", admin=True)
PUBLIC = b"# Office\n\nThe office coffee machine is descaled every Friday at noon.\n"
SECRET = b"# Salaries\n\nThe Zorblat project budget for 2027 is 4.2 million euros.\n"
QUESTION = "What is the Zorblat project budget for 2027?"


@pytest.fixture
def engine(real_embedder, db_url: str, tmp_path: Path) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    store = ChromaStore(path=home / "chroma")
    settings = Settings(home=home, database_url=db_url, answer_strategy="extractive")
    yield fake_engine(settings, embedder=real_embedder, store=store)
    store.close()


def names(engine: Engine, actor: Actor) -> list[str]:
    return [d.name for d in engine.documents(actor)]


def retrieved(engine: Engine, actor: Actor, scope: Scope | None = None) -> Retrieved:
    options = engine.scoped(engine.options(), scope, actor)
    return engine.retrieve(QUESTION, (), options)


def test_private_collection_is_seen_searched_and_deleted_only_by_its_owner(engine: Engine) -> None:
    assert engine.ingest([(PUBLIC, "office.md")], actor=BOB)[0].status == "added"
    notes = engine.collections.create("Alice notes", ALICE)
    assert (notes.owner, notes.visibility) == ("alice", "private")
    added = engine.ingest([(SECRET, "salaries.md")], actor=ALICE, collection="alice notes")[0]
    assert added.status == "added", added.error
    assert engine.collections.memberships([added.document.id]) == {  # type: ignore[union-attr]
        added.document.id: ["Alice notes"]  # type: ignore[union-attr]
    }

    # listing: bob sees the Default collection only, and only the public document
    assert [c.name for c in engine.collections.list(BOB)] == ["Default"]
    assert [c.name for c in engine.collections.list(ALICE)] == ["Default", "Alice notes"]
    assert names(engine, BOB) == ["office.md"]
    assert names(engine, ALICE) == names(engine, ADMIN) == ["office.md", "salaries.md"]
    assert engine.count_documents(BOB) == 1

    # every path to the document answers "not found" for bob
    for attempt in (
        lambda: engine.document("salaries.md", actor=BOB),
        lambda: engine.chunks_of("salaries.md", actor=BOB),
        lambda: engine.delete_document("salaries.md", actor=BOB),
        lambda: engine.collections.get("Alice notes", BOB),
    ):
        with pytest.raises(DocumentNotFoundError):
            attempt()
    with pytest.raises(CollectionNotFoundError):
        engine.scoped(engine.options(), Scope(collections=("Alice notes",)), BOB)

    # retrieval happens inside the stores' filter: bob never gets the passage, alice does
    for_bob = retrieved(engine, BOB)
    assert all(h.chunk.document_name == "office.md" for h in for_bob.hits)
    for_alice = retrieved(engine, ALICE)
    assert for_alice.hits[0].chunk.document_name == "salaries.md"
    assert not for_alice.refused

    # scoped to the Default collection, alice's own document is out of reach: refused
    scoped = retrieved(engine, ALICE, Scope(collections=(DEFAULT_COLLECTION,)))
    assert all(h.chunk.document_name == "office.md" for h in scoped.hits)
    assert scoped.refused
    one_doc = retrieved(engine, ALICE, Scope(documents=("salaries.md",)))
    assert {h.chunk.document_name for h in one_doc.hits} == {"salaries.md"}

    # only the owner (or an admin) renames and deletes
    with pytest.raises(PermissionDeniedError):
        engine.collections.update("Default", ALICE, name="Mine")
    with pytest.raises(CollectionError, match="1 document"):
        engine.delete_collection("Alice notes", actor=ALICE)
    record, removed = engine.delete_collection("Alice notes", actor=ALICE, delete_documents=True)
    assert record.name == "Alice notes" and [d.name for d in removed] == ["salaries.md"]
    assert names(engine, ADMIN) == ["office.md"]
    assert engine.store.document_ids() == {engine.document("office.md").id}
    assert engine.check() == []


def test_shared_collection_and_the_same_bytes_uploaded_by_someone_who_cannot_see_them(
    engine: Engine,
) -> None:
    engine.collections.create("Team", ALICE, visibility="shared", members=["carol"])
    engine.ingest([(SECRET, "salaries.md")], actor=ALICE, collection="Team")
    assert names(engine, Actor("carol")) == ["salaries.md"]
    assert names(engine, BOB) == []
    # bob has the same file: he gets a copy of his own, not a pointer to alice's document
    copy = engine.ingest([(SECRET, "my-budget.md")], actor=BOB)[0]
    assert copy.status == "added" and copy.document is not None
    assert names(engine, BOB) == ["my-budget.md"]
    # a name taken in a collection he cannot see is refused without naming its owner
    clash = engine.ingest([(PUBLIC, "salaries.md")], actor=BOB)[0]
    assert clash.status == "error" and "alice" not in (clash.error or "")
    # sharing with bob, then adding a document twice to one collection, is harmless
    engine.collections.update("Team", ALICE, members=["carol", "bob"])
    assert names(engine, BOB) == ["my-budget.md", "salaries.md"]
    assert engine.collections.add_documents("Team", [copy.document.id], BOB) == 1
    assert engine.collections.add_documents("Team", [copy.document.id], BOB) == 0
    with pytest.raises(CollectionError, match="no other collection"):
        engine.collections.remove_documents("Team", [engine.document("salaries.md").id], ALICE)


def test_a_small_collection_is_searched_inside_a_large_knowledge_base(engine: Engine) -> None:
    """The stores search inside the scope: a collection whose passages rank below the whole
    knowledge base's top candidates still gets its own best passages (not a filtered global
    top n, which would leave it with none and refuse)."""
    budgets = [
        (f"# Budget {i}\n\nThe Zorblat project budget for {1950 + i} was {i} thousand euros.\n"
         .encode(), f"budget-{i:02d}.md")
        for i in range(60)
    ]  # fmt: skip
    assert all(r.status == "added" for r in engine.ingest(budgets))
    engine.collections.create("Office", ALICE)
    engine.ingest([(PUBLIC, "office.md")], actor=ALICE, collection="Office")
    everything = retrieved(engine, ALICE)
    office = engine.document("office.md").id
    assert office not in {h.chunk.document_id for h in everything.hits}
    assert engine.keyword.search(QUESTION, 60, document_ids=[office]) == []  # no word in common
    scoped = retrieved(engine, ALICE, Scope(documents=("office.md",)))
    assert [h.chunk.document_name for h in scoped.hits] == ["office.md"]
    assert scoped.hits[0].dense_rank == 1
    in_collection = retrieved(engine, ALICE, Scope(collections=("Office",)))
    assert [h.chunk.document_name for h in in_collection.hits] == ["office.md"]


def test_a_scoped_question_knows_only_the_words_inside_its_scope(engine: Engine) -> None:
    """The refusal gate's `known` share counts the scope's documents: a question whose rare
    word only a document outside the scope holds is about something the scope does not know."""
    engine.ingest([(SECRET, "salaries.md")], actor=BOB)
    engine.collections.create("Office", ALICE)
    engine.ingest([(PUBLIC, "office.md")], actor=ALICE, collection="Office")
    everything = retrieved(engine, ADMIN)
    assert everything.features is not None and everything.features.known == 1.0
    assert not everything.refused
    scoped = retrieved(engine, ADMIN, Scope(collections=("Office",)))
    assert [h.chunk.document_name for h in scoped.hits] == ["office.md"]
    assert scoped.features is not None and scoped.features.known < 0.5
    assert scoped.refused


def test_a_conversation_remembers_its_scope_and_the_turn_logs_it(engine: Engine) -> None:
    engine.ingest([(PUBLIC, "office.md")])
    engine.collections.create("Budgets", ALICE)
    engine.ingest([(SECRET, "salaries.md")], actor=ALICE, collection="Budgets")
    scope = Scope(collections=("Budgets",))
    first = list(engine.chat(QUESTION, user="alice", actor=ALICE, scope=scope))
    conv_id = next(e for e in first if hasattr(e, "conversation_id")).conversation_id  # type: ignore[attr-defined]
    assert engine.log.get_conversation(conv_id, "alice").scope == scope
    done = next(e for e in first if isinstance(e, Done))
    assert done.config["scope"] == {"collections": ["Budgets"], "documents": []}
    assert done.hits and {h.chunk.document_name for h in done.hits} == {"salaries.md"}

    # the next question names no scope: the conversation's is searched again
    again = list(
        engine.chat("When is the coffee machine descaled?", conv_id, user="alice", actor=ALICE)
    )
    done = next(e for e in again if isinstance(e, Done))
    assert {h.chunk.document_name for h in done.hits} <= {"salaries.md"}
    # a new scope replaces it
    list(engine.chat("When is it descaled?", conv_id, user="alice", actor=ALICE, scope=Scope()))
    assert engine.log.get_conversation(conv_id, "alice").scope == Scope()


def test_migration_0011_puts_existing_documents_in_default(db_url: str) -> None:
    db = Database(db_url)
    try:
        with db.engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0010")
            conn.execute(
                sa.text(
                    "INSERT INTO documents (id, name, content_hash, version, size, doc_type,"
                    " chunk_count, status, added_at, updated_at) VALUES ('d1', 'old.md', 'h', 1,"
                    " 3, 'markdown', 1, 'ready', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
        db.migrate()
        with db.engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT collection_id, document_id FROM collection_documents")
            )
            assert [tuple(r) for r in rows] == [("default", "d1")]
            name = conn.execute(sa.text("SELECT name, visibility FROM collections")).one()
            assert tuple(name) == ("Default", "everyone")
    finally:
        db.dispose()


def test_deleting_a_collection_asks_who_first_and_never_deletes_someone_elses_document(
    engine: Engine,
) -> None:
    engine.collections.create("Open", ALICE, visibility="everyone")
    engine.ingest([(SECRET, "salaries.md")], actor=ALICE, collection="Open")
    engine.ingest([(PUBLIC, "office.md")], actor=BOB, collection="Open")
    # bob may see the collection but not delete it: told so, not what it holds
    with pytest.raises(PermissionDeniedError, match="belongs to alice"):
        engine.delete_collection("Open", actor=BOB, delete_documents=True)
    # bob files his document nowhere else; alice may not delete it with her collection
    with pytest.raises(PermissionDeniedError, match=r"office\.md"):
        engine.delete_collection("Open", actor=ALICE, delete_documents=True)
    # nor may bob file a document alice shares with him into a collection everyone sees
    engine.collections.create("Bob's", BOB, visibility="everyone")
    engine.collections.create("Team", ALICE, visibility="shared", members=["bob"])
    engine.ingest(
        [(b"# Plan\n\nThe plan ships in May.\n", "plan.md")], actor=ALICE, collection="Team"
    )
    with pytest.raises(PermissionDeniedError, match="belongs to alice"):
        engine.collections.add_documents("Bob's", [engine.document("plan.md").id], BOB)
    # a document everyone may see already, he may
    engine.collections.add_documents("Bob's", [engine.document("salaries.md").id], BOB)
    # once bob's document is also elsewhere, alice's deletion takes only her own
    engine.collections.add_documents("Bob's", [engine.document("office.md").id], BOB)
    engine.collections.remove_documents("Bob's", [engine.document("salaries.md").id], BOB)
    _, removed = engine.delete_collection("Open", actor=ALICE, delete_documents=True)
    assert [d.name for d in removed] == ["salaries.md"]
    assert names(engine, ADMIN) == ["office.md", "plan.md"]

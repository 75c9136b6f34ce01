"""The SQL layer on real SQLite and PostgreSQL: migrations, registry, log, concurrency."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from rag_core.db import ConversationLog, Database, DocumentRegistry
from rag_core.db.database import alembic_config
from rag_core.db.models import DEFAULT_TITLE, Base, TurnRow
from rag_core.db.records import Feedback
from rag_core.errors import ConversationNotFoundError, DocumentNotFoundError, UserError
from rag_core.types import Chunk, Citation, Done, Hit, SentenceCheck, Timings, Turn

pytestmark = pytest.mark.integration
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()  # the newest migration


def _chunk(doc: str, i: int, text: str, **kw: object) -> Chunk:
    return Chunk(
        id=f"{doc}-c{i}",
        document_id=doc,
        document_name=f"{doc}.pdf",
        version="ab" * 32,
        index=i,
        text=text,
        char_start=i * 100,
        char_end=i * 100 + len(text),
        **kw,  # type: ignore[arg-type]
    )


def _done(question: str = "How do I install it?", status: str = "complete") -> Done:
    c1 = _chunk(
        "d1",
        0,
        "Run pip install ragchat. It needs Python 3.11.",
        page=3,
        heading_path=("Setup", "Install"),
    )
    c2 = _chunk("d1", 1, "Start it with ragchat serve.", page=4, page_end=5, ocr=True)
    c3 = _chunk("d2", 7, "Unrelated passage about licences.")
    hits = (
        Hit(
            c1,
            rank=1,
            score=0.031,
            dense_score=0.82,
            dense_rank=1,
            keyword_score=7.5,
            keyword_rank=2,
        ),
        Hit(c2, rank=2, score=0.029, dense_score=0.71, dense_rank=2),
        Hit(c3, rank=3, score=0.01, keyword_score=3.25, keyword_rank=1),
    )
    s1 = "Run pip install ragchat."
    s2 = "It needs Python 3.11."
    sentences = (
        SentenceCheck(0, "Install it with pip [1].", True, 0.91, citation=1, support=s1),
        SentenceCheck(1, "Python 3.11 is required [2].", True, 0.88, citation=2, support=s2),
        SentenceCheck(2, "Then start it [3].", True, 0.7, citation=3, support=None),
        SentenceCheck(3, "It is fast.", False, 0.2, reason="no matching passage"),
    )
    citations = (
        Citation(1, c1, support=s1, support_start=0, support_end=len(s1)),
        Citation(
            2,
            c1,
            support=s2,
            support_start=c1.text.find(s2),
            support_end=c1.text.find(s2) + len(s2),
        ),
        Citation(3, c2),
    )
    return Done(
        question=question,
        query=question + " (standalone)",
        answer="Install it with pip [1]. Python 3.11 is required [2]. Then start it [3].",
        raw_answer="Install it with pip [1]. Python 3.11 is needed [1]. Start it [3]. It is fast.",
        citations=citations,
        hits=hits,
        sentences=sentences,
        refused=False,
        mode="generated",
        status=status,  # type: ignore[arg-type]
        timings=Timings(
            retrieval_ms=12.5,
            first_token_ms=80.0,
            generation_ms=900.0,
            total_ms=990.0,
            tokens=42,
            tokens_per_s=46.7,
        ),
        config={"top_k": 5, "retrieval_mode": "hybrid", "temperature": 0.0},
        error="boom" if status == "error" else None,
    )


# --- migrations -------------------------------------------------------------------------------


def test_migrate_is_idempotent_and_creates_schema(db_url: str) -> None:
    db = Database(db_url)
    try:
        assert db.revision() is None
        db.migrate()
        db.migrate()
        assert db.revision() == HEAD
        with db.engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
        assert {"documents", "conversations", "turns", "turn_passages", "turn_sentences"} <= tables
        assert "alembic_version" in tables  # in the URL's schema / file, not elsewhere
    finally:
        db.dispose()
    again = Database(db_url)  # a restart on an existing database
    again.migrate()
    assert again.revision() == HEAD
    again.dispose()


def test_concurrent_startups_migrate_once(db_url: str) -> None:
    """Several processes starting at once on an empty database all succeed."""
    databases = [Database(db_url) for _ in range(4)]
    errors: list[BaseException] = []

    def start(db: Database) -> None:
        try:
            db.migrate()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(db,)) for db in databases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert {db.revision() for db in databases} == {HEAD}
    for db in databases:
        db.dispose()


def test_models_match_migrations(db: Database) -> None:
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(ctx, Base.metadata) == []
    with db.engine.begin() as conn:  # the check does catch drift
        conn.execute(sa.text("DROP INDEX ix_documents_content_hash"))
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d[0] for d in diff] == ["add_index"]


def test_sqlite_pragmas(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'x.sqlite'}")
    try:
        assert (tmp_path / "nested" / "dir").is_dir()
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        db.dispose()


def test_session_rolls_back_on_error(db: Database) -> None:
    log = ConversationLog(db)
    conv = log.create_conversation("alice", "Kept")
    with pytest.raises(RuntimeError), db.session() as s:
        s.execute(sa.text("UPDATE conversations SET title = 'Lost'"))
        raise RuntimeError("abort")
    assert log.get_conversation(conv.id, "alice").title == "Kept"


# --- document registry ------------------------------------------------------------------------


def test_registry_lifecycle(db: Database) -> None:
    reg = DocumentRegistry(db)
    assert reg.list() == [] and reg.ready_ids() == set()

    a = reg.begin("guide.pdf", "a" * 64, 1234, "pdf", 10)
    assert (a.status, a.version, a.chunk_count) == ("ingesting", 1, 0)
    assert len(a.id) == 32 and a.added_at.tzinfo is not None
    assert (
        reg.ready_ids() == set()
        and reg.by_hash("a" * 64) is None
        and reg.by_name("guide.pdf") is None
    )
    assert [d.id for d in reg.not_ready()] == [a.id]

    a = reg.commit(a.id, 42)
    assert (a.status, a.chunk_count) == ("ready", 42)
    assert reg.by_hash("a" * 64) == a and reg.by_name("guide.pdf") == a
    assert reg.ready_ids() == {a.id} and reg.not_ready() == []

    b = reg.begin("guide.pdf", "b" * 64, 2000, "pdf", 12, replaces_id=a.id, ocr_pages=[3, 4])
    assert b.version == 2 and reg.ready_ids() == {a.id}  # old version serves until commit
    assert a.ocr_pages == () and b.ocr_pages == (3, 4)  # the pages OCR read, for its report
    b = reg.commit(b.id, 50)
    assert reg.get(b.id).ocr_pages == (3, 4)
    assert reg.ready_ids() == {b.id}
    assert reg.by_name("guide.pdf") == b and reg.by_hash("a" * 64) is None
    assert [(d.id, d.status) for d in reg.not_ready()] == [(a.id, "deleting")]
    reg.remove(a.id)
    reg.remove(a.id)  # idempotent
    assert reg.not_ready() == []

    c = reg.begin("guide.pdf", "c" * 64, 2100, "pdf", 12, replaces_id=b.id)
    assert c.version == 3
    n = reg.commit(reg.begin("notes.md", "d" * 64, 10, "markdown", None).id, 1)
    assert n.page_count is None
    assert [d.name for d in reg.list()] == ["guide.pdf", "notes.md"]
    assert reg.ready_ids() == {b.id, n.id}  # c is still ingesting
    assert reg.ready_chunk_counts() == {b.id: 50, n.id: 1}  # what the length penalty reads

    reg.mark_deleting(n.id)
    assert reg.ready_ids() == {b.id}
    assert {d.id for d in reg.not_ready()} == {c.id, n.id}


def test_ready_counts_are_read_again_only_after_a_change(db: Database, db_url: str) -> None:
    """Every question reads the ready set: it is cached by the change token, and another
    replica's commit, deletion or removal (over the same database) is seen at once."""
    replica = Database(db_url)
    here, other = DocumentRegistry(db), DocumentRegistry(replica)
    a = other.commit(other.begin("a.md", "a" * 64, 1, "markdown", None).id, 3)
    assert here.ready_chunk_counts() == {a.id: 3}
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        counts = here.ready_chunk_counts()
        counts[a.id] = 99  # a copy: the caller cannot change the cache
        assert here.ready_chunk_counts() == {a.id: 3}
        rows_read = [s for s in statements if "chunk_count" in s]
        assert statements and rows_read == [], "the ready rows were read again without a change"
        b = other.commit(other.begin("b.md", "b" * 64, 1, "markdown", None).id, 5)
        assert here.ready_chunk_counts() == {a.id: 3, b.id: 5}
        assert any("chunk_count" in s for s in statements)  # read again after the change
        other.begin("c.md", "c" * 64, 1, "markdown", None)  # ingesting: not ready, no change
        assert here.ready_ids() == {a.id, b.id}
        other.mark_deleting(a.id)
        assert here.ready_chunk_counts() == {b.id: 5}
        other.remove(b.id)
        assert here.ready_chunk_counts() == {}
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)
        replica.dispose()


def test_registry_get(db: Database) -> None:
    reg = DocumentRegistry(db)
    doc = reg.commit(reg.begin("Manual v2.pdf", "e" * 64, 5, "pdf", 1).id, 3)
    assert reg.get(doc.id) == doc
    assert reg.get(doc.id[:6]) == doc
    assert reg.get(doc.id[:6].upper()) == doc
    assert reg.get("Manual v2.pdf") == doc
    with pytest.raises(DocumentNotFoundError, match=r"Manual v2\.pdf"):
        reg.get("missing.pdf")  # the message lists what exists
    with pytest.raises(DocumentNotFoundError):
        reg.get(doc.id[:5])  # too short to be a prefix
    with pytest.raises(DocumentNotFoundError):
        reg.get("x" * 300)
    pending = reg.begin("pending.txt", "f" * 64, 5, "text", None)
    assert reg.get(pending.id).status == "ingesting"  # a full id finds any status
    with pytest.raises(DocumentNotFoundError):
        reg.get("pending.txt")  # names resolve to ready documents only
    with pytest.raises(DocumentNotFoundError):
        reg.begin("x.txt", "0" * 64, 1, "text", None, replaces_id="nope")
    with pytest.raises(DocumentNotFoundError):
        reg.commit("nope", 1)


def test_registry_get_ambiguous_prefix(db: Database) -> None:
    reg = DocumentRegistry(db)
    with db.session() as s:  # two ids that share a 6-character prefix
        for i, doc_id in enumerate(("abcdef" + "0" * 26, "abcdef" + "1" * 26)):
            s.execute(
                sa.text(
                    "INSERT INTO documents (id, name, content_hash, version, size, doc_type, "
                    "chunk_count, status, added_at, updated_at) VALUES (:id, :name, :h, 1, 1, "
                    "'text', 1, 'ready', :t, :t)"
                ),
                {"id": doc_id, "name": f"d{i}.txt", "h": str(i) * 64, "t": "2024-01-01 00:00:00"},
            )
    with pytest.raises(DocumentNotFoundError, match="several"):
        reg.get("abcdef")
    assert reg.get("abcdef1").name == "d1.txt"


# --- conversation log -------------------------------------------------------------------------


def test_log_round_trip(db: Database) -> None:
    log = ConversationLog(db)
    conv = log.create_conversation("alice", DEFAULT_TITLE)
    assert conv.turn_count == 0 and conv.created_at.tzinfo == UTC
    done = _done()
    turn_id = log.record_turn(conv.id, "alice", done)

    turn = log.get_turn(turn_id, "alice")
    assert turn.hits == done.hits
    assert turn.citations == done.citations
    assert turn.sentences == done.sentences
    assert (turn.question, turn.query, turn.answer, turn.raw_answer) == (
        done.question,
        done.query,
        done.answer,
        done.raw_answer,
    )
    assert (turn.refused, turn.mode, turn.status, turn.error, turn.position) == (
        False,
        "generated",
        "complete",
        None,
        0,
    )
    assert turn.timings == Timings(
        retrieval_ms=12.5,
        first_token_ms=80.0,
        generation_ms=900.0,
        total_ms=990.0,
        tokens=42,
        tokens_per_s=46.7,
    )
    assert turn.config == dict(done.config)
    assert turn.hits[0].chunk.location == "p. 3 · Setup > Install"
    # a passage read by OCR still says so when the turn is replayed
    assert [h.chunk.ocr for h in turn.hits] == [False, True, False]
    assert turn.hits[1].chunk.shown_location == "pp. 4-5 · read by OCR"
    assert turn.feedback_rating is None

    second = log.record_turn(conv.id, "alice", _done("And then?", status="error"))
    turns = log.turns(conv.id, "alice")
    assert [t.id for t in turns] == [turn_id, second] and [t.position for t in turns] == [0, 1]
    assert turns[1].error == "boom"
    assert log.history(conv.id, "alice") == [Turn(done.question, done.answer)]  # error skipped

    again = log.get_conversation(conv.id, "alice")
    assert again.title == done.question  # from the first question
    assert again.turn_count == 2 and again.updated_at > conv.updated_at


def test_passages_survive_document_removal(db: Database) -> None:
    reg = DocumentRegistry(db)
    log = ConversationLog(db)
    doc = reg.commit(reg.begin("d1.pdf", "a" * 64, 1, "pdf", 1).id, 2)
    conv = log.create_conversation("alice", "T")
    turn_id = log.record_turn(conv.id, "alice", _done())
    reg.mark_deleting(doc.id)
    reg.remove(doc.id)
    assert log.get_turn(turn_id, "alice").hits[0].chunk.text.startswith("Run pip install")


def test_titles_and_listing(db: Database) -> None:
    log = ConversationLog(db)
    first = log.create_conversation("alice", "  First  ")
    assert first.title == "First"
    second = log.create_conversation("alice", "")
    assert second.title == DEFAULT_TITLE
    log.record_turn(first.id, "alice", _done("x " * 200))  # title kept: not the default
    assert [c.id for c in log.list_conversations("alice")] == [first.id, second.id]
    assert log.get_conversation(first.id, "alice").title == "First"

    log.record_turn(second.id, "alice", _done("word " * 60))
    auto = log.get_conversation(second.id, "alice").title
    assert len(auto) <= 80 and auto.endswith("…")

    renamed = log.rename(first.id, "alice", "  New\n name " + "y" * 300)
    assert renamed.title.startswith("New name y") and len(renamed.title) == 200
    assert [c.id for c in log.list_conversations("alice")] == [first.id, second.id]
    for bad in ("", "   \n"):
        with pytest.raises(UserError):
            log.rename(first.id, "alice", bad)


def test_ownership(db: Database) -> None:
    log = ConversationLog(db)
    conv = log.create_conversation("alice", "Private")
    turn_id = log.record_turn(conv.id, "alice", _done())
    assert log.list_conversations("bob") == []
    calls = [
        lambda: log.get_conversation(conv.id, "bob"),
        lambda: log.rename(conv.id, "bob", "Mine"),
        lambda: log.delete(conv.id, "bob"),
        lambda: log.turns(conv.id, "bob"),
        lambda: log.history(conv.id, "bob"),
        lambda: log.record_turn(conv.id, "bob", _done()),
        lambda: log.get_turn(turn_id, "bob"),
        lambda: log.set_feedback(turn_id, "bob", 1),
        lambda: log.get_conversation("0" * 32, "alice"),
        lambda: log.get_turn(10**9, "alice"),
    ]
    for call in calls:
        with pytest.raises(ConversationNotFoundError):
            call()
    kept = log.get_conversation(conv.id, "alice")
    assert (kept.title, kept.turn_count) == ("Private", 1)
    assert log.get_turn(turn_id, "alice").feedback_rating is None


def test_delete_cascades(db: Database) -> None:
    log = ConversationLog(db)
    conv = log.create_conversation("alice", "T")
    other = log.create_conversation("alice", "Other")
    for _ in range(3):
        log.record_turn(conv.id, "alice", _done())
    kept = log.record_turn(other.id, "alice", _done())
    log.delete(conv.id, "alice")
    with pytest.raises(ConversationNotFoundError):
        log.get_conversation(conv.id, "alice")
    with pytest.raises(ConversationNotFoundError):
        log.delete(conv.id, "alice")
    with db.read_session() as s:
        counts = [
            s.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar()
            for t in ("turns", "turn_passages", "turn_sentences")
        ]
    assert counts == [1, 3, 4]  # only the other conversation's turn is left
    assert log.get_turn(kept, "alice").hits


def test_feedback(db: Database) -> None:
    log = ConversationLog(db)
    conv = log.create_conversation("alice", "T")
    turn_id = log.record_turn(conv.id, "alice", _done())
    for bad in (0, 2, -2, True):
        with pytest.raises(UserError):
            log.set_feedback(turn_id, "alice", bad)
    log.set_feedback(turn_id, "alice", -1, "  wrong page  ")
    turn = log.get_turn(turn_id, "alice")
    assert (turn.feedback_rating, turn.feedback_comment) == (-1, "wrong page")
    log.set_feedback(turn_id, "alice", 1)
    turn = log.get_turn(turn_id, "alice")
    assert (turn.feedback_rating, turn.feedback_comment) == (1, None)


def test_thumbs_down_reason_marked_passage_and_gate_score(db: Database) -> None:
    log = ConversationLog(db)
    conv = log.create_conversation("alice", "T")
    turn_id = log.record_turn(conv.id, "alice", replace(_done(), gate_score=0.4321))
    turn = log.get_turn(turn_id, "alice")
    assert turn.gate_score == pytest.approx(0.4321) and turn.feedback is None
    marked = Feedback("wrong_citation", turn.hits[1].chunk.id)
    log.set_feedback(turn_id, "alice", -1, "cites the wrong page", marked)
    assert log.get_turn(turn_id, "alice").feedback == marked
    log.set_feedback(turn_id, "alice", -1, "still wrong")  # a thumb alone keeps what was said
    assert log.get_turn(turn_id, "alice").feedback == marked
    none = Feedback("should_refuse", None, no_passage=True)
    log.set_feedback(turn_id, "alice", -1, None, none)
    assert log.get_turn(turn_id, "alice").feedback == none
    bad = [
        (-1, Feedback("nonsense")),  # type: ignore[arg-type]
        (-1, Feedback(None, "not-a-passage-of-this-turn")),
        (-1, Feedback(None, turn.hits[0].chunk.id, no_passage=True)),
        (1, Feedback("wrong_fact")),
    ]
    for rating, feedback in bad:
        with pytest.raises(UserError):
            log.set_feedback(turn_id, "alice", rating, None, feedback)
    assert log.get_turn(turn_id, "alice").feedback == none  # nothing changed
    with pytest.raises(ConversationNotFoundError):
        log.set_feedback(turn_id, "bob", -1, None, Feedback("wrong_fact"))
    log.set_feedback(turn_id, "alice", 1)  # a thumbs up clears what a thumbs down said
    assert log.get_turn(turn_id, "alice").feedback is None
    with db.session() as s:  # the database itself refuses an unknown reason
        row = s.get(TurnRow, turn_id)
        assert row is not None
        row.feedback_reason = "nonsense"
        with pytest.raises(sa.exc.IntegrityError):
            s.flush()


def test_turn_ids_and_history_before_a_turn(db: Database) -> None:
    log = ConversationLog(db)
    conv = log.create_conversation("alice", "T")
    first = log.record_turn(conv.id, "alice", _done("First?"))
    second = log.record_turn(conv.id, "alice", _done("Second?"))
    other = log.create_conversation("bob", "T")
    bobs = log.record_turn(other.id, "bob", _done("Bob's?"))
    assert log.turn_ids() == [(first, "alice"), (second, "alice"), (bobs, "bob")]
    assert log.turn_ids(user="bob") == [(bobs, "bob")]
    assert log.turn_ids(since=datetime.now(UTC) + timedelta(hours=1)) == []
    log.set_feedback(second, "alice", 1)
    assert log.turn_ids(rated=True) == [(second, "alice")] and log.turn_owner(bobs) == "bob"
    assert [t.question for t in log.history(conv.id, "alice", before=1)] == ["First?"]
    assert len(log.history(conv.id, "alice")) == 2


def test_unstorable_user_text_is_replaced(db: Database) -> None:
    """Half a surrogate pair or a NUL (JSON carries them; UTF-8 and PostgreSQL cannot) in a
    title or a feedback comment is stored as U+FFFD instead of failing the write."""
    log = ConversationLog(db)
    conv = log.create_conversation("alice", "T")
    turn_id = log.record_turn(conv.id, "alice", _done())
    assert log.rename(conv.id, "alice", "a\ud800b\x00c").title == "a\ufffdb\ufffdc"
    log.set_feedback(turn_id, "alice", -1, "bad \udfff page\x00")
    assert log.get_turn(turn_id, "alice").feedback_comment == "bad \ufffd page\ufffd"


def test_concurrent_writers(db: Database) -> None:
    log = ConversationLog(db)
    reg = DocumentRegistry(db)
    shared = log.create_conversation("alice", "Shared")
    own = [log.create_conversation("alice", f"T{i}") for i in range(8)]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(20):
                log.record_turn(shared.id if j % 2 else own[i].id, "alice", _done(f"q{i}-{j}"))
                if j % 5 == 0:
                    reg.commit(reg.begin(f"f{i}-{j}", f"{i:02d}{j:062d}", 1, "text", None).id, 1)
                log.list_conversations("alice")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [t.position for t in log.turns(shared.id, "alice")] == list(range(80))
    assert all(log.get_conversation(c.id, "alice").turn_count == 10 for c in own)
    assert len(reg.list()) == 32

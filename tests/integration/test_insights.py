"""rag_core/db/insights.py on real SQLite and PostgreSQL: every figure of the Insights tab from a
known log, the window of days, and migration 0007 filling its columns for turns logged before."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command

from rag_core.db import ConversationLog, Database
from rag_core.db.database import alembic_config
from rag_core.db.insights import LogInsights
from rag_core.db.models import DocumentRow, TurnRow
from rag_core.errors import UserError
from rag_core.types import Chunk, Citation, Done, Hit, Timings

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
TODAY, YESTERDAY = NOW.date(), NOW.date() - timedelta(days=1)


def _chunk(doc: str) -> Chunk:
    return Chunk(f"{doc}-c0", f"id-{doc}", doc, "v1", 0, f"About {doc}.", 0, 10)


def _done(
    question: str, *, cites: tuple[str, ...] = (), total: float = 100.0, **kw: object
) -> Done:
    hits = tuple(Hit(_chunk(d), rank=i + 1, score=0.5) for i, d in enumerate((*cites, "other.md")))
    fields: dict[str, object] = {
        "question": question, "query": question, "answer": "An answer.", "raw_answer": "An answer.",
        "citations": tuple(Citation(i + 1, h.chunk) for i, h in enumerate(hits[: len(cites)])),
        "hits": hits, "sentences": (), "refused": False, "mode": "generated", "status": "complete",
        "timings": Timings(first_token_ms=total / 4, total_ms=total), "config": {"top_k": 5},
    }  # fmt: skip
    fields.update(kw)
    return Done(**fields)  # type: ignore[arg-type]


def _refused(question: str) -> Done:
    return _done(
        question, refused=True, mode="refused", raw_answer="", timings=Timings(total_ms=20.0)
    )


def _log(db: Database, when: datetime, *dones: Done, rating: int | None = None) -> None:
    """Log `dones` in one conversation as if asked at `when`."""
    log = ConversationLog(db)
    conv = log.create_conversation("alice")
    for done in dones:
        turn = log.record_turn(conv.id, "alice", done)
        if rating is not None:
            log.set_feedback(turn, "alice", rating)
        with db.session() as s:
            s.execute(sa.update(TurnRow).where(TurnRow.id == turn).values(created_at=when))


def _documents(db: Database, *names: str) -> None:
    with db.session() as s:
        for i, name in enumerate(names):
            s.add(DocumentRow(name=name, content_hash=f"{i:064x}", version=1, size=1,
                              doc_type="md", chunk_count=1, status="ready",
                              added_at=NOW - timedelta(days=10 - i)))  # fmt: skip


def test_every_figure_from_a_known_log(db: Database) -> None:
    _documents(db, "pump.md", "valve.md", "never.md", "old-only.md")
    # yesterday: 4 answers (one quoted fallback, totals 100..400), 2 refusals of one question
    _log(db, NOW - timedelta(days=1, hours=3),
         _done("q1", cites=("pump.md",), total=100.0),
         _done("q2", cites=("pump.md", "valve.md"), total=200.0),
         _done("q3", cites=("pump.md",), total=300.0, mode="extractive"),
         _done("q4", total=400.0),
         _refused("Where is the Boiler manual?"), _refused("where is the boiler MANUAL?"),
         rating=-1)  # fmt: skip
    # today: 2 answers, one refusal, thumbs up
    _log(db, NOW - timedelta(hours=1),
         _done("q5", cites=("valve.md",), total=50.0), _done("q6", cites=("valve.md",), total=60.0),
         _refused("What is the warranty?"), rating=1)  # fmt: skip
    # asked for quotes (not a fallback: no generated text) and outside a 2-day window
    _log(db, NOW - timedelta(hours=2), _done("q7", mode="extractive", raw_answer=""))
    _log(db, NOW - timedelta(days=5), _done("old", cites=("old-only.md",)), _refused("Old gap?"))

    report = LogInsights(db).report(2, now=NOW)
    assert (report.since, report.until) == (
        datetime(2026, 11, 29, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
    )
    y, t = report.days
    assert (y.day, y.questions, y.refused, y.quoted, y.rated, y.thumbs_down) == (
        YESTERDAY,
        6,
        2,
        1,
        6,
        6,
    )
    assert (t.day, t.questions, t.refused, t.quoted, t.rated, t.thumbs_down) == (
        TODAY,
        4,
        1,
        0,
        3,
        0,
    )
    assert y.refusal_rate == pytest.approx(2 / 6) and y.quoted_rate == pytest.approx(1 / 6)
    assert y.thumbs_down_rate == 1.0 and t.thumbs_down_rate == 0.0 and report.questions == 10

    times = {(x.day, x.metric): x for x in report.times}
    total_y = times[YESTERDAY, "total"]  # 20, 20, 100, 200, 300, 400: rank 3 and rank 6
    assert (total_y.count, total_y.p50_ms, total_y.p95_ms) == (6, 100.0, 400.0)
    first_y = times[YESTERDAY, "first_token"]  # refusals have no first token
    assert (first_y.count, first_y.p50_ms, first_y.p95_ms) == (4, 50.0, 100.0)
    total_t = times[TODAY, "total"]  # 20, 50, 60, 100
    assert (total_t.count, total_t.p50_ms, total_t.p95_ms) == (4, 50.0, 100.0)

    cited = [(c.document, c.answers) for c in report.most_cited]
    assert cited == [("pump.md", 3), ("valve.md", 3)]  # ties by name; old-only.md is too old
    assert report.most_cited[1].last_cited == NOW - timedelta(hours=1)
    assert [d.document for d in report.never_cited] == ["never.md", "old-only.md"]
    refused = [(r.question.lower(), r.count) for r in report.refused]
    assert refused == [("where is the boiler manual?", 2), ("what is the warranty?", 1)]
    assert report.refused[0].last_asked == NOW - timedelta(days=1, hours=3)

    wider = LogInsights(db).report(7, now=NOW)
    assert wider.questions == 12 and "old-only.md" not in [d.document for d in wider.never_cited]
    assert [r.count for r in wider.refused] == [2, 1, 1]


def test_an_empty_log_and_a_bad_window(db: Database) -> None:
    _documents(db, "alone.md")
    report = LogInsights(db).report(now=NOW)
    assert report.days == report.times == report.most_cited == report.refused == ()
    assert [d.document for d in report.never_cited] == ["alone.md"]
    for days in (0, -1, 4000, True):
        with pytest.raises(UserError, match="days must be a whole number from 1 to 3660"):
            LogInsights(db).report(days, now=NOW)


def test_migration_0007_fills_its_columns_for_logged_turns(db: Database) -> None:
    with db.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0006")
    assert db.revision() == "0006"
    with db.session() as s:  # a conversation and turns as 0006 wrote them: timings only in JSON
        s.execute(
            sa.text(
                'INSERT INTO conversations (id, "user", title, created_at, updated_at) '
                "VALUES ('c1', 'alice', 'New conversation', :now, :now)"
            ),
            {"now": NOW.replace(tzinfo=None)},
        )
        for i, (mode, raw) in enumerate([("extractive", "generated text"), ("extractive", ""),
                                         ("generated", "text")]):  # fmt: skip
            s.execute(
                sa.text(
                    "INSERT INTO turns (conversation_id, position, question, query, answer, "
                    "raw_answer, refused, mode, status, timings, config, created_at) VALUES "
                    "(:c, :p, 'q', 'q', 'a', :raw, :f, :mode, 'complete', :timings, '{}', :now)"
                ),
                {"c": "c1", "p": i, "raw": raw, "f": False, "mode": mode, "now": NOW.replace(tzinfo=None),
                 "timings": '{"first_token_ms": %s, "total_ms": 90.5}' % ("null" if i else "12.5")},
            )  # fmt: skip
    db.migrate()
    with db.read_session() as s:
        rows = s.execute(
            sa.select(TurnRow.quoted_fallback, TurnRow.first_token_ms, TurnRow.total_ms).order_by(
                TurnRow.position
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        (True, 12.5, 90.5),
        (False, None, 90.5),
        (False, None, 90.5),
    ]
    day = LogInsights(db).report(1, now=NOW).days[0]
    assert (day.questions, day.quoted) == (3, 1)


def test_logged_turns_fill_the_columns(db: Database) -> None:
    _log(db, NOW, replace(_done("q", total=80.0), mode="extractive"))
    with db.read_session() as s:
        row = s.execute(
            sa.select(TurnRow.quoted_fallback, TurnRow.first_token_ms, TurnRow.total_ms)
        ).one()
    assert tuple(row) == (True, 20.0, 80.0)

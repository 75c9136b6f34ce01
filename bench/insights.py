"""Insights on a big log: p50 time of each insights query on a generated log, SQLite and PostgreSQL.

`python -m bench.insights [--turns 100000] [--repeats 15] [--db sqlite,postgresql]` writes a log
of `--turns` turns (10 per conversation, spread over 30 days, ~8% refused, ~4% quoted
fallbacks, ~5% rated; 5 retrieved passages each, 1-2 of them cited, from 300 documents) into a
fresh SQLite file and a fresh PostgreSQL schema (127.0.0.1:5432, database `test`), then times
every query of the Insights tab (the 30-day window, so every turn is read) and the whole report.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from rag_core.db.database import Database
from rag_core.db.insights import LogInsights, window
from rag_core.db.models import ConversationRow, DocumentRow, TurnPassageRow, TurnRow

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DOCUMENTS = 300
TURNS_PER_CONVERSATION = 10
DAYS = 30
BATCH = 5_000
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


@contextmanager
def database(kind: str) -> Iterator[Database]:
    """A fresh, migrated database: a SQLite file, or a PostgreSQL schema dropped afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            db = Database(f"sqlite:///{Path(folder) / 'bench.sqlite'}")
            db.migrate()
            yield db
            db.dispose()
        return
    schema = "bench_" + uuid.uuid4().hex[:8]
    admin = sa.create_engine(POSTGRES)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        db = Database(f"{POSTGRES}?options=-csearch_path%3D{schema}")
        db.migrate()
        yield db
        db.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _turn(rng: random.Random, conv: str, position: int, doc_names: list[str]) -> dict[str, Any]:
    refused = rng.random() < 0.08
    quoted = not refused and rng.random() < 0.045
    when = NOW - timedelta(seconds=rng.uniform(0, (DAYS - 0.5) * 86400))  # all in the window
    total = rng.lognormvariate(7.5, 0.5)
    first = None if refused else total * rng.uniform(0.2, 0.6)
    rating = rng.choice((1, -1)) if rng.random() < 0.05 else None
    question = f"question {rng.randrange(5000)} about {rng.choice(doc_names)}"
    return {
        "conversation_id": conv, "position": position, "question": question, "query": question,
        "answer": "an answer [1]", "lead": None, "raw_answer": "" if refused else "raw [1]",
        "refused": refused, "mode": "refused" if refused else "extractive" if quoted else "generated",
        "status": "complete", "error": None, "created_at": when, "feedback_rating": rating,
        "timings": {"retrieval_ms": 30.0, "total_ms": total, "first_token_ms": first},
        "first_token_ms": first, "total_ms": total, "quoted_fallback": quoted,
        "config": {"top_k": 5, "retrieval_mode": "hybrid"},
    }  # fmt: skip


def _passages(
    rng: random.Random, turn_id: int, refused: bool, docs: list[str]
) -> list[dict[str, Any]]:
    cited = 0 if refused else rng.choice((1, 1, 2))
    rows = []
    for rank in range(1, 6):
        name = docs[min(int(rng.paretovariate(1.2)) - 1, len(docs) - 1)]  # a few docs dominate
        rows.append({
            "turn_id": turn_id, "rank": rank, "score": 1.0 / rank, "chunk_id": f"{name}-{rank}",
            "document_id": name, "document_name": name, "version": "v1", "chunk_index": rank,
            "heading_path": [], "char_start": 0, "char_end": 100, "text": "passage text " * 20,
            "cited": rank <= cited, "citation_numbers": [rank] if rank <= cited else [],
        })  # fmt: skip
    return rows


def fill(db: Database, turns: int, seed: int = 7) -> None:
    """Write the generated log: documents, conversations, turns and their passages."""
    rng = random.Random(seed)
    docs = [f"document-{i:03d}.pdf" for i in range(DOCUMENTS)]
    with db.session() as s:
        s.execute(sa.insert(DocumentRow), [
            {"id": uuid.uuid4().hex, "name": name, "content_hash": f"{i:064x}", "version": 1,
             "size": 1000, "doc_type": "pdf", "chunk_count": 10, "status": "ready",
             "added_at": NOW - timedelta(days=60), "updated_at": NOW - timedelta(days=60)}
            for i, name in enumerate(docs)
        ])  # fmt: skip
    made = 0
    while made < turns:
        n = min(BATCH, turns - made)
        convs = [uuid.uuid4().hex for _ in range(-(-n // TURNS_PER_CONVERSATION))]
        rows = [
            _turn(rng, convs[i // TURNS_PER_CONVERSATION], i % TURNS_PER_CONVERSATION, docs)
            for i in range(n)
        ]
        with db.session() as s:
            s.execute(sa.insert(ConversationRow), [
                {"id": c, "user": f"user{rng.randrange(50)}", "title": "t",
                 "created_at": NOW, "updated_at": NOW} for c in convs
            ])  # fmt: skip
            ids = s.scalars(
                sa.insert(TurnRow).returning(TurnRow.id, sort_by_parameter_order=True), rows
            ).all()
            passages = [p for tid, row in zip(ids, rows, strict=True)
                        for p in _passages(rng, tid, row["refused"], docs)]  # fmt: skip
            s.execute(sa.insert(TurnPassageRow), passages)
        made += n
    # fresh statistics and (PostgreSQL) visibility map, as autovacuum keeps them on a live server
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(
            sa.text("VACUUM ANALYZE" if db.engine.dialect.name == "postgresql" else "ANALYZE")
        )


def timed(fn: Callable[[], object], repeats: int) -> float:
    """p50 of `repeats` runs, in ms."""
    fn()  # warm the caches once
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(db: Database, repeats: int) -> dict[str, float]:
    insights = LogInsights(db)
    since, until = window(DAYS, NOW)

    def one(name: str) -> Callable[[], object]:
        def run() -> object:
            with db.read_session() as s:
                return getattr(insights, name)(s, since, until)

        return run

    queries = {
        "questions and rates per day": one("daily"),
        "first-token and total p50/p95 per day": one("timings"),
        "most cited documents": one("most_cited"),
        "never-cited documents": one("never_cited"),
        "most refused questions": one("refused"),
        "whole report (GET /api/insights)": lambda: insights.report(DAYS, now=NOW),
    }
    return {name: timed(fn, repeats) for name, fn in queries.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--db", default="sqlite,postgresql")
    args = parser.parse_args(argv)
    results: dict[str, dict[str, float]] = {}
    for kind in args.db.split(","):
        with database(kind) as db:
            start = time.perf_counter()
            fill(db, args.turns)
            print(f"{kind}: {args.turns} turns written in {time.perf_counter() - start:.0f} s")
            results[kind] = measure(db, args.repeats)
            report = LogInsights(db).report(DAYS, now=NOW)
            print(f"{kind}: report holds {report.questions} questions over {len(report.days)} days")
    kinds = list(results)
    print(f"\np50 ms on {args.turns} turns ({args.repeats} runs each)")
    print(f"{'query':42}" + "".join(f"{k:>12}" for k in kinds))
    for name in next(iter(results.values())):
        print(f"{name:42}" + "".join(f"{results[k][name]:>12.1f}" for k in kinds))


if __name__ == "__main__":
    main()

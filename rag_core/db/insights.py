"""What the conversation log says about the assistant over time, aggregated in SQL.

Every user's turns count (insights are for an administrator). Each figure is one query over a
window of days, grouped in the database and served by the indexes of migration 0007, so a log
of 100k turns answers in well under a second (bench/insights.py measures it): questions per
day; refusal, quoted-fallback and thumbs-down rates per day; first-token and total time p50/p95
per day (nearest rank); the documents cited most and those never cited; and the questions
refused most often, which point at gaps in the knowledge base.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from rag_core.db.database import Database
from rag_core.db.models import DocumentRow, TurnPassageRow, TurnRow, utcnow
from rag_core.errors import UserError

DEFAULT_DAYS = 30
MAX_DAYS = 3660
TOP = 10  # documents and refused questions listed
MAX_UNCITED = 100  # never-cited documents listed (oldest first)

Metric = Literal["first_token", "total"]


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


@dataclass(frozen=True)
class DayStats:
    """One day's questions and how many were refused, answered by quoting passages after the
    generated answer failed its checks (quoted fallback), rated, and rated thumbs down."""

    day: date
    questions: int
    refused: int
    quoted: int
    rated: int
    thumbs_down: int

    @property
    def refusal_rate(self) -> float:
        return _rate(self.refused, self.questions)

    @property
    def quoted_rate(self) -> float:
        return _rate(self.quoted, self.questions)

    @property
    def thumbs_down_rate(self) -> float:
        """Thumbs down among all the day's answers (unrated ones count as not down)."""
        return _rate(self.thumbs_down, self.questions)


@dataclass(frozen=True)
class DayTimes:
    """One day's p50 and p95 of a timing (ms) over the answers that have it."""

    day: date
    metric: Metric
    count: int
    p50_ms: float
    p95_ms: float


@dataclass(frozen=True)
class CitedDocument:
    """A document (all its versions) and how many answers cited it."""

    document: str
    answers: int
    last_cited: datetime


@dataclass(frozen=True)
class UncitedDocument:
    """A document in the knowledge base that no answer in the window cited."""

    document: str
    version: int
    added_at: datetime


@dataclass(frozen=True)
class RefusedQuestion:
    """A question refused `count` times (compared case-insensitively): a gap to fill."""

    question: str
    count: int
    last_asked: datetime


@dataclass(frozen=True)
class Insights:
    """Every figure of the Insights tab and GET /api/insights, for [since, until)."""

    since: datetime
    until: datetime
    days: tuple[DayStats, ...]
    times: tuple[DayTimes, ...]
    most_cited: tuple[CitedDocument, ...]
    never_cited: tuple[UncitedDocument, ...]
    refused: tuple[RefusedQuestion, ...]

    @property
    def questions(self) -> int:
        return sum(d.questions for d in self.days)


def window(days: int, now: datetime | None = None) -> tuple[datetime, datetime]:
    """[since, until): the last `days` whole UTC days, today included."""
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise UserError(f"days must be a whole number from 1 to {MAX_DAYS}, not {days!r}")
    end = now or utcnow()
    today = end.replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days - 1), today + timedelta(days=1)


class LogInsights:
    """The insights queries; `report` runs them all for one window."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def report(self, days: int = DEFAULT_DAYS, *, now: datetime | None = None) -> Insights:
        """Every figure for the last `days` days (UserError for a days value out of range)."""
        since, until = window(days, now)
        with self.db.read_session() as s:
            return Insights(
                since=since,
                until=until,
                days=self.daily(s, since, until),
                times=self.timings(s, since, until),
                most_cited=self.most_cited(s, since, until),
                never_cited=self.never_cited(s, since, until),
                refused=self.refused(s, since, until),
            )

    # -- one query per figure (a session, so `report` reads them all in one) -------------------

    def daily(self, s: Session, since: datetime, until: datetime) -> tuple[DayStats, ...]:
        """Questions, refusals, quoted fallbacks, ratings and thumbs down per day."""
        day = _day(s)
        stmt = (
            sa.select(
                day,
                sa.func.count(),
                _count_if(TurnRow.refused),
                _count_if(TurnRow.quoted_fallback),
                _count_if(TurnRow.feedback_rating.is_not(None)),
                _count_if(TurnRow.feedback_rating == -1),
            )
            .where(_in_window(since, until))
            .group_by(day)
            .order_by(day)
        )
        return tuple(DayStats(_date(d), *map(int, rest)) for d, *rest in s.execute(stmt))

    def timings(self, s: Session, since: datetime, until: datetime) -> tuple[DayTimes, ...]:
        """First-token and total time p50/p95 per day, nearest rank (the value at rank
        ceil(p * n) of the day's n values in order): PostgreSQL's percentile_disc; SQLite has
        no percentile function, so its days' values are read in one scan of the index and
        ranked here."""
        if s.get_bind().dialect.name == "postgresql":
            return self._pg_timings(s, since, until)
        raw_time = sa.type_coerce(TurnRow.created_at, sa.String)  # UTC text: its day is [:10]
        stmt = sa.select(raw_time, TurnRow.first_token_ms, TurnRow.total_ms).where(
            _in_window(since, until)
        )
        values: dict[tuple[Metric, str], list[float]] = defaultdict(list)
        for when, first, total in s.execute(stmt):
            if first is not None:
                values["first_token", when[:10]].append(first)
            if total is not None:
                values["total", when[:10]].append(total)
        out = []
        for (metric, d), found in sorted(values.items()):
            found.sort()
            p50, p95 = (found[max(0, math.ceil(p * len(found)) - 1)] for p in (0.5, 0.95))
            out.append(DayTimes(_date(d), metric, len(found), p50, p95))
        return tuple(out)

    @staticmethod
    def _pg_timings(s: Session, since: datetime, until: datetime) -> tuple[DayTimes, ...]:
        day = _day(s)
        columns: dict[Metric, Any] = {
            "first_token": TurnRow.first_token_ms,
            "total": TurnRow.total_ms,
        }
        parts = [  # ordered-set aggregates skip NULLs, as count(column) does
            part
            for column in columns.values()
            for part in (
                sa.func.count(column),
                sa.func.percentile_disc(0.5).within_group(column),
                sa.func.percentile_disc(0.95).within_group(column),
            )
        ]
        stmt = sa.select(day, *parts).where(_in_window(since, until)).group_by(day).order_by(day)
        rows = s.execute(stmt).all()
        return tuple(
            DayTimes(_date(row[0]), metric, int(n), float(p50), float(p95))
            for i, metric in enumerate(columns)
            for row in rows
            for n, p50, p95 in [row[1 + 3 * i : 4 + 3 * i]]
            if n
        )

    def most_cited(
        self, s: Session, since: datetime, until: datetime, top: int = TOP
    ) -> tuple[CitedDocument, ...]:
        """The documents cited by the most answers (a document's versions count together)."""
        ids = _id_range(s, since, until)
        if ids is None:
            return ()
        answers = sa.func.count(sa.distinct(TurnPassageRow.turn_id))
        stmt = (
            sa.select(TurnPassageRow.document_name, answers, sa.func.max(TurnPassageRow.turn_id))
            .where(TurnPassageRow.cited, TurnPassageRow.turn_id.between(*ids))
            .group_by(TurnPassageRow.document_name)
            .order_by(answers.desc(), TurnPassageRow.document_name)
            .limit(top)
        )
        rows = s.execute(stmt).all()
        last_ids = [last for _, _, last in rows]  # when each was last cited: ten look-ups
        times = sa.select(TurnRow.id, TurnRow.created_at).where(TurnRow.id.in_(last_ids))
        when = {turn_id: at for turn_id, at in s.execute(times)}
        return tuple(CitedDocument(name, int(n), when[last]) for name, n, last in rows)

    def never_cited(
        self, s: Session, since: datetime, until: datetime, limit: int = MAX_UNCITED
    ) -> tuple[UncitedDocument, ...]:
        """Documents in the knowledge base that no answer in the window cited, oldest first."""
        ids = _id_range(s, since, until)
        stmt = sa.select(DocumentRow.name, DocumentRow.version, DocumentRow.added_at).where(
            DocumentRow.status == "ready"
        )
        if ids is not None:
            cited = (
                sa.select(TurnPassageRow.id)
                .where(
                    TurnPassageRow.document_name == DocumentRow.name,
                    TurnPassageRow.cited,
                    TurnPassageRow.turn_id.between(*ids),
                )
                .exists()
            )
            stmt = stmt.where(~cited)
        stmt = stmt.order_by(DocumentRow.added_at, DocumentRow.name).limit(limit)
        return tuple(UncitedDocument(*row) for row in s.execute(stmt))

    def refused(
        self, s: Session, since: datetime, until: datetime, top: int = TOP
    ) -> tuple[RefusedQuestion, ...]:
        """The questions refused most often, the same question in any letter case counted once."""
        count, last = sa.func.count(), sa.func.max(TurnRow.created_at)
        stmt = (
            sa.select(sa.func.min(TurnRow.question), count, last)
            .where(TurnRow.refused, _in_window(since, until))
            .group_by(sa.func.lower(TurnRow.question))
            .order_by(count.desc(), last.desc())
            .limit(top)
        )
        return tuple(RefusedQuestion(q, int(n), when) for q, n, when in s.execute(stmt))


def _in_window(since: datetime, until: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(TurnRow.created_at >= since, TurnRow.created_at < until)


def _id_range(s: Session, since: datetime, until: datetime) -> tuple[int, int] | None:
    """The smallest and largest turn id of the window (None when it has no turn): turn ids grow
    with time (a turn gets both when it is logged), so the window's passages are found by
    turn id alone, without joining every passage to its turn."""
    stmt = sa.select(sa.func.min(TurnRow.id), sa.func.max(TurnRow.id)).where(
        _in_window(since, until)
    )
    first, last = s.execute(stmt).one()
    return None if first is None else (int(first), int(last))


def _day(s: Session) -> sa.ColumnElement[Any]:
    """A turn's UTC day: SQLite keeps timestamps as UTC text starting with 'YYYY-MM-DD';
    PostgreSQL's become a date in UTC."""
    if s.get_bind().dialect.name == "postgresql":
        utc = sa.func.timezone("UTC", TurnRow.created_at)
        return sa.cast(utc, sa.Date)
    return sa.func.substr(TurnRow.created_at, 1, 10, type_=sa.String)


def _count_if(condition: Any) -> sa.ColumnElement[Any]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _date(value: Any) -> date:
    return date.fromisoformat(str(value)[:10])

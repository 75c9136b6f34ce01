"""ConversationLog: conversations, turns, the passages they retrieved and cited, and feedback.

Every method takes the user and enforces ownership: another user's conversation or turn raises
ConversationNotFoundError exactly like a missing one, so ids reveal nothing.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast, get_args

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from rag_core.db.database import Database
from rag_core.db.models import (
    DEFAULT_TITLE,
    ConversationRow,
    TurnPassageRow,
    TurnRow,
    TurnSentenceRow,
    from_row,
    to_row,
    utcnow,
)
from rag_core.db.records import ConversationRecord, Feedback, TurnRecord
from rag_core.errors import ConversationNotFoundError, UserError
from rag_core.grounding import render_answer
from rag_core.text import storable
from rag_core.types import (
    Chunk,
    Citation,
    Done,
    FeedbackReason,
    Hit,
    Scope,
    SentenceCheck,
    Timings,
    Turn,
    Verdict,
)

MAX_TITLE = 200
AUTO_TITLE = 80  # titles taken from a first question are cut shorter, for the sidebar


_storable = storable


def _clean_title(title: str) -> str:
    """Whitespace collapsed, at most MAX_TITLE characters, storable."""
    return " ".join(_storable(title).split())[:MAX_TITLE].rstrip()


def _auto_title(question: str) -> str:
    """A sidebar title from a first question: its start, with an ellipsis if cut."""
    text = " ".join(question.split())
    return text if len(text) <= AUTO_TITLE else text[: AUTO_TITLE - 1].rstrip() + "…"


def _jsonable(value: Mapping[str, Any]) -> dict[str, Any]:
    """A plain-JSON copy (paths, enums and the like become strings)."""
    result: dict[str, Any] = json.loads(json.dumps(dict(value), default=str))
    return result


def _turn_count() -> sa.ScalarSelect[int]:
    return (
        sa.select(sa.func.count(TurnRow.id))
        .where(TurnRow.conversation_id == ConversationRow.id)
        .correlate(ConversationRow)
        .scalar_subquery()
    )


def _conversation_record(row: ConversationRow, turn_count: int) -> ConversationRecord:
    return from_row(
        ConversationRecord, row, turn_count=turn_count, scope=Scope.from_json(row.scope)
    )


def _chunk(p: TurnPassageRow) -> Chunk:
    heading_path = tuple(p.heading_path)
    return from_row(
        Chunk, p, id=p.chunk_id, index=p.chunk_index, heading_path=heading_path, ocr=bool(p.ocr)
    )


def _turn_record(row: TurnRow) -> TurnRecord:
    """Rebuild hits, citations and sentence checks from the stored rows."""
    sentences = tuple(
        from_row(
            SentenceCheck,
            s,
            index=s.position,
            reason="" if s.reason == _OLD_NO_CLAIM else s.reason,
            verdict=_verdict(s, row),
        )
        for s in row.sentences
    )
    support_for: dict[int, str] = {}
    for s in sentences:
        if s.citation is not None and s.support and s.citation not in support_for:
            support_for[s.citation] = s.support
    hits: list[Hit] = []
    citations: list[Citation] = []
    for p in row.passages:
        chunk = _chunk(p)
        hits.append(from_row(Hit, p, chunk=chunk))
        if not p.cited:
            continue
        for n in p.citation_numbers:
            support = support_for.get(n)
            start = chunk.text.find(support) if support else -1
            citations.append(
                Citation(
                    n=n,
                    chunk=chunk,
                    support=support,
                    support_start=start if start >= 0 else None,
                    support_end=start + len(support) if support and start >= 0 else None,
                )
            )
    citations.sort(key=lambda c: c.n)
    return from_row(
        TurnRecord,
        row,
        timings=_timings(row.timings),
        config=dict(row.config),
        hits=tuple(hits),
        citations=tuple(citations),
        sentences=sentences,
        lead=row.lead if row.lead is not None else _old_lead(row.answer, sentences),
        feedback=_feedback(row),
    )


def _feedback(row: TurnRow) -> Feedback | None:
    if row.feedback_reason is None and row.feedback_passage is None and not row.feedback_no_passage:
        return None
    reason = row.feedback_reason if row.feedback_reason in get_args(FeedbackReason) else None
    return Feedback(
        cast(FeedbackReason | None, reason), row.feedback_passage, bool(row.feedback_no_passage)
    )


_OLD_NO_CLAIM = "no claim"  # how turns logged before migration 0005 marked a sentence
_OLD_UNSUPPORTED: dict[str, Verdict] = {"mark": "marked", "remove": "removed", "off": "unchecked"}


def _verdict(s: TurnSentenceRow, turn: TurnRow) -> Verdict:
    """A sentence's verdict; for turns logged before 0005, derived from what was shown."""
    if s.verdict in get_args(Verdict):
        return cast(Verdict, s.verdict)
    if s.reason == _OLD_NO_CLAIM:
        return "no-claim"
    if s.supported:
        return "supported"
    if turn.mode != "generated":
        return "replaced"
    return _OLD_UNSUPPORTED.get(str(turn.config.get("grounding", "mark")), "marked")


def _old_lead(answer: str, sentences: Sequence[SentenceCheck]) -> str:
    """The lead of a turn logged before 0005: the answer's text before its shown sentences (all
    of it when none was shown, as in a refusal); "" when they do not make up its end."""
    shown = render_answer("", sentences)
    if not shown:
        return answer
    return answer[: -len(shown)].strip() if answer.endswith(shown) else ""


# what quoted answers opened with before leads were logged apart (turns from before 0005)
_OLD_LEADS = (
    "The generated answer could not be checked against your documents; they say:",
    "The documents may not answer this directly; the closest they say is:",
)


def _without_lead(answer: str, lead: str | None) -> str:
    for known in (lead, *_OLD_LEADS) if lead else _OLD_LEADS:
        if known and answer.startswith(known):
            return answer[len(known) :].strip()
    return answer


def _timings(data: Mapping[str, Any]) -> Timings:
    """The logged timings, typed; keys this version does not know are dropped."""
    known = {f.name for f in dataclasses.fields(Timings)}
    return Timings(**{k: v for k, v in data.items() if k in known})


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def cursor_of(record: ConversationRecord) -> str:
    """An opaque cursor that continues a conversation listing after `record`."""
    raw = f"{record.updated_at.isoformat()}|{record.created_at.isoformat()}|{record.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _cursor_key(after: ConversationRecord | str) -> tuple[datetime, datetime, str]:
    if isinstance(after, ConversationRecord):
        return after.updated_at, after.created_at, after.id
    try:
        raw = base64.urlsafe_b64decode(after + "=" * (-len(after) % 4)).decode()
        updated, created, conv_id = raw.split("|")
        return datetime.fromisoformat(updated), datetime.fromisoformat(created), conv_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"The cursor {after[:40]!r} is not one this server gave out") from exc


MAX_ROW_ID = 2**63 - 1  # the largest id a database integer holds


def _turn_id(turn_id: object) -> int:
    """A turn id as the database can hold it; anything else is a turn that does not exist."""
    if isinstance(turn_id, bool) or not isinstance(turn_id, int) or not 1 <= turn_id <= MAX_ROW_ID:
        raise ConversationNotFoundError(f"Turn {str(turn_id)[:40]!r} not found")
    return turn_id


def _with_children() -> sa.Select[TurnRow]:
    return sa.select(TurnRow).options(
        selectinload(TurnRow.passages), selectinload(TurnRow.sentences)
    )


class ConversationLog:
    """Reads and writes conversations and turns on behalf of one user at a time."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _owned(s: Session, conv_id: str, user: str, *, lock: bool = False) -> ConversationRow:
        stmt = sa.select(ConversationRow).where(
            ConversationRow.id == conv_id, ConversationRow.user == user
        )
        row = s.scalars(stmt.with_for_update() if lock else stmt).first()
        if row is None:
            raise ConversationNotFoundError(f"Conversation {conv_id!r} not found")
        return row

    @staticmethod
    def _owned_turn(s: Session, turn_id: int, user: str, select: sa.Select[TurnRow]) -> TurnRow:
        """The turn `select` loads, if its conversation is the user's (as `_owned` does for a
        conversation): another user's turn is not found, like one that does not exist."""
        stmt = select.join(TurnRow.conversation).where(
            TurnRow.id == turn_id, ConversationRow.user == user
        )
        row = s.scalars(stmt).first()
        if row is None:
            raise ConversationNotFoundError(f"Turn {turn_id!r} not found")
        return row

    def create_conversation(
        self, user: str, title: str = DEFAULT_TITLE, scope: Scope | None = None
    ) -> ConversationRecord:
        """Start an empty conversation; a blank title becomes the default."""
        with self.db.session() as s:
            row = ConversationRow(user=user, title=_clean_title(title) or DEFAULT_TITLE)
            row.scope = None if scope is None or scope.everything else scope.as_json()
            s.add(row)
            s.flush()
            return _conversation_record(row, 0)

    def set_scope(self, conv_id: str, user: str, scope: Scope) -> None:
        """Remember what a conversation's questions search (an empty scope: everything)."""
        with self.db.session() as s:
            row = self._owned(s, conv_id, user, lock=True)
            row.scope = None if scope.everything else scope.as_json()

    def list_conversations(
        self,
        user: str,
        *,
        limit: int | None = None,
        after: ConversationRecord | str | None = None,
        search: str | None = None,
    ) -> list[ConversationRecord]:
        """The user's conversations, most recently active first.

        `limit` caps how many; `after` continues a listing after that conversation (a record or
        a cursor from `cursor_of`), so pages stay stable while others change; `search` keeps
        titles that contain it (case-insensitive).
        """
        order = (ConversationRow.updated_at, ConversationRow.created_at, ConversationRow.id)
        stmt = sa.select(ConversationRow, _turn_count()).where(ConversationRow.user == user)
        if search and search.strip():
            pattern = "%" + _like_escape(" ".join(search.split()).lower()) + "%"
            stmt = stmt.where(sa.func.lower(ConversationRow.title).like(pattern, escape="\\"))
        if after is not None:
            updated, created, conv_id = _cursor_key(after)
            # rows after `after` in (updated desc, created desc, id asc) order
            stmt = stmt.where(
                sa.or_(
                    order[0] < updated,
                    sa.and_(order[0] == updated, order[1] < created),
                    sa.and_(order[0] == updated, order[1] == created, order[2] > conv_id),
                )
            )
        stmt = stmt.order_by(order[0].desc(), order[1].desc(), order[2])
        if limit is not None:
            stmt = stmt.limit(max(0, limit))
        with self.db.read_session() as s:
            return [_conversation_record(row, count) for row, count in s.execute(stmt)]

    def get_conversation(self, conv_id: str, user: str) -> ConversationRecord:
        """One of the user's conversations."""
        with self.db.read_session() as s:
            row = self._owned(s, conv_id, user)
            count = s.scalar(
                sa.select(sa.func.count(TurnRow.id)).where(TurnRow.conversation_id == row.id)
            )
            return _conversation_record(row, count or 0)

    def rename(self, conv_id: str, user: str, title: str) -> ConversationRecord:
        """Give a conversation a new title (whitespace collapsed, at most 200 characters)."""
        clean = _clean_title(title)
        if not clean:
            raise UserError("A conversation title cannot be empty")
        with self.db.session() as s:
            row = self._owned(s, conv_id, user, lock=True)
            row.title = clean
            row.updated_at = utcnow()
        return self.get_conversation(conv_id, user)

    def delete(self, conv_id: str, user: str) -> None:
        """Delete a conversation; its turns, passages and sentences go with it (FK cascade)."""
        with self.db.session() as s:
            result = s.execute(
                sa.delete(ConversationRow).where(
                    ConversationRow.id == conv_id, ConversationRow.user == user
                )
            )
            if getattr(result, "rowcount", 0) == 0:
                raise ConversationNotFoundError(f"Conversation {conv_id!r} not found")

    def record_turn(self, conv_id: str, user: str, done: Done) -> int:
        """Log a finished answer with its passages and sentence verdicts; returns the turn id.

        Locks the conversation row, so concurrent turns get distinct positions.
        """
        numbers: dict[str, list[int]] = defaultdict(list)
        for c in done.citations:
            numbers[c.chunk.id].append(c.n)
        with self.db.session() as s:
            conv = self._owned(s, conv_id, user, lock=True)
            last = s.scalar(
                sa.select(sa.func.max(TurnRow.position)).where(TurnRow.conversation_id == conv.id)
            )
            now = utcnow()
            turn = TurnRow(
                conversation_id=conv.id,
                position=0 if last is None else last + 1,
                question=done.question,
                query=done.query,
                answer=done.answer,
                lead=done.lead or None,
                raw_answer=done.raw_answer,
                refused=done.refused,
                mode=done.mode,
                status=done.status,
                error=done.error,
                timings=_jsonable(dataclasses.asdict(done.timings)),
                first_token_ms=done.timings.first_token_ms,
                total_ms=done.timings.total_ms,
                quoted_fallback=done.mode == "extractive" and bool(done.raw_answer),
                config=_jsonable(done.config),
                created_at=now,
                gate_score=done.gate_score,
            )
            turn.passages = [
                to_row(
                    TurnPassageRow,
                    h,
                    h.chunk,
                    chunk_id=h.chunk.id,
                    chunk_index=h.chunk.index,
                    heading_path=list(h.chunk.heading_path),
                    cited=h.chunk.id in numbers,
                    citation_numbers=sorted(numbers.get(h.chunk.id, [])),
                )
                for h in done.hits
            ]
            turn.sentences = [to_row(TurnSentenceRow, c, position=c.index) for c in done.sentences]
            s.add(turn)
            conv.updated_at = now
            if conv.title == DEFAULT_TITLE and done.question.strip():
                conv.title = _auto_title(done.question)
            s.flush()
            return turn.id

    def turns(self, conv_id: str, user: str) -> list[TurnRecord]:
        """Every turn of a conversation, in order, with hits, citations and sentences."""
        with self.db.read_session() as s:
            self._owned(s, conv_id, user)
            rows = s.scalars(
                _with_children()
                .where(TurnRow.conversation_id == conv_id)
                .order_by(TurnRow.position)
            ).all()
            return [_turn_record(r) for r in rows]

    def get_turn(self, turn_id: int, user: str) -> TurnRecord:
        """One turn, if its conversation belongs to the user."""
        turn_id = _turn_id(turn_id)
        with self.db.read_session() as s:
            return _turn_record(self._owned_turn(s, turn_id, user, _with_children()))

    def history(self, conv_id: str, user: str, *, before: int | None = None) -> list[Turn]:
        """Question/answer pairs for follow-up questions (turns that ended in error are skipped);
        with `before`, only the turns before that position (what a replayed turn followed).

        An answer is what it said, without ragchat's own words: a refusal counts as no answer,
        and a quoted answer keeps its quotes without the lead that says what they are, so the
        generator never reads (and repeats) ragchat's boilerplate as if it were an answer."""
        stmt = (
            sa.select(TurnRow.question, TurnRow.answer, TurnRow.refused, TurnRow.lead)
            .where(TurnRow.conversation_id == conv_id, TurnRow.status != "error")
            .order_by(TurnRow.position)
        )
        if before is not None:
            stmt = stmt.where(TurnRow.position < before)
        with self.db.read_session() as s:
            self._owned(s, conv_id, user)
            return [
                Turn(question=q, answer="" if refused else _without_lead(a, lead))
                for q, a, refused, lead in s.execute(stmt)
            ]

    def turn_ids(
        self,
        *,
        user: str | None = None,
        since: datetime | None = None,
        rated: bool = False,
        limit: int | None = None,
    ) -> list[tuple[int, str]]:
        """(turn id, its user) of logged turns, oldest first: of one user or (None) everyone,
        logged at or after `since`, only those with a thumbs up or down when `rated`. For tools
        that read the log back (replay, the feedback evaluation set)."""
        stmt = sa.select(TurnRow.id, ConversationRow.user).join(TurnRow.conversation)
        if user is not None:
            stmt = stmt.where(ConversationRow.user == user)
        if since is not None:
            stmt = stmt.where(TurnRow.created_at >= since)
        if rated:
            stmt = stmt.where(TurnRow.feedback_rating.is_not(None))
        stmt = stmt.order_by(TurnRow.created_at, TurnRow.id)
        if limit is not None:
            stmt = stmt.limit(max(0, limit))
        with self.db.read_session() as s:
            return [(turn_id, owner) for turn_id, owner in s.execute(stmt)]

    def turn_owner(self, turn_id: int) -> str:
        """Whose turn this is (for the operator's tools, which act for the turn's owner)."""
        turn_id = _turn_id(turn_id)
        stmt = (
            sa.select(ConversationRow.user).join(TurnRow.conversation).where(TurnRow.id == turn_id)
        )
        with self.db.read_session() as s:
            owner = s.scalar(stmt)
        if owner is None:
            raise ConversationNotFoundError(f"Turn {turn_id!r} not found")
        return owner

    def set_feedback(
        self,
        turn_id: int,
        user: str,
        rating: int,
        comment: str | None = None,
        feedback: Feedback | None = None,
    ) -> None:
        """Record a thumbs up (+1) or down (-1) on a turn, with an optional comment and, for a
        thumbs down, what was wrong (`feedback`: its passage must be one the turn retrieved).
        A thumbs up clears what a thumbs down said."""
        if isinstance(rating, bool) or rating not in (1, -1):
            raise UserError(f"Feedback rating must be +1 or -1, not {rating!r}")
        _check_feedback(rating, feedback)
        turn_id = _turn_id(turn_id)
        with self.db.session() as s:
            row = self._owned_turn(s, turn_id, user, sa.select(TurnRow))
            if feedback is not None and feedback.passage is not None:
                chunk_ids = {p.chunk_id for p in row.passages}
                if feedback.passage not in chunk_ids:
                    raise UserError(
                        f"Passage {feedback.passage[:80]!r} is not one this answer retrieved"
                    )
            row.feedback_rating = rating
            row.feedback_comment = _storable(comment or "").strip() or None
            row.feedback_at = utcnow()
            if feedback is not None or rating == 1:
                kept = feedback or Feedback()
                row.feedback_reason = kept.reason
                row.feedback_passage = kept.passage
                row.feedback_no_passage = kept.no_passage or None


def _check_feedback(rating: int, feedback: Feedback | None) -> None:
    """What a thumbs down may say: a known reason, one passage or "none of these", not both."""
    if feedback is None:
        return
    if rating != -1 and feedback != Feedback():
        raise UserError("A reason or a marked passage goes with a thumbs down (-1) only")
    if feedback.reason is not None and feedback.reason not in get_args(FeedbackReason):
        choices = ", ".join(get_args(FeedbackReason))
        raise UserError(f"Unknown feedback reason {feedback.reason!r}: choose {choices}")
    if feedback.passage is not None and feedback.no_passage:
        raise UserError("Mark one passage or 'none of these', not both")

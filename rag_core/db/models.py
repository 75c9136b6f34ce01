"""SQLAlchemy 2.0 typed ORM models: document registry, conversations, turns and what they cited.

The schema changes only through Alembic migrations (rag_core/db/migrations); a test checks that
these models and the migrated database never drift apart.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Relationship,
    composite,
    mapped_column,
    relationship,
)
from sqlalchemy.types import TypeDecorator

from rag_core.embedders.identity import EmbedderIdentity

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    R = TypeVar("R", bound=DataclassInstance)
    B = TypeVar("B", bound="Base")

DEFAULT_USER = "local"
DEFAULT_TITLE = "New conversation"

DOCUMENT_STATUSES = ("ingesting", "ready", "deleting")
INDEX_STATUSES = ("active", "building", "retired")
TURN_STATUSES = ("complete", "stopped", "error")
VISIBILITIES = ("private", "shared", "everyone")
FEEDBACK_REASONS = ("wrong_fact", "wrong_citation", "should_answer", "should_refuse")

# Deterministic constraint names, so migrations can name what they create and later drop.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def from_row(record: type[R], row: object, **given: Any) -> R:
    """A frozen record built from an ORM row: every field not `given` is the row's attribute of
    the same name (a field the row lacks raises AttributeError, so a rename cannot pass)."""
    taken = {
        f.name: getattr(row, f.name) for f in dataclasses.fields(record) if f.name not in given
    }
    return record(**taken, **given)


def to_row(row_type: type[B], *records: DataclassInstance, **given: Any) -> B:
    """An ORM row from frozen records: the `given` columns, then every mapped column that a
    record has a field of the same name for (the first such record wins). The row's primary
    key never comes from a record."""
    mapper = sa.inspect(row_type)
    open_keys = set(mapper.column_attrs.keys()) - {c.key for c in mapper.primary_key}
    values = dict(given)
    for record in records:
        for f in dataclasses.fields(record):
            if f.name in open_keys and f.name not in values:
                values[f.name] = getattr(record, f.name)
    return row_type(**values)


def new_id() -> str:
    """A fresh 32-character hex id."""
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite keeps no zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base holding the metadata Alembic compares against."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: UTCDateTime(),
        dict[str, Any]: sa.JSON(),
        list[Any]: sa.JSON(),
    }


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _owned(order_by: str, back_populates: str | None = None) -> Relationship[Any]:
    """Child rows that belong to their parent: deleted with it, by the ORM and (the foreign key
    says ON DELETE CASCADE) by the database without loading them, in `order_by` order."""
    return relationship(
        back_populates=back_populates,
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by=order_by,
    )


class DocumentRow(Base):
    """One version of one document; only 'ready' rows are ever retrieved."""

    __tablename__ = "documents"
    __table_args__ = (sa.CheckConstraint(_in("status", DOCUMENT_STATUSES), name="status"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.Text, index=True)
    content_hash: Mapped[str] = mapped_column(sa.String(64), index=True)
    version: Mapped[int] = mapped_column(sa.Integer)
    size: Mapped[int] = mapped_column(sa.BigInteger)
    doc_type: Mapped[str] = mapped_column(sa.String(32))
    page_count: Mapped[int | None] = mapped_column(sa.Integer)
    chunk_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    status: Mapped[str] = mapped_column(sa.String(16), index=True)
    replaces_id: Mapped[str | None] = mapped_column(sa.String(32))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    owner: Mapped[str | None] = mapped_column(sa.String(255))  # may delete or replace it
    added_by: Mapped[str | None] = mapped_column(sa.String(255))  # who added this version
    # pages whose text OCR read; NULL for rows from before OCR (none were read)
    ocr_pages: Mapped[list[Any] | None] = mapped_column(sa.JSON)
    # the ingest report (rag_core.types.IngestReport): tables, warnings and times as JSON, the
    # embedder in columns of its own (a reindex names its successor in one UPDATE); NULL for
    # rows from before reports were kept
    ingest_report: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    embedder_name: Mapped[str | None] = mapped_column(sa.Text)
    embedder_fingerprint: Mapped[str | None] = mapped_column(sa.String(64))


class ConversationRow(Base):
    """A conversation of one user; its turns go with it when it is deleted."""

    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    user: Mapped[str] = mapped_column(
        sa.String(255), index=True, default=DEFAULT_USER, server_default=DEFAULT_USER
    )
    title: Mapped[str] = mapped_column(sa.String(255), default=DEFAULT_TITLE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # what its questions search (rag_core.types.Scope as JSON); NULL: every visible document
    scope: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)

    turns: Mapped[list[TurnRow]] = _owned("TurnRow.position", back_populates="conversation")


class TurnRow(Base):
    """One question and its answer, with timings and the config snapshot that produced it."""

    __tablename__ = "turns"
    __table_args__ = (
        sa.UniqueConstraint("conversation_id", "position"),
        sa.CheckConstraint(_in("status", TURN_STATUSES), name="status"),
        sa.CheckConstraint("feedback_rating IN (-1, 1)", name="feedback_rating"),
        sa.CheckConstraint(_in("feedback_reason", FEEDBACK_REASONS), name="feedback_reason"),
        # for the insights (rag_core/db/insights.py): a window of days read from the index alone
        sa.Index(
            "ix_turns_insights",
            "created_at",
            "refused",
            "quoted_fallback",
            "feedback_rating",
            "first_token_ms",
            "total_ms",
        ),
        sa.Index(
            "ix_turns_refused",
            "created_at",
            sqlite_where=sa.text("refused = 1"),
            postgresql_where=sa.text("refused"),
        ),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        sa.String(32), sa.ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(sa.Integer)
    question: Mapped[str] = mapped_column(sa.Text)
    query: Mapped[str] = mapped_column(sa.Text)
    answer: Mapped[str] = mapped_column(sa.Text)
    lead: Mapped[str | None] = mapped_column(sa.Text)  # shown before the sentences
    raw_answer: Mapped[str] = mapped_column(sa.Text)
    refused: Mapped[bool] = mapped_column(sa.Boolean)
    mode: Mapped[str] = mapped_column(sa.String(32))
    status: Mapped[str] = mapped_column(sa.String(16))
    error: Mapped[str | None] = mapped_column(sa.Text)
    timings: Mapped[dict[str, Any]]
    first_token_ms: Mapped[float | None] = mapped_column(sa.Float)  # also in timings
    total_ms: Mapped[float | None] = mapped_column(sa.Float)  # also in timings
    # the answer quotes passages because the generated one failed its checks
    quoted_fallback: Mapped[bool] = mapped_column(
        sa.Boolean, default=False, server_default=sa.false()
    )
    config: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    feedback_rating: Mapped[int | None] = mapped_column(sa.Integer)
    feedback_comment: Mapped[str | None] = mapped_column(sa.Text)
    feedback_at: Mapped[datetime | None]
    gate_score: Mapped[float | None] = mapped_column(sa.Float)  # NULL: logged before 0006
    # with a thumbs down: what was wrong, and the passage that should have been used (its chunk
    # id) or that none of the retrieved passages answers
    feedback_reason: Mapped[str | None] = mapped_column(sa.String(32))
    feedback_passage: Mapped[str | None] = mapped_column(sa.String(255))
    feedback_no_passage: Mapped[bool | None] = mapped_column(sa.Boolean)

    conversation: Mapped[ConversationRow] = relationship(back_populates="turns")
    passages: Mapped[list[TurnPassageRow]] = _owned("(TurnPassageRow.rank, TurnPassageRow.id)")
    sentences: Mapped[list[TurnSentenceRow]] = _owned(
        "(TurnSentenceRow.position, TurnSentenceRow.id)"
    )


class TurnPassageRow(Base):
    """A passage retrieved for a turn, with its full text so it outlives the document."""

    __tablename__ = "turn_passages"
    __table_args__ = (
        sa.Index(  # for the insights: which documents answers cite
            "ix_turn_passages_cited",
            "document_name",
            "turn_id",
            "cited",  # not needed by PostgreSQL; lets SQLite read the index alone
            sqlite_where=sa.text("cited = 1"),
            postgresql_where=sa.text("cited"),
        ),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    turn_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("turns.id", ondelete="CASCADE"), index=True
    )
    rank: Mapped[int] = mapped_column(sa.Integer)
    score: Mapped[float] = mapped_column(sa.Float)
    dense_score: Mapped[float | None] = mapped_column(sa.Float)
    dense_rank: Mapped[int | None] = mapped_column(sa.Integer)
    keyword_score: Mapped[float | None] = mapped_column(sa.Float)
    keyword_rank: Mapped[int | None] = mapped_column(sa.Integer)
    chunk_id: Mapped[str] = mapped_column(sa.String(255))
    document_id: Mapped[str] = mapped_column(sa.String(255), index=True)
    document_name: Mapped[str] = mapped_column(sa.Text)
    version: Mapped[str] = mapped_column(sa.String(128))
    chunk_index: Mapped[int] = mapped_column(sa.Integer)
    page: Mapped[int | None] = mapped_column(sa.Integer)
    page_end: Mapped[int | None] = mapped_column(sa.Integer)
    heading_path: Mapped[list[Any]]
    ocr: Mapped[bool | None] = mapped_column(sa.Boolean)  # text read by OCR; NULL before 0008
    char_start: Mapped[int] = mapped_column(sa.Integer)
    char_end: Mapped[int] = mapped_column(sa.Integer)
    text: Mapped[str] = mapped_column(sa.Text)
    cited: Mapped[bool] = mapped_column(sa.Boolean)
    citation_numbers: Mapped[list[Any]]


class TurnSentenceRow(Base):
    """The grounding verdict on one sentence of a turn's answer."""

    __tablename__ = "turn_sentences"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    turn_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("turns.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(sa.Integer)
    text: Mapped[str] = mapped_column(sa.Text)
    supported: Mapped[bool] = mapped_column(sa.Boolean)
    score: Mapped[float] = mapped_column(sa.Float)
    citation: Mapped[int | None] = mapped_column(sa.Integer)
    support: Mapped[str | None] = mapped_column(sa.Text)
    reason: Mapped[str] = mapped_column(sa.Text)
    verdict: Mapped[str | None] = mapped_column(sa.String(16))  # NULL: logged before 0005


class ApiKeyRow(Base):
    """A user's API key for the REST and OpenAI-compatible API, stored only as a SHA-256 hash.

    Keys are 256-bit random tokens, so a fast hash is enough (no password stretching needed);
    `prefix` is the non-secret start of the key, shown in listings to tell keys apart.
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    user: Mapped[str] = mapped_column(sa.String(255), index=True)
    name: Mapped[str] = mapped_column(sa.String(255), default="")
    prefix: Mapped[str] = mapped_column(sa.String(32))
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class RegistryStateRow(Base):
    """One row (id 1): a counter bumped in the same transaction as every registry change.

    App replicas compare ``registry_id:generation`` with the value their local keyword index was
    last brought up to date at, so an unchanged registry costs them one tiny query per question.
    """

    __tablename__ = "registry_state"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    registry_id: Mapped[str] = mapped_column(sa.String(32))
    generation: Mapped[int] = mapped_column(sa.BigInteger)


class VectorIndexRow(Base):
    """A vector index (a Chroma collection) and the embedder that filled it: name, fingerprint
    of its weights and configuration, precision and dimension. At most one is 'active' (it
    answers) and one 'building' (`ragchat reindex` fills it); 'retired' ones are dropped."""

    __tablename__ = "vector_indexes"
    __table_args__ = (
        sa.CheckConstraint(_in("status", INDEX_STATUSES), name="status"),
        # one active and one building index at most, whatever several processes do at once
        sa.Index(
            "ix_vector_indexes_one_per_status",
            "status",
            unique=True,
            sqlite_where=sa.text("status IN ('active', 'building')"),
            postgresql_where=sa.text("status IN ('active', 'building')"),
        ),
    )

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    collection: Mapped[str] = mapped_column(sa.String(255), unique=True)
    status: Mapped[str] = mapped_column(sa.String(16))
    # the five columns embedder_name, embedder_source, fingerprint, precision, dimension
    identity: Mapped[EmbedderIdentity] = composite(
        mapped_column("embedder_name", sa.Text),
        mapped_column("embedder_source", sa.Text),
        mapped_column("fingerprint", sa.String(64)),
        mapped_column("precision", sa.String(16)),
        mapped_column("dimension", sa.Integer),
    )
    chunks_done: Mapped[int] = mapped_column(sa.Integer, default=0)
    chunks_total: Mapped[int] = mapped_column(sa.Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CollectionRow(Base):
    """A named group of documents with an owner (NULL: an operator) and a visibility: private,
    shared (with the users in `collection_members`) or everyone. The 'default' row is the
    collection documents join when none is named."""

    __tablename__ = "collections"
    __table_args__ = (sa.CheckConstraint(_in("visibility", VISIBILITIES), name="visibility"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    owner: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    visibility: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    members: Mapped[list[CollectionMemberRow]] = _owned("CollectionMemberRow.user")


class CollectionMemberRow(Base):
    """A user a 'shared' collection is shared with."""

    __tablename__ = "collection_members"

    collection_id: Mapped[str] = mapped_column(
        sa.ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True
    )
    user: Mapped[str] = mapped_column(sa.String(255), primary_key=True, index=True)


class CollectionDocumentRow(Base):
    """A document version in a collection (a new version inherits its predecessor's rows)."""

    __tablename__ = "collection_documents"

    collection_id: Mapped[str] = mapped_column(
        sa.ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True
    )
    document_id: Mapped[str] = mapped_column(
        sa.ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True, index=True
    )

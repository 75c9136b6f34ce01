"""Which embedder built the vector index: `vector_indexes` records each Chroma collection with the
embedder's name, the fingerprint of its weights and configuration, its precision and dimension,
and its state (active, building while `ragchat reindex` fills it, retired). An index from before
gets its row at the first start (the configured embedder is taken to have built it).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ONE_PER_STATUS = "status IN ('active', 'building')"


def upgrade() -> None:
    op.create_table(
        "vector_indexes",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("collection", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("embedder_name", sa.Text(), nullable=False),
        sa.Column("embedder_source", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("precision", sa.String(16), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("chunks_done", sa.Integer(), nullable=False),
        sa.Column("chunks_total", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'building', 'retired')", name=op.f("ck_vector_indexes_status")
        ),
        sa.UniqueConstraint("collection", name=op.f("uq_vector_indexes_collection")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vector_indexes")),
    )
    op.create_index(
        "ix_vector_indexes_one_per_status",
        "vector_indexes",
        ["status"],
        unique=True,
        sqlite_where=sa.text(_ONE_PER_STATUS),
        postgresql_where=sa.text(_ONE_PER_STATUS),
    )


def downgrade() -> None:
    op.drop_index("ix_vector_indexes_one_per_status", table_name="vector_indexes")
    op.drop_table("vector_indexes")

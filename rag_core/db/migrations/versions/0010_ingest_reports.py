"""The ingest report of each document version: tables found, warnings about pages the loader
could not (fully) read, and the seconds it took (`documents.ingest_report`, JSON), and the
embedder whose vectors serve its chunks (`embedder_name`, `embedder_fingerprint`). Rows from
before get NULL: their report was not recorded.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("ingest_report", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("embedder_name", sa.Text(), nullable=True))
        batch.add_column(sa.Column("embedder_fingerprint", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("embedder_fingerprint")
        batch.drop_column("embedder_name")
        batch.drop_column("ingest_report")

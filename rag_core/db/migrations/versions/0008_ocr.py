"""Where text came from OCR: the pages of a document that OCR read (`documents.ocr_pages`, for
its report) and whether a logged passage's text was read by OCR (`turn_passages.ocr`, so a
replayed citation still says so). Rows from before get NULL: nothing was read by OCR then.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("ocr_pages", sa.JSON(), nullable=True))
    with op.batch_alter_table("turn_passages") as batch:
        batch.add_column(sa.Column("ocr", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("turn_passages") as batch:
        batch.drop_column("ocr")
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("ocr_pages")

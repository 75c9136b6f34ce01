"""What became of each answer sentence (`turn_sentences.verdict`: supported, marked, removed,
unchecked, replaced, no-claim) and the text shown before them (`turns.lead`), so a logged answer
is rebuilt from its parts, never by parsing its text. Rows from before get NULL: the log derives
their verdicts from the turn's mode and grounding setting.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("turn_sentences") as batch:
        batch.add_column(sa.Column("verdict", sa.String(16), nullable=True))
    with op.batch_alter_table("turns") as batch:
        batch.add_column(sa.Column("lead", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("turns") as batch:
        batch.drop_column("lead")
    with op.batch_alter_table("turn_sentences") as batch:
        batch.drop_column("verdict")

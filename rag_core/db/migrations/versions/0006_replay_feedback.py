"""The refusal gate's score of each turn (`turns.gate_score`), so a replay can compare it, and
what a thumbs down says: the reason (`feedback_reason`), the passage that should have been used
(`feedback_passage`, a chunk id) or that none of them answers (`feedback_no_passage`). Rows from
before get NULL.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REASONS = "feedback_reason IN ('wrong_fact', 'wrong_citation', 'should_answer', 'should_refuse')"


def upgrade() -> None:
    with op.batch_alter_table("turns") as batch:
        batch.add_column(sa.Column("gate_score", sa.Float(), nullable=True))
        batch.add_column(sa.Column("feedback_reason", sa.String(32), nullable=True))
        batch.add_column(sa.Column("feedback_passage", sa.String(255), nullable=True))
        batch.add_column(sa.Column("feedback_no_passage", sa.Boolean(), nullable=True))
        batch.create_check_constraint(op.f("ck_turns_feedback_reason"), REASONS)


def downgrade() -> None:
    with op.batch_alter_table("turns") as batch:
        batch.drop_constraint(op.f("ck_turns_feedback_reason"), type_="check")
        batch.drop_column("feedback_no_passage")
        batch.drop_column("feedback_passage")
        batch.drop_column("feedback_reason")
        batch.drop_column("gate_score")

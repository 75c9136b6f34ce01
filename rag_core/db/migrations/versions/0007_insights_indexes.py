"""What the insights read, kept where an index reaches it: each turn's first-token and total time
(`turns.first_token_ms`, `turns.total_ms`, also still in `timings`) and whether its answer quotes
passages because the generated one failed its checks (`turns.quoted_fallback`), filled in for
the turns already logged; an index over a turn's time and these columns, one over refused turns
by time, and one over cited passages by document name. The Insights tab then reads a log of
100k turns without touching the turns' texts (bench/insights.py).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INSIGHT_COLUMNS = ["created_at", "refused", "quoted_fallback", "feedback_rating"]


def upgrade() -> None:
    with op.batch_alter_table("turns") as batch:
        batch.add_column(sa.Column("first_token_ms", sa.Float(), nullable=True))
        batch.add_column(sa.Column("total_ms", sa.Float(), nullable=True))
        batch.add_column(
            sa.Column("quoted_fallback", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    turns = sa.table(
        "turns",
        sa.column("timings", sa.JSON()),
        sa.column("mode", sa.String()),
        sa.column("raw_answer", sa.Text()),
        sa.column("first_token_ms", sa.Float()),
        sa.column("total_ms", sa.Float()),
        sa.column("quoted_fallback", sa.Boolean()),
    )
    op.execute(
        turns.update().values(
            first_token_ms=turns.c.timings["first_token_ms"].as_float(),
            total_ms=turns.c.timings["total_ms"].as_float(),
            quoted_fallback=sa.and_(turns.c.mode == "extractive", turns.c.raw_answer != ""),
        )
    )
    op.create_index("ix_turns_insights", "turns", [*INSIGHT_COLUMNS, "first_token_ms", "total_ms"])
    op.create_index(
        "ix_turns_refused",
        "turns",
        ["created_at"],
        sqlite_where=sa.text("refused = 1"),
        postgresql_where=sa.text("refused"),
    )
    op.create_index(
        "ix_turn_passages_cited",
        "turn_passages",
        ["document_name", "turn_id", "cited"],
        sqlite_where=sa.text("cited = 1"),
        postgresql_where=sa.text("cited"),
    )


def downgrade() -> None:
    op.drop_index("ix_turn_passages_cited", table_name="turn_passages")
    op.drop_index("ix_turns_refused", table_name="turns")
    op.drop_index("ix_turns_insights", table_name="turns")
    with op.batch_alter_table("turns") as batch:
        batch.drop_column("quoted_fallback")
        batch.drop_column("total_ms")
        batch.drop_column("first_token_ms")

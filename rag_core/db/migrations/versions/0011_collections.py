"""Collections: named groups of documents with an owner and a visibility (private, shared with
named users, everyone), the documents each holds, and the scope a conversation searches. Every
existing document joins the 'Default' collection (everyone), so nothing changes for users who
never make one.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    collections = op.create_table(
        "collections",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("visibility", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "visibility IN ('private', 'shared', 'everyone')",
            name=op.f("ck_collections_visibility"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collections")),
        sa.UniqueConstraint("name", name=op.f("uq_collections_name")),
    )
    op.create_index(op.f("ix_collections_owner"), "collections", ["owner"])
    op.create_table(
        "collection_members",
        sa.Column("collection_id", sa.String(32), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_collection_members_collection_id_collections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("collection_id", "user", name=op.f("pk_collection_members")),
    )
    op.create_index(op.f("ix_collection_members_user"), "collection_members", ["user"])
    op.create_table(
        "collection_documents",
        sa.Column("collection_id", sa.String(32), nullable=False),
        sa.Column("document_id", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_collection_documents_collection_id_collections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_collection_documents_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "collection_id", "document_id", name=op.f("pk_collection_documents")
        ),
    )
    op.create_index(
        op.f("ix_collection_documents_document_id"), "collection_documents", ["document_id"]
    )
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("scope", sa.JSON(), nullable=True))
    op.bulk_insert(
        collections,
        [
            {
                "id": "default",
                "name": "Default",
                "description": "Documents added without naming a collection",
                "owner": None,
                "visibility": "everyone",
                "created_at": datetime.now(UTC),
            }
        ],
    )
    op.execute(
        "INSERT INTO collection_documents (collection_id, document_id) "
        "SELECT 'default', id FROM documents"
    )


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("scope")
    op.drop_index(op.f("ix_collection_documents_document_id"), table_name="collection_documents")
    op.drop_table("collection_documents")
    op.drop_index(op.f("ix_collection_members_user"), table_name="collection_members")
    op.drop_table("collection_members")
    op.drop_index(op.f("ix_collections_owner"), table_name="collections")
    op.drop_table("collections")

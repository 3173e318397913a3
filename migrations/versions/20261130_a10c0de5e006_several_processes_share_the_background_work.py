"""several processes share the background work

Revision ID: a10c0de5e006
Revises: a10c0de5e005
Create Date: 2026-11-30 09:30:00

A revision must work with the code of the previous release too: add before you drop.

Several portal processes share one database: IDS's prepared ids (prepareData, then
getData or isPrepared, perhaps answered by another process) are kept in ids_prepared, by
the SHA-256 of the id, instead of in one process's memory. (The background tasks'
leaders and the submitter's claims are PostgreSQL advisory locks: nothing in the schema.)
"""

import sqlalchemy as sa
from alembic import op

revision = "a10c0de5e006"
down_revision = "a10c0de5e005"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "ids_prepared",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("catalog_session", sa.String(length=255), nullable=False),
        sa.Column("selection", sa.JSON(), nullable=False),
        sa.Column("zip", sa.Boolean(), nullable=False),
        sa.Column("compress", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_ids_prepared")),
    )
    op.create_index(op.f("ix_ids_prepared_created_at"), "ids_prepared", ["created_at"], unique=False)


def downgrade():
    op.drop_index(op.f("ix_ids_prepared_created_at"), table_name="ids_prepared")
    op.drop_table("ids_prepared")

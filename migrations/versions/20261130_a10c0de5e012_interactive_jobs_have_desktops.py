"""interactive jobs have desktops (issue 14)

Revision ID: a10c0de5e012
Revises: a10c0de5e011
Create Date: 2026-11-30 18:20:00

A revision must work with the code of the previous release too: add before you drop.
"""

import sqlalchemy as sa
from alembic import op

revision = "a10c0de5e012"
down_revision = "a10c0de5e011"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "desktop",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), server_default="starting", nullable=False),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("viewers", sa.Integer(), server_default="0", nullable=False),
        sa.Column("viewer_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_desktop_job_id_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_desktop")),
    )
    op.create_index("ix_desktop_state_viewer_seen_at", "desktop", ["state", "viewer_seen_at"], unique=False)
    op.create_table(
        "desktop_token",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("web_session_id", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("origin", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_desktop_token_job_id_job"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["web_session_id"],
            ["web_session.id"],
            name=op.f("fk_desktop_token_web_session_id_web_session"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_desktop_token")),
    )
    op.create_index(op.f("ix_desktop_token_job_id"), "desktop_token", ["job_id"], unique=False)
    op.create_index(
        op.f("ix_desktop_token_web_session_id"), "desktop_token", ["web_session_id"], unique=False
    )


def downgrade():
    op.drop_index(op.f("ix_desktop_token_web_session_id"), table_name="desktop_token")
    op.drop_index(op.f("ix_desktop_token_job_id"), table_name="desktop_token")
    op.drop_table("desktop_token")
    op.drop_index("ix_desktop_state_viewer_seen_at", table_name="desktop")
    op.drop_table("desktop")

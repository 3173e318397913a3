"""staff actions are audited

Revision ID: a10c0de5e004
Revises: a10c0de5e003
Create Date: 2026-11-30 09:30:00

A revision must work with the code of the previous release too: add before you drop.

The operator's console (ijpweb.console): every staff action is one row of audit_entry,
written in the action's own transaction. The console lists every user's jobs newest
first, filtered by status, job type, backend or date: four indexes let it read a page
from an index with a million jobs (owner has its own already; (backend, status) would
sort a third of them); a user's logins are found by user name to revoke them all at
once. (Building the indexes reads the job table once; on PostgreSQL it holds off writes
to jobs meanwhile, seconds for a million jobs.)
"""

import sqlalchemy as sa
from alembic import op

revision = "a10c0de5e004"
down_revision = "a10c0de5e003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "audit_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=300), nullable=False),
        sa.Column("detail", sa.String(length=1000), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entry")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_job_status_id", "job", ["status", "id"], unique=False)
    op.create_index("ix_job_job_type_id", "job", ["job_type", "id"], unique=False)
    op.create_index("ix_job_backend_id", "job", ["backend", "id"], unique=False)
    op.create_index("ix_job_submitted_at", "job", ["submitted_at"], unique=False)
    op.create_index(op.f("ix_web_session_user_name"), "web_session", ["user_name"], unique=False)


def downgrade():
    op.drop_index(op.f("ix_web_session_user_name"), table_name="web_session")
    op.drop_index("ix_job_submitted_at", table_name="job")
    op.drop_index("ix_job_backend_id", table_name="job")
    op.drop_index("ix_job_job_type_id", table_name="job")
    op.drop_index("ix_job_status_id", table_name="job")
    op.drop_table("audit_entry")

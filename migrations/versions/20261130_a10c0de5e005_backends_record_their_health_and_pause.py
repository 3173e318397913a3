"""backends record their health and pause

Revision ID: a10c0de5e005
Revises: a10c0de5e004
Create Date: 2026-11-30 09:30:00

A revision must work with the code of the previous release too: add before you drop.

backend_health: one row per backend (ijpweb.health), written by the harvester each cycle
(whether the backend answered, when, how long it took, its last error, a SLURM
backend's nodes) and by staff (paused, by whom, when): several portal processes serve
the console while one harvests. The console's backends section counts each backend's
jobs that failed in the last hour: an index on (status, finished_at) reads them from an
index however many jobs have ever failed.
"""

import sqlalchemy as sa
from alembic import op

revision = "a10c0de5e005"
down_revision = "a10c0de5e004"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "backend_health",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("reachable", sa.Boolean(), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("errors", sa.Integer(), server_default="0", nullable=False),
        sa.Column("nodes", sa.JSON(), nullable=True),
        sa.Column("paused", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("paused_by", sa.String(length=255), nullable=True),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_backend_health")),
    )
    op.create_index("ix_job_status_finished_at", "job", ["status", "finished_at"], unique=False)


def downgrade():
    op.drop_index("ix_job_status_finished_at", table_name="job")
    op.drop_table("backend_health")

"""jobs have comments (issue 13, point 9)

Revision ID: a10c0de5e009
Revises: a10c0de5e008
Create Date: 2026-11-30 15:10:00

A revision must work with the code of the previous release too: add before you drop.
"""

import sqlalchemy as sa
from alembic import op

revision = "a10c0de5e009"
down_revision = "a10c0de5e008"
branch_labels = None
depends_on = None


def upgrade():
    # a job's comments, newest last, read through (job_id, id); they go with their job
    op.create_table(
        "job_comment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_job_comment_job_id_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_comment")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_job_comment_job_id_id", "job_comment", ["job_id", "id"], unique=False)


def downgrade():
    op.drop_index("ix_job_comment_job_id_id", table_name="job_comment")
    op.drop_table("job_comment")

"""jobs name their inputs (issue 13, point 3)

Revision ID: a10c0de5e010
Revises: a10c0de5e009
Create Date: 2026-11-30 15:10:00

A revision must work with the code of the previous release too: add before you drop.
"""

import sqlalchemy as sa
from alembic import op

revision = "a10c0de5e010"
down_revision = "a10c0de5e009"
branch_labels = None
depends_on = None


def upgrade():
    # the names of a job's datasets and datafiles as the owner saw them at submission, so
    # that the job list names them without asking the catalog; NULL for the jobs before
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("input_names", sa.JSON(), nullable=True))
    # the job list's groups count a submission's jobs by status from this index alone
    op.create_index("ix_job_submission_status", "job", ["submission_id", "status"])


def downgrade():
    op.drop_index("ix_job_submission_status", table_name="job")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("input_names")

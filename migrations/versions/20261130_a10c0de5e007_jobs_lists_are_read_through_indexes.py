"""jobs lists are read through indexes (keyset paging)

Revision ID: a10c0de5e007
Revises: a10c0de5e006
Create Date: 2026-11-30 12:30:00

A revision must work with the code of the previous release too: add before you drop.
"""

from alembic import op

revision = "a10c0de5e007"
down_revision = "a10c0de5e006"
branch_labels = None
depends_on = None


JOB_INDEXES = {
    "ix_job_owner_status_id": ["owner", "status", "id"],
    "ix_job_owner_job_type_id": ["owner", "job_type", "id"],
    "ix_job_owner_submission_id": ["owner", "submission_id", "id"],
    "ix_job_owner_submitted_at_id": ["owner", "submitted_at", "id"],
}


def upgrade():
    # a user's job list by every filter the faces offer, newest first, from an index
    for name, columns in JOB_INDEXES.items():
        op.create_index(name, "job", columns, unique=False)
    # the jobs with a tag, by job id (the keyset), from job_tag's index alone; the old
    # (owner, tag) index is its prefix, so it goes (after the new one is there)
    op.create_index("ix_job_tag_owner_tag_job", "job_tag", ["owner", "tag", "job_id"], unique=False)
    op.drop_index("ix_job_tag_owner_tag", table_name="job_tag")
    # every user's jobs by date (the console) in (submitted_at, id) order: the same, with the id
    op.create_index("ix_job_submitted_at_id", "job", ["submitted_at", "id"], unique=False)
    op.drop_index("ix_job_submitted_at", table_name="job")


def downgrade():
    op.create_index("ix_job_submitted_at", "job", ["submitted_at"], unique=False)
    op.drop_index("ix_job_submitted_at_id", table_name="job")
    op.create_index("ix_job_tag_owner_tag", "job_tag", ["owner", "tag"], unique=False)
    op.drop_index("ix_job_tag_owner_tag_job", table_name="job_tag")
    for name in reversed(list(JOB_INDEXES)):
        op.drop_index(name, table_name="job")

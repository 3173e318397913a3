"""jobs record where they ran (nodes, cores, hosts) and carry tags

Revision ID: 6a1e2b7c9d04
Revises: 3f9a7b2c5d10
Create Date: 2026-11-24 20:00:00

A revision must work with the code of the previous release too: add before you drop.
"""

import sqlalchemy as sa
from alembic import op

revision = "6a1e2b7c9d04"
down_revision = "3f9a7b2c5d10"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("nodes", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("cores", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("hosts", sa.String(length=1024), nullable=True))
    op.create_table(
        "job_tag",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_job_tag_job_id_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "tag", name=op.f("pk_job_tag")),
    )
    op.create_index("ix_job_tag_owner_tag", "job_tag", ["owner", "tag"], unique=False)


def downgrade():
    op.drop_index("ix_job_tag_owner_tag", table_name="job_tag")
    op.drop_table("job_tag")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("hosts")
        batch_op.drop_column("cores")
        batch_op.drop_column("nodes")

"""submissions keep the job type's resources

Revision ID: 5e0c1a7d9b21
Revises: 216a6f52a096
Create Date: 2026-11-24 19:05:00

A revision must work with the code of the previous release too: add before you drop.
"""

import sqlalchemy as sa
from alembic import op

revision = "5e0c1a7d9b21"
down_revision = "216a6f52a096"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resources", sa.JSON(), nullable=False, server_default="{}"))


def downgrade():
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.drop_column("resources")

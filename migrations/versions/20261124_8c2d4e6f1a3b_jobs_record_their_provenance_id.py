"""jobs record their provenance id

Revision ID: 8c2d4e6f1a3b
Revises: 5e0c1a7d9b21
Create Date: 2026-11-24 19:10:00

A revision must work with the code of the previous release too: add before you drop.
"""

import sqlalchemy as sa
from alembic import op

revision = "8c2d4e6f1a3b"
down_revision = "5e0c1a7d9b21"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provenance_id", sa.BigInteger(), nullable=True))


def downgrade():
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("provenance_id")

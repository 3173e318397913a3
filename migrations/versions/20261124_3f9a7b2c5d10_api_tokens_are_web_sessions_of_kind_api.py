"""API tokens are web sessions of kind api

Revision ID: 3f9a7b2c5d10
Revises: 8c2d4e6f1a3b
Create Date: 2026-11-24 19:20:00

A revision must work with the code of the previous release too: add before you drop.
"""

import sqlalchemy as sa
from alembic import op

revision = "3f9a7b2c5d10"
down_revision = "8c2d4e6f1a3b"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=8), nullable=False, server_default="web"))


def downgrade():
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.drop_column("kind")

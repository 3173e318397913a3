"""catalog reads through indexes (keyset paging, per-dataset counts)

Revision ID: a10c0de5e008
Revises: a10c0de5e007
Create Date: 2026-11-30 12:30:00

A revision must work with the code of the previous release too: add before you drop.
"""

revision = "a10c0de5e008"
down_revision = "a10c0de5e007"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass

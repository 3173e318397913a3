"""jobs name their inputs (issue 13, point 3)

Revision ID: a10c0de5e010
Revises: a10c0de5e009
Create Date: 2026-11-30 15:10:00

A revision must work with the code of the previous release too: add before you drop.
"""

revision = "a10c0de5e010"
down_revision = "a10c0de5e009"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass

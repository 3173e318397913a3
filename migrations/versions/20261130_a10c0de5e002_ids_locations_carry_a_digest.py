"""IDS locations carry a digest keyed by a server secret

Revision ID: a10c0de5e002
Revises: a10c0de5e001
Create Date: 2026-11-30 07:00:01

A revision must work with the code of the previous release too: add before you drop.
"""

revision = "a10c0de5e002"
down_revision = "a10c0de5e001"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass

"""staff actions are audited

Revision ID: a10c0de5e004
Revises: a10c0de5e003
Create Date: 2026-11-30 09:30:00

A revision must work with the code of the previous release too: add before you drop.
"""

revision = "a10c0de5e004"
down_revision = "a10c0de5e003"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass

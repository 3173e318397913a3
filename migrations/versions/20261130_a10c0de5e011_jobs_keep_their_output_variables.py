"""jobs keep their output variables (issue 13, point 4)

Revision ID: a10c0de5e011
Revises: a10c0de5e010
Create Date: 2026-11-30 15:10:00

A revision must work with the code of the previous release too: add before you drop.
"""

import sqlalchemy as sa
from alembic import op

revision = "a10c0de5e011"
down_revision = "a10c0de5e010"
branch_labels = None
depends_on = None


def upgrade():
    # OUT_NAME=value lines the job wrote to JOB_OUTPUT_VARS, captured when it ended:
    # {"values": [[name, value], ...], "skipped": n, "left_out": n, "cut": bool}
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("output_vars", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("output_vars")

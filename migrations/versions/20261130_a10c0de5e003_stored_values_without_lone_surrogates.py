"""stored option values, arguments and selections without lone surrogates

Revision ID: a10c0de5e003
Revises: a10c0de5e002
Create Date: 2026-11-30 09:00:00

A revision must work with the code of the previous release too: add before you drop.

No schema change. Before this release a lone surrogate ("\\ud800" in JSON) in an option
value was stored, and the job's page failed for ever (it cannot be written as UTF-8);
every face now refuses such values. This replaces each lone surrogate already stored in
a job's options and argv and in a login's selection with U+FFFD, the replacement
character. Such a job never ran with that value (it cannot be an argument), so nothing
true is lost. Only rows whose JSON text holds a \\ud escape are read.
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "a10c0de5e003"
down_revision = "a10c0de5e002"
branch_labels = None
depends_on = None

LONE = re.compile("[\ud800-\udfff]")
TABLES = {
    "job": ("options", "argv"),
    "web_session": ("selection",),
}


def _clean(value):
    if isinstance(value, str):
        return LONE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


def upgrade():
    conn = op.get_bind()
    for name, columns in TABLES.items():
        key = sa.column("id", sa.String if name == "web_session" else sa.Integer)
        table = sa.table(name, key, *(sa.column(c, sa.JSON) for c in columns))
        suspect = sa.or_(*(sa.cast(sa.column(c), sa.Text).contains("\\ud", autoescape=True) for c in columns))
        rows = conn.execute(sa.select(table).where(suspect)).all()
        for row in rows:
            values = {c: getattr(row, c) for c in columns}
            cleaned = {c: _clean(v) for c, v in values.items()}
            if cleaned != values:
                conn.execute(sa.update(table).where(key == row.id).values(**cleaned))


def downgrade():
    pass  # the replaced characters were never valid text

"""ids are never reused: AUTOINCREMENT on SQLite for jobs, submissions and every catalog entity

Revision ID: a10c0de5e001
Revises: 6a1e2b7c9d04
Create Date: 2026-11-30 07:00:00

A revision must work with the code of the previous release too: add before you drop.

SQLite gives a new row the largest id in the table plus one, so deleting the last job
handed its id, and with it its directory and output on the batch backend, to the next
job. With AUTOINCREMENT it never comes back. SQLite can only add that by rebuilding a
table (batch mode, recreate), which copies every row; the rebuild needs foreign keys off
(a DROP of the old table would otherwise cascade to the rows that refer to it), and
SQLite ignores that setting inside a transaction, so migrations/env.py switches it off
before the migrations begin and this revision refuses to run with it on. PostgreSQL's
sequences never reuse an id: nothing to do there.

Also two tables for logins: failed attempts (login throttling) and catalog sessions to
log out once the jobs that use them have ended (logging out no longer kills them).
"""

import sqlalchemy as sa
from alembic import op

revision = "a10c0de5e001"
down_revision = "6a1e2b7c9d04"
branch_labels = None
depends_on = None


def _rebuild(autoincrement: bool) -> None:
    conn = op.get_bind()
    if conn.dialect.name != "sqlite":
        return
    if conn.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError(
            "rebuilding tables with foreign keys on would delete the rows that refer to them: "
            "run the migrations with PRAGMA foreign_keys=OFF (migrations/env.py does)"
        )
    meta = sa.MetaData()
    meta.reflect(conn)
    names = {"job", "submission"} | {t for t in meta.tables if t.startswith("icat_")}
    # parents first (the order does not matter with foreign keys off, but reads well)
    for table in meta.sorted_tables:
        if table.name in names:
            with op.batch_alter_table(
                table.name, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
            ):
                pass
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        raise RuntimeError(f"rows refer to rows that do not exist: {broken[:10]}")


def upgrade():
    _rebuild(True)
    op.create_table(
        "login_failure",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_failure")),
    )
    op.create_index(op.f("ix_login_failure_last_at"), "login_failure", ["last_at"], unique=False)
    op.create_table(
        "pending_logout",
        sa.Column("catalog_session", sa.String(length=255), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("catalog_session", name=op.f("pk_pending_logout")),
    )


def downgrade():
    op.drop_table("pending_logout")
    op.drop_index(op.f("ix_login_failure_last_at"), table_name="login_failure")
    op.drop_table("login_failure")
    _rebuild(False)

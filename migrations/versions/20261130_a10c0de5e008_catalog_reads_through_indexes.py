"""catalog reads through indexes (keyset paging, per-dataset counts)

Revision ID: a10c0de5e008
Revises: a10c0de5e007
Create Date: 2026-11-30 12:30:00

A revision must work with the code of the previous release too: add before you drop.
"""

from alembic import op

revision = "a10c0de5e008"
down_revision = "a10c0de5e007"
branch_labels = None
depends_on = None


# (as ijpweb/catalog/icatdb.py's INDEXES has them when this revision was written)
INDEXES = {
    "icat_dataset": {
        "ix_icat_dataset_order": ["investigation_id", "name", "id"],
        "ix_icat_dataset_type_order": ["type_id", "investigation_id", "name", "id"],
    },
    "icat_datafile": {"ix_icat_datafile_order": ["dataset_id", "name", "id"]},
    "icat_investigation": {"ix_icat_investigation_name": ["name"]},
}


def upgrade():
    # the dataset search's order and keyset, also within a type; a dataset's datafiles
    # by name; the search's investigation filter
    for table, indexes in INDEXES.items():
        for name, columns in indexes.items():
            op.create_index(name, table, columns, unique=False)


def downgrade():
    for table, indexes in reversed(list(INDEXES.items())):
        for name in reversed(list(indexes)):
            op.drop_index(name, table_name=table)

"""The embedded ICAT's tables, generated from the ICAT schema (icatschema).

One table per entity, ``icat_<entity>``: an ``id``, a column per attribute named as in
ICAT (``fileSize``, ``startDate``), and ``<relation>_id`` for each many-to-one relation.
Collections need no column: they are the other side's many-to-one.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from ..models.meta import Base
from .icatschema import UNIQUE, Entity, entities

_TYPES = {
    "string": lambda: sa.String(4000),
    "boolean": sa.Boolean,
    "integer": sa.BigInteger,
    "double": sa.Float,
    "datetime": lambda: sa.DateTime(timezone=True),
    "enum": lambda: sa.String(32),
}
_LONG_TEXT = {("Rule", "what"), ("Job", "arguments"), ("DataPublication", "description")}
# The catalog's lists read through indexes (migration a10c0de5e008): the dataset search's
# order and keyset (investigation, name, id), also within a type; a dataset's datafiles by
# (name, id); an investigation by name (the search's filter).
INDEXES: dict[str, dict[str, tuple[str, ...]]] = {
    "Dataset": {
        "ix_icat_dataset_order": ("investigation_id", "name", "id"),
        "ix_icat_dataset_type_order": ("type_id", "investigation_id", "name", "id"),
    },
    "Datafile": {"ix_icat_datafile_order": ("dataset_id", "name", "id")},
    "Investigation": {"ix_icat_investigation_name": ("name",)},
}


def table_name(entity: str) -> str:
    return "icat_" + re.sub(r"(?<!^)(?=[A-Z])", "_", entity).lower()


def fk_column(relation: str) -> str:
    return f"{relation}_id"


def _table(entity: Entity, metadata: sa.MetaData) -> sa.Table:
    columns: list[sa.SchemaItem] = [
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    ]
    for name, attr in entity.attributes.items():
        if name == "id":
            continue
        kind = sa.Text() if (entity.name, name) in _LONG_TEXT else _TYPES[attr.type]()
        columns.append(sa.Column(name, kind, nullable=not attr.required))
    for name, rel in entity.one().items():
        columns.append(
            sa.Column(
                fk_column(name),
                sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                sa.ForeignKey(f"{table_name(rel.target)}.id", ondelete="CASCADE"),
                nullable=True,
                index=True,
            )
        )
    if entity.name in UNIQUE:
        fields = UNIQUE[entity.name]
        cols = [fk_column(f) if f in entity.relations else f for f in fields]
        columns.append(sa.UniqueConstraint(*cols, name=f"uq_{table_name(entity.name)}"))
    for name, cols in INDEXES.get(entity.name, {}).items():
        columns.append(sa.Index(name, *cols))
    # ids are never reused (as in ICAT): on SQLite a deleted last row's id would come back
    return sa.Table(table_name(entity.name), metadata, *columns, sqlite_autoincrement=True)


def _build(metadata: sa.MetaData) -> dict[str, sa.Table]:
    return {name: _table(e, metadata) for name, e in sorted(entities().items())}


TABLES: dict[str, sa.Table] = _build(Base.metadata)

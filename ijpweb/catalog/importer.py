"""Loading ICAT dump files into the embedded catalog (``ijp-admin <ini> load-catalog FILE``).

The caller gives a connection inside one transaction: a file that fails part-way leaves
the catalog as it was.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import sqlalchemy as sa

from .dumpfile import DumpError, DumpObject
from .icatdb import TABLES, fk_column
from .icatschema import entities


class Importer:
    def __init__(self, connection, file: str):
        self.conn = connection
        self.file = file
        self.keys: dict[str, int] = {}
        self.counts: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()

    def _resolve(self, obj: DumpObject, field: str, key: str) -> int:
        try:
            return self.keys[key]
        except KeyError:
            raise DumpError(
                self.file, obj.position, f"{obj.entity}.{field}: no object with key {key!r} in this file"
            ) from None

    def _insert(self, obj: DumpObject, parent: tuple[str, int] | None = None) -> int:
        entity = entities()[obj.entity]
        table = TABLES.get(obj.entity)
        if table is None:
            self.skipped[obj.entity] += 1
            return 0
        values = {k: v for k, v in obj.attrs.items() if k != "id"}
        for name, key in obj.refs.items():
            values[fk_column(name)] = self._resolve(obj, name, key)
        if parent is not None:
            values[fk_column(parent[0])] = parent[1]
        try:
            new_id = self.conn.execute(table.insert().values(**values)).inserted_primary_key[0]
        except sa.exc.IntegrityError as e:
            reason = str(e.orig).splitlines()[0]
            raise DumpError(
                self.file,
                obj.position,
                f"{obj.entity} cannot be stored ({reason}); is it in the catalog already?",
            ) from None
        self.counts[obj.entity] += 1
        if obj.key:
            self.keys[obj.key] = new_id
        for field, child in obj.children:
            inverse = entity.relations[field].inverse
            self._insert(child, (inverse, new_id))
        return new_id

    def load(self, objects: Iterable[DumpObject]) -> Counter[str]:
        for obj in objects:
            self._insert(obj)
        return self.counts


def load_objects(connection, objects: Iterable[DumpObject], file: str) -> Counter[str]:
    return Importer(connection, file).load(objects)

"""Loading ICAT dump files into the embedded catalog (``ijp-admin <ini> load-catalog FILE``).

The caller gives a connection inside one transaction: a file that fails part-way leaves
the catalog as it was.

A Datafile's ``location`` in a dump is the path of its contents in the store it came
from, perhaps followed by that IDS's digest. Loading a dump is the operator's act, so
with ``key`` (a function giving the IDS key) its paths are signed for their new ids, an
old digest replaced: the datafiles are then readable through the embedded IDS once their
files are put under ``ijp.filestore`` at those paths (a path leaving the store stays
refused). Without ``key`` locations are kept as they are, which the IDS never serves.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa

from .dumpfile import DumpError, DumpObject
from .icatdb import TABLES, fk_column
from .icatschema import entities
from .ids import sign

OLD_DIGEST = re.compile(r" [0-9A-Fa-f]{64}\Z")  # what ids.server (or this IDS) appended


class Importer:
    def __init__(self, connection, file: str, key: Callable[[], bytes] | None = None):
        self.conn = connection
        self.file = file
        self.key = functools.cache(key) if key is not None else None
        self.keys: dict[str, int] = {}
        self.counts: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()

    def _resolve(self, obj: DumpObject, field: str, key: str) -> int:
        """A key defined earlier in this file, or else the unique key of an object the
        catalog holds already (as python-icat's searchUniqueKey finds it)."""
        if key in self.keys:
            return self.keys[key]
        found = self.conn.execute(_key_query(key)).scalars().all() if _parse_key(key) else []
        if len(found) != 1:
            raise DumpError(
                self.file,
                obj.position,
                f"{obj.entity}.{field}: no object with key {key!r} in this file or the catalog",
            )
        self.keys[key] = found[0]
        return found[0]

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
        if obj.entity == "Datafile" and values.get("location") and self.key is not None:
            path = OLD_DIGEST.sub("", values["location"])
            self.conn.execute(
                table.update().where(table.c.id == new_id).values(location=sign(self.key(), new_id, path))
            )
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


def _unescape(text: str) -> str:
    """python-icat escapes key values as =XX (hex)."""
    return re.sub(r"=([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), text)


def _parse_parts(text: str, i: int) -> tuple[list[tuple[str, Any]], int]:
    parts: list[tuple[str, Any]] = []
    while i < len(text) and text[i] != ")":
        dash = text.index("-", i)
        attr = text[i:dash]
        i = dash + 1
        if i < len(text) and text[i] == "(":
            nested, i = _parse_parts(text, i + 1)
            if i >= len(text) or text[i] != ")":
                raise ValueError("unbalanced parentheses")
            i += 1
            parts.append((attr, nested))
        else:
            end = i
            while end < len(text) and text[end] not in "_)":
                end += 1
            parts.append((attr, _unescape(text[i:end])))
            i = end
        if i < len(text) and text[i] == "_":
            i += 1
    return parts, i


def _parse_key(key: str) -> tuple[str, list] | None:
    """``Entity_attr-value_rel-(attr-value)`` -> (entity, parts), or None."""
    entity, _, rest = key.partition("_")
    if entity not in TABLES or not rest:
        return None
    try:
        parts, end = _parse_parts(rest, 0)
    except (ValueError, IndexError):
        return None
    return (entity, parts) if end == len(rest) else None


def _key_query(key: str) -> sa.Select:
    entity, parts = _parse_key(key)

    def select_ids(entity: str, parts: list) -> sa.Select:
        table, e = TABLES[entity], entities()[entity]
        q = sa.select(table.c.id)
        for attr, value in parts:
            if attr in e.one():
                q = q.where(table.c[fk_column(attr)].in_(select_ids(e.relations[attr].target, value)))
            elif attr in e.attributes and isinstance(value, str):
                q = q.where(table.c[attr] == value)
            else:
                q = q.where(sa.false())
        return q

    return select_ids(entity, parts)


def load_objects(connection, objects: Iterable[DumpObject], file: str) -> Counter[str]:
    return Importer(connection, file).load(objects)

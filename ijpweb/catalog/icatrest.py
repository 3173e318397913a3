"""ICAT's REST conventions for the embedded catalog: entity JSON out, entity JSON in,
and ICAT's error codes. No Pyramid here; views/icat.py serves it at /icat/...
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from .. import inputs
from . import AuthenticationError, QueryBusyError, QueryLimitError, SessionError
from .dumpfile import DumpError, _convert
from .icatdb import TABLES, fk_column
from .icatschema import entities
from .jpql import QueryError

VERSION = "6.2.0"
STATUS = {
    "BAD_PARAMETER": 400,
    "OBJECT_ALREADY_EXISTS": 400,
    "VALIDATION": 400,
    "SESSION": 403,
    "INSUFFICIENT_PRIVILEGES": 403,
    "NO_SUCH_OBJECT_FOUND": 404,
    "INTERNAL": 500,
    "NOT_IMPLEMENTED": 501,
}
# A relation ICAT requires (its JoinColumn nullable=false) that the portal's dataset search
# relies on: a dataset's place in the search's order is its investigation's.
REQUIRED_RELATIONS = {"Dataset": ("investigation",)}
MAX_LOGIN_BYTES = 64 << 10
MAX_ENTITIES_BYTES = 16 << 20
# What jobs may write through this face (as the rules allow).
CREATABLE = {
    "Dataset", "Datafile", "DatasetParameter", "DatafileParameter", "Job", "DataCollection",
    "DataCollectionDataset", "DataCollectionDatafile", "DataCollectionParameter",
}  # fmt: skip


class IcatError(Exception):
    def __init__(self, code: str, message: str, offset: int = -1, status: int | None = None):
        super().__init__(message)
        self.code, self.message, self.offset = code, message, offset
        self.status = status or STATUS[code]

    def body(self) -> dict:
        out = {"code": self.code, "message": self.message}
        if self.offset >= 0:
            out["offset"] = self.offset
        return out


def translate(e: Exception) -> IcatError:
    """Catalog exceptions as ICAT names them."""
    if isinstance(e, IcatError):
        return e
    if isinstance(e, QueryBusyError):  # the user's queries at once: 429, to try again
        return IcatError("VALIDATION", str(e), status=429)
    if isinstance(e, QueryLimitError):  # maxEntities, as ICAT words it; the time limit
        return IcatError("VALIDATION", str(e))
    if isinstance(e, SessionError | AuthenticationError):
        return IcatError("SESSION", str(e))
    if isinstance(e, PermissionError):
        return IcatError("INSUFFICIENT_PRIVILEGES", str(e))
    if isinstance(e, QueryError):
        return IcatError("BAD_PARAMETER", str(e))
    if isinstance(e, DumpError):
        return IcatError("BAD_PARAMETER", e.reason)
    if isinstance(e, inputs.InputError):
        return IcatError("BAD_PARAMETER", e.message)
    raise e


def _value(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat(timespec="milliseconds")
    return v


def entity_json(entity: str, row: dict[str, Any]) -> dict:
    """``{"Dataset": {...}}`` with the attributes that have values, as ICAT gives them."""
    e = entities()[entity]
    body = {name: _value(row[name]) for name in e.attributes if row.get(name) is not None}
    for name in e.one():
        if row.get(fk_column(name)) is not None and name in row.get("$include", ()):
            body[name] = {"id": row[fk_column(name)]}
    return {entity: body}


def parse_login(form_json: str) -> tuple[str, dict[str, str]]:
    """``{"plugin": "db", "credentials": [{"username": "u"}, {"password": "p"}]}``."""
    data = inputs.loads(form_json, "json", max_bytes=MAX_LOGIN_BYTES)
    try:
        plugin = data["plugin"]
        if not isinstance(plugin, str):
            raise TypeError("plugin")
        creds: dict[str, str] = {}
        for item in data.get("credentials", []):
            creds.update({str(k): str(v) for k, v in item.items()})
    except (KeyError, TypeError, AttributeError):
        raise IcatError(
            "BAD_PARAMETER", 'json must be {"plugin": ..., "credentials": [{name: value}, ...]}'
        ) from None
    return plugin, creds


def parse_entities(text: str) -> list[tuple[str, dict]]:
    """``entities`` of POST entityManager: one ``{"Entity": {...}}`` or a list of them
    (bounded in size and depth, every string valid text)."""
    data = inputs.loads(text, "entities", max_bytes=MAX_ENTITIES_BYTES)
    items = data if isinstance(data, list) else [data]
    out = []
    for item in items:
        if not isinstance(item, dict) or len(item) != 1:
            raise IcatError("BAD_PARAMETER", 'each entity must be {"Name": {fields}}')
        ((name, fields),) = item.items()
        if name not in entities():
            raise IcatError("BAD_PARAMETER", f"unknown entity {name!r}")
        if not isinstance(fields, dict):
            raise IcatError("BAD_PARAMETER", f"{name}: fields must be an object")
        out.append((name, fields))
    return out


def _attribute(name: str, e, key: str, value: Any) -> Any:
    """One attribute's value from JSON, as its column can hold it (a 64-bit integer, a
    finite double, text no longer than the column)."""
    if isinstance(value, dict | list):
        raise IcatError(
            "BAD_PARAMETER",
            f"{name}.{key} must be a {e.attributes[key].type}, not JSON {type(value).__name__}",
        )
    try:
        out = _convert("entities", name, e, key, value)
    except OverflowError:  # a number too large for a double
        raise IcatError("BAD_PARAMETER", f"{name}.{key}: {value} is out of range") from None
    kind = e.attributes[key].type
    if kind == "integer" and out is not None and not -(2**63) <= out <= inputs.MAX_ID:
        raise IcatError(
            "BAD_PARAMETER", f"{name}.{key} must be a whole number from {-(2**63)} to {inputs.MAX_ID}"
        )
    if kind == "double" and out is not None and not math.isfinite(out):
        raise IcatError("BAD_PARAMETER", f"{name}.{key} must be a finite number")
    if kind == "datetime" and out is not None:
        try:  # stored in UTC, and read back as a Python datetime: years 1 to 9999 in UTC
            out.astimezone(UTC)
        except OverflowError:
            raise IcatError(
                "BAD_PARAMETER", f"{name}.{key} must be a time from year 1 to 9999 in UTC"
            ) from None
    column = TABLES[name].c[key].type
    if isinstance(out, str) and getattr(column, "length", None) and len(out) > column.length:
        raise IcatError("BAD_PARAMETER", f"{name}.{key} is longer than {column.length} characters")
    return out


def count_entities(items: list[tuple[str, dict]]) -> int:
    """The entities a create holds: each one and the children given inline, at any depth."""
    total, stack = 0, [fields for _name, fields in items]
    while stack:
        fields = stack.pop()
        total += 1
        for value in fields.values():
            if isinstance(value, list):
                stack += [child for child in value if isinstance(child, dict)]
    return total


def create_all(catalog, session_id: str, items: list[tuple[str, dict]]) -> list[int]:
    """POST entityManager: create the entities (at most ``ijp.catalog.max_writes``, within
    the time limit) as the user, then check the C rules for all of them at once."""
    created: dict[str, list[int]] = {}
    with catalog.writing(session_id, count_entities(items)):
        ids = [create(catalog, session_id, name, fields, created=created) for name, fields in items]
        catalog.check_created(session_id, created)
    return ids


def create(
    catalog, session_id: str, name: str, fields: dict, parent: tuple[str, int] | None = None,
    created: dict[str, list[int]] | None = None,
) -> int:  # fmt: skip
    """Create one entity (and the one-to-many children given inline) as the user; with
    ``created``, the new ids are added to it by entity for the caller to check the rules
    (:meth:`EmbeddedCatalog.check_created`), else each is checked at once."""
    if name not in CREATABLE:
        raise IcatError("INSUFFICIENT_PRIVILEGES", f"{name} cannot be created through this catalog")
    e = entities()[name]
    if fields.get("id"):
        raise IcatError("NOT_IMPLEMENTED", "updates are not supported; create objects without an id")
    values: dict[str, Any] = {}
    children = []
    for key, value in fields.items():
        if key == "id":
            continue
        if key in e.attributes and key not in ("createId", "createTime", "modId", "modTime"):
            values[key] = _attribute(name, e, key, value)
        elif key in e.one():
            ref = value.get("id") if isinstance(value, dict) else None
            if isinstance(ref, bool) or not isinstance(ref, int) or not 0 < ref <= inputs.MAX_ID:
                raise IcatError(
                    "BAD_PARAMETER", f'{name}.{key} must be {{"id": <number from 1 to {inputs.MAX_ID}>}}'
                )
            readable = catalog.readable_parent(session_id, e.relations[key].target, ref)
            if readable is None:
                raise IcatError("NO_SUCH_OBJECT_FOUND", f"{e.relations[key].target}[id:{ref}] does not exist")
            if not readable:
                raise IcatError(
                    "INSUFFICIENT_PRIVILEGES", f"you may not read {e.relations[key].target} {ref}"
                )
            values[fk_column(key)] = ref
        elif key in e.many():
            if not isinstance(value, list):
                raise IcatError("BAD_PARAMETER", f"{name}.{key} must be a list")
            children += [(key, child) for child in value]
        else:
            raise IcatError("BAD_PARAMETER", f"{name} has no field {key!r}")
    if parent is not None:
        values[fk_column(parent[0])] = parent[1]
    for attr in e.attributes.values():
        if attr.required and values.get(attr.name) is None and attr.name != "id":
            raise IcatError("VALIDATION", f"{name}.{attr.name} cannot be null")
    for rel in REQUIRED_RELATIONS.get(name, ()):
        if values.get(fk_column(rel)) is None:
            raise IcatError("VALIDATION", f"{name}.{rel} cannot be null")
    try:
        new_id = catalog.create(session_id, name, values, check=created is None)
    except sa.exc.IntegrityError as ex:
        raise IcatError("OBJECT_ALREADY_EXISTS", f"{name} violates a constraint: {ex.orig}") from None
    for key, child in children:
        rel = e.relations[key]
        if not isinstance(child, dict):
            raise IcatError("BAD_PARAMETER", f"{name}.{key}: each item must be an object")
        create(catalog, session_id, rel.target, child, (rel.inverse, new_id), created)
    if created is not None:
        created.setdefault(name, []).append(new_id)
    return new_id


def search(catalog, session_id: str, query: str) -> list:
    """GET entityManager: the results as ICAT's REST interface gives them. As in ICAT, at
    most maxEntities results, and at most maxEntities entities with those INCLUDE adds."""
    compiled, rows = catalog.run_query(session_id, query)
    if compiled.kind != "entity":
        return [_value(r[0]) for r in rows]
    include = set(compiled.include)
    out = [entity_json(compiled.entity, {**r._mapping, "$include": include}) for r in rows]
    most = catalog.limits.max_entities
    if include and _entity_count(out) > most:
        raise IcatError("VALIDATION", f"attempt to return more than {most} entities")
    return out


def _entity_count(objects: list[dict]) -> int:
    """The objects and the related ones INCLUDE put in them, as ICAT counts them."""
    return sum(1 + sum(isinstance(v, dict) for v in body.values()) for o in objects for body in o.values())

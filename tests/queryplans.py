"""Reading query plans in tests: which of the big tables (jobs, datasets, datafiles) a
statement would read from end to end.

SQLite: ``EXPLAIN QUERY PLAN``; a ``SCAN <table>`` line (with or without an index) is a
full scan, a ``SEARCH <table> USING ...`` is not.

PostgreSQL: ``EXPLAIN (FORMAT JSON)`` with ``enable_seqscan`` off, so that a small test
table is planned as a big one would be wherever an index can serve the statement: a ``Seq
Scan`` left on a watched table means no index can; an ``Index Scan``/``Index Only Scan``
with no ``Index Cond`` (a walk of the whole index), or one that is only ``IS NOT NULL``,
counts as a full scan too (so does a ``Bitmap Heap Scan`` whose index scans have none), unless
``ordered_walk`` is allowed and the scan sits under a ``Limit`` with no Sort, Hash or
Aggregate between them (a newest-first page read from an index in order stops after the
page; a walk that is sorted first reads everything).
"""

from __future__ import annotations

import json
import re

import sqlalchemy as sa

WATCHED = ("job", "Dataset", "Datafile")


def _compiled(conn, statement, params):
    if isinstance(statement, str):
        return sa.text(statement), params or {}
    return statement, params or {}


def _driver_sql(conn, statement, params):
    """The statement's SQL text and its parameters as the driver takes them."""
    stmt, params = _compiled(conn, statement, params)
    if isinstance(stmt, sa.TextClause):
        stmt = stmt.bindparams(**params) if params else stmt
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    values = compiled.construct_params()
    processors = compiled._bind_processors

    def processed(key):
        value = values[key]
        return processors[key](value) if key in processors else value

    if compiled.positiontup is not None:
        return str(compiled), tuple(processed(k) for k in compiled.positiontup)
    return str(compiled), {k: processed(k) for k in values}


def sqlite_plan(conn, statement, params=None) -> list[str]:
    sql, args = _driver_sql(conn, statement, params)
    return [r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, args).all()]


def postgresql_plan(conn, statement, params=None) -> list[dict]:
    sql, args = _driver_sql(conn, statement, params)
    savepoint = conn.begin_nested()
    try:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plan = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql, args).scalar()
    finally:
        savepoint.rollback()
    return json.loads(plan) if isinstance(plan, str) else plan


# nodes that read all their input before giving a row: a Limit above them stops nothing below
_BLOCKING = {"Sort", "Hash", "Aggregate", "SetOp", "WindowAgg"}


def _pg_nodes(node, under_limit=False):
    kind = node.get("Node Type")
    yield node, under_limit
    stops = (under_limit or kind == "Limit") and kind not in _BLOCKING
    for child in node.get("Plans", []):
        yield from _pg_nodes(child, stops)


def _narrows(index_cond: str | None) -> bool:
    """Whether an index condition picks part of the index: "(x IS NOT NULL)" alone picks
    (nearly) all of it."""
    return bool(index_cond) and not re.fullmatch(r"\(\(?[\w.\"]+\)? IS NOT NULL\)", index_cond)


def _bitmap_narrows(node: dict) -> bool:
    """Whether a bitmap (a Bitmap Index Scan, or a BitmapAnd/BitmapOr of them) picks part
    of the table: an AND does if any of its parts does, an OR only if all of them do."""
    kind, parts = node.get("Node Type"), node.get("Plans", [])
    if kind == "BitmapAnd":
        return any(_bitmap_narrows(p) for p in parts)
    if kind == "BitmapOr":
        return bool(parts) and all(_bitmap_narrows(p) for p in parts)
    return _narrows(node.get("Index Cond"))


def full_scans(conn, statement, params=None, *, tables=WATCHED, ordered_walk: bool = False) -> list[str]:
    """The full scans of ``tables`` in ``statement``'s plan, as lines to show in an
    assertion (empty: every watched table is reached through an index condition)."""
    watched = {t.lower() for t in tables}
    found = []
    if conn.dialect.name == "sqlite":
        for line in sqlite_plan(conn, statement, params):
            words = line.split()
            if len(words) >= 2 and words[0] == "SCAN" and words[1].strip('"').lower() in watched:
                found.append(line)
        return found
    for top in postgresql_plan(conn, statement, params):
        for node, under_limit in _pg_nodes(top["Plan"]):
            relation = (node.get("Relation Name") or "").lower()
            if relation not in watched:
                continue
            kind = node["Node Type"]
            if kind == "Seq Scan":
                found.append(f"Seq Scan on {relation}")
            elif (
                kind == "Bitmap Heap Scan"
                and not any(_bitmap_narrows(c) for c in node.get("Plans", []))
                and not (ordered_walk and under_limit)
            ):
                found.append(f"Bitmap Heap Scan on {relation} with no condition that narrows it")
            elif (
                kind in ("Index Scan", "Index Only Scan")
                and not _narrows(node.get("Index Cond"))
                and not (ordered_walk and under_limit)
            ):
                found.append(f"{kind} on {relation} using {node.get('Index Name')} with no condition")
    return found


def plan_text(conn, statement, params=None) -> str:
    """The whole plan, for an assertion's message."""
    if conn.dialect.name == "sqlite":
        return "\n".join(sqlite_plan(conn, statement, params))
    return json.dumps(postgresql_plan(conn, statement, params), indent=1)

"""Read authorization as ICAT does it.

A user may read an object of entity E if they are a root user, or if some Rule with R
in its crudFlags, whose grouping is empty (everyone) or one the user belongs to
(through UserGroup), selects it. A rule's ``what`` is a bare entity name (every object),
a JPQL query, or concise syntax, and may use ``:user``; it is about the entity its SELECT
clause names (``SELECT df FROM Dataset ds JOIN ds.datafiles df`` is a rule for Datafile), as
icat.server's RuleWhat decides it.
"""

from __future__ import annotations

from functools import lru_cache

import sqlalchemy as sa

from .icatdb import TABLES
from .jpql import QueryError, ids_query

ALL = "all"


@lru_cache(maxsize=4096)
def _rule_entity(what: str) -> str | None:
    """Which entity a rule is about, or None when its text does not parse."""
    text = what.strip()
    if text.isalpha():
        return text
    try:
        return ids_query(text, {"user": ""})[0]
    except QueryError:
        return None


@lru_cache(maxsize=4096)
def _rule_ids(what: str, user: str) -> sa.Select:
    """A rule's SELECT of ids for a user, compiled once per process (a rule's compile took
    ~5 ms of each request that read through it; SQLAlchemy statements are immutable, so one
    compiled SELECT serves every request; a changed rule is another text)."""
    return ids_query(what, {"user": user})[1]


def applicable_rules(conn, user: str, flag: str = "R") -> list[str]:
    """The ``what`` of every rule with ``flag`` (C, R, U or D) that applies to ``user``."""
    rule, ug, u = TABLES["Rule"], TABLES["UserGroup"], TABLES["User"]
    groupings = sa.select(ug.c.grouping_id).join(u, ug.c.user_id == u.c.id).where(u.c.name == user)
    q = sa.select(rule.c.what).where(
        rule.c.crudFlags.contains(flag),
        sa.or_(rule.c.grouping_id.is_(None), rule.c.grouping_id.in_(groupings)),
    )
    return list(conn.execute(q).scalars())


def readable(conn, entity: str, user: str, root_users=frozenset(), rules: list[str] | None = None, flag="R"):
    """ALL, or a SELECT of the ids of ``entity`` that ``user`` may read (or, with
    ``flag``, create, update or delete)."""
    if user in root_users:
        return ALL
    if rules is None:
        rules = applicable_rules(conn, user, flag)
    selects = []
    for what in rules:
        if _rule_entity(what) != entity:
            continue
        try:
            ids = _rule_ids(what, user)
        except QueryError:
            continue  # a rule ICAT would have refused; it grants nothing
        if what.strip() == entity:
            return ALL
        selects.append(ids)
    if not selects:
        return sa.select(TABLES[entity].c.id).where(sa.false())
    return sa.union(*selects) if len(selects) > 1 else selects[0]


def condition(id_column, readable_ids):
    """The condition that keeps the readable objects, or None when all are."""
    return None if readable_ids is ALL else id_column.in_(readable_ids)


def restrict(select: sa.Select, entity: str, id_column, readable_ids) -> sa.Select:
    if readable_ids is ALL:
        return select
    return select.where(id_column.in_(readable_ids))


def narrow(readable_ids, column: str, values):
    """``readable_ids`` kept to the objects whose ``column`` (``id``, ``dataset_id``) is in
    ``values`` (a list, or a SELECT): the condition goes into each rule's own SELECT, so the
    database computes the readable set for those objects only (a page's datasets, one
    dataset's datafiles), never the user's whole readable set."""
    return narrow_by(readable_ids, lambda table: table.c[column].in_(values))


def narrow_by(readable_ids, condition):
    """``readable_ids`` kept to the objects for which ``condition(table)`` holds, ``table``
    being each rule's own (aliased) table of the entity: the condition goes into each
    rule's SELECT."""
    if readable_ids is ALL:
        return ALL
    arms = list(readable_ids.selects) if isinstance(readable_ids, sa.CompoundSelect) else [readable_ids]
    kept = [arm.where(condition(arm.selected_columns[0].table)) for arm in arms]
    return sa.union(*kept) if len(kept) > 1 else kept[0]


def probe(id_column, readable_ids):
    """The condition that keeps the readable objects, as a check of each candidate row (the
    row's id looked up in each rule's SELECT, through the primary key and the rule's own
    joins), or None when all are readable. For a statement whose candidates are few (a
    batch of datasets' files): it never computes the user's whole readable set, as an IN
    would."""
    if readable_ids is ALL:
        return None
    arms = list(readable_ids.selects) if isinstance(readable_ids, sa.CompoundSelect) else [readable_ids]
    # (a scalar subquery, not EXISTS: PostgreSQL turns an EXISTS into a semi-join, which may
    # compute the whole readable set after all; a scalar subquery stays a check per row)
    # (each rule's SELECT in a derived table of its own: its aliases, t1, t2..., are those
    # of the user's query too, and must not capture the outer row's)
    inner = [arm.subquery() for arm in arms]
    checks = [
        sa.select(sa.literal(1)).where(rows.c.id == id_column).limit(1).scalar_subquery().is_not(None)
        for rows in inner
    ]
    return sa.or_(*checks) if len(checks) > 1 else checks[0]

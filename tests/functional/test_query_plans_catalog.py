"""The catalog's lists read through indexes, never a whole Dataset or Datafile table (issue
12, points 1 and 2): the statements the embedded catalog itself builds and runs (recorded as
they run, on the demo catalog) for the dataset search (every filter combination, the first
page, the pages after and before a position, the bounded count, the file counts of the
page's datasets), a dataset's datafiles (with and without a name search), the selection's
datasets and datafiles and the dataset-type parameter queries, as bob (restricted by the
demo's rules) and as a root user, are planned by this pass's database (SQLite here,
PostgreSQL in its pass) and read with tests/queryplans.full_scans.

A restricted user's statements may never scan Dataset or Datafile. A root user reads every
dataset, so a first page walks the order's index and stops at the page's LIMIT (no sort of
everything), and the count stops at 10,001 rows: such a walk, and any plan of that count,
are allowed for root only; so is root's search by part of the name, which no btree can
serve (over every dataset it reads them until the page is full: bench/README.md says what
it costs). A restricted user's name search runs over the readable set, and is checked.
test_a_dropped_index_is_seen and test_the_old_correlated_count_is_seen show the check fails
when it should."""

from __future__ import annotations

import itertools
import re

import pytest
import sqlalchemy as sa
from sqlalchemy.sql import visitors

from ijpweb.catalog import DatafileQuery, DatasetQuery, demo
from ijpweb.catalog.embedded import EmbeddedCatalog
from ijpweb.catalog.icatdb import TABLES as T
from ijpweb.datasettypes import DatasetTypes
from tests.queryplans import full_scans, plan_text, postgresql_plan, sqlite_plan

WATCHED = ("icat_dataset", "icat_datafile")


class Recording(EmbeddedCatalog):
    """The embedded catalog, recording each statement it runs (and running it)."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.statements: list = []

    def run(self, statement, params=None):
        if getattr(statement, "is_select", False):
            self.statements.append((statement, params))
        return super().run(statement, params)


def watched_names(conn, statement) -> tuple[str, ...]:
    """The watched tables and every alias they have in the statement (SQLite's plan names a
    table by its alias: the rules' SELECTs alias theirs t1, t2...)."""
    sql = str(statement.compile(dialect=conn.dialect))
    aliases = re.findall(r"\b(?:icat_dataset|icat_datafile) AS \"?(\w+)", sql)
    return (*WATCHED, *aliases)


def _walk_stops(conn, statement) -> bool:
    """SQLite: the statement's order is its index's (no sort of everything) and a LIMIT
    stops it (a first page, or the count's 10,001 rows)."""
    sql = str(statement.compile(dialect=conn.dialect))
    plan = sqlite_plan(conn, statement)
    return " LIMIT " in sql and not any("TEMP B-TREE FOR ORDER BY" in line for line in plan)


def with_values(statement, params):
    """``statement`` with the values the catalog ran it with (a batch query's list of
    dataset ids) bound into it."""
    if not params:
        return statement

    def bound(element):
        if isinstance(element, sa.BindParameter) and element.key in params:
            return sa.bindparam(element.key, value=params[element.key], expanding=element.expanding)
        return None

    return visitors.replacement_traverse(statement, {}, bound)


def sql_of(conn, statement) -> str:
    return str(statement.compile(dialect=conn.dialect))


def is_bounded_count(conn, statement) -> bool:
    """paging.bounded_count's statement: it reads at most 10,001 rows whatever the plan."""
    sql = str(statement.compile(dialect=conn.dialect))
    return bool(
        re.search(r"^(WITH .*\))?\s*SELECT count\(\*\) AS count_1\s+FROM \(SELECT .* LIMIT", sql, re.S)
    )


def scans(conn, statement, params=None, *, root: bool = False) -> list[str]:
    statement = with_values(statement, params)
    if root and is_bounded_count(conn, statement):
        return []  # root's count: the first 10,001 datasets, from wherever the plan reads them
    if root and re.search(
        r"lower\(icat_dataset\.name\) LIKE|icat_dataset\.name ILIKE", sql_of(conn, statement)
    ):
        return []  # root's name search: no btree serves a substring (bench/README.md, part C)
    tables = watched_names(conn, statement)
    found = full_scans(conn, statement, tables=tables, ordered_walk=root)
    if root and conn.dialect.name == "sqlite" and _walk_stops(conn, statement):
        found = [line for line in found if not line.startswith("SCAN icat_dataset")]
    return found


@pytest.fixture
def conn(dbsession):
    """The demo catalog grown to 20,000 more datasets and 40,000 more datafiles (bob in 4
    of the 100 new investigations), its statistics brought up to date: planned as a
    facility's catalog would be, not as 42 rows are (all within the test's transaction)."""
    conn = dbsession.connection()
    demo.scale(conn, investigations=100, datasets_each=200, files_each=2, members={"bob": 20})
    conn.execute(sa.text("ANALYZE"))
    return conn


@pytest.fixture
def types(app):
    return DatasetTypes(app.registry.settings["ijp"].datasettypes_dir)


def session_of(catalog, user: str) -> str:
    return catalog.login("db", {"username": user, "password": f"{user}-demo"}).session_id


def exercise(catalog: Recording, sid: str, types: DatasetTypes) -> None:
    """Every list read the faces make, through the catalog (recording its statements)."""
    for type_name, investigation, name in itertools.product(
        ["", "confocal"], ["", "LMF-2026-002"], ["", "01"]
    ):
        q = DatasetQuery(type_name, investigation, name, per_page=5)
        first = catalog.search_datasets(sid, q)
        position = (first.items[-1].investigation_id, first.items[-1].name, first.items[-1].id) if first.items else (
            10**6, "m", 10**6)  # fmt: skip
        catalog.search_datasets(sid, DatasetQuery(type_name, investigation, name, per_page=5, after=position))
        catalog.search_datasets(
            sid, DatasetQuery(type_name, investigation, name, per_page=5, before=position)
        )
    seen = catalog.search_datasets(sid, DatasetQuery(per_page=50)).items
    assert seen, "the user sees datasets"
    ds = seen[0]
    for name, (after, before) in itertools.product(
        ["", "t0"], [(None, None), (("c1", 1), None), (None, ("z", 1))]
    ):
        catalog.dataset_datafiles(sid, ds.id, DatafileQuery(name, per_page=3, after=after, before=before))
    files = catalog.dataset_datafiles(sid, ds.id, DatafileQuery(per_page=5)).items
    catalog.datasets(sid, [d.id for d in seen[:5]])
    catalog.datafiles(sid, [f.id for f in files])
    catalog.job_parameters(sid, seen, types.parameters_for)


def check(conn, catalog: Recording, *, root: bool) -> int:
    for statement, params in catalog.statements:
        found = scans(conn, statement, params, root=root)
        assert not found, f"{found}\n{statement}\n{plan_text(conn, with_values(statement, params))}"
    return len(catalog.statements)


def test_a_restricted_users_catalog_reads_never_scan_datasets_or_datafiles(dbsession, conn, types):
    catalog = Recording(dbsession)
    sid = session_of(catalog, "bob")
    catalog.statements.clear()
    exercise(catalog, sid, types)
    assert check(conn, catalog, root=False) > 50


def test_a_root_users_catalog_reads_walk_an_index_and_stop(dbsession, conn, types):
    catalog = Recording(dbsession, root_users={"db/alice"})
    sid = session_of(catalog, "alice")
    catalog.statements.clear()
    exercise(catalog, sid, types)
    assert check(conn, catalog, root=True) > 50


@pytest.mark.postgresql
def test_a_dropped_index_is_seen(dbsession, conn):
    """Without Datafile's (dataset_id, name) indexes a dataset's datafile page scans
    Datafile: caught. (PostgreSQL: on SQLite the unique constraint's own index, which
    cannot be dropped there, serves the same.)"""
    catalog = Recording(dbsession)
    sid = session_of(catalog, "bob")
    ds_id = catalog.search_datasets(sid, DatasetQuery(per_page=1)).items[0].id
    catalog.statements.clear()
    catalog.dataset_datafiles(sid, ds_id, DatafileQuery(per_page=3))
    statement, params = catalog.statements[0]
    assert not scans(conn, statement, params)
    savepoint = conn.begin_nested()
    try:  # (inside the test's transaction, rolled back)
        conn.execute(sa.text("ALTER TABLE icat_datafile DROP CONSTRAINT uq_icat_datafile"))
        for name in ("ix_icat_datafile_order", "ix_icat_datafile_dataset_id"):
            conn.execute(sa.text(f"DROP INDEX {name}"))
        assert scans(conn, statement, params), plan_text(conn, statement)
    finally:
        savepoint.rollback()


def test_a_root_search_in_another_order_is_seen(dbsession, conn):
    """The root user's allowance is for a walk in an index's order that a LIMIT stops: the
    same page ordered by description (no index) sorts every dataset, and is caught."""
    catalog = Recording(dbsession, root_users={"db/alice"})
    sid = session_of(catalog, "alice")
    catalog.statements.clear()
    catalog.search_datasets(sid, DatasetQuery(per_page=5, facets=False))
    page = catalog.statements[0][0]
    assert not scans(conn, page, root=True)
    other = page.order_by(None).order_by(T["Dataset"].c.description)
    assert scans(conn, other, root=True), plan_text(conn, other)


def correlated(conn, statement) -> list[str]:
    """The subqueries of ``statement``'s plan run again for each row (SQLite's CORRELATED
    ... SUBQUERY, PostgreSQL's SubPlan that is not an InitPlan)."""
    if conn.dialect.name == "sqlite":
        return [line for line in sqlite_plan(conn, statement) if line.startswith("CORRELATED")]
    found = []

    def walk(node):
        if node.get("Parent Relationship") == "SubPlan":
            found.append(node.get("Subplan Name", "SubPlan"))
        for child in node.get("Plans", []):
            walk(child)

    for top in postgresql_plan(conn, statement):
        walk(top["Plan"])
    return found


def test_the_search_computes_the_readable_sets_once(dbsession, conn):
    """No statement of the search or of a dataset's datafile page runs a subquery per row
    (the readable sets are a CTE or an uncorrelated IN narrowed to the page's datasets)."""
    catalog = Recording(dbsession)
    sid = session_of(catalog, "bob")
    catalog.statements.clear()
    for name in ("", "01"):
        page = catalog.search_datasets(sid, DatasetQuery(name=name, per_page=5))
        catalog.search_datasets(sid, DatasetQuery(name=name, per_page=5, after=page.next))
        catalog.dataset_datafiles(sid, page.items[0].id, DatafileQuery(per_page=3))
    for statement, params in catalog.statements:
        statement = with_values(statement, params)
        assert not correlated(conn, statement), plan_text(conn, statement)


def test_the_old_correlated_count_is_seen(dbsession, conn):
    """The count the search had before (a correlated subquery per dataset row over the
    user's readable datafiles, even for the rows an OFFSET skips) is caught."""
    catalog = EmbeddedCatalog(dbsession)
    sid = session_of(catalog, "bob")
    ds, df = T["Dataset"], T["Datafile"]
    readable_files = catalog._readable(sid, "Datafile")
    count = (
        sa.select(sa.func.count(df.c.id)).where(df.c.dataset_id == ds.c.id, df.c.id.in_(readable_files))
    ).correlate(ds).scalar_subquery()  # fmt: skip
    old = catalog.restrict(sid, sa.select(ds.c.id, ds.c.name, count.label("n")), "Dataset", ds.c.id)
    old = old.order_by(ds.c.name).offset(40).limit(20)
    assert correlated(conn, old), plan_text(conn, old)

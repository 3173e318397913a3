"""Acceptance (issue 3, point 5): with python-icat's icatdump-5.0 loaded, each user sees
as many objects as a real ICAT 5 reported for that dump (python-icat's summary files)."""

from pathlib import Path

import pytest
import sqlalchemy as sa

from ijpweb.catalog import authz
from ijpweb.catalog.dumpfile import read
from ijpweb.catalog.embedded import CatalogLimits, EmbeddedCatalog
from ijpweb.catalog.icatdb import TABLES
from ijpweb.catalog.importer import load_objects

DATA = Path(__file__).resolve().parents[1] / "data" / "python-icat"
USERS = ["acord", "ahau", "jbotu", "jdoe", "nbour", "rbeck"]
ENTITIES = ["Investigation", "Dataset", "Datafile", "DatasetParameter", "DatafileParameter"]


def summary(user):
    counts = {}
    for line in (DATA / f"summary-5.{user}").read_text().splitlines()[1:]:
        if ":" in line:
            name, n = line.split(":")
            counts[name.strip()] = int(n)
    return counts


@pytest.fixture
def loaded(dbsession):
    conn = dbsession.connection()
    load_objects(conn, read(DATA / "icatdump-5.0.yaml"), "icatdump-5.0.yaml")
    return conn


def visible(conn, entity, user):
    table = TABLES[entity]
    ids = authz.readable(conn, entity, user)
    q = authz.restrict(sa.select(sa.func.count()).select_from(table), entity, table.c.id, ids)
    return conn.execute(q).scalar()


@pytest.mark.parametrize("user", USERS)
def test_each_user_sees_what_icat_5_reported(loaded, user):
    expected = summary(user)
    got = {e: visible(loaded, e, f"db/{user}") for e in ENTITIES}
    assert got == {e: expected[e] for e in ENTITIES}


def test_root_sees_everything(loaded):
    ids = authz.readable(loaded, "Dataset", "simple/root", root_users={"simple/root"})
    assert ids is authz.ALL


# --- which entities a query's rules restrict (issue 10, point 5) --------------------------
# icat.server (parser/SearchQuery.java, FromClause.java) restricts the entity the SELECT
# clause refers to; ijp.catalog.restrict_joins = true restricts every entity of the query.

CAROL_SEES = 12  # LMF-2026-003's datasets; the demo has 42


def carol_catalog(dbsession, restrict_joins):
    catalog = EmbeddedCatalog(dbsession, limits=CatalogLimits(restrict_joins=restrict_joins))
    return catalog, catalog.login("db", {"username": "carol", "password": "carol-demo"}).session_id


@pytest.mark.parametrize(
    "query, as_icat, restricted",
    [
        # counting through a join counts rows of entities carol may not read, as ICAT does
        ("SELECT COUNT(t) FROM DatasetType t JOIN t.datasets ds", [42], [CAROL_SEES]),
        ("COUNT(DatasetType) <-> Dataset", [42], [CAROL_SEES]),
        # ... and names what exists in another user's investigation
        ("SELECT DISTINCT t.name FROM DatasetType t JOIN t.datasets ds JOIN ds.investigation i "
         "WHERE i.name = 'LMF-2026-002' ORDER BY t.name", ["confocal", "lightsheet"], []),
        # a condition on an unreadable entity filters, in both modes
        ("SELECT COUNT(ds) FROM Dataset ds WHERE ds.investigation.name = 'LMF-2026-002'", [0], [0]),
        # the selected entity is always restricted, also when it is reached by a join
        ("SELECT COUNT(ds) FROM Investigation i JOIN i.datasets ds", [CAROL_SEES], [CAROL_SEES]),
        ("SELECT COUNT(df) FROM Dataset ds JOIN ds.datafiles df WHERE ds.investigation.name = 'LMF-2026-001'",
         [0], [0]),
        # an outer join keeps its row when the joined entity is not readable (ON, not WHERE)
        ("SELECT COUNT(t) FROM DatasetType t LEFT JOIN t.datasets ds", [42], [CAROL_SEES + 1]),
    ],
)  # fmt: skip
def test_rules_restrict_the_selected_entity_or_every_joined_one(dbsession, query, as_icat, restricted):
    for restrict_joins, expected in ((False, as_icat), (True, restricted)):
        catalog, carol = carol_catalog(dbsession, restrict_joins)
        assert catalog.query(carol, query) == expected, (restrict_joins, query)


def test_rules_restrict_the_entity_an_attribute_belongs_to(dbsession):
    """``SELECT ds.investigation.name`` is restricted by Investigation's rules, not
    Dataset's (FromClause's authzMap), and ``SELECT ds.investigation`` returns the
    Investigation: here everyone may read LMF-2026-001's datasets but not the investigation."""
    rule = TABLES["Rule"]
    dbsession.connection().execute(
        rule.insert().values(
            what="SELECT o FROM Dataset o JOIN o.investigation i WHERE i.name = 'LMF-2026-001'",
            crudFlags="R",
            createId="simple/root",
            createTime=sa.func.now(),
            modId="simple/root",
            modTime=sa.func.now(),
        )
    )
    catalog, carol = carol_catalog(dbsession, False)
    where = "WHERE ds.investigation.name = 'LMF-2026-001'"
    assert len(catalog.query(carol, f"SELECT ds.name FROM Dataset ds {where}")) == 16
    assert catalog.query(carol, f"SELECT ds.investigation.name FROM Dataset ds {where}") == []
    assert catalog.query(carol, f"SELECT DISTINCT ds.investigation FROM Dataset ds {where}") == []
    assert [i["name"] for i in catalog.query(carol, "SELECT DISTINCT ds.investigation FROM Dataset ds")] == [
        "LMF-2026-003"
    ]


def test_a_rule_selecting_a_joined_alias_is_about_that_entity(dbsession):
    """As icat.server's RuleWhat: ``SELECT df FROM Dataset ds JOIN ds.datafiles df`` is a rule
    for Datafile."""
    dbsession.connection().execute(
        TABLES["Rule"]
        .insert()
        .values(
            what="SELECT df FROM Dataset ds JOIN ds.datafiles df JOIN ds.investigation i "
            "WHERE i.name = 'LMF-2026-002' AND df.name LIKE '%.csv'",
            crudFlags="R",
            createId="simple/root",
            createTime=sa.func.now(),
        )
    )
    catalog, carol = carol_catalog(dbsession, False)
    extra = catalog.query(
        carol, "SELECT df.name FROM Datafile df WHERE df.dataset.investigation.name = 'LMF-2026-002'"
    )
    assert extra and all(name.endswith(".csv") for name in extra)

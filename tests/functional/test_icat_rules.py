"""Acceptance (issue 3, point 5): with python-icat's icatdump-5.0 loaded, each user sees
as many objects as a real ICAT 5 reported for that dump (python-icat's summary files)."""

from pathlib import Path

import pytest
import sqlalchemy as sa

from ijpweb.catalog import authz
from ijpweb.catalog.dumpfile import read
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

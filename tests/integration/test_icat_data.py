"""Data in and out on a facility's ICAT (catalog.icatserver.IcatData): python-icat's own
IDSClient, over HTTP, with the user's session, against an IDS (the embedded one, served by
the portal on waitress). ICAT's SOAP face cannot run here, so the catalog's searches are
answered by a stand-in that reads through the embedded catalog as the same user (its
rules decide, as ICAT's would); every byte goes through IDS's REST protocol for real."""

import io
import re
from types import SimpleNamespace as Obj

import pytest
import sqlalchemy as sa
from icat.ids import IDSClient
from sqlalchemy.orm import Session

from ijpweb.catalog import DataError
from ijpweb.catalog.embedded import EmbeddedCatalog
from ijpweb.catalog.icatdb import TABLES as T
from ijpweb.catalog.icatserver import IcatData, IcatServerCatalog

pytestmark = pytest.mark.once  # the live server's own committed database


class SoapStandIn:
    """icat.Client's searches, answered by the embedded catalog as the session's user; its
    ``ids`` is python-icat's real IDSClient (the session id follows, as in icat.Client)."""

    def __init__(self, engine, ids_url):
        self.engine = engine
        self.ids = IDSClient(ids_url)
        self._sid = None
        self.autoLogout = False

    @property
    def sessionId(self):  # noqa: N802 - python-icat's name
        return self._sid

    @sessionId.setter
    def sessionId(self, sid):  # noqa: N802
        self._sid = sid
        self.ids.sessionId = sid

    def _has_wsdl_type(self, name):
        return True

    def search(self, query):
        with Session(self.engine) as db:
            cat = EmbeddedCatalog(db)
            ids = [int(i) for i in re.findall(r"\d+", query.split("IN (", 1)[-1].split(")")[0])]
            if query.startswith("SELECT df FROM Datafile df WHERE df.id IN"):
                return [Obj(id=f.id, name=f.name, fileSize=f.size, datafileFormat=Obj(name=f.format),
                            dataset=Obj(id=f.dataset_id, name=f.dataset_name))
                        for f in cat.datafiles(self._sid, ids)]  # fmt: skip
            if query.startswith("SELECT ds FROM Dataset ds WHERE ds.id IN"):
                return [Obj(id=d.id, name=d.name, type=Obj(name=d.type_name),
                            investigation=Obj(id=d.investigation_id, name=d.investigation, title=""))
                        for d in cat.datasets(self._sid, ids)]  # fmt: skip
            if query.startswith("SELECT df.dataset.id, COUNT(df)"):
                return []
            if query.startswith("SELECT f FROM DatafileFormat f"):
                fmt = T["DatafileFormat"]
                return [Obj(id=r.id, name=r.name) for r in db.execute(sa.select(fmt.c.id, fmt.c.name))]
            m = re.fullmatch(
                r"SELECT df.id FROM Datafile df WHERE df.dataset.id = (\d+) AND df.name = '(.*)'", query
            )
            if m:
                df = T["Datafile"]
                name = m.group(2).replace("''", "'")
                return list(
                    db.execute(
                        sa.select(df.c.id).where(df.c.dataset_id == int(m.group(1)), df.c.name == name)
                    ).scalars()
                )
        raise AssertionError(f"a search the stand-in does not know: {query}")


def _login(engine, user):
    with Session(engine) as db, db.begin():
        return EmbeddedCatalog(db).login("db", {"username": user, "password": f"{user}-demo"}).session_id


def _one(engine, query):
    with engine.connect() as conn:
        return conn.execute(query).first()


@pytest.fixture
def icat(live_server):
    url, engine = live_server
    catalog = IcatServerCatalog(
        "https://icat.invalid", url + "/ids", client_factory=lambda: SoapStandIn(engine, url + "/ids")
    )
    return IcatData(catalog), engine


def _file(engine, investigation, name):
    df, ds, inv = T["Datafile"], T["Dataset"], T["Investigation"]
    return _one(engine, sa.select(df.c.id, ds.c.id).join(ds, df.c.dataset_id == ds.c.id)
                .join(inv, ds.c.investigation_id == inv.c.id)
                .where(inv.c.name == investigation, df.c.name == name).order_by(df.c.id))  # fmt: skip


def test_download_a_datafile_and_a_zip_through_python_icat(icat):
    data, engine = icat
    bob = _login(engine, "bob")
    csv, ds = _file(engine, "LMF-2026-002", "intensities.csv")
    got = data.datafile(bob, csv)
    assert got.name == "intensities.csv"
    body = b"".join(got.body)
    got.close()
    assert body.startswith(b"frame,channel,mean_intensity")
    import zipfile

    z = data.zip(bob, [ds], [], "x.zip")
    names = zipfile.ZipFile(io.BytesIO(b"".join(z.body))).namelist()
    assert any(n.endswith("/intensities.csv") for n in names)


def test_carol_gets_bobs_datafile_as_not_found(icat):
    data, engine = icat
    carol = _login(engine, "carol")
    csv, ds = _file(engine, "LMF-2026-002", "intensities.csv")
    with pytest.raises(DataError) as e:
        data.datafile(carol, csv)
    assert e.value.status == 404 and e.value.message == f"not found or not visible to you: datafile {csv}"
    with pytest.raises(DataError) as e:
        data.zip(carol, [], [csv], "x.zip")
    assert e.value.status == 404
    with pytest.raises(DataError) as e:
        data.put(carol, ds, "x.txt", io.BytesIO(b"carol"))
    assert e.value.status == 404


def test_put_with_a_format_then_undo(icat):
    data, engine = icat
    bob = _login(engine, "bob")
    _csv, ds = _file(engine, "LMF-2026-003", "intensities.csv")
    new_id = data.put(bob, ds, "from-icat.csv", io.BytesIO(b"a,b\n1,2\n"))
    df, fmt = T["Datafile"], T["DatafileFormat"]
    row = _one(
        engine,
        sa.select(df.c.name, fmt.c.name)
        .join(fmt, df.c.datafileFormat_id == fmt.c.id)
        .where(df.c.id == new_id),
    )
    assert tuple(row) == ("from-icat.csv", "CSV")
    assert b"".join(data.datafile(bob, new_id).body) == b"a,b\n1,2\n"
    with pytest.raises(DataError) as e:
        data.put(bob, ds, "from-icat.csv", io.BytesIO(b"again"))
    assert e.value.status == 409
    with pytest.raises(DataError) as e:
        data.put(bob, ds, "../x", io.BytesIO(b"x"))
    assert e.value.field == "name"
    data.undo()  # an upload refused later: IDS deletes what this one stored
    assert _one(engine, sa.select(df.c.id).where(df.c.id == new_id)) is None

"""Acceptance (issue 3, point 8): python-icat's own IDSClient, over HTTP, against the
embedded IDS: ping, put a file into a dataset, read it back byte-identical, get its size."""

import io
import json
import os
import urllib.error
import urllib.request

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from ijpweb.catalog.embedded import EmbeddedCatalog
from ijpweb.catalog.icatdb import TABLES as T

pytestmark = pytest.mark.once  # runs against the live server's own database


def login(engine, user, password):
    with Session(engine) as db, db.begin():
        return EmbeddedCatalog(db).login("db", {"username": user, "password": password}).session_id


def first(engine, query):
    with engine.connect() as c:
        return c.execute(query).scalars().first()


@pytest.fixture
def ids_client(live_server):
    from icat.ids import IDSClient

    url, engine = live_server
    return IDSClient(url + "/ids", sessionId=login(engine, "alice", "alice-demo")), url, engine


def alices_dataset(engine):
    ds, inv = T["Dataset"], T["Investigation"]
    return first(
        engine,
        sa.select(ds.c.id).join(inv, ds.c.investigation_id == inv.c.id).where(inv.c.name == "LMF-2026-001"),
    )


def test_python_icat_ids_client_put_read_back_size(ids_client):
    from icat.ids import DataSelection

    client, url, engine = ids_client
    client.ping()
    assert client.getApiVersion() == "2.1.0"
    assert client.isReadOnly() is False and client.isTwoLevel() is False
    dataset = alices_dataset(engine)
    text_format = first(
        engine, sa.select(T["DatafileFormat"].c.id).where(T["DatafileFormat"].c.name == "Text")
    )
    data = os.urandom(200_000) + "é\n".encode()
    df_id = client.put(io.BytesIO(data), "upload.bin", dataset, text_format, description="from a test")
    sel = DataSelection({"datafileIds": [df_id]})
    assert client.getData(sel).read() == data
    assert client.getSize(sel) == len(data)
    assert client.getStatus(sel) == "ONLINE"
    assert client.getData(sel, offset=1000).read() == data[1000:]
    assert df_id in client.getDatafileIds(DataSelection({"datasetIds": [dataset]}))
    prepared = client.prepareData(sel)
    assert client.isPrepared(prepared)
    assert client.getData(prepared).read() == data
    # the catalog knows it too: size and checksum recorded on the Datafile
    row = None
    with engine.connect() as c:
        row = c.execute(sa.select(T["Datafile"]).where(T["Datafile"].c.id == df_id)).mappings().one()
    assert row["fileSize"] == len(data) and row["name"] == "upload.bin" and row["createId"] == "db/alice"
    client.delete(sel)
    with pytest.raises(Exception, match="does not exist"):
        client.getSize(sel)


def test_ids_refuses_what_the_rules_do_not_allow(ids_client, live_server):
    from icat.exception import IDSInsufficientPrivilegesError
    from icat.ids import DataSelection, IDSClient

    client, url, engine = ids_client
    ds, inv = T["Dataset"], T["Investigation"]
    carols = first(
        engine,
        sa.select(ds.c.id).join(inv, ds.c.investigation_id == inv.c.id).where(inv.c.name == "LMF-2026-003"),
    )
    with pytest.raises(IDSInsufficientPrivilegesError):
        client.getSize(DataSelection({"datasetIds": [carols]}))
    with pytest.raises(IDSInsufficientPrivilegesError):
        client.put(io.BytesIO(b"x"), "intrusion.txt", carols, 1)
    bad = IDSClient(url + "/ids", sessionId="not-a-session")
    with pytest.raises(IDSInsufficientPrivilegesError):
        bad.getSize(DataSelection({"datasetIds": [carols]}))


def test_errors_are_ids_json(live_server):
    url, _ = live_server
    for path, status, code in [
        ("/ids/getSize?sessionId=x", 400, "BadRequestException"),
        ("/ids/nonsense", 404, "NotFoundException"),
        ("/ids/getSize?sessionId=x&datasetIds=1,a", 400, "BadRequestException"),
    ]:
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url + path)
        assert e.value.code == status
        assert json.loads(e.value.read())["code"] == code

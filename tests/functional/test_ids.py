"""The embedded IDS.

Acceptance (issue 3, point 8): python-icat's own IDSClient, over HTTP, against the
embedded IDS: ping, put a file into a dataset, read it back byte-identical, get its size.

Issue 10 (points 3, 7 and 8), as carol attacking bob: a datafile location given through
ICAT cannot address bob's contents (reads refused, deletes leave his file), locations
outside the store are refused cleanly, every bad IDS input is a 400 in IDS's JSON, and no
error message carries any part of a session id.
"""

import io
import json
import os
import secrets
import stat
import string
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from ijpweb.catalog.embedded import EmbeddedCatalog
from ijpweb.catalog.icatdb import TABLES as T
from ijpweb.catalog.ids import canonical_path, digest, server_key, sign, zip_name, zip_stream

from ..conftest import IDS_KEY


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


@pytest.mark.once  # runs against the live server's own database
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


@pytest.mark.once
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


@pytest.mark.once
def test_the_reported_attack_over_http_with_commits(live_server):
    """The report's steps against a running portal, each request committed (so /ids/delete's
    removal after the commit really runs): carol's location for bob's datafile reads
    nothing, her traversal location deletes nothing, bob's bytes are still served."""
    url, engine = live_server

    def call(method, path, **params):
        req = urllib.request.Request(f"{url}{path}?{urlencode(params)}", method=method)
        try:
            with urllib.request.urlopen(req) as res:
                return res.status, res.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def icat(user):
        body = {"plugin": "db", "credentials": [{"username": user}, {"password": f"{user}-demo"}]}
        data = urlencode({"json": json.dumps(body)}).encode()
        with urllib.request.urlopen(urllib.request.Request(f"{url}/icat/session", data=data)) as res:
            return json.loads(res.read())["sessionId"]

    bob, carol = icat("bob"), icat("carol")
    with engine.connect() as c:
        (bob_df, _, _), *_ = datafiles_of(c, "LMF-2026-002")
        (_, _, carols_dataset), *_ = datafiles_of(c, "LMF-2026-003")
    status, bob_bytes = call("GET", "/ids/getData", sessionId=bob, datafileIds=bob_df)
    assert status == 200 and bob_bytes
    dir_ = canonical_path(bob_df).split("/")[0]
    for n, location in enumerate([canonical_path(bob_df), f"{dir_}/../{dir_}/{bob_df}"]):
        entity = {
            "Datafile": {"name": f"live-forged-{n}", "dataset": {"id": carols_dataset}, "location": location}
        }
        data = urlencode({"sessionId": carol, "entities": json.dumps(entity)}).encode()
        with urllib.request.urlopen(urllib.request.Request(f"{url}/icat/entityManager", data=data)) as res:
            (forged,) = json.loads(res.read())
        status, body = call("GET", "/ids/getData", sessionId=carol, datafileIds=forged)
        assert status == 403 and json.loads(body)["code"] == "InsufficientPrivilegesException"
        assert call("DELETE", "/ids/delete", sessionId=carol, datafileIds=forged)[0] == 200
        assert call("GET", "/ids/getData", sessionId=bob, datafileIds=bob_df) == (200, bob_bytes)


@pytest.mark.once
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


# --- issue 10: locations cannot be forged -------------------------------------------------------

KEY = IDS_KEY.encode()


def icat_login(testapp, user):
    body = {"plugin": "db", "credentials": [{"username": user}, {"password": f"{user}-demo"}]}
    return testapp.post("/icat/session", {"json": json.dumps(body)}).json["sessionId"]


def session_of(dbsession, user):
    """A catalog session as a login makes one (without argon2's cost for every test)."""
    from datetime import timedelta

    from ijpweb.models import CatalogSession, utcnow

    sid = secrets.token_urlsafe(32)
    dbsession.add(CatalogSession(id=sid, user_name=f"db/{user}", expires_at=utcnow() + timedelta(hours=1)))
    dbsession.flush()
    return sid


def datafiles_of(conn, investigation):
    """(id, location) of the datafiles with contents in an investigation, by id."""
    df, ds, inv = T["Datafile"], T["Dataset"], T["Investigation"]
    q = (
        sa.select(df.c.id, df.c.location, df.c.dataset_id)
        .join(ds, df.c.dataset_id == ds.c.id)
        .join(inv, ds.c.investigation_id == inv.c.id)
        .where(inv.c.name == investigation, df.c.location.is_not(None))
        .order_by(df.c.id)
    )
    return conn.execute(q).all()


def create_datafile(testapp, sid, dataset, name, location):
    entity = {"Datafile": {"name": name, "dataset": {"id": dataset}, "location": location}}
    (new_id,) = testapp.post("/icat/entityManager", {"sessionId": sid, "entities": json.dumps(entity)}).json
    return new_id


def ids_error(res, status, code):
    assert res.status_int == status, res.text
    assert res.content_type == "application/json", res.text
    assert set(res.json) == {"code", "message"} and res.json["code"] == code, res.json
    return res.json["message"]


@pytest.fixture
def scene(testapp, dbsession, app):
    """bob's datafile in LMF-2026-002 (carol is not a member) and its bytes; carol's
    dataset in LMF-2026-003; both sessions; the store."""
    conn = dbsession.connection()
    store = app.registry["ijp.filestore"]
    bob_df, bob_location, _ = datafiles_of(conn, "LMF-2026-002")[0]
    carols_df, carols_location, carols_dataset = datafiles_of(conn, "LMF-2026-003")[0]
    bob_file = store.file(bob_df, bob_location)
    return {
        "bob": session_of(dbsession, "bob"),
        "carol": session_of(dbsession, "carol"),
        "bob_df": bob_df,
        "bob_location": bob_location,
        "bob_file": bob_file,
        "bob_bytes": bob_file.read_bytes(),
        "carols_df": carols_df,
        "carols_location": carols_location,
        "carols_dataset": carols_dataset,
        "store": store,
    }


def test_the_demo_locations_carry_a_digest_of_their_id_and_path(scene):
    path, _, given = scene["bob_location"].rpartition(" ")
    assert path == canonical_path(scene["bob_df"])
    assert given == digest(KEY, scene["bob_df"], path)
    assert given != digest(KEY, scene["bob_df"] + 1, path)  # bound to the id
    assert given != digest(b"another-key-of-16-chars", scene["bob_df"], path)  # and to the key


def test_carol_cannot_read_bobs_datafile_through_a_location_she_gives(testapp, scene):
    carol, bob_df = icat_login(testapp, "carol"), scene["bob_df"]  # logged in as a job would
    path = canonical_path(bob_df)
    carols_path, _, carols_digest = scene["carols_location"].rpartition(" ")
    forgeries = [
        path,  # the attack of the report: the bare store path
        scene["bob_location"],  # bob's signed location, were it to leak
        f"{path} {carols_digest}",  # a digest carol can read, on bob's path
        f"{path} {digest(b'guessed-key-0123456789', bob_df, path)}",
        f"{carols_path}/../{path}",
        f"{path} {'0' * 64}",
        f"{path} {'é' * 64}",
    ]
    for n, location in enumerate(forgeries):
        new_id = create_datafile(testapp, carol, scene["carols_dataset"], f"forged-{n}.bin", location)
        # kept as metadata, as ICAT keeps it
        found = testapp.get(
            "/icat/entityManager",
            {"sessionId": carol, "query": f"SELECT df.location FROM Datafile df WHERE df.id = {new_id}"},
        ).json
        assert found == [location]
        one = {"sessionId": carol, "datafileIds": str(new_id)}
        for call, params in [
            ("getData", one),
            ("getData", {**one, "zip": "true"}),
            ("getSize", one),
            ("getStatus", one),
            ("getDatafileIds", one),
            ("getData", {"sessionId": carol, "datasetIds": str(scene["carols_dataset"])}),
        ]:
            res = testapp.get(f"/ids/{call}", params, expect_errors=True)
            message = ids_error(res, 403, "InsufficientPrivilegesException")
            assert "its location was not set by this IDS" in message or "outside the file store" in message
            assert f"datafile {new_id}:" in message or "datasetIds" in params
            assert scene["bob_bytes"] not in res.body
        res = testapp.post("/ids/prepareData", one, expect_errors=True)
        ids_error(res, 403, "InsufficientPrivilegesException")
    # bob still reads his own, byte for byte
    res = testapp.get("/ids/getData", {"sessionId": scene["bob"], "datafileIds": str(bob_df)})
    assert res.body == scene["bob_bytes"]


def test_deleting_a_forged_datafile_leaves_bobs_file(testapp, scene, dbsession, app):
    """The report's second step: a traversal location deleted through /ids/delete. The
    catalog row goes (carol may delete her datafiles), the store is not touched."""
    from ijpweb.catalog.embedded import EmbeddedCatalog
    from ijpweb.catalog.ids import Ids, Selection

    carol, bob_df = scene["carol"], scene["bob_df"]
    dir_ = canonical_path(bob_df).split("/")[0]
    ids = Ids(EmbeddedCatalog(dbsession), scene["store"])
    for n, location in enumerate(
        [f"{dir_}/../{dir_}/{bob_df}", canonical_path(bob_df), scene["bob_location"]]
    ):
        new_id = create_datafile(testapp, carol, scene["carols_dataset"], f"del-{n}", location)
        # what the view would remove after the commit: nothing
        assert ids.delete(carol, Selection(datafile_ids=(new_id,))) == []
        new_id = create_datafile(testapp, carol, scene["carols_dataset"], f"del-http-{n}", location)
        testapp.delete(f"/ids/delete?sessionId={carol}&datafileIds={new_id}", status=200)
        res = testapp.get(
            "/ids/getSize", {"sessionId": carol, "datafileIds": str(new_id)}, expect_errors=True
        )
        ids_error(res, 404, "NotFoundException")
    assert scene["bob_file"].read_bytes() == scene["bob_bytes"]
    # a datafile of carol's own with real contents: its file is the one to remove
    mine = ids.delete(carol, Selection(datafile_ids=(scene["carols_df"],)))
    assert mine == [scene["store"].file(scene["carols_df"], scene["carols_location"])]


def test_carol_cannot_delete_bobs_datafile_directly(testapp, scene):
    res = testapp.delete(
        f"/ids/delete?sessionId={scene['carol']}&datafileIds={scene['bob_df']}", expect_errors=True
    )
    ids_error(res, 403, "InsufficientPrivilegesException")
    assert scene["bob_file"].read_bytes() == scene["bob_bytes"]


def test_a_signed_location_outside_the_store_is_refused_not_a_500(testapp, scene, dbsession, tmp_path):
    """Say an operator loaded a dump whose paths leave the store, or a link in the store
    points out: signed or not, nothing outside is read or deleted. Paths that leave it as
    text are refused by every call; links are found when the file would be opened."""
    from ijpweb.catalog.embedded import EmbeddedCatalog
    from ijpweb.catalog.ids import Ids, IdsError, Selection

    store = scene["store"]
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"not for carol")
    link_dir = store.root / "links" / tmp_path.name
    link_dir.mkdir(parents=True)
    (link_dir / "file").symlink_to(secret)
    (link_dir / "dir").symlink_to(tmp_path)
    conn = dbsession.connection()
    df = T["Datafile"]
    as_text = [
        f"../{secret.name}",
        str(secret),
        f"links/../../{tmp_path.name}/secret.txt",
        ".",
        "./",
        "//",
    ]
    links = [f"links/{tmp_path.name}/file", f"links/{tmp_path.name}/dir/secret.txt"]
    ids = Ids(EmbeddedCatalog(dbsession), store)
    for n, path in enumerate(as_text + links):
        new_id = create_datafile(testapp, scene["carol"], scene["carols_dataset"], f"out-{n}", "x")
        conn.execute(df.update().where(df.c.id == new_id).values(location=sign(KEY, new_id, path)))
        one = {"sessionId": scene["carol"], "datafileIds": str(new_id)}
        calls = ["getData", "getSize", "getStatus"] if path in as_text else ["getData"]
        for call in calls:
            res = testapp.get(f"/ids/{call}", one, expect_errors=True)
            message = ids_error(res, 403, "InsufficientPrivilegesException")
            assert "outside the file store" in message and b"not for carol" not in res.body
        zipped = testapp.get("/ids/getData", {**one, "zip": "true"}, expect_errors=True)
        ids_error(zipped, 403, "InsufficientPrivilegesException")
        assert ids.delete(scene["carol"], Selection(datafile_ids=(new_id,))) == []
    assert secret.read_bytes() == b"not for carol"
    with pytest.raises(IdsError, match="outside"):  # (PostgreSQL would not store it)
        store.inside(1, "a\x00b")


def test_server_key_is_created_once_private_and_required(tmp_path):
    key_file = tmp_path / "var" / "ids.key"
    first = server_key("", str(key_file))
    assert len(first) == 64 and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert server_key("", str(key_file)) == first  # generated once
    assert server_key("from-the-environment-1234", str(key_file)) == b"from-the-environment-1234"
    with pytest.raises(ValueError, match="IJP_IDS_KEY"):
        server_key("", "")
    with pytest.raises(ValueError, match="at least 16"):
        server_key("short", "")
    key_file.chmod(0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        server_key("", str(key_file))


def test_the_portal_does_not_start_without_an_ids_key(app_settings, dbengine, monkeypatch):
    from ijpweb import main

    monkeypatch.delenv("IJP_IDS_KEY", raising=False)
    settings = {k: v for k, v in app_settings.items() if k not in ("ijp.ids.key", "ijp.ids.key_file")}
    with pytest.raises(ValueError, match="IJP_IDS_KEY"):
        main({}, dbengine=dbengine, **settings)
    # a facility's real ICAT has its own IDS: no key needed
    main({}, dbengine=dbengine, **{**settings, "ijp.catalog": "icat"})


# --- issue 10: bad IDS input is a 400 in IDS's format ---------------------------------------------


@pytest.fixture
def carol_file(testapp, scene):
    return (
        scene["carol"],
        scene["carols_df"],
        scene["store"].file(scene["carols_df"], scene["carols_location"]),
    )


@pytest.mark.parametrize(
    "rng",
    [
        "bytes=9223372036854775808-",
        "bytes=99999999999999999999999999-",
        "bytes=-5",
        "bytes=abc-",
        "bytes=1-2",
        "bytes=0-,5-",
        "items=0-",
        "bytes=\u0661-",
        "",
    ],
)
def test_a_bad_range_is_a_bad_request(testapp, carol_file, rng):
    sid, df, _ = carol_file
    res = testapp.get(
        "/ids/getData", {"sessionId": sid, "datafileIds": str(df)}, headers={"Range": rng}, expect_errors=True
    )
    assert "Range" in ids_error(res, 400, "BadRequestException")


def test_a_good_range_is_an_offset(testapp, carol_file):
    sid, df, path = carol_file
    data = path.read_bytes()
    params = {"sessionId": sid, "datafileIds": str(df)}
    res = testapp.get("/ids/getData", params, headers={"Range": "bytes=10-"}, status=206)
    assert res.body == data[10:] and res.content_length == len(data) - 10
    res = testapp.get("/ids/getData", params, headers={"Range": "bytes=9223372036854775807-"}, status=206)
    assert res.body == b""


@pytest.mark.parametrize(
    "params",
    [
        {"datafileIds": "9223372036854775808"},
        {"datafileIds": "1,99999999999999999999999"},
        {"datafileIds": "-1"},
        {"datafileIds": "0"},
        {"datafileIds": "1e3"},
        {"datasetIds": "\u0661"},
        {"investigationIds": "1,+"},
        {"datafileIds": ",".join(["1"] * 10_001)},
        {},
    ],
)
@pytest.mark.parametrize("call", ["getData", "getSize", "getStatus", "getDatafileIds"])
def test_bad_ids_are_bad_requests(testapp, carol_file, call, params):
    sid = carol_file[0]
    res = testapp.get(f"/ids/{call}", {"sessionId": sid, **params}, expect_errors=True)
    message = ids_error(res, 400, "BadRequestException")
    assert "Ids" in message  # names the parameter


@pytest.mark.parametrize("outname", ["a\r\nSet-Cookie: x=1", "a\nb", "a\x00b", "tab\there", "x" * 256])
def test_a_bad_outname_is_a_bad_request(testapp, carol_file, outname):
    sid, df, _ = carol_file
    res = testapp.get(
        "/ids/getData", {"sessionId": sid, "datafileIds": str(df), "outname": outname}, expect_errors=True
    )
    assert "outname" in ids_error(res, 400, "BadRequestException")
    assert "Set-Cookie" not in res.headers


def test_names_never_break_the_content_disposition(testapp, scene, dbsession):
    """outname, and a catalog name carol chose, come back as a safe header."""
    sid, df = scene["carol"], scene["carols_df"]
    res = testapp.get("/ids/getData", {"sessionId": sid, "datafileIds": str(df), "outname": 'ré"sumé.txt'})
    cd = res.headers["Content-Disposition"]
    assert cd == "attachment; filename=\"r__sum_.txt\"; filename*=UTF-8''r%C3%A9%22sum%C3%A9.txt"
    t = T["Datafile"]
    dbsession.connection().execute(t.update().where(t.c.id == df).values(name="a\r\nX-Evil: 1"))
    res = testapp.get("/ids/getData", {"sessionId": sid, "datafileIds": str(df)})
    assert res.headers["Content-Disposition"] == 'attachment; filename="a__X-Evil: 1"'
    assert "X-Evil" not in res.headers


@pytest.mark.parametrize(
    "params, field",
    [
        ({"datasetId": "9223372036854775808", "name": "a.txt"}, "datasetId"),
        ({"datasetId": "-3", "name": "a.txt"}, "datasetId"),
        ({"name": "a.txt"}, "datasetId"),
        ({"datasetId": "{ds}", "name": "a.txt", "datafileFormatId": "1" * 30}, "datafileFormatId"),
        ({"datasetId": "{ds}", "name": "a.txt", "datafileCreateTime": "9" * 30}, "datafileCreateTime"),
        ({"datasetId": "{ds}", "name": "a.txt", "datafileModTime": "9999999999999999"}, "datafileModTime"),
        ({"datasetId": "{ds}", "name": "a.txt", "datafileModTime": "yesterday"}, "datafileModTime"),
        ({"datasetId": "{ds}", "name": "a\r\nb.txt"}, "name"),
        ({"datasetId": "{ds}", "name": "../b.txt"}, "name"),
        ({"datasetId": "{ds}", "name": "n" * 256}, "name"),
        ({"datasetId": "{ds}", "name": "a.txt", "description": "nul\x00"}, "description"),
    ],
)
def test_bad_put_parameters_are_bad_requests(testapp, scene, params, field):
    query = {k: v.replace("{ds}", str(scene["carols_dataset"])) for k, v in params.items()}
    query["sessionId"] = scene["carol"]
    res = testapp.put(
        f"/ids/put?{urlencode(query)}", b"data", content_type="application/octet-stream", expect_errors=True
    )
    assert field in ids_error(res, 400, "BadRequestException")


def test_parameters_that_are_not_utf8_are_a_bad_request(testapp):
    res = testapp.get("/ids/getSize?sessionId=%ff%fe&datafileIds=1", expect_errors=True)
    ids_error(res, 400, "BadRequestException")


# --- issue 10: no error message carries a session id ---------------------------------------------

SESSION_ALPHABET = string.ascii_letters + string.digits + "-_"


def error_calls(dataset: int, datafile: int):
    """(method, path, query, headers): one of every kind of error each IDS call makes."""
    return [
        ("GET", "getSize", {"datafileIds": str(datafile)}, {}),
        ("GET", "getSize", {}, {}),
        ("GET", "getStatus", {"datasetIds": "1,x"}, {}),
        ("GET", "getData", {"datafileIds": str(datafile)}, {"Range": "bytes=x-"}),
        ("GET", "getData", {"datafileIds": str(datafile), "outname": "a\r\nb"}, {}),
        ("GET", "getData", {"datafileIds": str(10**12)}, {}),
        ("GET", "getDatafileIds", {"investigationIds": str(2**63)}, {}),
        ("GET", "getServiceStatus", {}, {}),
        ("POST", "prepareData", {"datafileIds": str(datafile)}, {}),
        ("GET", "isPrepared", {"preparedId": "{sid}"}, {}),
        ("GET", "getData", {"preparedId": "{sid}"}, {}),
        ("PUT", "put", {"datasetId": str(dataset), "name": "a\nb"}, {}),
        ("PUT", "put", {"datasetId": "{sid}", "name": "x"}, {}),
        ("DELETE", "delete", {"datafileIds": "{sid}"}, {}),
        ("DELETE", "delete", {"datafileIds": str(datafile)}, {}),
        ("GET", "{sid}", {}, {}),
        ("POST", "getSize", {}, {}),
    ]


def ids_call(testapp, sid, method, path, query, headers):
    query = {k: v.replace("{sid}", sid) for k, v in query.items()}
    url = "/ids/" + quote(path.replace("{sid}", sid), safe="") + "?" + urlencode({"sessionId": sid, **query})
    return testapp.request(url, method=method, headers=headers, expect_errors=True)


def fragments(sid: str, n: int = 4):
    return {sid[i : i + n] for i in range(len(sid) - n + 1)}


def well_formed(sid: str) -> bool:
    return 0 < len(sid) <= 256 and all("!" <= c <= "~" for c in sid)


def test_no_ids_error_message_repeats_any_of_the_session_id(testapp, scene):
    """Every error path, with carol's real session and with random ones: no 4 characters
    in a row of the session id come back, except those that the same call's answer for
    another session id of the same kind holds too (the message's own words: a random id
    may contain "datase")."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    calls = error_calls(scene["carols_dataset"], scene["bob_df"])

    def check(sid):
        other = "Q" * len(sid) if well_formed(sid) else "é" + "Q" * (len(sid) - 1)
        for method, path, query, headers in calls:
            res = ids_call(testapp, sid, method, path, query, headers)
            assert res.status_int < 500, (method, path, res.status, res.text)
            if res.status_int >= 400:
                assert res.content_type == "application/json" and set(res.json) == {"code", "message"}
            words = ids_call(testapp, other, method, path, query, headers).text
            leaked = [f for f in fragments(sid) if f in res.text and f not in words]
            assert not leaked, (method, path, res.text)

    check(scene["carol"])  # a real session (43 random characters) on every error path

    @given(
        sid=st.one_of(
            st.text(SESSION_ALPHABET, min_size=8, max_size=80),
            st.text(min_size=8, max_size=300).filter(lambda s: "\x00" not in s),
        ).filter(lambda s: s.strip("0123456789,+- \t\n\r\x0b\x0c") != "")  # (not an id list)
    )
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def random_sessions(sid):
        check(sid)

    random_sessions()


# --- contents are streamed ------------------------------------------------------------------------


def test_zips_stream_in_pieces_and_hold_each_file_under_a_safe_name(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 << 20))
    small = tmp_path / "small.txt"
    small.write_bytes(b"hello\n")
    entries = [("ids/inv/ds/big.bin", big), ("ids/inv/" + zip_name("../../evil") + "/small.txt", small)]
    pieces = list(zip_stream(entries))
    assert len(pieces) > 10 and max(map(len, pieces)) <= 1 << 18  # never the whole zip at once
    whole = b"".join(pieces)
    with zipfile.ZipFile(io.BytesIO(whole)) as z:
        assert z.namelist() == ["ids/inv/ds/big.bin", "ids/inv/.._.._evil/small.txt"]
        assert z.read("ids/inv/ds/big.bin") == big.read_bytes()
        assert z.testzip() is None
    assert b"".join(zip_stream(entries, offset=12345)) == whole[12345:]
    text = tmp_path / "text.txt"
    text.write_bytes(b"intensity 1234.5\n" * 100_000)
    plain, packed = (b"".join(zip_stream([("t", text)], compress=c)) for c in (False, True))
    assert len(packed) < len(plain) // 20 < len(plain)  # deflated at level 0 unless compress, as ids.server
    for data in (plain, packed):
        assert zipfile.ZipFile(io.BytesIO(data)).read("t") == text.read_bytes()
    assert [zip_name(n) for n in ("..", ".", "", "a\r\nb", "c\\d")] == ["_", "_", "_", "a__b", "c_d"]


def test_a_dataset_zip_through_http_holds_its_files(testapp, scene, dbsession):
    sid, dataset = scene["carol"], scene["carols_dataset"]
    store = scene["store"]
    df = T["Datafile"]
    rows = dbsession.connection().execute(
        sa.select(df.c.id, df.c.name, df.c.location).where(df.c.dataset_id == dataset)
    )
    expected = {name: store.file(i, loc).read_bytes() for i, name, loc in rows}
    res = testapp.get("/ids/getData", {"sessionId": sid, "datasetIds": str(dataset)})
    assert res.content_type == "application/zip"
    with zipfile.ZipFile(io.BytesIO(res.body)) as z:
        got = {n.rsplit("/", 1)[1]: z.read(n) for n in z.namelist()}
        assert all(n.startswith("ids/LMF-2026-003/") for n in z.namelist())
    assert got == expected
    part = testapp.get(
        "/ids/getData", {"sessionId": sid, "datasetIds": str(dataset)}, headers={"Range": "bytes=7-"}
    )
    assert part.status_int == 206 and part.body == res.body[7:]


# --- the migration and the loaders sign locations ---------------------------------------------------


def _alembic(tmp_path, ini_text=None):
    import alembic.config

    from ..conftest import ROOT

    ini = ROOT / "testing.ini"
    if ini_text is not None:
        ini = tmp_path / "nokey.ini"
        ini.write_text(ini_text.replace("%(here)s/migrations", str(ROOT / "migrations")))
    return alembic.config.Config(str(ini))


def _run(engine, cfg, command, revision):
    import alembic.command

    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(alembic.command, command)(cfg, revision)


@pytest.mark.once  # its own SQLite file
def test_the_migration_signs_what_the_ids_wrote_and_nothing_else(tmp_path, monkeypatch):
    from ijpweb.catalog.ids import verified_path

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.sqlite'}")
    cfg = _alembic(tmp_path)
    _run(engine, cfg, "upgrade", "a10c0de5e001")
    before = {
        5: "0000/5",  # put or the demo wrote it
        1005: "0001/1005",
        6: "0000/5",  # carol's forgery: another datafile's path
        7: "0000/../0000/5",
        8: None,  # no contents
        9: "somewhere/else.dat",  # from a dump
    }
    with engine.begin() as conn:
        for i, location in before.items():
            conn.execute(
                sa.text("INSERT INTO icat_datafile (id, name, location) VALUES (:i, :n, :l)"),
                {"i": i, "n": f"f{i}", "l": location},
            )
    monkeypatch.setenv("IJP_IDS_KEY", IDS_KEY)  # as the portal reads it
    _run(engine, cfg, "upgrade", "head")
    with engine.connect() as conn:
        after = dict(conn.execute(sa.text("SELECT id, location FROM icat_datafile")).all())
    assert after[5] == sign(KEY, 5, "0000/5") and verified_path(KEY, 5, after[5]) == "0000/5"
    assert after[1005] == sign(KEY, 1005, "0001/1005")
    assert {i: after[i] for i in (6, 7, 8, 9)} == {i: before[i] for i in (6, 7, 8, 9)}  # left unusable
    _run(engine, cfg, "downgrade", "a10c0de5e001")
    with engine.connect() as conn:
        assert dict(conn.execute(sa.text("SELECT id, location FROM icat_datafile")).all()) == before


@pytest.mark.once
def test_the_migration_needs_the_key_only_when_there_is_something_to_sign(tmp_path, monkeypatch):
    from ..conftest import ROOT

    monkeypatch.delenv("IJP_IDS_KEY", raising=False)
    text = (ROOT / "testing.ini").read_text()
    text = "\n".join(line for line in text.splitlines() if not line.startswith("ijp.ids.key_file"))
    cfg = _alembic(tmp_path, text)
    empty = sa.create_engine(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    _run(empty, cfg, "upgrade", "head")  # nothing to sign: no key needed
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'demo.sqlite'}")
    _run(engine, cfg, "upgrade", "a10c0de5e001")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO icat_datafile (id, name, location) VALUES (5, 'f', '0000/5')"))
    with pytest.raises(RuntimeError, match="IJP_IDS_KEY"):
        _run(engine, cfg, "upgrade", "head")
    with engine.connect() as conn:  # nothing changed
        assert conn.execute(sa.text("SELECT location FROM icat_datafile")).scalar() == "0000/5"


def test_a_dump_s_locations_are_signed_for_their_new_ids(dbsession, scene):
    from ijpweb.catalog.dumpfile import read
    from ijpweb.catalog.ids import IdsError
    from ijpweb.catalog.importer import Importer

    from ..conftest import ROOT

    text = (ROOT / "tests" / "data" / "python-icat" / "icatdump-5.0.yaml").read_text()
    old_digest = "0A1B2C3D" * 8  # what the IDS the dump came from appended
    text = text.replace(
        "  : checksum: ac69460a\n",
        f"  : checksum: ac69460a\n    location: e201215/e201215.nxs {old_digest}\n",
        1,
    )
    text = text.replace(
        "  : checksum: 81c44870\n", "  : checksum: 81c44870\n    location: ../../etc/passwd\n", 1
    )
    dump = scene["store"].root.parent / f"dump-{secrets.token_hex(4)}.yaml"
    dump.write_text(text)
    try:
        conn = dbsession.connection()
        Importer(conn, str(dump), key=lambda: KEY).load(read(dump))
    finally:
        dump.unlink()
    df = T["Datafile"]
    found = conn.execute(
        sa.select(df.c.name, df.c.id, df.c.location).where(df.c.name.in_(["e201215.nxs", "e208339.dat"]))
    ).all()
    rows = {name: (i, location) for name, i, location in found}
    (nxs_id, nxs), (dat_id, dat) = rows["e201215.nxs"], rows["e208339.dat"]
    assert nxs == sign(KEY, nxs_id, "e201215/e201215.nxs")
    assert scene["store"].file(nxs_id, nxs) == scene["store"].real_root / "e201215" / "e201215.nxs"
    assert dat == sign(KEY, dat_id, "../../etc/passwd")
    with pytest.raises(IdsError, match="outside the file store"):
        scene["store"].file(dat_id, dat)


def test_what_members_may_do_is_icats_rule_model_as_the_readme_says(testapp, scene, dbsession, app):
    """The README, after carol's report: the demo's rules give the members of an
    investigation CRUD on its datasets and datafiles, as icat.server with the same rules
    would. bob and carol share LMF-2026-003: she may delete a file he put there, and a
    datafile she creates there with a location of her own makes the whole dataset's
    getData a 403 (as ids.server's digest check) until it is deleted. Nothing of this
    reaches LMF-2026-002, which is bob's alone."""
    from ijpweb.catalog.demo import RULES

    rules = dict((what.split(" WHERE")[0].split("FROM ")[1].split()[0], flags) for what, flags in RULES if "investigationUsers" in what)  # fmt: skip
    assert rules == {"Investigation": "R", "InvestigationUser": "R", "Dataset": "CRUD", "DatasetParameter": "CRUD",
                     "Datafile": "CRUD", "DatafileParameter": "CRUD"}  # fmt: skip
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "members of an investigation read its data" not in readme
    assert "read, create,\nupdate and delete its datasets, datafiles" in readme
    bob, carol, shared = scene["bob"], scene["carol"], scene["carols_dataset"]
    query = urlencode({"sessionId": bob, "name": "bobs.txt", "datasetId": shared})
    put = testapp.put(
        f"/ids/put?{query}", b"bob's", content_type="application/octet-stream", expect_errors=True
    )
    assert put.status_int in (200, 201), put.text
    bobs = put.json["id"]
    testapp.delete(f"/ids/delete?sessionId={carol}&datafileIds={bobs}", status=200)
    ids_error(testapp.get("/ids/getSize", {"sessionId": bob, "datafileIds": str(bobs)}, expect_errors=True),
              404, "NotFoundException")  # fmt: skip
    whole = {"sessionId": bob, "datasetIds": str(shared), "zip": "true"}
    testapp.get("/ids/getData", whole, status=200)
    forged = create_datafile(testapp, carol, shared, "blocks-the-dataset", "anything")
    ids_error(testapp.get("/ids/getData", whole, expect_errors=True), 403, "InsufficientPrivilegesException")
    testapp.delete(f"/ids/delete?sessionId={bob}&datafileIds={forged}", status=200)  # bob may remove it
    testapp.get("/ids/getData", whole, status=200)

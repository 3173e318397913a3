"""Data in and out (issue 13, point 5) on every face: the dataset page's downloads,
previews, thumbnails and uploads, new datasets, and the same in /api/v1; all through IDS
with the user's session. Carol attacks bob's data throughout: LMF-2026-002 is alice's
and bob's (carol is not a member), LMF-2026-003 is bob's and carol's."""

import dataclasses
import io
import re
import zipfile

import h5py
import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

from ijpweb.catalog.icatdb import TABLES as T

from .test_api import API, check, token
from .test_flow import dataset_ids

NOT_YOURS = "not found or not visible to you"


def datafile(dbsession, dataset_id, name):
    df = T["Datafile"]
    return (
        dbsession.connection()
        .execute(sa.select(df.c.id).where(df.c.dataset_id == dataset_id, df.c.name == name))
        .scalar_one()
    )


def store_bytes(app, dbsession, datafile_id) -> bytes:
    df = T["Datafile"]
    location = dbsession.connection().execute(sa.select(df.c.location).where(df.c.id == datafile_id)).scalar()
    return app.registry["ijp.filestore"].file(datafile_id, location).read_bytes()


def missing_id(dbsession, entity="Datafile"):
    return (dbsession.connection().execute(sa.select(sa.func.max(T[entity].c.id))).scalar() or 0) + 1000


@pytest.fixture
def bobs(dbsession):
    """A dataset of bob's that carol cannot see (LMF-2026-002), with its files' ids."""
    ds = dataset_ids(dbsession, "lightsheet", "LMF-2026-002")[0]
    return {
        "dataset": ds,
        "tif": datafile(dbsession, ds, "c1_t001.tif"),
        "csv": datafile(dbsession, ds, "intensities.csv"),
        "h5": datafile(dbsession, ds, "stack.h5"),
        "txt": datafile(dbsession, ds, "notes.txt"),
    }


@pytest.fixture
def carols(dbsession):
    """A dataset carol may write (LMF-2026-003, hers and bob's)."""
    return dataset_ids(dbsession, None, "LMF-2026-003")[0]


def login(testapp, user):
    testapp.login(user)
    return testapp


def limit(monkeypatch, app, most: int) -> None:
    """ijp.upload.max_bytes for this test."""
    settings = app.registry.settings
    monkeypatch.setitem(settings, "ijp", dataclasses.replace(settings["ijp"], upload_max_bytes=most))


def alert(page) -> str:
    """An error page's message."""
    return page.html.find(role="alert").text


def files_on(page) -> dict[str, int]:
    """The datafiles a dataset page lists: name -> id."""
    return {
        a["aria-label"].split(" ", 1)[1]: int(re.search(r"/datafiles/(\d+)/download", a["href"]).group(1))
        for a in page.html.find_all("a", string="Download")
    }


def upload(app, dataset_id, files, status=303, **kw):
    fields = [("csrf_token", app.get_csrf_token())]
    return app.post(
        f"/datasets/{dataset_id}/upload",
        fields,
        upload_files=[("file", n, c) for n, c in files],
        status=status,
        **kw,
    )


# --- downloads --------------------------------------------------------------------------------


def test_bob_downloads_a_datafile_with_its_bytes(testapp, app, dbsession, bobs):
    login(testapp, "bob")
    res = testapp.get(f"/datafiles/{bobs['csv']}/download")
    assert res.body == store_bytes(app, dbsession, bobs["csv"])
    assert res.headers["Content-Disposition"] == 'attachment; filename="intensities.csv"'
    assert res.headers["X-Content-Type-Options"] == "nosniff"
    assert res.content_type == "application/octet-stream"
    assert b"frame,channel" in res.body


def test_bob_downloads_a_dataset_as_a_zip(testapp, app, dbsession, bobs):
    login(testapp, "bob")
    res = testapp.get(f"/datasets/{bobs['dataset']}/download.zip")
    assert res.content_type == "application/zip"
    z = zipfile.ZipFile(io.BytesIO(res.body))
    names = z.namelist()
    df = T["Datafile"]
    files = (
        dbsession.connection()
        .execute(sa.select(df.c.id, df.c.name).where(df.c.dataset_id == bobs["dataset"]))
        .all()
    )
    assert len(names) == len(files) and all(n.startswith("LMF-2026-002/lightsheet-002-") for n in names)
    for i, name in files:
        member = next(n for n in names if n.endswith("/" + name))
        assert z.read(member) == store_bytes(app, dbsession, i)


def test_bob_downloads_his_selection_as_a_zip(testapp, dbsession, bobs):
    login(testapp, "bob")
    other = dataset_ids(dbsession, "confocal", "LMF-2026-003")[0]
    testapp.htmx(
        "POST", "/selection", {"action": "set", "kind": "datafile", "id": str(bobs["csv"]), "checked": "1"}
    )
    testapp.htmx("POST", "/selection", {"action": "set", "kind": "dataset", "id": str(other), "checked": "1"})
    z = zipfile.ZipFile(io.BytesIO(testapp.get("/selection/download.zip").body))
    names = z.namelist()
    assert any(n.endswith("/intensities.csv") and "lightsheet-002" in n for n in names)
    assert sum("confocal-003" in n for n in names) >= 3


def test_an_empty_selection_zip_says_what_to_do(testapp):
    login(testapp, "bob")
    res = testapp.get("/selection/download.zip", status=400)
    assert "select datasets or datafiles first" in res.text


def test_carol_cannot_download_bobs_datafile_dataset_or_thumbnail(testapp, dbsession, bobs):
    login(testapp, "carol")
    gone = missing_id(dbsession)
    for url, missing in [
        (f"/datafiles/{bobs['csv']}/download", f"/datafiles/{gone}/download"),
        (f"/datafiles/{bobs['tif']}/thumbnail.png", f"/datafiles/{gone}/thumbnail.png"),
        (f"/datafiles/{bobs['tif']}/image.png", f"/datafiles/{gone}/image.png"),
        (f"/datafiles/{bobs['csv']}/preview", f"/datafiles/{gone}/preview"),
    ]:
        hers, none = testapp.get(url, status=404), testapp.get(missing, status=404)
        assert b"frame,channel" not in hers.body
        # the same answer as for a datafile that does not exist, but for its number
        assert alert(hers).replace(str(bobs["csv"]), "N").replace(str(bobs["tif"]), "N") == alert(
            none
        ).replace(str(gone), "N")
    gone_ds = missing_id(dbsession, "Dataset")
    hers = testapp.get(f"/datasets/{bobs['dataset']}/download.zip", status=404)
    none = testapp.get(f"/datasets/{gone_ds}/download.zip", status=404)
    assert alert(hers).replace(str(bobs["dataset"]), "N") == alert(none).replace(str(gone_ds), "N")
    assert alert(hers) == f"{NOT_YOURS}: dataset {bobs['dataset']}"


def test_carol_cannot_mix_bobs_ids_into_her_selection_zip(testapp, dbsession, bobs, carols):
    login(testapp, "carol")
    testapp.htmx(
        "POST", "/selection", {"action": "set", "kind": "dataset", "id": str(carols), "checked": "1"}
    )
    testapp.htmx(
        "POST", "/selection", {"action": "set", "kind": "datafile", "id": str(bobs["csv"]), "checked": "1"}
    )
    res = testapp.get("/selection/download.zip", status=404)
    assert f"{NOT_YOURS}: datafile {bobs['csv']}" in res.text
    assert b"PK" not in res.body[:2]


# --- previews and thumbnails ------------------------------------------------------------------


def test_the_dataset_page_lists_previews_thumbnails_and_downloads(testapp, bobs):
    login(testapp, "bob")
    page = testapp.get(f"/datasets/{bobs['dataset']}")
    assert f"/datafiles/{bobs['tif']}/thumbnail.png" in page.text
    assert f"/datafiles/{bobs['csv']}/thumbnail.png" not in page.text
    assert (
        f"/datafiles/{bobs['csv']}/preview" in page.text and f"/datafiles/{bobs['csv']}/download" in page.text
    )
    assert f"/datasets/{bobs['dataset']}/download.zip" in page.text
    assert 'id="upload-form"' in page.text  # bob may write here


def test_a_thumbnail_is_a_small_private_png(testapp, bobs):
    login(testapp, "bob")
    res = testapp.get(f"/datafiles/{bobs['tif']}/thumbnail.png")
    assert res.content_type == "image/png" and res.headers["Cache-Control"].startswith("private")
    assert Image.open(io.BytesIO(res.body)).format == "PNG"


def test_previews_of_csv_hdf5_and_text(testapp, bobs):
    login(testapp, "bob")
    csv = testapp.get(f"/datafiles/{bobs['csv']}/preview")
    assert "<svg" in csv.text and "mean_intensity" in csv.text and "<table" in csv.text
    h5 = testapp.htmx("GET", f"/datafiles/{bobs['h5']}/preview")
    assert "<html" not in h5.text  # the fragment a <details> loads
    assert "entry/  group" in h5.text and "stack  dataset  uint8" in h5.text
    txt = testapp.get(f"/datafiles/{bobs['txt']}/preview")
    assert "Notes for lightsheet" in txt.text


def test_an_uploaded_html_file_is_previewed_as_escaped_text(testapp, carols):
    login(testapp, "carol")
    upload(testapp, carols, [("evil.html", b"<script>alert(1)</script><b>x</b>")])
    page = testapp.get(f"/datasets/{carols}", {"file": "evil"})
    df_id = files_on(page)["evil.html"]
    res = testapp.get(f"/datafiles/{df_id}/preview")
    assert "<script>alert(1)" not in res.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in res.text
    dl = testapp.get(f"/datafiles/{df_id}/download")
    assert dl.content_type == "application/octet-stream" and "attachment" in dl.headers["Content-Disposition"]


def _bomb_png(side: int) -> bytes:
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    head = chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
    return (
        b"\x89PNG\r\n\x1a\n" + head + chunk(b"IDAT", zlib.compress(b"\x00" * 1000, 9)) + chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_is_refused_when_thumbnailed(testapp, carols):
    login(testapp, "carol")
    upload(testapp, carols, [("bomb.png", _bomb_png(60_000))])
    page = testapp.get(f"/datasets/{carols}", {"file": "bomb"})
    thumb = page.html.find("img", class_="thumb")["src"]
    res = testapp.get(thumb, status=422)
    assert "pixels" in res.text and res.content_type == "text/plain"


def test_a_crafted_hdf5_file_is_previewed_bounded(testapp, carols):
    buf = io.BytesIO()
    with h5py.File(buf, "w", libver="latest") as f:
        g = f
        for i in range(100):
            g = g.create_group(f"deep{i}")
        f.attrs.create("huge", data=np.zeros((500, 500)))
    login(testapp, "carol")
    upload(
        testapp,
        carols,
        [("crafted.h5", buf.getvalue()), ("corrupt.h5", b"\x89HDF\r\n\x1a\n" + b"\xff" * 999)],
    )
    page = testapp.get(f"/datasets/{carols}", {"file": ".h5"})
    ids = files_on(page)
    crafted = testapp.get(f"/datafiles/{ids['crafted.h5']}/preview")
    assert "deep5" in crafted.text and "deep20" not in crafted.text and "cut at" in crafted.text
    assert "@huge  float64  500×500" in crafted.text
    corrupt = testapp.get(f"/datafiles/{ids['corrupt.h5']}/preview")
    assert "cannot be shown" in corrupt.text


# --- uploads ----------------------------------------------------------------------------------


def test_bob_uploads_several_files_and_sees_them_listed(testapp, app, dbsession, carols):
    login(testapp, "bob")
    res = upload(testapp, carols, [("a.txt", b"alpha\n"), ("b.csv", b"x,y\n1,2\n3,4\n")])
    assert res.location.endswith(f"/datasets/{carols}?uploaded=2")
    page = res.follow()
    assert "Uploaded 2 files" in page.text and "a.txt" in page.text and "b.csv" in page.text
    a = datafile(dbsession, carols, "a.txt")
    assert store_bytes(app, dbsession, a) == b"alpha\n"
    assert testapp.get(f"/datafiles/{a}/download").body == b"alpha\n"
    fmt = T["DatafileFormat"]
    df = T["Datafile"]
    assert (
        dbsession.connection()
        .execute(sa.select(fmt.c.name).join(df, df.c.datafileFormat_id == fmt.c.id).where(df.c.id == a))
        .scalar()
        == "Text"
    )


def test_upload_with_javascript_gets_json(testapp, carols):
    login(testapp, "bob")
    res = upload(testapp, carols, [("c.txt", b"c")], status=201, headers={"Accept": "application/json"})
    assert res.json["datafiles"][0]["name"] == "c.txt"


def test_carol_cannot_upload_into_bobs_dataset(testapp, dbsession, bobs):
    login(testapp, "carol")
    before = dbsession.connection().execute(sa.select(sa.func.count()).select_from(T["Datafile"])).scalar()
    res = upload(testapp, bobs["dataset"], [("x.txt", b"carol was here")], status=404)
    assert f"{NOT_YOURS}: dataset {bobs['dataset']}" in res.text
    after = dbsession.connection().execute(sa.select(sa.func.count()).select_from(T["Datafile"])).scalar()
    assert before == after
    # and a dataset page of bob's does not offer her an upload
    testapp.get(f"/datasets/{bobs['dataset']}", status=404)


@pytest.mark.parametrize(
    "name, says",
    [("../x", "plain file name"), ("a/b", "plain file name"), ("a\\b", "plain file name"),
     ("nul\x00x", "control characters"), ("x" * 300, "at most 255"), ("..", "plain file name")],
)  # fmt: skip
def test_bad_file_names_are_refused_at_the_field(testapp, dbsession, carols, name, says):
    login(testapp, "carol")
    df = T["Datafile"]
    count = sa.select(sa.func.count()).select_from(df).where(df.c.dataset_id == carols)
    before = dbsession.connection().execute(count).scalar()
    res = upload(testapp, carols, [("fine.txt", b"ok"), (name, b"data")], status=400)
    assert says in res.text and 'aria-invalid="true"' in res.text and 'id="upload-file-error"' in res.text
    assert dbsession.connection().execute(count).scalar() == before  # not even the good one


def test_an_existing_name_is_refused_clearly(testapp, carols, dbsession):
    login(testapp, "carol")
    upload(testapp, carols, [("same.txt", b"one")])
    res = upload(testapp, carols, [("same.txt", b"two")], status=409)
    assert "already has a datafile named &#39;same.txt&#39;" in res.text
    assert testapp.get(f"/datafiles/{datafile(dbsession, carols, 'same.txt')}/download").body == b"one"


def test_an_upload_over_the_limit_stores_nothing(testapp, app, carols, dbsession, monkeypatch, tmp_path):
    limit(monkeypatch, app, 1000)
    store = app.registry["ijp.filestore"].root
    files_before = sorted(p for p in store.rglob("*") if p.is_file())
    login(testapp, "carol")
    # two files: the first within the limit, the second takes the upload past it
    res = upload(testapp, carols, [("first.bin", b"1" * 600), ("second.bin", b"2" * 600)], status=413)
    assert (
        "limit of 1 KB (1,000 bytes, ijp.upload.max_bytes)" in res.text and "nothing was stored" in res.text
    )
    df = T["Datafile"]
    assert (
        not dbsession.connection()
        .execute(
            sa.select(df.c.id).where(df.c.dataset_id == carols, df.c.name.in_(["first.bin", "second.bin"]))
        )
        .all()
    )
    assert sorted(p for p in store.rglob("*") if p.is_file()) == files_before  # no partial file left
    # far over the limit: refused before the body is read
    res = upload(testapp, carols, [("big.bin", b"3" * 3_000_000)], status=413)
    assert "ijp.upload.max_bytes" in res.text


def test_an_upload_without_a_file_or_token_is_refused(testapp, carols):
    login(testapp, "carol")
    res = testapp.post(f"/datasets/{carols}/upload", {"csrf_token": testapp.get_csrf_token()}, status=400)
    assert "choose at least one file" in res.text
    testapp.post(f"/datasets/{carols}/upload", {"x": "1"}, upload_files=[("file", "a.txt", b"a")], status=400)


# --- new datasets -----------------------------------------------------------------------------


def _investigation(dbsession, name):
    inv = T["Investigation"]
    return dbsession.connection().execute(sa.select(inv.c.id).where(inv.c.name == name)).scalar_one()


def test_bob_creates_a_dataset_then_uploads_into_it(testapp, dbsession):
    login(testapp, "bob")
    form = testapp.get("/datasets/new").forms[1]
    inv = _investigation(dbsession, "LMF-2026-002")
    form["investigation"] = str(inv)
    form["name"] = "bob-new-1"
    form["type"] = "confocal"
    form["description"] = "made in a test"
    res = form.submit(status=303)
    new_id = int(res.location.split("/datasets/")[1].split("?")[0])
    page = res.follow()
    assert "Dataset created" in page.text and "bob-new-1" in page.text and 'id="upload-form"' in page.text
    upload(testapp, new_id, [("first.txt", b"hello")])
    assert "first.txt" in testapp.get(f"/datasets/{new_id}").text


def test_the_new_dataset_form_says_what_is_wrong_at_the_field(testapp, dbsession):
    login(testapp, "bob")
    inv = _investigation(dbsession, "LMF-2026-002")
    token_ = testapp.get_csrf_token()
    res = testapp.post("/datasets/new", {"csrf_token": token_, "investigation": str(inv), "name": "", "type": "nope"},
                       status=400)  # fmt: skip
    assert 'id="nd-name-error"' in res.text and "name is required" in res.text
    res = testapp.post("/datasets/new", {"csrf_token": token_, "investigation": str(inv), "name": "n", "type": "nope"},
                       status=400)  # fmt: skip
    assert 'id="nd-type-error"' in res.text and "confocal" in res.text
    existing = dataset_ids(dbsession, "confocal", "LMF-2026-002")[0]
    name = (
        dbsession.connection()
        .execute(sa.select(T["Dataset"].c.name).where(T["Dataset"].c.id == existing))
        .scalar()
    )
    res = testapp.post("/datasets/new", {"csrf_token": token_, "investigation": str(inv), "name": name,
                                         "type": "confocal"}, status=409)  # fmt: skip
    assert "already has a dataset named" in res.text


def test_carol_cannot_create_a_dataset_in_bobs_investigation(testapp, dbsession):
    login(testapp, "carol")
    inv = _investigation(dbsession, "LMF-2026-002")
    assert "LMF-2026-002" not in testapp.get("/datasets/new").text
    res = testapp.post("/datasets/new", {"csrf_token": testapp.get_csrf_token(), "investigation": str(inv),
                                         "name": "carols", "type": "confocal"}, status=404)  # fmt: skip
    assert f"{NOT_YOURS}: investigation {inv}" in res.text
    ds = T["Dataset"]
    assert not dbsession.connection().execute(sa.select(ds.c.id).where(ds.c.name == "carols")).all()


# --- /api/v1 ----------------------------------------------------------------------------------


def _binary(doc, resp, path, method):
    assert str(resp.status_int) in doc["paths"][path][method]["responses"]
    return resp


def test_api_downloads_a_datafile_a_dataset_and_a_mixed_zip(testapp, doc, app, dbsession, bobs):
    bob = token(testapp, "bob")
    for route in ("content", "download"):
        res = testapp.get(f"{API}/datafiles/{bobs['txt']}/{route}", headers=bob)
        _binary(doc, res, f"/api/v1/datafiles/{{datafile_id}}/{route}", "get")
        assert res.body == store_bytes(app, dbsession, bobs["txt"])
    z = zipfile.ZipFile(io.BytesIO(testapp.get(f"{API}/datasets/{bobs['dataset']}/zip", headers=bob).body))
    assert any(n.endswith("/stack.h5") for n in z.namelist())
    other = dataset_ids(dbsession, "confocal", "LMF-2026-003")[0]
    res = testapp.get(f"{API}/zip", {"dataset_ids": str(other), "datafile_ids": f"{bobs['csv']},{bobs['txt']}"},
                      headers=bob)  # fmt: skip
    names = zipfile.ZipFile(io.BytesIO(res.body)).namelist()
    assert sum(n.endswith(("/intensities.csv", "/notes.txt")) for n in names) >= 4


def test_api_carol_gets_not_found_for_bobs_data(testapp, doc, dbsession, bobs, carols):
    carol = token(testapp, "carol")
    gone = missing_id(dbsession)
    hers = testapp.get(f"{API}/datafiles/{bobs['csv']}/content", headers=carol, status=404).json
    none = testapp.get(f"{API}/datafiles/{gone}/content", headers=carol, status=404).json
    assert hers == {"code": "not_found", "message": f"{NOT_YOURS}: datafile {bobs['csv']}"}
    assert none == {"code": "not_found", "message": f"{NOT_YOURS}: datafile {gone}"}
    res = testapp.get(f"{API}/zip", {"dataset_ids": str(carols), "datafile_ids": str(bobs["csv"])}, headers=carol,
                      status=404)  # fmt: skip
    assert res.json["message"] == f"{NOT_YOURS}: datafile {bobs['csv']}"
    testapp.get(f"{API}/datasets/{bobs['dataset']}/zip", headers=carol, status=404)
    res = testapp.post(f"{API}/datasets/{bobs['dataset']}/datafiles?name=x.txt", b"x", headers={
        **carol, "Content-Type": "application/octet-stream"}, status=404)  # fmt: skip
    assert res.json["message"] == f"{NOT_YOURS}: dataset {bobs['dataset']}"


def test_api_uploads_raw_and_multipart(testapp, doc, app, dbsession, carols):
    carol = token(testapp, "carol")
    path = "/api/v1/datasets/{dataset_id}/datafiles"
    raw = testapp.post(f"{API}/datasets/{carols}/datafiles?name=raw.dat", b"\x00\x01raw",
                       headers={**carol, "Content-Type": "application/octet-stream"}, status=201)  # fmt: skip
    got = check(doc, raw, path, "post").json
    assert got["datafiles"][0]["name"] == "raw.dat"
    assert store_bytes(app, dbsession, got["datafiles"][0]["id"]) == b"\x00\x01raw"
    multi = testapp.post(f"{API}/datasets/{carols}/datafiles", headers=carol,
                         upload_files=[("file", "m1.txt", b"1"), ("file", "m2.txt", b"2")], status=201)  # fmt: skip
    assert [f["name"] for f in check(doc, multi, path, "post").json["datafiles"]] == ["m1.txt", "m2.txt"]
    bad = testapp.post(f"{API}/datasets/{carols}/datafiles?name=../x", b"x",
                       headers={**carol, "Content-Type": "application/octet-stream"}, status=400)  # fmt: skip
    assert check(doc, bad, path, "post").json["fields"]["name"].startswith("name must be a plain file name")
    exists = testapp.post(f"{API}/datasets/{carols}/datafiles?name=raw.dat", b"again",
                          headers={**carol, "Content-Type": "application/octet-stream"}, status=409)  # fmt: skip
    assert check(doc, exists, path, "post").json["code"] == "exists"
    nameless = testapp.post(f"{API}/datasets/{carols}/datafiles", b"x",
                            headers={**carol, "Content-Type": "application/octet-stream"}, status=400)  # fmt: skip
    assert nameless.json["fields"] == {"name": "required"}


def test_api_upload_over_the_limit(testapp, doc, app, carols, monkeypatch, dbsession):
    limit(monkeypatch, app, 100)
    carol = token(testapp, "carol")
    res = testapp.post(f"{API}/datasets/{carols}/datafiles?name=big.bin", b"x" * 5000,
                       headers={**carol, "Content-Type": "application/octet-stream"}, status=413)  # fmt: skip
    assert (
        "100 bytes (ijp.upload.max_bytes)"
        in check(doc, res, "/api/v1/datasets/{dataset_id}/datafiles", "post").json["message"]
    )
    df = T["Datafile"]
    assert not dbsession.connection().execute(sa.select(df.c.id).where(df.c.name == "big.bin")).all()


def test_api_creates_a_dataset_by_investigation_name_or_id(testapp, doc, dbsession):
    bob = token(testapp, "bob")
    path = "/api/v1/datasets"
    res = testapp.post_json(f"{API}/datasets", {"investigation": "LMF-2026-003", "name": "api-ds", "type": "widefield"},
                            headers=bob, status=201)  # fmt: skip
    new = check(doc, res, path, "post").json
    assert testapp.get(f"{API}/datasets/{new['id']}", headers=bob).json["name"] == "api-ds"
    inv = _investigation(dbsession, "LMF-2026-002")
    res = testapp.post_json(f"{API}/datasets", {"investigation": inv, "name": "api-ds-2", "type": "confocal",
                                                 "description": "d"}, headers=bob, status=201)  # fmt: skip
    types = testapp.get(f"{API}/datasettypes", headers=bob).json["types"]
    assert types == ["confocal", "lightsheet", "widefield"]
    bad = testapp.post_json(
        f"{API}/datasets", {"investigation": inv, "name": "x", "type": "nope"}, headers=bob, status=400
    )
    assert "type" in check(doc, bad, path, "post").json["fields"]
    unknown = testapp.post_json(f"{API}/datasets", {"investigation": inv, "name": "x", "type": "confocal", "tipe": 1},
                                headers=bob, status=400)  # fmt: skip
    assert unknown.json["code"] == "unknown_field"
    carol = token(testapp, "carol")
    res = testapp.post_json(f"{API}/datasets", {"investigation": inv, "name": "c", "type": "confocal"}, headers=carol,
                            status=404)  # fmt: skip
    assert res.json["message"] == f"{NOT_YOURS}: investigation {inv}"
    res = testapp.post_json(f"{API}/datasets", {"investigation": "LMF-2026-002", "name": "c", "type": "confocal"},
                            headers=carol, status=404)  # fmt: skip
    assert NOT_YOURS in res.json["message"]


def test_the_first_field_in_error_gets_the_focus(testapp, dbsession):
    login(testapp, "bob")
    token_ = testapp.get_csrf_token()
    res = testapp.post(
        "/datasets/new", {"csrf_token": token_, "investigation": "", "name": "", "type": ""}, status=400
    )
    focused = res.html.select("[autofocus]")
    assert [e["id"] for e in focused] == ["nd-investigation"]
    inv = _investigation(dbsession, "LMF-2026-003")
    res = testapp.post("/datasets/new", {"csrf_token": token_, "investigation": str(inv), "name": "ok", "type": ""},
                       status=400)  # fmt: skip
    assert [e["id"] for e in res.html.select("[autofocus]")] == ["nd-type"]


def test_a_zip_past_the_file_limit_is_refused_naming_it(testapp, app, monkeypatch, bobs):
    settings = app.registry.settings
    monkeypatch.setitem(settings, "ijp", dataclasses.replace(settings["ijp"], zip_max_files=3))
    login(testapp, "bob")
    res = testapp.get(f"/datasets/{bobs['dataset']}/download.zip", status=413)
    assert "at most 3 (ijp.download.zip_max_files)" in alert(res)
    bob = token(testapp, "bob")
    res = testapp.get(f"{API}/datasets/{bobs['dataset']}/zip", headers=bob, status=413)
    assert res.json["code"] == "too_large" and "ijp.download.zip_max_files" in res.json["message"]
    # within it: a selection of two files
    res = testapp.get(f"{API}/zip", {"datafile_ids": f"{bobs['csv']},{bobs['txt']}"}, headers=bob)
    assert len(zipfile.ZipFile(io.BytesIO(res.body)).namelist()) == 2


def test_datafiles_are_ticked_without_javascript_through_the_page_form(testapp, dbsession, bobs):
    from ijpweb.models import WebSession

    login(testapp, "bob")
    page = testapp.get(f"/datasets/{bobs['dataset']}")
    form = page.forms[f"files-form-{bobs['dataset']}"]
    form.get(
        "checked", index=[f._value for f in form.fields["checked"]].index(str(bobs["csv"]))
    ).checked = True
    back = form.submit(status=303)
    assert f"/datasets/{bobs['dataset']}" in back.location
    (ws,) = dbsession.scalars(sa.select(WebSession)).all()
    assert ws.selection["datafiles"] == [bobs["csv"]]
    assert 'value="{}" checked'.format(bobs["csv"]) in back.follow().text


def test_a_corrupt_tiff_or_png_preview_says_it_cannot_be_shown(testapp, carols):
    login(testapp, "carol")
    upload(testapp, carols, [("broken.tif", b"II*\x00" + b"\x08\x00\x00\x00" + b"\xff" * 200),
                             ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)])  # fmt: skip
    ids = files_on(testapp.get(f"/datasets/{carols}", {"file": "broken"}))
    for name in ("broken.tif", "broken.png"):
        res = testapp.get(f"/datafiles/{ids[name]}/preview")
        assert "cannot be shown" in res.text and "<img" not in res.html.find("div", class_="preview").decode()
        assert "cannot be shown" in testapp.get(f"/datafiles/{ids[name]}/thumbnail.png", status=422).text

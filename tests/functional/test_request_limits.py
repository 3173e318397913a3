"""Request bodies are bounded before anything reads them (issue 13, carol's findings 1 and
2; views/bodies.py, ijpweb/bodies.py).

1. Any body on a route that is not an upload is at most ``ijp.max_form_bytes``: a larger
   one is refused (413, in the face's own format) by its Content-Length, before the login,
   the CSRF check, forms_are_utf8 or WebOb read any of it; a body without a length
   (chunked) is read to at most the limit and one byte.
2. An upload's multipart form is parsed by the portal: the files stream to disk, and a
   part that is not a file is at most 64 KiB (413 naming it), read no further.

The memory bound is measured as a behaviour (tracemalloc's peak, far below the body's
size), never a time.
"""

import dataclasses
import io
import json
import os
import tracemalloc
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
import webtest

from ijpweb.catalog.icatdb import TABLES as T

from ..conftest import make_testapp
from .test_api import API, token
from .test_data import carols  # noqa: F401 - the fixture

MB = 1 << 20
BODY_MB = 32


def _peak_of(app, path, body_path, content_type, headers=None, length=True):
    """Status and the peak of memory allocated by Python while the app answers a POST of
    the file ``body_path`` (read from disk: the test holds none of it). Without ``length``
    it is sent as a chunked body is: no Content-Length, the stream ends at its end."""
    with open(body_path, "rb") as body:
        req = webtest.TestRequest.blank(path, method="POST", body_file=body, content_type=content_type)
        if length:
            req.content_length = os.path.getsize(body_path)
        else:
            req.environ.pop("CONTENT_LENGTH", None)
            req.environ["wsgi.input_terminated"] = True
        req.environ.update(app.extra_environ)
        req.headers.update(headers or {})
        tracemalloc.start()
        try:
            res = app.do_request(req, status="*", expect_errors=True)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return res, peak


def _big_form(path, prefix: bytes, megabytes: int = BODY_MB) -> None:
    with open(path, "wb") as out:
        out.write(prefix)
        for _ in range(megabytes):
            out.write(b"a" * MB)


def _settings(monkeypatch, app, **changes) -> None:
    settings = app.registry.settings
    monkeypatch.setitem(settings, "ijp", dataclasses.replace(settings["ijp"], **changes))


def datafiles_named(dbsession, name: str) -> int:
    df = T["Datafile"]
    return dbsession.connection().execute(sa.select(sa.func.count()).where(df.c.name == name)).scalar()


# --- 1. every body but an upload's: ijp.max_form_bytes --------------------------------------


def test_an_anonymous_form_post_is_not_read_whole_into_memory(app, tm, dbsession, tmp_path):
    """carol's finding 1: 32 MiB posted to /login before any login made the portal allocate
    160 MB and answer 400 after reading it all."""
    anonymous = make_testapp(app, tm, dbsession)
    body = tmp_path / "body"
    _big_form(body, b"username=carol&password=")
    res, peak = _peak_of(anonymous, "/login", body, "application/x-www-form-urlencoded")
    assert peak < 8 * MB, f"the portal allocated {peak / MB:.0f} MB for a {BODY_MB} MB login form"
    assert res.status_int == 413
    assert "ijp.max_form_bytes" in res.text and "16,777,216" in res.text
    assert res.content_type == "text/html"  # the pages' own error page


def test_a_chunked_form_without_a_length_is_not_read_whole_into_memory(app, tm, dbsession, tmp_path):
    """The same without Content-Length (pyramid_retry spools such a body to disk first and
    gives it a length; it is refused by that)."""
    anonymous = make_testapp(app, tm, dbsession)
    body = tmp_path / "body"
    _big_form(body, b"username=carol&password=")
    res, peak = _peak_of(anonymous, "/login", body, "application/x-www-form-urlencoded", length=False)
    assert peak < 8 * MB, f"the portal allocated {peak / MB:.0f} MB for a {BODY_MB} MB chunked login form"
    assert res.status_int == 413


class Counting(io.RawIOBase):
    """A body of ``size`` bytes of a form, counting what is read of it."""

    def __init__(self, prefix: bytes, size: int):
        self.prefix, self.size, self.read_bytes = prefix, size, 0

    def readable(self):
        return True

    def readinto(self, b):
        n = min(len(b), self.size - self.read_bytes)
        for i in range(n):
            at = self.read_bytes + i
            b[i] = self.prefix[at] if at < len(self.prefix) else ord("a")
        self.read_bytes += n
        return n


@pytest.fixture
def no_retry_app(app_settings, dbengine):
    """The portal with pyramid_retry's single attempt: a body without a length reaches the
    portal as the server gives it (not spooled with a length first)."""
    from ijpweb import main

    return main(
        {}, dbengine=dbengine, **{**app_settings, "retry.attempts": "1", "ijp.max_form_bytes": "4096"}
    )


@pytest.mark.parametrize("size, status", [(4096, 200), (4097, 413), (10 * MB, 413)])
def test_a_body_without_a_length_is_read_to_the_limit_and_one_byte(no_retry_app, tm, dbsession, size, status):
    json_field = json.dumps(
        {"plugin": "db", "credentials": [{"username": "carol"}, {"password": "carol-demo"}]}
    )
    prefix = urlencode({"json": json_field, "pad": ""}).encode()
    stream = Counting(prefix, size)
    app = make_testapp(no_retry_app, tm, dbsession)
    req = webtest.TestRequest.blank("/icat/session", method="POST", body_file=stream,
                                    content_type="application/x-www-form-urlencoded")  # fmt: skip
    req.environ.pop("CONTENT_LENGTH", None)
    req.environ["wsgi.input_terminated"] = True
    req.environ.update(app.extra_environ)
    res = app.do_request(req, status="*", expect_errors=True)
    assert res.status_int == status, res.text
    assert stream.read_bytes <= 4097  # never more than the limit and one byte
    if status == 200:
        assert res.json["sessionId"]  # what was read is the body: the login worked
    else:
        assert res.json["code"] == "BAD_PARAMETER" and "ijp.max_form_bytes" in res.json["message"]


@pytest.fixture
def small(monkeypatch, app, testapp):
    """ijp.max_form_bytes = 4096 (and uploads of at most 20,000 bytes) for this test."""
    _settings(monkeypatch, app, max_form_bytes=4096, upload_max_bytes=20_000)
    return testapp


BIG = b"x=" + b"a" * 5000  # over 4096


@pytest.mark.parametrize(
    "path, headers, content_type, code",
    [
        ("/login", {}, "application/x-www-form-urlencoded", None),  # the page, HTML
        ("/login", {"Accept": "application/json"}, "application/x-www-form-urlencoded", "bad_parameter"),
        (API + "/submissions", {}, "application/json", "too_large"),
        (API + "/jobs/bulk", {}, "application/x-www-form-urlencoded", "too_large"),
        ("/ijp/rest/jm/submit", {}, "application/x-www-form-urlencoded", "ParameterException"),
        ("/icat/entityManager", {}, "application/x-www-form-urlencoded", "BAD_PARAMETER"),
        ("/icat/session", {}, "application/x-www-form-urlencoded", "BAD_PARAMETER"),
        ("/ids/prepareData", {}, "application/x-www-form-urlencoded", "BadRequestException"),
        ("/ids/put?name=x&datasetId=1", {}, "application/x-www-form-urlencoded", "BadRequestException"),
        ("/jobs/bulk", {"HX-Request": "true"}, "application/x-www-form-urlencoded", None),
    ],
)
def test_a_body_over_the_bound_is_a_413_in_each_face_format(small, path, headers, content_type, code):
    """Anonymous (nothing is read, so nothing is checked, before the size), in each face's
    own format."""
    res = small.post(path, BIG, headers={**headers, "Content-Type": content_type}, status=413)
    if code is None:
        assert res.content_type == "text/html" and "ijp.max_form_bytes" in res.text
        return
    assert res.json["code"] == code
    assert (
        res.json["message"]
        == "the request body has 5,002 bytes; at most 4,096 are taken here (ijp.max_form_bytes)"
    )
    if path.startswith(API) or "Accept" in headers:
        assert res.json["fields"] == {
            "body": "has 5,002 bytes; at most 4,096 are taken here (ijp.max_form_bytes)"
        }


def test_a_body_at_the_bound_is_read(small):
    """4096 bytes are taken: the login form is read (and refused for its password)."""
    token_ = small.get_csrf_token()
    form = urlencode({"username": "carol", "csrf_token": token_, "password": ""}).encode()
    form += b"&pad=" + b"a" * (4096 - len(form) - 5)
    assert len(form) == 4096
    res = small.post(
        "/login", form, headers={"Content-Type": "application/x-www-form-urlencoded"}, status=400
    )
    assert "ijp.max_form_bytes" not in res.text


def test_a_form_posted_to_an_upload_route_has_the_forms_bound(small, carols):  # noqa: F811
    """The upload routes take a multipart form or a raw body; a body WebOb would read as a
    plain form (urlencoded, or with no Content-Type) has the forms' bound."""
    small.login("carol")
    auth = token(small, "carol")
    small.post(f"/datasets/{carols}/upload", BIG, headers={"Content-Type": "application/x-www-form-urlencoded"},
               status=413)  # fmt: skip
    res = small.post(f"{API}/datasets/{carols}/datafiles?name=a.txt", BIG,
                     headers={**auth, "Content-Type": "application/x-www-form-urlencoded"}, status=413)  # fmt: skip
    assert res.json["code"] == "too_large"


def test_uploads_keep_their_own_limit(small, dbsession, carols):  # noqa: F811
    """10,000 bytes (over ijp.max_form_bytes, under ijp.upload.max_bytes) upload through
    the page's form, /api/v1 (raw and multipart) and IDS put; 30,000 (over
    ijp.upload.max_bytes) are refused by each, naming that setting."""
    data = b"u" * 10_000
    small.login("carol")
    small.post(f"/datasets/{carols}/upload", [("csrf_token", small.get_csrf_token())],
               upload_files=[("file", "page.bin", data)], status=303)  # fmt: skip
    auth = token(small, "carol")
    small.post(f"{API}/datasets/{carols}/datafiles?name=raw.bin", data,
               headers={**auth, "Content-Type": "application/octet-stream"}, status=201)  # fmt: skip
    small.post(f"{API}/datasets/{carols}/datafiles", [], upload_files=[("file", "form.bin", data)],
               headers=auth, status=201)  # fmt: skip
    sid = small.post("/icat/session", {"json": json.dumps(
        {"plugin": "db", "credentials": [{"username": "carol"}, {"password": "carol-demo"}]})}).json["sessionId"]  # fmt: skip
    put = f"/ids/put?{urlencode({'sessionId': sid, 'datasetId': carols, 'name': 'ids.bin'})}"
    small.put(put, data, content_type="application/octet-stream", status=200)
    for name in ("page.bin", "raw.bin", "form.bin", "ids.bin"):
        assert datafiles_named(dbsession, name) == 1, name

    big = b"u" * 30_000
    res = small.post(f"/datasets/{carols}/upload", [("csrf_token", small.get_csrf_token())],
                     upload_files=[("file", "page2.bin", big)], status=413)  # fmt: skip
    assert "ijp.upload.max_bytes" in res.text
    res = small.post(f"{API}/datasets/{carols}/datafiles?name=raw2.bin", big,
                     headers={**auth, "Content-Type": "application/octet-stream"}, status=413)  # fmt: skip
    assert res.json["code"] == "too_large"
    put = f"/ids/put?{urlencode({'sessionId': sid, 'datasetId': carols, 'name': 'ids2.bin'})}"
    res = small.put(put, big, content_type="application/octet-stream", status=413)
    assert res.json["code"] == "BadRequestException" and "ijp.upload.max_bytes" in res.json["message"]
    for name in ("page2.bin", "raw2.bin", "ids2.bin"):
        assert datafiles_named(dbsession, name) == 0, name


def test_the_largest_icat_create_allowed_is_taken(testapp, carols):  # noqa: F811
    """An ICAT create of ijp.catalog.max_writes (1,000) datafiles with 255-character names
    and descriptions, form-encoded as a client sends it, is under ijp.max_form_bytes."""
    sid = testapp.post("/icat/session", {"json": json.dumps(
        {"plugin": "db", "credentials": [{"username": "carol"}, {"password": "carol-demo"}]})}).json["sessionId"]  # fmt: skip
    entities = [
        {"Datafile": {"name": f"big{i:04d}-" + "n" * 247, "description": "d\u00e9" * 127 + "d",
                      "dataset": {"id": carols}}}
        for i in range(1000)
    ]  # fmt: skip
    body = urlencode({"sessionId": sid, "entities": json.dumps(entities)}).encode()
    assert len(body) > MB
    res = testapp.post(
        "/icat/entityManager", body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert len(res.json) == 1000


# --- 2. an upload's form: the parts that are not files ---------------------------------------


def _upload_form(path, token_, boundary, field_name="junk", field_mb=BODY_MB):
    with open(path, "wb") as out:
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token_}\r\n'.encode()
        )
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{field_name}"\r\n\r\n'.encode())
        for _ in range(field_mb):
            out.write(b"a" * MB)
        out.write(
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="ok.txt"\r\n'
            f"Content-Type: text/plain\r\n\r\nhello\r\n--{boundary}--\r\n".encode()
        )


def test_a_huge_text_field_in_an_upload_form_is_not_held_in_memory(app, tm, dbsession, tmp_path, carols):  # noqa: F811
    """carol's finding 2: a 32 MiB text field in the upload form was read whole by WebOb
    (64 MB allocated) and the upload went on (303)."""
    carol = make_testapp(app, tm, dbsession)
    carol.login("carol")
    body = tmp_path / "body"
    boundary = "----carol"
    _upload_form(body, carol.get_csrf_token(), boundary)
    res, peak = _peak_of(
        carol, f"/datasets/{carols}/upload", body, f"multipart/form-data; boundary={boundary}"
    )
    assert peak < 8 * MB, f"the portal allocated {peak / MB:.0f} MB for a form with a {BODY_MB} MB text field"
    assert res.status_int == 413
    assert "junk is larger than 65,536 bytes" in res.text
    assert datafiles_named(dbsession, "ok.txt") == 0


def test_a_huge_text_field_in_an_api_upload_is_refused_naming_it(app, tm, dbsession, tmp_path, carols):  # noqa: F811
    carol = make_testapp(app, tm, dbsession)
    auth = token(carol, "carol")
    body = tmp_path / "body"
    boundary = "xyz"
    _upload_form(body, "unused", boundary, field_name="note", field_mb=8)
    res, peak = _peak_of(carol, f"{API}/datasets/{carols}/datafiles", body,
                         f"multipart/form-data; boundary={boundary}", headers=auth)  # fmt: skip
    assert peak < 4 * MB
    assert res.status_int == 413
    assert res.json["code"] == "too_large" and set(res.json["fields"]) == {"note"}
    assert datafiles_named(dbsession, "ok.txt") == 0


def _multipart(boundary: str, parts: list[tuple[str, str | None, bytes]]) -> bytes:
    out = b""
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"' + (
            f'; filename="{filename}"' if filename is not None else ""
        )
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def test_the_fields_of_an_upload_form_are_bounded_one_by_one_and_together(testapp, dbsession, carols):  # noqa: F811
    testapp.login("carol")
    csrf = testapp.get_csrf_token()
    ctype = {"Content-Type": "multipart/form-data; boundary=b0undary"}

    def post(parts, status):
        body = _multipart("b0undary", [("csrf_token", None, csrf.encode()), *parts])
        return testapp.post(f"/datasets/{carols}/upload", body, headers=ctype, status=status)

    # a field of 64 KiB is taken (and ignored), with a file of 100 KB after it
    post([("note", None, b"n" * 65536), ("file", "kept.bin", b"k" * 100_000)], 303)
    assert datafiles_named(dbsession, "kept.bin") == 1
    # one byte more is refused, naming the field
    res = post([("note", None, b"n" * 65537), ("file", "refused.bin", b"r")], 413)
    assert "note is larger than 65,536 bytes" in res.text
    # five fields of 60,000 bytes: together more than 256 KiB
    res = post([(f"f{i}", None, b"n" * 60_000) for i in range(5)] + [("file", "refused.bin", b"r")], 413)
    assert "f4 is larger" in res.text
    # an empty file input (filename="") is a field, bounded as one
    res = post([("file", "", b"e" * 70_000)], 413)
    assert "file is larger" in res.text
    # a nested multipart part, a part without a name, a form without its closing boundary
    nested = (f"--b0undary\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{csrf}\r\n"
              "--b0undary\r\nContent-Disposition: form-data; name=\"file\"\r\n"
              "Content-Type: multipart/mixed; boundary=inner\r\n\r\n--inner--\r\n--b0undary--\r\n").encode()  # fmt: skip
    res = testapp.post(f"/datasets/{carols}/upload", nested, headers=ctype, status=400)
    assert "multipart part inside the form" in res.text
    res = post([("", None, b"x")], 400)
    assert "has a part without a name" in res.text
    body = _multipart("b0undary", [("csrf_token", None, csrf.encode()), ("file", "cut.bin", b"c")])[:-15]
    res = testapp.post(f"/datasets/{carols}/upload", body, headers=ctype, status=400)
    assert "ends before its closing boundary" in res.text
    assert datafiles_named(dbsession, "refused.bin") == datafiles_named(dbsession, "cut.bin") == 0


def test_an_upload_form_still_needs_its_csrf_token(testapp, dbsession, carols):  # noqa: F811
    """The token is read from the portal's own parse of the form: a wrong one is refused."""
    testapp.login("carol")
    body = _multipart("b", [("csrf_token", None, b"forged"), ("file", "forged.bin", b"f")])
    testapp.post(f"/datasets/{carols}/upload", body, headers={"Content-Type": "multipart/form-data; boundary=b"},
                 status=400)  # fmt: skip
    assert datafiles_named(dbsession, "forged.bin") == 0


def test_an_upload_over_its_limit_is_not_read_for_the_error_page(
    app,
    tm,
    dbsession,
    tmp_path,
    monkeypatch,
    carols,  # noqa: F811
):
    """Refused by its Content-Length (over ijp.upload.max_bytes), the dataset page shown
    with the error reads none of the form either."""
    _settings(monkeypatch, app, upload_max_bytes=1000)
    carol = make_testapp(app, tm, dbsession)
    carol.login("carol")
    body = tmp_path / "body"
    _upload_form(body, carol.get_csrf_token(), "bb", field_mb=8)
    res, peak = _peak_of(carol, f"/datasets/{carols}/upload", body, "multipart/form-data; boundary=bb")
    assert res.status_int == 413 and "ijp.upload.max_bytes" in res.text
    assert peak < 4 * MB, f"the portal allocated {peak / MB:.0f} MB for an upload it refused"

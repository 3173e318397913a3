"""Issue 10, points 7 and 8: every bad input is a 4xx in the format of the face it was
sent to, never a 500, never an HTML page on a JSON face, never a traceback.

The report behind the issue found 22 inputs that gave a 500 (an HTML page even on
/icat, /ids and /ijp/rest/jm): any integer of 2^63 or more as an id, ``like``, ``LIMIT``,
``fileSize``, ``Range`` or ``offset``; ``{"tags": 5}``; deeply nested JSON; an IDS
``outname`` with CRLF; a lone surrogate in an option value. Each is here on every face
that takes it (as the hostile user sends it), with the neighbours a fuzzer would try
next: just past the range (2^63, and 2^31 for job ids, which are 32-bit on PostgreSQL),
negative, not a number, wrong JSON types, bytes that are not UTF-8, NUL. And when the
server does fail, each face still answers in its own JSON, and the log has the
traceback without the caller's session id.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
import webtest

from ijpweb import main
from ijpweb.models import Job, get_engine

from ..conftest import ROOT, load_demo, migrate, portal_settings
from .test_api import API, token
from .test_flow import dataset_ids, select
from .test_jm import JM, session

HUGE = 2**63  # one past the largest signed 64-bit integer
JOB_HUGE = 2**31  # one past the largest job id (a 32-bit column on PostgreSQL)
DEEP = "[" * 5000 + "]" * 5000
ICAT_CODES = {"BAD_PARAMETER", "VALIDATION", "SESSION", "INSUFFICIENT_PRIVILEGES", "NO_SUCH_OBJECT_FOUND",
              "OBJECT_ALREADY_EXISTS", "INTERNAL", "NOT_IMPLEMENTED"}  # fmt: skip
JM_CODES = {"ParameterException", "SessionException", "ForbiddenException", "InternalException",
            "NotFoundException"}  # fmt: skip


def in_format(resp, face: str, *, named: str | None = None, status: int | None = None):
    """``resp`` is a refusal (4xx) in ``face``'s own format, naming ``named`` if given."""
    assert 400 <= resp.status_int < 500, (resp.status, resp.text[:300])
    if status is not None:
        assert resp.status_int == status, (resp.status, resp.text[:300])
    assert "Traceback" not in resp.text and 'File "' not in resp.text, resp.text[:300]
    if face == "pages":
        assert resp.content_type == "text/html", resp.content_type
        message = resp.html.find(role="alert").get_text() if resp.html.find(role="alert") else resp.text
    else:
        assert resp.content_type == "application/json", (resp.content_type, resp.text[:300])
        body = resp.json
        assert isinstance(body.get("code"), str) and isinstance(body.get("message"), str), body
        extra = set(body) - {"code", "message"}
        message = body["message"]
        if face == "api":
            assert extra <= {"fields"}, body
            if named and "fields" in body:
                assert named in body["fields"], body
        elif face == "icat":
            assert body["code"] in ICAT_CODES and extra <= {"offset"}, body
        elif face == "ids":
            assert body["code"].endswith("Exception") and not extra, body
        elif face == "jm":
            assert body["code"] in JM_CODES and not extra, body
    if named:
        assert named in message, message
    return resp


@pytest.fixture
def bob(testapp, dbsession):
    """Bob as every face knows him: a token, a catalog session, a job, his data."""
    auth = token(testapp, "bob")
    job = testapp.post_json(API + "/submissions", {"job_type": "Date"}, headers=auth, status=201).json
    datasets = dataset_ids(dbsession, "confocal", "LMF-2026-002")

    class Bob:
        headers = auth
        sid = session(testapp, "bob")
        job_id = job["jobs"][0]["id"]
        dataset = datasets[0]

    return Bob


def jobs_written(dbsession) -> int:
    return dbsession.scalar(sa.select(sa.func.count()).select_from(Job))


# --- /api/v1: {"code", "message", "fields"} --------------------------------------------------


def test_api_ids_offsets_and_pages_out_of_range(testapp, bob):
    get = lambda url, **params: testapp.get(url, params, headers=bob.headers, expect_errors=True)  # noqa: E731
    in_format(get(f"{API}/jobs/{JOB_HUGE}"), "api", status=404)
    in_format(get(f"{API}/jobs/{HUGE}"), "api", status=404)
    in_format(get(f"{API}/jobs/-1"), "api", status=404)
    in_format(get(f"{API}/datasets/{HUGE}"), "api", status=404)
    in_format(get(f"{API}/jobs/{bob.job_id}/output/stdout", offset=HUGE), "api", named="offset", status=400)
    in_format(get(f"{API}/jobs/{bob.job_id}/output/stdout", offset=-1), "api", named="offset", status=400)
    in_format(get(f"{API}/jobs", submission=JOB_HUGE), "api", named="submission", status=400)
    in_format(get(f"{API}/jobs", cursor="x" * 40), "api", named="cursor", status=400)
    in_format(get(f"{API}/datasets", page=HUGE), "api", named="page", status=400)
    in_format(get(f"{API}/datasets", per_page="1e3"), "api", named="per_page", status=400)
    in_format(get(f"{API}/jobtypes/Date/options", datasets=str(HUGE)), "api", named="datasets", status=400)
    in_format(get(f"{API}/jobs", since="yesterday"), "api", named="since", status=400)
    in_format(get(f"{API}/jobs", since="0001-01-01T00:00:00+05:00"), "api", named="since", status=400)
    # a time with an offset means that instant (it was compared as if it were UTC on SQLite)
    east = timezone(timedelta(hours=5))
    just_before = (datetime.now(UTC) - timedelta(minutes=2)).astimezone(east).isoformat()
    just_after = (datetime.now(UTC) + timedelta(minutes=2)).astimezone(east).isoformat()
    assert bob.job_id in [j["id"] for j in get(f"{API}/jobs", since=just_before).json["jobs"]]
    assert get(f"{API}/jobs", since=just_after).json["total"] == 0
    in_format(get(f"{API}/jobs", until=""), "api", named="until", status=400)
    # the largest values that fit are answers, not errors
    assert get(f"{API}/jobs/{JOB_HUGE - 1}").status_int == 404
    assert get(f"{API}/jobs/{bob.job_id}/output/stdout", offset=HUGE - 1).json["text"] == ""


def test_api_json_bodies_of_the_wrong_shape(testapp, dbsession, bob):
    before = jobs_written(dbsession)

    def post(body, **kw):
        return testapp.post_json(API + "/submissions", body, headers=bob.headers, expect_errors=True, **kw)

    in_format(post({"job_type": "Date", "like": HUGE}), "api", named="like", status=400)
    in_format(post({"like": JOB_HUGE}), "api", named="like", status=400)
    in_format(post({"like": 0}), "api", named="like", status=400)
    in_format(post({"like": "x"}), "api", named="like", status=400)
    in_format(post({"job_type": "Date", "datasets": [HUGE]}), "api", named="datasets", status=400)
    in_format(post({"job_type": "Date", "datafiles": [2**64]}), "api", named="datafiles", status=400)
    in_format(post({"job_type": "Date", "datasets": "x"}), "api", named="datasets", status=400)
    in_format(post({"job_type": "Date", "datasets": ["1"]}), "api", named="datasets", status=400)
    in_format(post({"job_type": "Date", "tags": 5}), "api", named="tags", status=400)
    in_format(post({"job_type": "Date", "confirm": "no"}), "api", named="confirm", status=400)
    in_format(post({"job_type": 5}), "api", named="job_type", status=400)
    in_format(post({"job_type": "Date", "options": []}), "api", named="options", status=400)
    deep = testapp.post(API + "/submissions", DEEP, headers={**bob.headers, "Content-Type": "application/json"},
                        expect_errors=True)  # fmt: skip
    assert in_format(deep, "api", status=400).json["code"] == "bad_json"
    big = testapp.post(API + "/submissions", b"[" + b"1," * 600_000 + b"1]",
                       headers={**bob.headers, "Content-Type": "application/json"}, expect_errors=True)  # fmt: skip
    assert in_format(big, "api", status=413).json["code"] == "too_large"
    for raw in (b'{"job_type": NaN}', b'{"job_type": "Date"', b"\xff\xfe", b"1" * 5000):
        resp = testapp.post(API + "/submissions", raw, headers={**bob.headers, "Content-Type": "application/json"},
                            expect_errors=True)  # fmt: skip
        assert in_format(resp, "api", status=400).json["code"] == "bad_json", raw[:20]
    assert jobs_written(dbsession) == before  # nothing refused was recorded


def test_api_strings_that_are_not_text(testapp, dbsession, bob):
    """A lone surrogate (JSON can say "\\ud800", which no UTF-8 can carry) or a NUL,
    anywhere in a body or a parameter, is refused naming where it was."""
    before = jobs_written(dbsession)
    headers = {**bob.headers, "Content-Type": "application/json"}
    for body, where, status in (
        ('{"job_type": "Test Options", "options": {"Title": "a\\ud800"}}', "Title", 422),
        ('{"job_type": "Test Options", "options": {"Title": ["a", "\\u0000"]}}', "Title", 422),
        ('{"job_type": "Date", "tags": ["ok", "\\udfff"]}', "tags", 422),
        ('{"job_type": "Date\\u0000"}', "job_type", 400),
        ('{"job_type": "Date", "\\ud800": 1}', "a key", 400),
    ):
        resp = testapp.post(API + "/submissions", body, headers=headers, expect_errors=True)
        in_format(resp, "api", named=where, status=status)
    login = testapp.post(API + "/session", '{"username": "\\ud800", "password": "x"}',
                         headers={"Content-Type": "application/json"}, expect_errors=True)  # fmt: skip
    in_format(login, "api", named="username", status=400)
    for query in ("tag=%ED%A0%80", "tag=%FF", "job_type=a%00b"):  # an encoded surrogate, not UTF-8, NUL
        in_format(
            testapp.get(f"{API}/jobs?{query}", headers=bob.headers, expect_errors=True), "api", status=400
        )
    tags = testapp.put(f"{API}/jobs/{bob.job_id}/tags", '{"tags": ["\\ud800"]}', headers=headers,
                       expect_errors=True)  # fmt: skip
    in_format(tags, "api", named="tags", status=422)
    in_format(testapp.put_json(f"{API}/jobs/{bob.job_id}/tags", {"tags": 5}, headers=bob.headers,
                               expect_errors=True), "api", named="tags", status=400)  # fmt: skip
    in_format(testapp.put_json(f"{API}/jobs/{bob.job_id}/tags", {"tags": {"a": 1}}, headers=bob.headers,
                               expect_errors=True), "api", named="tags", status=400)  # fmt: skip
    assert jobs_written(dbsession) == before


def test_api_undeclared_methods_are_405_with_allow(testapp, bob):
    resp = testapp.request(f"{API}/jobtypes", method="TRACE", headers=bob.headers, expect_errors=True)
    assert resp.status_int == 405 and resp.headers["Allow"] == "GET", resp.headers
    in_format(
        testapp.delete(f"{API}/submissions", headers=bob.headers, expect_errors=True), "api", status=405
    )


# --- /icat: ICAT's {"code", "message"} ---------------------------------------------------------


def test_icat_numbers_json_and_text(testapp, dbsession, bob):
    def search(query):
        return testapp.get("/icat/entityManager", {"sessionId": bob.sid, "query": query}, expect_errors=True)

    def create(entities):
        text = entities if isinstance(entities, str) else json.dumps(entities)
        return testapp.post(
            "/icat/entityManager", {"sessionId": bob.sid, "entities": text}, expect_errors=True
        )

    bad = lambda resp, **kw: in_format(resp, "icat", status=400, **kw)  # noqa: E731
    bad(search(f"SELECT d FROM Dataset d WHERE d.id = {HUGE}"))
    bad(search(f"SELECT d FROM Dataset d LIMIT 0, {HUGE}"))
    bad(search(f"SELECT d FROM Dataset d LIMIT {HUGE}, 1"))
    ds = bob.dataset
    bad(create({"Datafile": {"name": "x", "fileSize": HUGE, "dataset": {"id": ds}}}), named="fileSize")
    bad(
        create({"Datafile": {"name": "x", "fileSize": -(2**63) - 1, "dataset": {"id": ds}}}), named="fileSize"
    )
    bad(create({"Datafile": {"name": "x", "fileSize": 10**400, "dataset": {"id": ds}}}), named="fileSize")
    bad(create({"Datafile": {"name": "x", "fileSize": {"a": 1}, "dataset": {"id": ds}}}), named="fileSize")
    bad(create({"Datafile": {"name": "x", "dataset": {"id": HUGE}}}), named="dataset")
    bad(create({"Datafile": {"name": "x", "dataset": {"id": True}}}), named="dataset")
    bad(create({"Datafile": {"name": "x" * 4001, "dataset": {"id": ds}}}), named="name")
    bad(create({"DatasetParameter": {"numericValue": "1e999", "dataset": {"id": ds}, "type": {"id": 1}}}),
        named="numericValue")  # fmt: skip
    # a time that is not a year 1 to 9999 in UTC was stored, and every later search
    # reading it failed (PostgreSQL kept it BC or in year 10000, Python cannot read it)
    for when in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"):
        bad(create({"Datafile": {"name": "t", "datafileCreateTime": when, "dataset": {"id": ds}}}),
            named="datafileCreateTime")  # fmt: skip
    bad(create(DEEP), named="entities")
    bad(create('{"Datafile": {"name": "a\\ud800", "dataset": {"id": %d}}}'.replace("%d", str(ds))),
        named="Datafile.name")  # fmt: skip
    bad(create('{"Datafile": {"name": "a\\u0000", "dataset": {"id": %d}}}'.replace("%d", str(ds))),
        named="Datafile.name")  # fmt: skip
    bad(create("[NaN]"), named="entities")
    login = lambda text: testapp.post("/icat/session", {"json": text}, expect_errors=True)  # noqa: E731
    bad(login(DEEP), named="json")
    bad(
        login('{"plugin": "db", "credentials": [{"username": "\\ud800"}, {"password": "x"}]}'),
        named="username",
    )
    bad(login('{"plugin": 5, "credentials": []}'))
    bad(testapp.get(f"/icat/entityManager?sessionId={bob.sid}&query=%FF", expect_errors=True), named="query")
    bad(search("SELECT d FROM Dataset d WHERE d.name = 'a\x00'"), named="query")
    in_format(testapp.get("/icat/session/a%00b", expect_errors=True), "icat", named="sessionId")
    in_format(testapp.put("/icat/version", expect_errors=True), "icat", status=405)
    in_format(testapp.get("/icat/nothing", expect_errors=True), "icat", status=404)


# --- /ids: IDS's {"code", "message"} -------------------------------------------------------------


def test_ids_ids_ranges_and_names(testapp, bob):
    def get(call, headers=None, **params):
        return testapp.get(
            f"/ids/{call}", {"sessionId": bob.sid, **params}, headers=headers, expect_errors=True
        )

    bad = lambda resp, **kw: in_format(resp, "ids", status=400, **kw)  # noqa: E731
    bad(get("getData", datafileIds=str(HUGE)))
    bad(get("getSize", datasetIds=str(HUGE)))
    bad(get("getStatus", investigationIds="-1"))
    bad(get("getData", datasetIds=str(bob.dataset), headers={"Range": f"bytes={HUGE}-"}))
    bad(get("getData", datasetIds=str(bob.dataset), headers={"Range": "bytes=x-"}))
    bad(get("getData", datasetIds=str(bob.dataset), outname="a\r\nX-Injected: 1"), named="outname")
    put = testapp.put(f"/ids/put?sessionId={bob.sid}&name=x&datasetId={HUGE}", b"abc", expect_errors=True)
    bad(put, named="datasetId")
    bad(testapp.get(f"/ids/getSize?sessionId={bob.sid}&datasetIds=%FF", expect_errors=True))


# --- /ijp/rest/jm: the original's {"code", "message"} -------------------------------------------


def test_original_api_ids_and_values(testapp, dbsession, bob):
    before = jobs_written(dbsession)
    for path in (f"status/{HUGE}", f"status/{JOB_HUGE}", f"output/{HUGE}", f"error/{JOB_HUGE}", "status/-1"):
        resp = in_format(testapp.get(JM + path, {"sessionId": bob.sid}, expect_errors=True), "jm")
        assert resp.json == {"code": "ForbiddenException", "message": "Job does not belong to you"}, path
    submit = lambda *params: testapp.post(  # noqa: E731
        JM + "submit",
        [("sessionId", bob.sid), ("jobName", "Date"), *(("parameter", p) for p in params)],
        expect_errors=True,
    )
    in_format(submit(f"--datasetIds={HUGE}"), "jm", named="--datasetIds", status=400)
    in_format(submit("--datafileIds=1,x"), "jm", named="--datafileIds", status=400)
    in_format(submit("a\x00b"), "jm", status=400)
    prov = testapp.post(f"{JM}job/provenance/{bob.job_id}", {"sessionId": bob.sid, "provenanceId": str(HUGE)},
                        expect_errors=True)  # fmt: skip
    in_format(prov, "jm", named="provenanceId", status=400)
    in_format(
        testapp.get(JM + "status?sessionId=%FF", expect_errors=True), "jm", named="sessionId", status=400
    )
    in_format(
        testapp.get(JM + "status", {"sessionId": "a\x00b"}, expect_errors=True), "jm", named="sessionId"
    )
    in_format(testapp.get(JM + "nothing/here", expect_errors=True), "jm", status=404)
    assert jobs_written(dbsession) == before


# --- the pages and their htmx fragments: an HTML page (or the form) saying what is wrong -------


def test_pages_ids_pages_and_offsets(alice, dbsession):
    job = alice.post(
        "/submit", {"jobtype": "Date", "csrf_token": alice.get_csrf_token()}, status=303
    ).location.rsplit("=", 1)[1]
    job_id = dbsession.scalar(sa.select(Job.id).where(Job.submission_id == int(job)))
    page = lambda url, **kw: alice.get(url, expect_errors=True, **kw)  # noqa: E731
    for url in (f"/jobs/{HUGE}", f"/jobs/{JOB_HUGE}", f"/datasets/{HUGE}", f"/jobs/{HUGE}/output/stdout"):
        in_format(page(url), "pages", status=404)
    in_format(page("/jobs", params={"cursor": "x" * 40}), "pages", named="cursor", status=400)
    in_format(page("/jobs", params={"per_page": HUGE}), "pages", named="per_page", status=400)
    in_format(page("/jobs", params={"submission": JOB_HUGE}), "pages", named="submission", status=400)
    in_format(page("/datasets", params={"cursor": "x" * 40}), "pages", named="cursor", status=400)
    in_format(page("/submit", params={"like": JOB_HUGE}), "pages", named="like", status=400)
    in_format(
        page(f"/jobs/{job_id}/output/stdout", params={"offset": HUGE}), "pages", named="offset", status=400
    )
    in_format(page("/datasets?name=%FF"), "pages", named="name", status=400)
    in_format(page("/jobs?tag=a%00"), "pages", named="tag", status=400)
    token = alice.get_csrf_token()
    sel = alice.post(
        "/selection", {"action": "add", "id": str(HUGE), "csrf_token": token}, expect_errors=True
    )
    in_format(sel, "pages", named="id", status=400)
    assert alice.get("/submit").status_int == 200  # nothing bad was kept in the selection
    # an htmx request after the login expired names the page to come back to; a header
    # that is not a URL only loses that
    anonymous = webtest.TestApp(alice.app, extra_environ={"HTTP_HOST": "example.com"})
    resp = anonymous.get("/jobs", headers={"HX-Request": "true", "HX-Current-URL": "http://[x"}, status=401)
    assert resp.headers["HX-Redirect"] == "http://example.com/login?next=%2F"
    # a redirect never leaves the site, nor breaks its header
    for back in ("https://evil.example/", "//evil.example/", "/\\evil.example", "/a\r\nSet-Cookie: x=1"):
        resp = alice.post("/selection", {"action": "clear", "back": back, "csrf_token": token}, status=303)
        assert resp.location == "http://example.com/submit", back


def test_a_lone_surrogate_in_an_option_value_is_refused_and_not_stored(alice, testapp, dbsession):
    """The report's last item: "\\ud800" in an option value was stored, and the job's
    page was a 500 for ever after. A form cannot carry one (its bytes would not be
    UTF-8); the API can, and refuses it."""
    before = jobs_written(dbsession)
    select(alice, "dataset", dataset_ids(dbsession, "confocal", "LMF-2026-001")[:1])
    form = "jobtype=Test+Options&opt%3ATitle=%ED%A0%80&csrf_token=" + alice.get_csrf_token()
    resp = alice.post("/submit", form, headers={"Content-Type": "application/x-www-form-urlencoded"},
                      expect_errors=True)  # fmt: skip
    in_format(resp, "pages", named="opt:Title", status=400)
    api = {**token(testapp, "alice"), "Content-Type": "application/json"}
    resp = testapp.post(API + "/submissions", '{"job_type": "Test Options", "options": {"Title": "\\ud800"}}',
                        headers=api, expect_errors=True)  # fmt: skip
    assert in_format(resp, "api", named="Title", status=422).json["code"] == "invalid_options"
    assert jobs_written(dbsession) == before


# --- when the server itself fails: each face's JSON 500, logged without credentials ------------


@pytest.fixture(scope="module")
def breakable(tmp_path_factory):
    """A portal with its own database, whose tables a test can take away."""
    tmp = tmp_path_factory.mktemp("broken")
    settings = portal_settings(str(ROOT / "testing.ini"), tmp, f"sqlite:///{tmp / 'broken.sqlite'}")
    engine = get_engine(settings)  # as the portal makes it (SQL errors without their values)
    migrate(engine)
    load_demo(engine, settings["ijp.filestore"])
    yield (
        webtest.TestApp(main({}, dbengine=engine, **settings), extra_environ={"HTTP_HOST": "example.com"}),
        engine,
    )
    engine.dispose()


@pytest.mark.once  # its own SQLite database
def test_an_unexpected_error_is_the_faces_json_500_and_logged_without_secrets(breakable, caplog):
    app, engine = breakable
    bearer = token(app, "bob")
    sid = session(app, "bob")
    app.get("/login")
    app.post("/login", {"username": "bob", "password": "bob-demo", "csrf_token": app.cookies["csrf_token"]},
             status=303)  # fmt: skip
    with engine.begin() as conn:  # the database loses two tables under the running portal
        conn.execute(sa.text("ALTER TABLE job RENAME TO job_gone"))
        conn.execute(sa.text("ALTER TABLE icat_dataset RENAME TO icat_dataset_gone"))
    try:
        with caplog.at_level(logging.ERROR, logger="ijpweb.views.errors"):
            failures = {
                "api": app.get(API + "/jobs", headers=bearer, expect_errors=True),
                "jm": app.get(JM + "status", {"sessionId": sid}, expect_errors=True),
                "icat": app.get(
                    "/icat/entityManager", {"sessionId": sid, "query": "Dataset"}, expect_errors=True
                ),
                "ids": app.get("/ids/getSize", {"sessionId": sid, "datasetIds": "1"}, expect_errors=True),
                "pages": app.get("/jobs", expect_errors=True),
            }
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE job_gone RENAME TO job"))
            conn.execute(sa.text("ALTER TABLE icat_dataset_gone RENAME TO icat_dataset"))
    codes = {
        "api": "internal_error",
        "jm": "InternalException",
        "icat": "INTERNAL",
        "ids": "InternalException",
    }
    for face, resp in failures.items():
        assert resp.status_int == 500, (face, resp.status, resp.text[:300])
        assert (
            "Traceback" not in resp.text and "job_gone" not in resp.text and "no such table" not in resp.text
        )
        if face == "pages":
            assert resp.content_type == "text/html" and "Something went wrong" in resp.text
        else:
            assert resp.content_type == "application/json", face
            assert resp.json == {
                "code": codes[face],
                "message": "Something went wrong on our side; it has been logged.",
            }
    records = [r.getMessage() for r in caplog.records]
    assert len(records) == 5 and all("Traceback (most recent call last)" in r for r in records)
    logged = "\n".join(records)
    assert "no such table" in logged and "SQL parameters hidden" in logged
    for face in failures:
        assert f"({face} face)" in logged
    secrets = [sid, bearer["Authorization"].split()[1], app.cookies["ijp_auth"]]
    assert not [s for s in secrets if s in logged]


def test_the_login_form(testapp):
    """NUL in a user name reached the catalog (and the login throttle's table, where
    PostgreSQL refuses it: a 500); a 'next' with CRLF broke the redirect's header."""
    token = testapp.get_csrf_token()
    for field in ("username", "authenticator", "password"):
        form = {"username": "bob", "password": "bob-demo", "csrf_token": token, field: "bo\x00b"}
        in_format(testapp.post("/login", form, expect_errors=True), "pages", named=field, status=400)
    for nxt in ("/jobs\r\nSet-Cookie: x=1", "https://evil.example/", "/\\evil.example"):
        form = {"username": "bob", "password": "bob-demo", "csrf_token": token, "next": nxt}
        assert testapp.post("/login", form, status=303).location == "http://example.com/", nxt


def test_the_log_blots_out_every_credential_the_request_carried():
    """What the catch-all logs: a traceback may quote a session id (a catalog's own
    message, a URL); every credential of the request is replaced before it is written."""
    from pyramid.request import Request

    from ijpweb.views.errors import _scrub

    req = Request.blank(
        "/icat/session/path-session-0001?sessionId=query-session-0002&jobSessionId=job-session-0003",
        headers={
            "Authorization": "Bearer token-0000000004",
            "Cookie": "ijp_auth=cookie-0000005; csrf_token=short",
        },
    )
    req.matchdict = {"sid": "path-session-0001"}
    secrets = [
        "path-session-0001",
        "query-session-0002",
        "job-session-0003",
        "token-0000000004",
        "cookie-0000005",
    ]
    logged = _scrub(req, "Traceback: " + " and ".join(f"unknown session {s}" for s in secrets))
    assert not [s for s in secrets if s in logged] and logged.count("[hidden]") == len(secrets)


def test_a_path_that_is_not_utf8(testapp, bob):
    """No route can match it; the face is known from the path's start."""
    in_format(testapp.get(f"{API}/jobs/%FF", headers=bob.headers, expect_errors=True), "api", status=400)
    in_format(testapp.get("/icat/session/%FF", expect_errors=True), "icat", status=400)
    in_format(testapp.get("/ids/%FF", expect_errors=True), "ids", status=400)
    in_format(testapp.get(JM + "status/%ED%A0%80", expect_errors=True), "jm", status=400)
    testapp.login("bob")
    cookie = "; ".join(f"{k}={v}" for k, v in testapp.cookies.items())
    raw = webtest.TestApp(testapp.app, extra_environ=testapp.extra_environ)  # (webtest's jar needs UTF-8)
    in_format(raw.get("/datasets/%FF", headers={"Cookie": cookie}, expect_errors=True), "pages", status=400)

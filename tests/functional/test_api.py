"""Issue 5, point 1 (in part): /api/v1 with bearer tokens, every response checked
against the OpenAPI document the app serves."""

import jsonschema_rs

from ijpweb.models import Job, WebSession
from ijpweb.security import token_key
from ijpweb.states import JobStatus

from .test_flow import dataset_ids, wait_for

API = "/api/v1"


def check(doc, resp, path, method):
    """The response matches what the document says for this path, method and status."""
    spec = doc["paths"][path][method]["responses"][str(resp.status_int)]
    if "content" in spec:
        schema = {**spec["content"]["application/json"]["schema"], "components": doc["components"]}
        jsonschema_rs.validator_for(schema).validate(resp.json)
    return resp


def token(app, user, doc=None):
    resp = app.post_json(API + "/session", {"username": user, "password": f"{user}-demo"}, status=201)
    if doc:
        check(doc, resp, "/api/v1/session", "post")
    return {"Authorization": f"Bearer {resp.json['token']}"}


def test_a_script_logs_in_submits_follows_and_cleans_up(testapp, doc, dbsession, backends):
    auth = token(testapp, "alice", doc)
    me = check(doc, testapp.get(API + "/session", headers=auth), "/api/v1/session", "get").json
    assert me["user"] == "db/alice" and me["staff"] is True
    # the token is stored only as its hash
    raw = auth["Authorization"].split()[1]
    assert dbsession.get(WebSession, raw) is None and dbsession.get(WebSession, token_key(raw)).kind == "api"
    types = check(doc, testapp.get(API + "/jobtypes", headers=auth), "/api/v1/jobtypes", "get").json
    assert "Test Options" in [t["name"] for t in types["jobtypes"]]
    check(doc, testapp.get(API + "/jobtypes/Date", headers=auth), "/api/v1/jobtypes/{name}", "get")
    ds = dataset_ids(dbsession, "confocal", "LMF-2026-001")[:2]
    body = {"job_type": "Test args - multiple datasets or datafiles", "datasets": ds, "mode": "each",
            "options": {"Option one": "it's $(id)"}}  # fmt: skip
    resp = testapp.post_json(API + "/submissions", body, headers=auth, status=201)  # no CSRF token: a bearer
    sub = check(doc, resp, "/api/v1/submissions", "post").json
    assert [j["dataset_ids"] for j in sub["jobs"]] == [[ds[0]], [ds[1]]]
    assert {j["status"] for j in sub["jobs"]} == {"Submitting"}
    ids = [j["id"] for j in sub["jobs"]]
    wait_for(dbsession, backends, ids)
    listed = check(doc, testapp.get(API + "/jobs", {"per_page": 1}, headers=auth), "/api/v1/jobs", "get").json
    assert listed["total"] >= 2 and len(listed["jobs"]) == 1 and listed["jobs"][0]["id"] == ids[-1]
    done = testapp.get(
        API + "/jobs", {"status": "Completed", "job_type": body["job_type"]}, headers=auth
    ).json
    assert {j["id"] for j in done["jobs"]} == set(ids)
    job = check(doc, testapp.get(f"{API}/jobs/{ids[0]}", headers=auth), "/api/v1/jobs/{job_id}", "get").json
    assert job["exit_code"] == 0 and job["wall_seconds"] >= 0 and job["queue_seconds"] >= 0
    assert "--sessionId=${IJP_SESSION_ID}" in job["command"]
    # the job's page quotes each argument, so one with spaces or shell syntax reads as one
    page = testapp.get(f"/jobs/{ids[0]}", headers=auth).text
    quoted = "&#39;it&#39;&#34;&#39;&#34;&#39;s $(id)&#39;"  # shlex's 'it'"'"'s $(id)', HTML-escaped
    assert f"test_args.py --datasetIds={ds[0]} --option-one {quoted}" in page
    out = testapp.get(f"{API}/jobs/{ids[0]}/output/stdout", {"offset": 0, "limit": 10}, headers=auth)
    first = check(doc, out, "/api/v1/jobs/{job_id}/output/{stream}", "get").json
    assert first["next_offset"] == 10 and not first["complete"]
    rest = testapp.get(f"{API}/jobs/{ids[0]}/output/stdout", {"offset": 10}, headers=auth).json
    text = first["text"] + rest["text"]
    assert rest["complete"] and f"datasetIds = {ds[0]}" in text and repr("it's $(id)") in text
    # any offset up to 2^63-1 is valid: past the end there is nothing yet, not a 503 (a seek
    # there fails with EINVAL beyond the filesystem's largest file size)
    for far in (10**18, 2**63 - 1):
        past = testapp.get(f"{API}/jobs/{ids[0]}/output/stdout", {"offset": far}, headers=auth).json
        assert past == {"text": "", "offset": far, "next_offset": far, "complete": True}
        page = testapp.get(f"/jobs/{ids[0]}/output/stderr", {"offset": far}, headers=auth)
        assert page.status_int == 200 and "cannot be read" not in page.text
    conflict = testapp.post(f"{API}/jobs/{ids[0]}/cancel", headers=auth, status=409)
    assert check(doc, conflict, "/api/v1/jobs/{job_id}/cancel", "post").json["code"] == "conflict"
    testapp.delete(f"{API}/jobs/{ids[0]}", headers=auth, status=204)
    assert dbsession.get(Job, ids[0]) is None
    testapp.delete(API + "/session", headers=auth, status=204)
    assert testapp.get(API + "/jobs", headers=auth, status=401).json["code"] == "unauthenticated"


def test_bad_requests_are_json_errors_naming_the_field(testapp, doc, dbsession):
    assert testapp.get(API + "/jobs", status=401).json == {
        "code": "unauthenticated",
        "message": "log in first",
    }
    bad = testapp.post_json(API + "/session", {"username": "alice", "password": "wrong"}, status=401)
    assert check(doc, bad, "/api/v1/session", "post").json["code"] == "unauthenticated"
    assert testapp.post(API + "/session", "not json", status=400).json["code"] == "bad_json"
    auth = token(testapp, "bob")
    post = lambda body, status: testapp.post_json(API + "/submissions", body, headers=auth, status=status)  # noqa: E731
    assert post({"job_type": "Nope"}, 404).json["code"] == "unknown_job_type"
    bobs = dataset_ids(dbsession, "confocal", "LMF-2026-002")[:1]
    err = check(doc, post({"job_type": "Test Options", "datasets": bobs, "options": {"Index": "eleven"}}, 422),
                "/api/v1/submissions", "post").json  # fmt: skip
    assert err["code"] == "invalid_options" and "Index" in err["fields"]
    assert post({"job_type": "Date", "datasets": ["x"]}, 400).json["fields"] == {
        "datasets": "must be a list of ids (whole numbers from 1 to 9223372036854775807)"
    }
    alices = dataset_ids(dbsession, "confocal", "LMF-2026-001")[0]
    err = post({"job_type": "Test args - single dataset or datafile", "datasets": [alices]}, 404).json
    assert err == {"code": "not_found", "message": f"not found or not visible to you: dataset {alices}"}
    for status in ("Done", ""):  # an empty status is no status either (the document's enum)
        assert testapp.get(API + "/jobs", {"status": status}, headers=auth, status=400).json["fields"] == {
            "status": "unknown"
        }
    assert (
        testapp.get(API + "/jobs", {"per_page": 0}, headers=auth, status=400).json["code"] == "bad_parameter"
    )
    assert dbsession.query(Job).count() == 0  # nothing was recorded


def test_another_users_job_is_not_found_and_unchanged(testapp, dbsession):
    alice, bob = token(testapp, "alice"), token(testapp, "bob")
    job_id = testapp.post_json(API + "/submissions", {"job_type": "Date"}, headers=alice, status=201).json[
        "jobs"
    ][0]["id"]
    for method, path in (("get", f"/jobs/{job_id}"), ("delete", f"/jobs/{job_id}"), ("post", f"/jobs/{job_id}/cancel"),
                         ("get", f"/jobs/{job_id}/output/stdout")):  # fmt: skip
        resp = getattr(testapp, method)(API + path, headers=bob, status=404)
        assert resp.json["code"] == "not_found" and resp.content_type == "application/json"
    assert job_id not in [j["id"] for j in testapp.get(API + "/jobs", headers=bob).json["jobs"]]
    assert dbsession.get(Job, job_id).status == JobStatus.SUBMITTING


def test_cookie_requests_still_need_csrf(alice):
    resp = alice.post_json(API + "/submissions", {"job_type": "Date"}, status=400)
    assert resp.json["code"] == "bad_csrf_token"
    token_ = alice.get_csrf_token()
    alice.post_json(API + "/submissions", {"job_type": "Date"}, headers={"X-CSRF-Token": token_}, status=201)

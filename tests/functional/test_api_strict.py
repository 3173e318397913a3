"""Issue 11, point 3: /api/v1 refuses what it does not read. An unknown query parameter
or body field (a misspelt ``tagz``, ``option``, or an option name the job type does not
have) is a 400 naming it, never silently dropped; and a dataset one may not see is
refused the same way (404, not_found, one message form) by every endpoint that takes
dataset or datafile ids, whether it is another's or none at all."""

import re

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ijpweb import declared
from ijpweb.catalog.icatdb import TABLES as T
from ijpweb.models import Job, WebSession
from ijpweb.planning import shown_name

from .test_api import API, check, token
from .test_flow import dataset_ids

MADE_UP = 9_000_000_000  # an id no dataset or datafile has


def jobs_written(dbsession) -> int:
    return dbsession.scalar(sa.select(sa.func.count()).select_from(Job))


def datafile_ids(dbsession, dataset_id: int) -> list[int]:
    df = T["Datafile"]
    q = sa.select(df.c.id).where(df.c.dataset_id == dataset_id).order_by(df.c.id)
    return list(dbsession.connection().execute(q).scalars())


def refused(resp, code: str, fields: dict) -> dict:
    """An /api/v1 refusal naming exactly ``fields``, in its message too."""
    body = resp.json
    assert resp.status_int == 400 and resp.content_type == "application/json"
    assert body["code"] == code and body["fields"] == fields, body
    for name, reason in fields.items():
        assert f"{name}: {reason}" in body["message"]
    return body


# --- one declaration: the document says what the check refuses --------------------------------


def test_every_api_view_is_checked_against_its_operation_in_the_document(app, doc):
    """Each /api/v1 view has an operation in the document at its route's path and its
    method (so the check has a declaration to read), and each operation has a view."""
    routes = {r.name: r.pattern for r in app.routes_mapper.get_routes()}
    described = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    served = set()
    for item in app.registry.introspector.get_category("views"):
        view = item["introspectable"]
        if not (view["route_name"] or "").startswith("api."):
            continue
        methods = view["request_methods"]
        path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", routes[view["route_name"]])
        for method in (methods,) if isinstance(methods, str) else methods:
            assert declared.at(path, method) is not None, f"{method} {path}: not in ijpweb/openapi.py"
            served.add((path, method))
    assert served == described | {(declared.DOCUMENT_PATH, "GET")}


def test_the_document_is_the_declaration(doc):
    """Every query parameter the document names is one the check accepts, and no other;
    every request body is an object of fixed fields; every operation says it may answer
    400."""
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            accepts = declared.accepts(op["operationId"])
            query = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
            assert list(accepts.query) == query, (path, method)
            assert "400" in op["responses"], (path, method)
            body = op.get("requestBody")
            if body and "application/json" not in body["content"]:
                body = None  # an upload's data (multipart or raw): no fields to declare
            assert (accepts.body is None) == (body is None), (path, method)
            if body:
                schema = declared.resolve(body["content"]["application/json"]["schema"])
                assert schema["additionalProperties"] is False and schema == accepts.body, (path, method)
    for name in ("Credentials", "SubmissionRequest"):
        assert doc["components"]["schemas"][name]["additionalProperties"] is False
    tags_body = doc["paths"]["/api/v1/jobs/{job_id}/tags"]["put"]["requestBody"]
    assert tags_body["content"]["application/json"]["schema"]["additionalProperties"] is False
    assert set(declared.accepts("listJobs").query) == {
        "status", "job_type", "tag", "submission", "since", "until", "cursor", "per_page",
    }  # fmt: skip


# --- every endpoint refuses an unknown query parameter ---------------------------------------


def test_every_endpoint_refuses_an_unknown_query_parameter_and_changes_nothing(testapp, doc, dbsession):
    bob = token(testapp, "bob")
    ds = dataset_ids(dbsession, "confocal", "LMF-2026-002")[0]
    job = testapp.post_json(API + "/submissions", {"job_type": "Date"}, headers=bob, status=201).json["jobs"][
        0
    ]
    alice = token(testapp, "alice")  # staff, for the operator's console
    values = {
        "name": "Date",
        "dataset_id": str(ds),
        "job_id": str(job["id"]),
        "stream": "stdout",
        "node": "n1",
    }
    values["datafile_id"] = "1"  # (the datafiles' routes: refused before anything is read)
    values["comment_id"] = "1"  # (a comment's routes: refused before it is looked for)
    bodies = {"login": {"username": "bob", "password": "bob-demo"}, "submit": {"job_type": "Date"},
              "setJobTags": {"tags": ["x"]}, "adminDrainNode": {"reason": "x"}, "addJobComment": {"text": "x"},
              "editJobComment": {"text": "x"}}  # fmt: skip
    before = jobs_written(dbsession), dbsession.scalar(sa.select(sa.func.count()).select_from(WebSession))
    seen = set()
    for path, ops in doc["paths"].items():
        url = API + path.removeprefix("/api/v1").format(**values) + "?bogus=1&tagz=a"
        for method, op in ops.items():
            kw = {"headers": alice if path.startswith("/api/v1/admin/") else bob, "expect_errors": True}
            if op["operationId"] in bodies:
                resp = getattr(testapp, method + "_json")(url, bodies[op["operationId"]], **kw)
            else:
                resp = getattr(testapp, method)(url, **kw)
            near = declared.suggestion("tagz", declared.accepts(op["operationId"]).query)
            body = refused(resp, "unknown_parameter", {
                "bogus": "no such parameter",
                "tagz": "no such parameter" + (f" (did you mean {near!r}?)" if near else ""),
            })  # fmt: skip
            check(doc, resp, path, method)
            seen.add(op["operationId"])
            assert body["message"].startswith("bogus: no such parameter; tagz: ")
    assert len(seen) == len(declared.operations()) - 1  # every operation but the document's own
    testapp.get(API + "/openapi.json?bogus=1", status=400)
    # nothing was submitted, cancelled, deleted, retagged, logged in or out
    assert (
        jobs_written(dbsession),
        dbsession.scalar(sa.select(sa.func.count()).select_from(WebSession)),
    ) == before
    assert testapp.get(f"{API}/jobs/{job['id']}", headers=bob).json["tags"] == []
    testapp.get(API + "/session", headers=bob, status=200)


def test_a_misspelt_list_filter_is_refused_not_ignored(testapp, dbsession):
    """GET /jobs?tagz=calib listed all of bob's jobs, as if no tag were asked for."""
    bob = token(testapp, "bob")
    testapp.post_json(API + "/submissions", {"job_type": "Date", "tags": ["calib"]}, headers=bob, status=201)
    testapp.post_json(API + "/submissions", {"job_type": "Date"}, headers=bob, status=201)
    assert testapp.get(API + "/jobs", {"tag": "calib"}, headers=bob).json["total"] == 1
    resp = testapp.get(API + "/jobs", {"tagz": "calib"}, headers=bob, status=400)
    refused(resp, "unknown_parameter", {"tagz": "no such parameter (did you mean 'tag'?)"})
    resp = testapp.get(API + "/datasets", {"per-page": "3", "typ": "confocal"}, headers=bob, status=400)
    refused(resp, "unknown_parameter", {"per-page": "no such parameter (did you mean 'per_page'?)",
                                        "typ": "no such parameter (did you mean 'type'?)"})  # fmt: skip
    resp = testapp.get(API + "/jobtypes/Date/options", {"dataset": "1"}, headers=bob, status=400)
    refused(resp, "unknown_parameter", {"dataset": "no such parameter (did you mean 'datasets'?)"})


# --- unknown body fields, nested ones too --------------------------------------------------------


def test_a_misspelt_field_or_option_submits_nothing(testapp, doc, dbsession):
    """{"tagz": [...]} submitted a job with no tags, {"option": {...}} one with the
    default options: now each is refused naming it, and nothing is submitted."""
    bob = token(testapp, "bob")
    ds = dataset_ids(dbsession, "confocal", "LMF-2026-002")[:1]
    before = jobs_written(dbsession)
    post = lambda body: testapp.post_json(API + "/submissions", body, headers=bob, status=400)  # noqa: E731
    resp = post({"job_type": "Date", "tagz": ["calib"]})
    refused(check(doc, resp, "/api/v1/submissions", "post"), "unknown_field",
            {"tagz": "no such field (did you mean 'tags'?)"})  # fmt: skip
    resp = post({"job_type": "Test Options", "datasets": ds, "option": {"Index": "3"}})
    refused(resp, "unknown_field", {"option": "no such field (did you mean 'options'?)"})
    resp = post({"job_type": "Test Options", "datasets": ds, "options": {"index": "3", "Title": "t"}})
    refused(check(doc, resp, "/api/v1/submissions", "post"), "unknown_field",
            {"options.index": "no such option in job type 'Test Options' (did you mean 'Index'?)"})  # fmt: skip
    resp = post({"job_type": "Date", "options": {"Colour": "red"}})
    refused(resp, "unknown_field", {"options.Colour": "no such option in job type 'Date'"})
    # a radio option is given by its group's name, not by the name of one of its buttons
    resp = post({"job_type": "Test Options", "datasets": ds, "options": {"verbose": True}})
    assert "options.verbose" in resp.json["fields"]
    # resubmitting like a job: the options given are named the same way
    first = testapp.post_json(API + "/submissions", {"job_type": "Test Options", "datasets": ds, "mode": "single",
                              "options": {"Index": "3"}}, headers=bob, status=201).json["jobs"][0]  # fmt: skip
    resp = post({"like": first["id"], "options": {"Indx": "4"}})
    refused(resp, "unknown_field",
            {"options.Indx": "no such option in job type 'Test Options' (did you mean 'Index'?)"})  # fmt: skip
    assert jobs_written(dbsession) == before + 1  # only the one meant to be submitted
    # the right names are submitted
    ok = {
        "job_type": "Test Options",
        "datasets": ds,
        "options": {"Index": "3", "Mode": "verbose"},
        "tags": ["t"],
    }
    job = testapp.post_json(API + "/submissions", ok, headers=bob, status=201).json["jobs"][0]
    assert job["tags"] == ["t"] and job["options"]["Index"] == "3" and job["options"]["Mode"] == "verbose"


def test_login_tags_and_bodiless_requests_refuse_unknown_fields(testapp, dbsession):
    sessions = lambda: dbsession.scalar(sa.select(sa.func.count()).select_from(WebSession))  # noqa: E731
    before = sessions()
    resp = testapp.post_json(API + "/session", {"username": "bob", "password": "bob-demo", "authenticatr": "db"},
                             status=400)  # fmt: skip
    refused(resp, "unknown_field", {"authenticatr": "no such field (did you mean 'authenticator'?)"})
    assert sessions() == before  # not logged in
    bob = token(testapp, "bob")
    job = testapp.post_json(
        API + "/submissions", {"job_type": "Date", "tags": ["a"]}, headers=bob, status=201
    )
    job_id = job.json["jobs"][0]["id"]
    resp = testapp.put_json(
        f"{API}/jobs/{job_id}/tags", {"tags": ["b"], "append": True}, headers=bob, status=400
    )
    refused(resp, "unknown_field", {"append": "no such field"})
    assert dbsession.get(Job, job_id).tags == ["a"]
    # a request that takes no body: the fields of one sent anyway are unknown, not ignored
    resp = testapp.post_json(f"{API}/jobs/{job_id}/cancel", {"force": True}, headers=bob, status=400)
    refused(resp, "unknown_field", {"force": "no such field"})
    resp = testapp.delete_json(f"{API}/jobs/{job_id}", {"keep_files": True}, headers=bob, status=400)
    refused(resp, "unknown_field", {"keep_files": "no such field"})
    assert dbsession.get(Job, job_id) is not None and dbsession.get(Job, job_id).live
    testapp.post(f"{API}/jobs/{job_id}/cancel", headers=bob, status=200)  # without one it is done


def test_thousands_of_unknown_fields_are_counted_not_all_named(testapp, dbsession):
    bob = token(testapp, "bob")
    body = {"job_type": "Date"} | {f"x{i}": i for i in range(50_000)} | {"\ud7ff" * 10_000: 1}
    resp = testapp.post_json(API + "/submissions", body, headers=bob, status=400).json
    assert resp["code"] == "unknown_field" and len(resp["fields"]) == declared.MAX_NAMED
    assert resp["message"].endswith(f"; and {50_001 - declared.MAX_NAMED} more")
    assert jobs_written(dbsession) == 0


# --- hypothesis: names that are not declared are refused, those that are pass on -------------------

NAMES = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=30
)
SUBMIT_FIELDS = tuple(declared.accepts("submit").body["properties"])
LIST_PARAMS = declared.accepts("listJobs").query


def test_random_extra_names_are_refused_and_declared_ones_pass_on(testapp, dbsession):
    bob = token(testapp, "bob")

    @given(extra=NAMES.filter(lambda n: n not in SUBMIT_FIELDS), known=st.sampled_from(SUBMIT_FIELDS))
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def body_fields(extra, known):
        # an unknown job type: past the check of the names, the submission is refused for it
        resp = testapp.post_json(
            API + "/submissions", {"job_type": "Nope", extra: 1}, headers=bob, status=400
        )
        assert resp.json["code"] == "unknown_field" and list(resp.json["fields"]) == [declared_name(extra)]
        value = {"datasets": [], "datafiles": [], "options": {}, "mode": "single", "confirm": False,
                 "tags": [], "like": 1, "job_type": "Nope", "geometry": "1280x800"}[known]  # fmt: skip
        passed = testapp.post_json(API + "/submissions", {"job_type": "Nope", known: value}, headers=bob,
                                   expect_errors=True)  # fmt: skip
        assert passed.json["code"] in ("unknown_job_type", "not_found"), (
            passed.json
        )  # (like: no job 1 of bob's)

    @given(extra=NAMES.filter(lambda n: n not in LIST_PARAMS), known=st.sampled_from(LIST_PARAMS))
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def query_params(extra, known):
        resp = testapp.get(API + "/jobs", {extra: "1"}, headers=bob, status=400)
        assert resp.json["code"] == "unknown_parameter" and list(resp.json["fields"]) == [
            declared_name(extra)
        ]
        value = {"status": "live", "since": "2026-01-01", "until": "2026-01-01", "cursor": ""}.get(known, "1")
        assert testapp.get(API + "/jobs", {known: value}, headers=bob).json["jobs"] == []

    body_fields()
    query_params()
    assert jobs_written(dbsession) == 0


def declared_name(name: str) -> str:
    """How an answer names a field given as ``name``."""
    return shown_name(name)


# --- a dataset one may not see: one answer, whoever's it is ----------------------------------------


def test_another_users_dataset_is_refused_as_if_there_were_none(testapp, doc, dbsession):
    """Carol asks for a dataset of bob's (LMF-2026-002, not hers), and for one that does
    not exist, through every endpoint that takes dataset or datafile ids: the same
    status, code and message form each time, so nothing tells the two apart."""
    carol = token(testapp, "carol")
    bobs = dataset_ids(dbsession, "confocal", "LMF-2026-002")[0]
    bobs_file = datafile_ids(dbsession, bobs)[0]
    assert bobs not in dataset_ids(dbsession, None, "LMF-2026-003")
    before = jobs_written(dbsession)

    def asks(kind: str, ident: int) -> list:
        plural = kind + "s"
        submit = testapp.post_json(API + "/submissions", {"job_type": "Test Options", plural: [ident]},
                                   headers=carol, status=404)  # fmt: skip
        options = testapp.get(
            f"{API}/jobtypes/Test Options/options", {plural: str(ident)}, headers=carol, status=404
        )
        answers = [
            check(doc, submit, "/api/v1/submissions", "post"),
            check(doc, options, "/api/v1/jobtypes/{name}/options", "get"),
        ]
        if kind == "dataset":
            one = testapp.get(f"{API}/datasets/{ident}", headers=carol, status=404)
            answers.append(check(doc, one, "/api/v1/datasets/{dataset_id}", "get"))
        # the form of the answer: the id given stands for any id
        return [(r.status_int, r.json["code"], r.json["message"].replace(str(ident), "N"), set(r.json))
                for r in answers]  # fmt: skip

    for kind, theirs in (("dataset", bobs), ("datafile", bobs_file)):
        answers = asks(kind, theirs)
        assert answers == asks(kind, MADE_UP), kind
        assert {a[:3] for a in answers} == {(404, "not_found", f"not found or not visible to you: {kind} N")}
    # an id that no column can hold is not found either, in the same words
    huge = testapp.get(f"{API}/datasets/{2**64}", headers=carol, status=404).json
    assert huge == {"code": "not_found", "message": f"not found or not visible to you: dataset {2**64}"}
    # bob himself sees it, so this is about carol
    assert testapp.get(f"{API}/datasets/{bobs}", headers=token(testapp, "bob")).status_int == 200
    assert jobs_written(dbsession) == before

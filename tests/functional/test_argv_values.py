"""Issue 10, point 2: a value that cannot be one element of a program's argv (a NUL, a
lone surrogate, more than ``ijp.max_value_length`` characters) is refused on every face
that takes option values, parameters or tags, with the field named, and nothing is
stored. Before, a lone surrogate in an option value was stored and the job's page was a
500 for ever."""

import json

import pytest
import sqlalchemy as sa

from ijpweb.models import Job, JobTag, Submission

from .test_api import API, token
from .test_flow import dataset_ids, select
from .test_jm import JM, session

# value, what the refusal says
BAD = [
    ("a\x00b", "NUL"),
    ("a\ud800b", "lone surrogate"),
    ("x" * 4097, "4096"),
]


def counts(dbsession):
    return tuple(
        dbsession.scalar(sa.select(sa.func.count()).select_from(t)) for t in (Job, Submission, JobTag)
    )


@pytest.fixture
def bobs(dbsession):
    return dataset_ids(dbsession, "confocal", "LMF-2026-002")[:1]


@pytest.mark.parametrize("value, says", BAD)
def test_api_options_and_tags(testapp, dbsession, bobs, value, says):
    auth = token(testapp, "bob")
    before = counts(dbsession)
    for body, field in (
        ({"job_type": "Test Options", "datasets": bobs, "options": {"Title": value}}, "Title"),
        ({"job_type": "Test Options", "datasets": bobs, "options": {"View type": value}}, "View type"),
        ({"job_type": "Test Options", "datasets": bobs, "options": {"Index": value}}, "Index"),
        ({"job_type": "Test Options", "datasets": bobs, "options": {"Mode": value}}, "Mode"),
        ({"job_type": "Test Options", "datasets": bobs, "tags": ["fine", value]}, "tags"),
    ):
        resp = testapp.post_json(API + "/submissions", body, headers=auth, expect_errors=True)
        assert resp.status_int in (400, 422), resp.text
        err = resp.json
        assert resp.content_type == "application/json" and set(err) >= {"code", "message"}
        named = " ".join([err["message"], *err.get("fields", {}), *err.get("fields", {}).values()])
        assert field in named, err
        if resp.status_int == 422:  # past the request's parsing: the core says what is wrong
            assert (says if field != "tags" or says != "4096" else "is not 1 to 64 letters") in err["fields"][
                field
            ], err
    assert counts(dbsession) == before


@pytest.mark.parametrize("value, says", BAD)
def test_api_resubmission_and_tag_replacement(testapp, dbsession, bobs, value, says):
    auth = token(testapp, "bob")
    job = testapp.post_json(
        API + "/submissions", {"job_type": "Test Options", "datasets": bobs, "tags": ["kept"]}, headers=auth,
        status=201,
    ).json["jobs"][0]  # fmt: skip
    before = counts(dbsession)
    resp = testapp.post_json(
        API + "/submissions",
        {"like": job["id"], "options": {"Title": value}},
        headers=auth,
        expect_errors=True,
    )
    assert resp.status_int in (400, 422) and "Title" in json.dumps(resp.json)
    resp = testapp.put_json(
        f"{API}/jobs/{job['id']}/tags", {"tags": [value]}, headers=auth, expect_errors=True
    )
    assert resp.status_int in (400, 422) and "tags" in json.dumps(resp.json)
    assert counts(dbsession) == before
    assert dbsession.get(Job, job["id"]).tags == ["kept"]
    assert testapp.get(f"/jobs/{job['id']}", headers=auth).status_int == 200


def test_web_form_options_and_tags(alice, dbsession):
    select(alice, "dataset", dataset_ids(dbsession, "confocal", "LMF-2026-001")[:1])
    before = counts(dbsession)
    for field, value, says in (
        ("opt:Title", "a\x00b", "Title: contains a NUL character at position 1"),
        ("opt:Title", "x" * 4097, "Title: is longer than 4096 characters"),
        ("opt:Index", "1\x00", "Index: contains a NUL character at position 1"),
        ("tags", "fine a\x00b", "contains a NUL character at position 1"),
        ("tags", "t" * 65, "is not 1 to 64 letters"),
    ):
        form = alice.get("/submit", {"jobtype": "Test Options"}).forms["job-form"]
        form[field] = value
        res = form.submit(status=400)
        assert says in res.text, field
        # the form comes back with the user's values (a NUL becomes U+FFFD in HTML)
        assert res.forms["job-form"]["opt:Mode"].value == "plain"
    assert counts(dbsession) == before


def test_web_form_bytes_that_are_not_utf8_store_no_lone_surrogate(alice, dbsession):
    """A form cannot carry a lone surrogate, only the bytes one would be in UTF-8's
    lax cousins (ED A0 80). Whatever the portal makes of them, it stores no lone
    surrogate and every page still renders."""
    select(alice, "dataset", dataset_ids(dbsession, "confocal", "LMF-2026-001")[:1])
    alice.get("/submit", {"jobtype": "Test Options"})
    body = f"jobtype=Test+Options&opt%3ATitle=%ED%A0%80&tags=%ED%A0%80&csrf_token={alice.get_csrf_token()}"
    res = alice.post("/submit", body, content_type="application/x-www-form-urlencoded", expect_errors=True)
    assert res.status_int < 500, res.status
    for job in dbsession.scalars(sa.select(Job)):
        json.dumps([job.options, job.argv, job.tags], ensure_ascii=False).encode("utf-8")
        assert alice.get(f"/jobs/{job.id}").status_int == 200


@pytest.mark.parametrize(
    "value, says", [("a\x00b", "NUL character"), ("x" * 4097, "longer than 4096 characters")]
)
def test_original_api_values_and_parameters(testapp, dbsession, bobs, value, says):
    sid = session(testapp, "bob")
    before = counts(dbsession)
    for params, named in (
        ([f"--datasetIds={bobs[0]}", "--title", value], "--title (Title): "),
        ([f"--datasetIds={bobs[0]}", value], ""),
        ([f"--datasetIds={bobs[0]}", "--viewtype", value], "--viewtype (View type): "),
    ):
        err = testapp.post(
            JM + "submit", {"jobName": "Test Options", "sessionId": sid, "parameter": params}, status=400
        ).json
        assert (
            err["code"] == "ParameterException"
            and err["message"].startswith(named)
            and says in err["message"]
        )
    assert counts(dbsession) == before


def test_the_job_name_is_shown_safely(testapp):
    sid = session(testapp, "bob")
    err = testapp.post(JM + "submit", {"jobName": "Da\x00te" + "e" * 100, "sessionId": sid}, status=400).json
    assert err["message"].startswith("Job type 'Da\\x00teee") and err["message"].endswith("... not known")


def test_any_valid_unicode_is_one_argument_and_every_page_shows_it(testapp, dbsession, bobs):
    """The other side: text that is not ASCII, but is Unicode, goes through unchanged."""
    auth = token(testapp, "bob")
    title = "Größe 測定 🧪 \u202eevil\u202c 'quoted' $(id)"
    job = testapp.post_json(
        API + "/submissions",
        {"job_type": "Test Options", "datasets": bobs, "options": {"Title": title}, "tags": ["größe"]},
        headers=auth,
        status=201,
    ).json["jobs"][0]
    assert job["command"][job["command"].index("--title") + 1] == title
    assert "Größe 測定 🧪" in testapp.get(f"/jobs/{job['id']}", headers=auth).text


def test_numbers_have_one_grammar_and_arrive_normalised_on_every_face(testapp, alice, dbsession, bobs):
    """Issue 10, carol's report: int() and float() also take 1_0, inf and other scripts'
    digits, which the program may not parse as the portal checked them. Every face now
    takes one grammar and passes the program the text the form path makes of it."""
    sid, auth = session(testapp, "bob"), token(testapp, "bob")
    before = counts(dbsession)
    for index, origin, named in (("1_0", "1", "Index"), ("5", "-1_0e-1", "Origin"), ("5", "inf", "Origin"),
                                 ("5", "1e400", "Origin"), ("\u0661", "1", "Index"), ("0x1", "1", "Index")):  # fmt: skip
        params = [f"--datasetIds={bobs[0]}", "--index", index, "--origin", origin]
        err = testapp.post(
            JM + "submit", {"jobName": "Test Options", "sessionId": sid, "parameter": params}, status=400
        ).json
        assert err["code"] == "ParameterException" and f"({named}): " in err["message"], err
        body = {"job_type": "Test Options", "datasets": bobs, "options": {"Index": index, "Origin": origin}}
        err = testapp.post_json(API + "/submissions", body, headers=auth, status=422).json
        assert set(err["fields"]) == {named}, err
    # a list or a boolean for a single-valued option is refused, naming it
    for value in ([1], [], [1, 2], True):
        body = {"job_type": "Test Options", "datasets": bobs, "options": {"Index": value}}
        err = testapp.post_json(API + "/submissions", body, headers=auth, status=422).json
        assert list(err["fields"]) == ["Index"], (value, err)
    assert counts(dbsession) == before
    # what is accepted reaches the program as the form path writes it: no +, no leading
    # zeros (010 is 8 to strtol), -0 as 0, a float as the double it was checked as
    params = [f"--datasetIds={bobs[0]}", "--index", "+010", "--origin", "-1e-1"]
    jm = testapp.post(JM + "submit", {"jobName": "Test Options", "sessionId": sid, "parameter": params}).json
    body = {"job_type": "Test Options", "datasets": bobs, "options": {"Index": " -0 ", "Origin": 2}}
    api = testapp.post_json(API + "/submissions", body, headers=auth, status=201).json
    jm_job, api_job = dbsession.get(Job, jm["jobId"]), dbsession.get(Job, api["jobs"][0]["id"])
    assert jm_job.argv[jm_job.argv.index("--index") :][:4] == ["--index", "10", "--origin", "-0.1"]
    assert jm_job.options["Index"] == "10" and jm_job.options["Origin"] == "-0.1"
    assert api_job.argv[api_job.argv.index("--index") :][:4] == ["--index", "0", "--origin", "2.0"]

"""Issue 5, point 2: the original IJP REST API at /ijp/rest/jm/, as its clients use it."""

import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from ijpweb.batch.submitter import submit_pending
from ijpweb.catalog.icatdb import TABLES as T
from ijpweb.models import Job
from ijpweb.planning import shown_name
from ijpweb.states import JobStatus

from .test_flow import dataset_ids, wait_for

JM = "/ijp/rest/jm/"


def session(app, user):
    creds = {"plugin": "db", "credentials": [{"username": user}, {"password": f"{user}-demo"}]}
    return app.post("/icat/session", {"json": json.dumps(creds)}).json["sessionId"]


@pytest.fixture
def sids(testapp):
    return {u: session(testapp, u) for u in ("alice", "bob")}


def submit(app, sid, job_type, *params, status=200):
    return app.post(
        JM + "submit", {"jobName": job_type, "sessionId": sid, "parameter": list(params)}, status=status
    )


def test_job_types_as_the_original_lists_them(testapp):
    names = testapp.get(JM + "jobtype").json
    assert "Date" in names and "Sleepcount" in names
    date = testapp.get(JM + "jobtype/Date").json
    assert list(date)[:5] == ["name", "executable", "multiple", "forceSingleJob", "type"]
    assert date["name"] == "Date" and date["sessionIdRequired"] is False
    assert testapp.get(JM + "jobtype/Nope", status=400).json == {
        "code": "ParameterException",
        "message": "Job type Nope not known",
    }


def test_submit_status_output_provenance_and_delete(testapp, sids, dbsession, backends):
    sid = sids["alice"]
    ds = dataset_ids(dbsession, "confocal", "LMF-2026-001")[:2]
    reply = submit(testapp, sid, "Test args - multiple datasets or datafiles",
                   f"--datasetIds={ds[0]},{ds[1]}", "--option-one", "it's $(id)", "--sessionId=leak").json  # fmt: skip
    assert list(reply) == ["jobId"] and isinstance(reply["jobId"], int)
    job_id = reply["jobId"]
    job = dbsession.get(Job, job_id)
    assert job.dataset_ids == ds and job.owner == "db/alice"
    # the client's own --sessionId is dropped; the portal adds its stand-in (the job gets the session in its env)
    assert "--sessionId=leak" not in job.argv and job.argv.count("--sessionId=${IJP_SESSION_ID}") == 1
    one = testapp.get(JM + f"status/{job_id}", {"sessionId": sid}).json
    assert list(one) == ["jobId", "name", "date", "status"] and one["status"] == "Queued"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", one["date"])
    wait_for(dbsession, backends, [job_id])
    listed = testapp.get(JM + "status", {"sessionId": sid}).json
    assert listed[0] == {**one, "status": "Completed", "provenanceId": 0}
    out = testapp.get(JM + f"output/{job_id}", {"sessionId": sid}).json
    assert list(out) == ["output"] and f"datasetIds = {ds[0]},{ds[1]}" in out["output"]
    assert f"= {'it' + chr(39) + 's $(id)'!r}" in out["output"]  # one literal argv element
    assert "ICAT sessionId provided" in out["output"] and "leak" not in out["output"]
    assert testapp.get(JM + f"error/{job_id}", {"sessionId": sid}).json == {"output": ""}
    assert testapp.post(JM + f"job/provenance/{job_id}", {"provenanceId": "456", "sessionId": sid}).json == {
        "jobId": job_id,
        "provenanceId": 456,
    }
    assert testapp.get(JM + "status", {"sessionId": sid}).json[0]["provenanceId"] == 456
    testapp.delete(JM + f"delete/{job_id}?sessionId={sid}", status=204)
    assert dbsession.get(Job, job_id) is None


def test_cancel_a_running_job(testapp, sids, dbsession, backends):
    sid = sids["bob"]
    job_id = submit(testapp, sid, "Sleepcount", "--count", "10", "--sleep", "15").json["jobId"]
    submit_pending(dbsession, backends)
    testapp.post(JM + f"cancel/{job_id}", {"sessionId": sid}, status=204)
    assert dbsession.get(Job, job_id).status == JobStatus.CANCELLED
    assert testapp.get(JM + f"status/{job_id}", {"sessionId": sid}).json["status"] == "Cancelled"
    err = testapp.post(JM + f"cancel/{job_id}", {"sessionId": sid}, status=400).json
    assert err["code"] == "ParameterException" and "already ended" in err["message"]


def test_another_users_job_and_bad_sessions(testapp, sids, dbsession):
    job_id = submit(testapp, sids["alice"], "Date").json["jobId"]
    bob = sids["bob"]
    forbidden = {"code": "ForbiddenException", "message": "Job does not belong to you"}
    for method, path in (("get", f"status/{job_id}"), ("get", f"output/{job_id}"), ("get", f"error/{job_id}"),
                         ("post", f"cancel/{job_id}"), ("delete", f"delete/{job_id}"),
                         ("post", f"job/provenance/{job_id}"), ("get", "status/999999"), ("get", "status/x")):  # fmt: skip
        if method == "post":
            resp = testapp.post(JM + path, {"sessionId": bob, "provenanceId": "1"}, status=403)
        else:
            resp = getattr(testapp, method)(JM + path + f"?sessionId={bob}", status=403)
        assert resp.json == forbidden, path
    assert job_id not in [j["jobId"] for j in testapp.get(JM + "status", {"sessionId": bob}).json]
    job = dbsession.get(Job, job_id)
    assert job.status == JobStatus.SUBMITTING and job.provenance_id is None  # nothing changed
    assert testapp.get(JM + "status", status=403).json == {
        "code": "SessionException",
        "message": "sessionId must not be null",
    }
    assert (
        testapp.get(JM + "status", {"sessionId": "nonsense"}, status=403).json["code"] == "SessionException"
    )


def test_bad_submissions_say_why_and_record_nothing(testapp, sids, dbsession):
    sid = sids["bob"]
    before = dbsession.query(Job).count()
    assert submit(testapp, sid, "Nope", status=400).json["code"] == "ParameterException"
    alices = dataset_ids(dbsession, "confocal", "LMF-2026-001")[0]
    err = submit(
        testapp, sid, "Test args - single dataset or datafile", f"--datasetIds={alices}", status=403
    ).json
    assert err == {
        "code": "ForbiddenException",
        "message": f"not found or not visible to you: dataset {alices}",
    }
    err = submit(testapp, sid, "Test args - single dataset or datafile", "--datasetIds=1,x", status=400).json
    assert err == {
        "code": "ParameterException",
        "message": "--datasetIds: must be a whole number from 1 to 9223372036854775807 "
        "(a comma-separated list of ids)",
    }
    assert dbsession.query(Job).count() == before


# --- issue 10, point 2: only what the job type's form could produce -------------------------


def datafile_ids(dbsession, investigation):
    df, ds, inv = T["Datafile"], T["Dataset"], T["Investigation"]
    q = (
        sa.select(df.c.id)
        .join(ds, df.c.dataset_id == ds.c.id)
        .join(inv, ds.c.investigation_id == inv.c.id)
        .where(inv.c.name == investigation)
        .order_by(df.c.id)
    )
    return list(dbsession.connection().execute(q).scalars())


def jobs_count(dbsession):
    return dbsession.scalar(sa.select(sa.func.count(Job.id)))


@pytest.fixture
def carol(testapp):
    return session(testapp, "carol")


def test_carol_cannot_make_date_read_bobs_spec(testapp, sids, carol, dbsession, backends, app_settings):
    """The attack of issue 10: `date -f <bob's spec.json>` printed bob's session id."""
    bobs = submit(testapp, sids["bob"], "Date").json["jobId"]
    submit_pending(dbsession, backends)
    spec = Path(app_settings["ijp.batch.local.dir"]) / str(bobs) / "spec.json"
    before = jobs_count(dbsession)
    for params in (["-f", str(spec)], [f"--file={spec}"], ["--datasetIds=", "-f", str(spec)]):
        err = submit(testapp, carol, "Date", *params, status=400).json
        assert err["code"] == "ParameterException"
        refused = params[-2] if len(params) > 1 else params[0]  # (cut short when long: tmp paths vary)
        assert err["message"].startswith(f"{shown_name(refused)}: not a parameter of job type Date")
        assert "it has no options" in err["message"]
    # nor through an option of a type that has some: a value is only ever a value
    err = submit(testapp, carol, "Sleepcount", "--count", "5", "-f", str(spec), status=400).json
    assert err["message"].startswith(
        "-f: not a parameter of job type Sleepcount (its options are --count, --sleep)"
    )
    assert jobs_count(dbsession) == before


def test_every_declared_option_with_valid_values(app, testapp, sids, dbsession):
    sid, urls = sids["alice"], app.registry.settings["ijp"]
    ds = dataset_ids(dbsession, "confocal", "LMF-2026-001")[:2]
    job_id = submit(
        testapp, sid, "Test Options", "--title", "a b; $(id)", "--datasetIds", f"{ds[0]},{ds[1]}", "--index", "10",
        "--origin", "-2.0", "--viewtype", "stacked", "--mode=effusive", "--silent=true",
        "--icatUrl=https://evil.example", "--sessionId=someone-elses",
    ).json["jobId"]  # fmt: skip
    job = dbsession.get(Job, job_id)
    # the argv the form gives for these values, in the job type's order, with the portal's URLs
    assert job.argv == [
        f"--datasetIds={ds[0]},{ds[1]}", "--mode=effusive", "--silent=true", "--viewtype", "stacked",
        "--title", "a b; $(id)", "--index", "10", "--origin", "-2.0",
        "--sessionId=${IJP_SESSION_ID}", f"--icatUrl={urls.icat_url}", f"--idsUrl={urls.ids_url}",
    ]  # fmt: skip
    assert job.options == {"Mode": "effusive", "Silent": True, "View type": "stacked", "Title": "a b; $(id)",
                           "Index": "10", "Origin": "-2.0"}  # fmt: skip
    # options not given are left out where the form can leave them out; an enumeration
    # that cannot be left empty gets the form's default
    plain = dbsession.get(Job, submit(testapp, sid, "Test Options", f"--datasetIds={ds[0]}").json["jobId"])
    assert plain.argv[:1] == [f"--datasetIds={ds[0]}"] and plain.argv[1] == "--sessionId=${IJP_SESSION_ID}"
    sleep = dbsession.get(Job, submit(testapp, sid, "Sleepcount", "--sleep", "15").json["jobId"])
    assert sleep.argv == ["--count", "5", "--sleep", "15"]


@pytest.mark.parametrize(
    "params, message",
    [
        (["--index", "11"], "--index (Index): must be at most 10"),
        (["--index", "x"], "--index (Index): 'x' is not a whole number"),
        (["--origin", "2.5"], "--origin (Origin): must be at most 2.0"),
        (["--origin", "-1_0e-1"], "--origin (Origin): '-1_0e-1' is not a number"),
        (["--origin", "nan"], "--origin (Origin): 'nan' is not a number"),
        (["--index", "1_0"], "--index (Index): '1_0' is not a whole number"),
        (["--viewtype", "round"], "--viewtype (View type): 'round' is not one of '', 'flat', 'stacked'"),
        (
            ["--mode=verbose", "--mode=effusive"],
            "--mode=verbose / --mode=effusive (Mode): choose exactly one",
        ),
        (["--mode=shouty"], "--mode=shouty: not a parameter of job type Test Options"),
        (["--silent=false"], "--silent=false: not a parameter of job type Test Options"),
        (["--title"], "--title: the value of option Title must follow it"),
        (["--unmix"], "--unmix (Unmix channels): does not apply to this selection"),
        (["--ijpJobId=3"], "--ijpJobId: job type Test Options does not ask for it"),
        (["--datasetIds=1"], "--datasetIds: given more than once"),
        (["--title", "a\x00b"], "--title (Title): contains a NUL character at position 1"),
        (["--title", "x" * 4097], "--title (Title): is longer than 4096 characters"),
        (["x" * 5000], "'" + "x" * 60 + "'...: is longer than 4096 characters"),
    ],
)
def test_invalid_values_are_refused_naming_the_parameter(testapp, sids, dbsession, params, message):
    one_channel = _one_channel_dataset(dbsession)
    before = jobs_count(dbsession)
    err = submit(
        testapp, sids["alice"], "Test Options", f"--datasetIds={one_channel}", *params, status=400
    ).json
    assert err["code"] == "ParameterException"
    assert err["message"].startswith(message), err["message"]
    assert jobs_count(dbsession) == before


def _one_channel_dataset(dbsession):
    p, pt = T["DatasetParameter"], T["ParameterType"]
    rows = dbsession.connection().execute(
        sa.select(p.c.dataset_id).join(pt, p.c.type_id == pt.c.id)
        .where(pt.c.name == "nchannels", p.c.numericValue == 1,
               p.c.dataset_id.in_(dataset_ids(dbsession, investigation="LMF-2026-001")))
    )  # fmt: skip
    return min(rows.scalars())


def test_carol_cannot_name_inputs_she_cannot_see(testapp, carol, dbsession):
    alices_ds = dataset_ids(dbsession, "confocal", "LMF-2026-001")[0]
    alices_df = datafile_ids(dbsession, "LMF-2026-001")[0]
    carols_ds = dataset_ids(dbsession, investigation="LMF-2026-003")[0]
    before = jobs_count(dbsession)
    for params, hidden in (
        ([f"--datasetIds={alices_ds}"], f"dataset {alices_ds}"),
        (["--datasetIds", f"{carols_ds},{alices_ds}"], f"dataset {alices_ds}"),
        ([f"--datafileIds={alices_df}"], f"datafile {alices_df}"),
        (["--datafileIds", str(alices_df)], f"datafile {alices_df}"),
    ):
        err = submit(testapp, carol, "Test args - multiple datasets or datafiles", *params, status=403).json
        assert err == {"code": "ForbiddenException", "message": f"not found or not visible to you: {hidden}"}
    assert jobs_count(dbsession) == before
    # her own is fine, in the two-argument form too
    job_id = submit(
        testapp, carol, "Test args - multiple datasets or datafiles", "--datasetIds", str(carols_ds)
    ).json["jobId"]
    assert dbsession.get(Job, job_id).argv[0] == f"--datasetIds={carols_ds}"


def test_what_the_form_would_not_submit_as_one_job(testapp, sids, dbsession):
    sid = sids["alice"]
    ds = dataset_ids(dbsession, "confocal", "LMF-2026-001")[:2]
    err = submit(
        testapp, sid, "Test args - single dataset or datafile", f"--datasetIds={ds[0]},{ds[1]}", status=400
    ).json
    assert err["message"] == (
        "Job type Test args - single dataset or datafile takes one dataset or datafile per job: "
        "submit one job per input"
    )
    err = submit(testapp, sid, "Date", f"--datasetIds={ds[0]}", status=400).json
    assert err["message"] == "Date: this job type takes no datasets or datafiles"
    err = submit(testapp, sid, "Test Options", status=400).json
    assert err["message"] == "Test Options: select a dataset or datafile first"
    # URLs only where the job type asks for them
    err = submit(testapp, sid, "Date", "--icatUrl=https://elsewhere", status=400).json
    assert err["message"] == "--icatUrl: job type Date does not ask for it"


def test_the_status_list_is_the_newest_ten_thousand(testapp, sids, dbsession):
    """The original lists every job of the user in one answer; here the newest MAX_STATUS
    (a user with a million jobs would get a 100 MB answer built from a million rows)."""
    from ijpweb.views.jm import MAX_STATUS

    from .test_job_lists import add_jobs

    ids = add_jobs(dbsession, "db/bob", MAX_STATUS + 5)
    listed = testapp.get(JM + "status", {"sessionId": sids["bob"]}).json
    assert [j["jobId"] for j in listed] == sorted(ids, reverse=True)[:MAX_STATUS]
    assert listed[0] == {"jobId": ids[-1], "name": "Date", "date": listed[0]["date"], "status": "Completed",
                         "provenanceId": 0}  # fmt: skip

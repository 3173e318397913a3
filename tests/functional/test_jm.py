"""Issue 5, point 2: the original IJP REST API at /ijp/rest/jm/, as its clients use it."""

import json
import re

import pytest

from ijpweb.jobs import submit_pending
from ijpweb.models import Job, JobStatus

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
    assert err["message"] == "--datasetIds must be a comma-separated list of ids"
    assert dbsession.query(Job).count() == before

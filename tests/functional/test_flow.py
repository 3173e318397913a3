"""The whole path a scientist takes, through WebTest, with real jobs on the local backend."""

import time

import sqlalchemy as sa

from ijpweb.batch.harvest import harvest
from ijpweb.batch.submitter import submit_pending
from ijpweb.catalog.icatdb import TABLES as T
from ijpweb.models import Job
from ijpweb.states import JobStatus


def dataset_ids(dbsession, type_name=None, investigation=None):
    ds, dt, inv = T["Dataset"], T["DatasetType"], T["Investigation"]
    q = sa.select(ds.c.id).join(dt, ds.c.type_id == dt.c.id).join(inv, ds.c.investigation_id == inv.c.id)
    if type_name:
        q = q.where(dt.c.name == type_name)
    if investigation:
        q = q.where(inv.c.name == investigation)
    return list(dbsession.connection().execute(q.order_by(ds.c.id)).scalars())


def select(app, kind, ids):
    for i in ids:
        app.htmx("POST", "/selection", {"action": "set", "kind": kind, "id": str(i), "checked": "1"})


def wait_for(dbsession, backends, job_ids, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        submit_pending(dbsession, backends)
        harvest(dbsession, backends)
        jobs = [dbsession.get(Job, i) for i in job_ids]
        if all(not j.live for j in jobs):
            return jobs
        time.sleep(0.2)
    raise AssertionError(f"jobs still live: {[(j.id, j.status) for j in jobs]}")


def test_login_page_then_datasets(testapp):
    res = testapp.get("/", status=303).follow()
    assert "Log in" in res.text
    testapp.login("alice")
    res = testapp.get("/datasets")
    assert "LMF-2026-001" in res.text
    assert "LMF-2026-003" not in res.text  # alice is not a member


def test_wrong_password_says_so(testapp):
    res = testapp.login("alice", "nope", status=400)
    assert "not correct" in res.text


def test_two_datasets_one_job_each_run_to_completion(alice, dbsession, backends):
    ids = dataset_ids(dbsession, "confocal", "LMF-2026-001")[:2]
    select(alice, "dataset", ids)
    form = alice.get("/submit", {"jobtype": "Test args - multiple datasets or datafiles"}).forms["job-form"]
    form["mode"] = "each"
    form["opt:Option one"] = "it's a $(rm -rf /) `test`\nsecond line"
    res = form.submit(status=303)
    assert "/jobs?submission=" in res.location
    jobs = dbsession.scalars(sa.select(Job).order_by(Job.id)).all()
    assert [j.dataset_ids for j in jobs] == [[ids[0]], [ids[1]]]
    done = wait_for(dbsession, backends, [j.id for j in jobs])
    assert [j.status for j in done] == [JobStatus.COMPLETED] * 2
    out = alice.get(f"/jobs/{jobs[0].id}/output/stdout").text  # (the output itself: plain text)
    assert f"--datasetIds={ids[0]}" in out
    assert "it's a $(rm -rf /) `test`\\nsecond line" in out
    assert "ICAT sessionId provided" in out

"""Submission is durable: jobs are recorded before any backend is called, submitted in
the background, and reconciled by their portal job id after a crash."""

from datetime import timedelta

import sqlalchemy as sa

from ijpweb.batch import BatchError, JobSpec
from ijpweb.batch.submitter import submit_pending
from ijpweb.jobs.sessions import keep_sessions_alive
from ijpweb.models import CatalogSession, Job, Submission, utcnow
from ijpweb.states import JobStatus

from .test_flow import dataset_ids, select


def submit_each(app, dbsession, n):
    select(app, "dataset", dataset_ids(dbsession, "confocal", "LMF-2026-001")[:n])
    form = app.get("/submit", {"jobtype": "Test args - multiple datasets or datafiles"}).forms["job-form"]
    if n > 1:
        form["mode"] = "each"
    form.submit(status=303)
    return dbsession.scalars(sa.select(Job).order_by(Job.id)).all()


def test_the_click_records_the_jobs_and_returns_before_any_backend_runs(alice, dbsession, backends):
    jobs = submit_each(alice, dbsession, 3)
    assert [j.status for j in jobs] == [JobStatus.SUBMITTING] * 3
    assert all(j.backend_job_id is None for j in jobs)
    sub = dbsession.get(Submission, jobs[0].submission_id)
    assert sub.catalog_session  # kept server-side while jobs wait
    assert "Submitting" in alice.get("/jobs").text  # progress shows on the page
    assert submit_pending(dbsession, backends) == 3
    assert [j.status for j in jobs] == [JobStatus.QUEUED] * 3 and all(j.backend_job_id for j in jobs)
    assert sub.catalog_session  # kept while the jobs run


def test_the_session_of_running_jobs_is_kept_alive_then_forgotten(alice, dbsession, backends, app):
    jobs = submit_each(alice, dbsession, 2)
    submit_pending(dbsession, backends)
    sub = dbsession.get(Submission, jobs[0].submission_id)
    sid = sub.catalog_session
    catalog = app.registry["ijp.catalog_for"](dbsession)
    dbsession.get(CatalogSession, sid).expires_at = utcnow() + timedelta(minutes=5)  # nearly expired
    assert keep_sessions_alive(dbsession, catalog) == 1 and catalog.remaining_minutes(sid) > 100
    assert keep_sessions_alive(dbsession, catalog) == 0  # plenty left: left alone
    jobs[0].status = JobStatus.COMPLETED
    keep_sessions_alive(dbsession, catalog)
    assert sub.catalog_session == sid  # one job still runs
    jobs[1].status = JobStatus.FAILED
    keep_sessions_alive(dbsession, catalog)
    assert sub.catalog_session is None  # all ended: forgotten


def test_a_job_the_backend_already_holds_is_not_submitted_twice(alice, dbsession, backends):
    (job,) = submit_each(alice, dbsession, 1)
    local = backends["local"]
    # the crash: the backend accepted the job, the portal died before storing its id
    sub = dbsession.get(Submission, job.submission_id)
    local.submit(JobSpec(job.id, job.owner, sub.executable, tuple(job.argv), {}))
    before = (local.root / str(job.id) / "spec.json").stat().st_mtime_ns
    calls = []
    original = local.submit
    local.submit = lambda spec: calls.append(spec.job_id) or original(spec)
    try:
        submit_pending(dbsession, backends)
    finally:
        del local.submit
    assert calls == [] and job.backend_job_id == str(job.id) and job.status == JobStatus.QUEUED
    assert (local.root / str(job.id) / "spec.json").stat().st_mtime_ns == before


class Down:
    def find(self, ids):
        raise BatchError("connection refused")


def test_jobs_wait_while_their_backend_is_down_and_go_when_it_returns(alice, dbsession, backends):
    (job,) = submit_each(alice, dbsession, 1)
    assert submit_pending(dbsession, {"local": Down()}) == 0
    assert job.status == JobStatus.SUBMITTING  # nothing lost, nothing guessed
    assert submit_pending(dbsession, backends) == 1 and job.status == JobStatus.QUEUED


def test_progress_of_a_submission_shows_and_updates(alice, dbsession, backends):
    jobs = submit_each(alice, dbsession, 3)
    url = f"/jobs?submission={jobs[0].submission_id}"
    rows = alice.htmx("GET", url)
    assert "Submitting: 0 of 3" in rows.text and 'hx-trigger="every 3s"' in rows.text
    submit_pending(dbsession, backends)
    assert "All 3 job(s) of your submission are with the batch system" in alice.htmx("GET", url).text
    # a submission that is not hers shows no progress
    assert 'id="progress"' not in alice.get("/jobs?submission=999999").text


def test_a_job_cancelled_while_submitting_is_never_run(alice, dbsession, backends):
    first, second = submit_each(alice, dbsession, 2)
    token = alice.get_csrf_token()
    alice.post(f"/jobs/{first.id}/cancel", {"csrf_token": token}, status=303)
    assert first.status == JobStatus.CANCELLED and first.reason == "cancelled before it was submitted"
    assert submit_pending(dbsession, backends) == 1  # only the other one goes
    assert first.backend_job_id is None and second.status == JobStatus.QUEUED
    assert not (backends["local"].root / str(first.id)).exists()


def test_jobs_of_a_backend_no_longer_configured_fail_after_a_grace(alice, dbsession, backends):
    old, new = submit_each(alice, dbsession, 2)
    for job in (old, new):
        job.backend = "gone"  # taken out of the ini while these waited
    old.submitted_at = utcnow() - timedelta(minutes=11)
    dbsession.flush()
    assert submit_pending(dbsession, backends) == 1
    dbsession.expire_all()
    assert old.status == JobStatus.FAILED and "not configured" in old.reason
    # a recent one may belong to another portal process sharing the database: it waits
    assert new.status == JobStatus.SUBMITTING


def test_ids_are_never_reused_a_deleted_jobs_id_is_not_given_to_the_next(alice, dbsession, backends):
    """SQLite without AUTOINCREMENT gave a deleted last job's id (its directory and output
    on the backend) to the next job."""
    (job,) = submit_each(alice, dbsession, 1)
    token = alice.get_csrf_token()
    alice.post(f"/jobs/{job.id}/cancel", {"csrf_token": token}, status=303)
    alice.post(f"/jobs/{job.id}/delete", {"csrf_token": token}, status=303)
    assert dbsession.get(Job, job.id) is None
    (again,) = submit_each(alice, dbsession, 1)
    assert again.id > job.id and again.submission_id > job.submission_id


def test_ids_of_catalog_entities_are_never_reused(alice, dbsession):
    import json

    from .test_flow import dataset_ids

    body = {"plugin": "db", "credentials": [{"username": "alice"}, {"password": "alice-demo"}]}
    sid = alice.post("/icat/session", {"json": json.dumps(body)}).json["sessionId"]
    (mine,) = dataset_ids(dbsession, investigation="LMF-2026-001")[:1]

    def create(name):
        entity = {"Datafile": {"name": name, "dataset": {"id": mine}}}
        return alice.post("/icat/entityManager", {"sessionId": sid, "entities": json.dumps(entity)}).json[0]

    first = create("once.txt")
    alice.delete(f"/ids/delete?sessionId={sid}&datafileIds={first}", status=200)
    assert (
        alice.get(
            "/icat/entityManager",
            {"sessionId": sid, "query": f"SELECT df FROM Datafile df WHERE df.id = {first}"},
        ).json
        == []
    )
    assert create("twice.txt") > first

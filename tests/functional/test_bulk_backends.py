"""A bulk cancel or delete (the job list's, /api/v1's) asks each backend once for all of
its jobs (cancel_many / delete_many, then one states() for the cancelled): real jobs on
the local backend, and a remote backend whose batch server is not there. The dead
backend's jobs say so, the others are still cancelled, and no face answers 500."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from ijpweb.batch import JobSpec
from ijpweb.batch.local import LocalBackend
from ijpweb.batch.remote import RemoteBackend
from ijpweb.models import Job, Submission
from ijpweb.states import JobStatus

from ..conftest import free_port

API = "/api/v1"


class Counted:
    """How often the real backend's batched calls were made, and with which ids."""

    def __init__(self, monkeypatch, backend, *names):
        self.calls: list[tuple[str, list[str]]] = []
        for name in names:
            real = getattr(backend, name)
            monkeypatch.setattr(backend, name, self._counting(name, real))

    def _counting(self, name, real):
        def call(ids):
            self.calls.append((name, ids if isinstance(ids, str) else list(ids)))
            return real(ids)

        return call

    def names(self) -> list[str]:
        return [n for n, _ in self.calls]


@pytest.fixture
def dead(backends, monkeypatch):
    """A remote backend named "dead": its batch server (and ICAT) on a port nobody listens on."""
    url = f"http://127.0.0.1:{free_port()}"
    backend = RemoteBackend("dead", url, url, "ijp-portal", "unused", timeout=5)
    monkeypatch.setitem(backends, "dead", backend)
    return backend


def jobs_of(db, owner, backend, status, n, job_type="Sleepcount"):
    sub = Submission(owner=owner, job_type=job_type, mode="each")
    db.add(sub)
    jobs = [Job(submission=sub, owner=owner, job_type=job_type, backend=backend, status=status, dataset_ids=[],
                datafile_ids=[], options={}, argv=[]) for _ in range(n)]  # fmt: skip
    db.add_all(jobs)
    db.flush()
    return jobs


def run_locally(local, jobs, script):
    """Each job started on the real local backend, running ``script``."""
    for job in jobs:
        job.backend_job_id = local.submit(JobSpec(job.id, job.owner, "/bin/sh", ("-c", script, "job"), {}))


def wait_for(local, jobs, statuses):
    deadline = time.monotonic() + 30
    for job in jobs:
        while (state := local.states([job.backend_job_id])[job.backend_job_id]).status not in statuses:
            assert time.monotonic() < deadline, (job.id, state)
            time.sleep(0.05)


def token(testapp, user):
    res = testapp.post_json(API + "/session", {"username": user, "password": f"{user}-demo"}, status=201)
    return {"Authorization": f"Bearer {res.json['token']}"}


def test_api_bulk_cancel_asks_each_backend_once_and_a_dead_one_fails_only_its_jobs(
    testapp, dbsession, backends, dead, monkeypatch
):
    local = backends["local"]
    running = jobs_of(dbsession, "db/alice", "local", JobStatus.RUNNING, 3)
    run_locally(local, running, "while :; do sleep 0.1; done")
    wait_for(local, running, {JobStatus.RUNNING})
    lost = jobs_of(dbsession, "db/alice", "dead", JobStatus.RUNNING, 2)
    for k, job in enumerate(lost):
        job.backend_job_id = str(100 + k)
    (ended,) = jobs_of(dbsession, "db/alice", "local", JobStatus.COMPLETED, 1)
    (bobs,) = jobs_of(dbsession, "db/bob", "local", JobStatus.RUNNING, 1)
    run_locally(local, [bobs], "while :; do sleep 0.1; done")
    counted = Counted(monkeypatch, local, "cancel_many", "states")
    ids = [j.id for j in running] + [lost[0].id, ended.id, lost[1].id, bobs.id]
    res = testapp.post_json(API + "/jobs/cancel", {"ids": ids}, headers=token(testapp, "alice"))
    assert res.json["summary"] == "Cancelled 3; 1 had already ended; 2 could not be cancelled; 1 not found"
    results = {r["id"]: r for r in res.json["results"]}
    assert [r["id"] for r in res.json["results"]] == ids  # in the order asked
    assert {results[j.id]["result"] for j in running} == {"done"}
    for job in lost:
        assert results[job.id]["result"] == "failed"
        assert "dead: batch server at" in results[job.id]["message"]
        assert "did not answer" in results[job.id]["message"]
    assert results[ended.id]["result"] == "skipped" and results[bobs.id]["result"] == "not_found"
    # the local backend: one cancel of its three jobs, one read of their states
    assert counted.names() == ["cancel_many", "states"]
    assert sorted(counted.calls[0][1]) == sorted(j.backend_job_id for j in running)
    dbsession.expire_all()
    assert {dbsession.get(Job, j.id).status for j in running} == {JobStatus.CANCELLED}
    assert {dbsession.get(Job, j.id).status for j in lost} == {JobStatus.RUNNING}  # unchanged
    assert local.states([bobs.backend_job_id])[bobs.backend_job_id].status == JobStatus.RUNNING


def test_the_lists_bulk_cancel_with_a_dead_backend_is_a_page_not_a_500(testapp, dbsession, backends, dead):
    local = backends["local"]
    running = jobs_of(dbsession, "db/alice", "local", JobStatus.RUNNING, 2)
    run_locally(local, running, "while :; do sleep 0.1; done")
    (lost,) = jobs_of(dbsession, "db/alice", "dead", JobStatus.QUEUED, 1)
    lost.backend_job_id = "7"
    testapp.login("alice")
    params = [("csrf_token", testapp.get_csrf_token()), ("action", "cancel"), ("confirm", "1")]
    params += [("id", str(j.id)) for j in [*running, lost]]
    res = testapp.post("/jobs/bulk", params, status=200)
    assert "Cancelled 2; 1 could not be cancelled" in res.text
    assert "dead: batch server at" in res.text
    res = testapp.htmx("POST", "/jobs/bulk", params[1:])
    assert res.status_code == 200 and "Cancelled 0; 2 had already ended; 1 could not be cancelled" in res.text


def test_bulk_delete_asks_each_backend_once(testapp, dbsession, backends, dead, monkeypatch):
    local = backends["local"]
    done = jobs_of(dbsession, "db/alice", "local", JobStatus.COMPLETED, 3, job_type="Date")
    run_locally(local, done, "echo ok")
    wait_for(local, done, {JobStatus.COMPLETED})
    (lost,) = jobs_of(dbsession, "db/alice", "dead", JobStatus.FAILED, 1)
    lost.backend_job_id = "9"
    counted = Counted(monkeypatch, local, "delete_many", "states")
    ids = [j.id for j in [*done, lost]]
    res = testapp.post_json(API + "/jobs/delete", {"ids": ids}, headers=token(testapp, "alice"))
    assert res.json["summary"] == "Deleted 3; 1 could not be deleted"
    failed = res.json["results"][-1]
    assert failed["result"] == "failed" and failed["message"].startswith(
        f"job {lost.id} could not be deleted on dead: "
    )
    assert counted.names() == ["delete_many"]
    assert sorted(counted.calls[0][1]) == sorted(j.backend_job_id for j in done)
    assert not any((local.root / j.backend_job_id).exists() for j in done)
    dbsession.expire_all()
    left = dbsession.scalars(sa.select(Job.id).where(Job.id.in_(ids))).all()
    assert left == [lost.id]  # kept: its files may still be on the batch server


def test_the_variables_of_started_jobs_are_kept_and_queued_ones_cost_no_read(
    testapp, dbsession, backends, monkeypatch, tmp_path
):
    one_slot = LocalBackend("slots", tmp_path / "jobs", max_running=1)
    monkeypatch.setitem(backends, "slots", one_slot)
    started, waiting = jobs_of(dbsession, "db/alice", "slots", JobStatus.QUEUED, 2)
    run_locally(one_slot, [started], 'echo "OUT_STEP=3" > "$JOB_OUTPUT_VARS"; echo started; exec sleep 60')
    run_locally(one_slot, [waiting], "echo never")
    deadline = time.monotonic() + 20
    while b"started" not in one_slot.read(started.backend_job_id, "stdout"):
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.05)
    assert one_slot.states([waiting.backend_job_id])[waiting.backend_job_id].status == JobStatus.QUEUED
    counted = Counted(monkeypatch, one_slot, "cancel_many", "states", "output_vars")
    auth = token(testapp, "alice")
    res = testapp.post_json(API + "/jobs/cancel", {"ids": [started.id, waiting.id]}, headers=auth)
    assert res.json["summary"] == "Cancelled 2"
    assert counted.names() == ["cancel_many", "states", "output_vars"]
    assert counted.calls[2][1] == started.backend_job_id  # (its one argument: a backend id)
    assert testapp.get(f"{API}/jobs/{started.id}", headers=auth).json["output_vars"] == {"OUT_STEP": "3"}
    waited = testapp.get(f"{API}/jobs/{waiting.id}", headers=auth).json
    assert waited["status"] == "Cancelled" and not waited["output_vars"]

"""Issue 11, the attack's finding 3 (notes/i11/X-findings.md): every staff action that may
have changed something is audited, also when it failed after the backend was asked (the
cancel reached the backend and its state could not be read back; a delete that may have
removed files). The audit row is committed with the 409, on the pages and in
/api/v1/admin; an action refused before any backend was asked changed nothing and is not
audited."""

# ruff: noqa: F811  (committed: a fixture of test_cancel_race, taken by the tests below)
from __future__ import annotations

import pytest
import sqlalchemy as sa

from ijpweb import console
from ijpweb.batch import BatchError
from ijpweb.jobs.actions import JobActionError
from ijpweb.models import AuditEntry, CatalogSession, Job, Submission, WebSession
from ijpweb.states import JobStatus

from ..conftest import TestApp
from .test_cancel_race import committed, running_job, wait_until  # noqa: F401  (committed: a fixture)


class SqueueTimesOut:
    """The local backend (it cancels and deletes for real), but its state cannot be read
    back, as SLURM's squeue timing out just after scancel succeeded."""

    def __init__(self, backend):
        self.backend = backend

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def states(self, ids):
        raise BatchError("squeue did not answer within 30 s")


class DeleteFailsHalfway(SqueueTimesOut):
    """Removes the job's files, then fails (as a directory that could not be removed whole)."""

    def delete_many(self, backend_ids):  # (a bulk delete's and a single delete's one call)
        self.backend.delete_many(backend_ids)
        raise OSError("Directory not empty")


def audited(committed, job_id: int) -> list[AuditEntry]:
    with committed() as db:
        return db.scalars(sa.select(AuditEntry).where(AuditEntry.target == f"job {job_id}")).all()


@pytest.fixture
def forget_audit(committed):
    """Afterwards: the audit rows of the targets listed, and alice's logins (these tests'
    requests commit, as in production; every other test's are rolled back)."""
    targets: list[str] = []
    yield targets
    with committed() as db, db.begin():
        db.execute(sa.delete(AuditEntry).where(AuditEntry.target.in_(targets)))
        db.execute(sa.delete(WebSession).where(WebSession.user_name == "db/alice"))
        db.execute(sa.delete(CatalogSession).where(CatalogSession.user_name == "db/alice"))


def test_a_staff_cancel_that_stopped_the_job_is_audited(committed, backends, forget_audit):
    """alice cancels carol's running job; the cancel reaches the backend (the program
    stops) but its state cannot be read back: 409, and the audit says alice did it."""
    job_id = running_job(committed, backends)
    forget_audit.append(f"job {job_id}")
    local = backends["local"]
    with committed() as db, db.begin(), pytest.raises(JobActionError) as refused:
        console.cancel(db, {"local": SqueueTimesOut(local)}, "db/alice", db.get(Job, job_id))
    assert refused.value.reached and "could not be read back" in str(refused.value)
    assert wait_until(lambda: local.states([str(job_id)])[str(job_id)].status == JobStatus.CANCELLED)
    rows = audited(committed, job_id)
    assert [(e.actor, e.action) for e in rows] == [("db/alice", "job.cancel")]
    assert "of db/race-carol: Queued, not confirmed: the cancel was sent to local" in rows[0].detail
    assert "squeue did not answer" in rows[0].detail


def staff_api(app) -> tuple[TestApp, dict]:
    """alice with an API token, on the app as deployed: each request commits or rolls back."""
    web = TestApp(app, extra_environ={"HTTP_HOST": "example.com"})
    token = web.post_json("/api/v1/session", {"username": "alice", "password": "alice-demo"}, status=201).json
    return web, {"Authorization": f"Bearer {token['token']}"}


def test_the_api_commits_the_audit_of_a_cancel_it_answers_409(
    app, committed, backends, forget_audit, monkeypatch
):
    job_id = running_job(committed, backends)
    forget_audit.append(f"job {job_id}")
    web, auth = staff_api(app)
    monkeypatch.setitem(backends, "local", SqueueTimesOut(backends["local"]))
    res = web.post(f"/api/v1/admin/jobs/{job_id}/cancel", headers=auth, status=409)
    assert res.json["code"] == "conflict" and "could not be read back" in res.json["message"]
    assert [e.action for e in audited(committed, job_id)] == ["job.cancel"]
    monkeypatch.undo()
    local = backends["local"]
    assert wait_until(lambda: local.states([str(job_id)])[str(job_id)].status == JobStatus.CANCELLED)


def test_the_console_page_commits_the_audit_of_a_delete_that_failed_halfway(
    app,
    committed,
    backends,
    forget_audit,
    monkeypatch,
):
    """The backend removed carol's output and then failed: the row stays (the delete
    can be tried again), the page says 409, and the audit says alice deleted files."""
    job_id = running_job(committed, backends)
    forget_audit.append(f"job {job_id}")
    local = backends["local"]
    with committed() as db, db.begin():
        console.cancel(db, backends, "db/alice", db.get(Job, job_id))
    assert wait_until(lambda: local.states([str(job_id)])[str(job_id)].status == JobStatus.CANCELLED)
    with committed() as db, db.begin():
        db.execute(sa.update(Job).where(Job.id == job_id).values(status=JobStatus.CANCELLED))
    web = TestApp(app, extra_environ={"HTTP_HOST": "example.com"})
    web.login("alice")
    monkeypatch.setitem(backends, "local", DeleteFailsHalfway(local))
    res = web.post(f"/console/jobs/{job_id}/delete", {"csrf_token": web.get_csrf_token()}, status=409)
    assert "Directory not empty" in res.text
    assert not (local.root / str(job_id)).exists()
    with committed() as db:
        assert db.get(Job, job_id) is not None
    rows = audited(committed, job_id)
    assert [e.action for e in rows] == ["job.cancel", "job.delete"]
    assert "not confirmed" in rows[1].detail and "Directory not empty" in rows[1].detail


def test_a_staff_action_refused_before_the_backend_is_not_audited(app, committed, forget_audit):
    """An ended job cannot be cancelled: nothing was asked of any backend, nothing changed."""
    with committed() as db, db.begin():
        sub = Submission(owner="db/race-carol", job_type="Date", mode="single")  # (removed by committed)
        job = Job(submission=sub, owner="db/race-carol", job_type="Date", argv=[], backend="local",
                  status=JobStatus.COMPLETED)  # fmt: skip
        db.add(job)
        db.flush()
        job_id = job.id
    forget_audit.append(f"job {job_id}")
    web, auth = staff_api(app)
    res = web.post(f"/api/v1/admin/jobs/{job_id}/cancel", headers=auth, status=409)
    assert "already ended" in res.json["message"]
    assert audited(committed, job_id) == []

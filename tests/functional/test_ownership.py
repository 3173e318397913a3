"""The one ownership rule (ijpweb.jobs.actions.owned_job) that every face uses, and the
permissions the ACLs grant: carol asks for bob's job by its id."""

from ijpweb.jobs.actions import owned_job
from ijpweb.models import Job, Submission
from ijpweb.security import JobResource, Permission, RootResource


def _bobs_job(db) -> Job:
    sub = Submission(owner="db/bob", job_type="Date", mode="single")
    job = Job(submission=sub, owner="db/bob", job_type="Date", backend="local")
    db.add_all([sub, job])
    db.flush()
    return job


def test_a_job_is_its_owners_only(dbsession):
    job = _bobs_job(dbsession)
    assert owned_job(dbsession, "db/bob", job.id) is job
    assert owned_job(dbsession, "db/carol", job.id) is None  # not found, as no job at all
    assert owned_job(dbsession, "db/carol", job.id + 1000) is None


def test_staff_see_any_job_only_when_the_caller_says_so(dbsession):
    job = _bobs_job(dbsession)
    assert owned_job(dbsession, "db/alice", job.id) is None  # staff or not: not by default
    assert owned_job(dbsession, "db/alice", job.id, staff=True) is job
    assert owned_job(dbsession, "db/alice", job.id + 1000, staff=True) is None


def test_the_acls_grant_the_permissions_the_views_ask(dbsession):
    job = _bobs_job(dbsession)
    assert [p for *_, p in JobResource(job).__acl__] == [Permission.USE]
    assert {p for *_, p in RootResource.__acl__} == {Permission.USE, Permission.STAFF}
    assert Permission.USE == "use" and Permission.STAFF == "staff"  # as stored and logged

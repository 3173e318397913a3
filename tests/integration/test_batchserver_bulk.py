"""The batch server's "bulk" extension (cancel or delete many jobs in one call, each job
answered on its own) with ijp-batchserver as a real process over the local backend, the
portal's remote backend as its client; and the fallback for an original server, one
call per job, bounded."""

import pytest

from ijpweb.batch import BatchError, JobSpec
from ijpweb.batch import remote as remote_module
from ijpweb.states import JobStatus

from .test_batchserver import batch_server, call, free_port, login, portal_backend, wait_status  # noqa: F401

pytestmark = pytest.mark.once  # a portal and a batch server with their own databases

_ids = iter(range(70_000, 80_000))


def sleeping(remote, owner="db/bob", n=2):  # (the batch server runs two jobs at once)
    return [
        remote.submit(JobSpec(next(_ids), owner, "sleepcount.py", ("--count=600", "--sleep=0.1")))
        for _ in range(n)
    ]


def counting(remote):
    calls = []
    original = remote._call
    remote._call = lambda *a, **kw: calls.append(a[1]) or original(*a, **kw)
    return calls


def test_many_jobs_are_cancelled_and_deleted_in_one_call_each(batch_server):  # noqa: F811
    base, icat, engine = batch_server
    assert "bulk" in call(base, "GET", "version", None, icat)[1]["extensions"]
    remote = portal_backend(base, icat)
    jobs = sleeping(remote)
    bob = login(engine, "bob")
    for job in jobs:
        wait_status(base, bob, icat, job, {"Executing"})
    # carol's own job, given by bob's portal account's peer: not his (the portal may act
    # only on what it submitted or its users own); an id no job has
    carols = call(base, "POST", "submit", login(engine, "carol"), icat, executable="date")[1]["jobId"]
    calls = counting(remote)
    answers = remote.cancel_many([*jobs, carols, "999999", jobs[0]])
    assert calls == ["cancels"]
    assert [answers[j] for j in jobs] == [None, None]
    for other in (carols, "999999"):
        assert isinstance(answers[other], BatchError) and "does not belong to you" in str(answers[other])
    states = remote.states(jobs)
    assert {s.status for s in states.values()} == {JobStatus.CANCELLED}
    # delete: the cancelled ones, and a running one refused
    running = sleeping(remote, n=1)[0]
    wait_status(base, bob, icat, running, {"Executing"})
    calls.clear()
    answers = remote.delete_many([*jobs, running])
    assert calls == ["deletes"]
    assert [answers[j] for j in jobs] == [None, None]
    assert str(answers[running]) == f"remote: Job {running} is Executing"
    listed = call(base, "GET", "list", bob, icat)[1]
    assert running in listed and not set(jobs) & set(listed)
    # one job: the batch of one, as the original's calls answer it
    remote.cancel(running)
    with pytest.raises(BatchError, match="does not belong to you"):
        remote.cancel(carols)
    wait_status(base, bob, icat, running, {"Cancelled"})
    remote.delete(running)
    assert running not in call(base, "GET", "list", bob, icat)[1]


def test_the_bulk_calls_refuse_what_they_cannot_take(batch_server):  # noqa: F811
    base, icat, engine = batch_server
    bob = login(engine, "bob")
    status, body = call(base, "POST", "cancels", bob, icat)
    assert (status, body) == (
        400,
        {"code": "ParameterException", "message": "jobId must name at least one job"},
    )
    status, body = call(base, "POST", "deletes", bob, icat, jobId=[str(i) for i in range(1, 1002)])
    assert (status, body["code"]) == (400, "ParameterException") and "at most 1000" in body["message"]
    status, body = call(base, "POST", "cancels", "not-a-session", icat, jobId=["1"])
    assert (status, body["code"]) == (403, "SessionException")
    assert call(base, "GET", "cancels", bob, icat)[0] == 405
    # bob's own call (no portal): another user's job is refused like a missing one
    alices = call(base, "POST", "submit", login(engine, "alice"), icat, executable="date")[1]["jobId"]
    status, body = call(base, "POST", "cancels", bob, icat, jobId=[alices, "x"])
    refused = {"code": "ForbiddenException", "message": "Job does not belong to you"}
    assert (status, body) == (200, {"results": {alices: refused, "x": refused}})


def test_an_original_server_is_asked_per_job_within_bounds(batch_server, monkeypatch):  # noqa: F811
    base, icat, engine = batch_server
    remote = portal_backend(base, icat)
    jobs = sleeping(remote, n=2)
    remote._extensions = frozenset()  # as an original server: no bulk extension
    calls = counting(remote)
    assert remote.cancel_many(jobs) == dict.fromkeys(jobs)
    assert calls == [f"cancel/{j}" for j in jobs]
    # a server that does not answer is asked once, not once per job
    gone = portal_backend(f"http://127.0.0.1:{free_port()}", icat)
    gone._extensions = frozenset()
    calls = counting(gone)
    answers = gone.cancel_many(["1", "2", "3"])
    assert calls == ["cancel/1"]
    assert len({str(e) for e in answers.values()}) == 1 and "did not answer" in str(answers["3"])
    # past the time for them all, the rest are not tried (and say so)
    monkeypatch.setattr(remote_module, "ONE_BY_ONE_SECONDS", -1.0)
    calls = counting(remote)
    answers = remote.delete_many(jobs)
    assert calls == [] and all("not tried" in str(e) for e in answers.values())

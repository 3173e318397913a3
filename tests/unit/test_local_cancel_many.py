"""The local backend cancels many jobs in one pass (cancel_many): every running job is
sent SIGTERM before any is waited for, so a page of jobs that take their grace period to
stop costs one grace period, not one each; each job is answered on its own."""

import json
import time
from datetime import datetime

import pytest

from ijpweb.batch import BatchError, JobSpec
from ijpweb.states import JobStatus

from .test_local_backend import wait

# a job that notes when it was sent SIGTERM and goes on (the launcher kills it after its grace)
STUBBORN = "trap 'date +%s.%N >> term' TERM; touch started; while :; do sleep 0.1; done"


def spec(job_id, script):
    return JobSpec(job_id, "alice", "/bin/sh", ("-c", script, "job"), {})


def test_every_running_job_gets_sigterm_before_any_is_waited_for(local):
    backend = local(max_running=4)
    for i in (1, 2, 3):
        backend.submit(spec(i, STUBBORN))
    for i in (1, 2, 3):
        wait(backend, str(i), {JobStatus.RUNNING})
        deadline = time.monotonic() + 20
        while not (backend.root / str(i) / "work" / "started").exists():
            assert time.monotonic() < deadline, f"job {i}'s trap was not set"
            time.sleep(0.05)
    answers = backend.cancel_many(["1", "2", "3"])
    assert answers == {"1": None, "2": None, "3": None}
    termed, ended = [], []
    for i in ("1", "2", "3"):
        assert backend.states([i])[i].status == JobStatus.CANCELLED  # ended when it returns
        d = backend.root / i
        termed.append(float((d / "work" / "term").read_text().split()[0]))
        ended.append(datetime.fromisoformat(json.loads((d / "exit.json").read_text())["at"]).timestamp())
    # one after another, the second job would be sent SIGTERM only after the first had ended
    assert max(termed) < min(ended), (termed, ended)


def test_each_job_is_answered_on_its_own(local):
    backend = local(max_running=1)
    backend.submit(spec(1, "touch started; while :; do sleep 0.1; done"))
    backend.submit(spec(2, "true"))  # queued behind job 1
    backend.submit(spec(3, "exit 0"))
    wait(backend, "1", {JobStatus.RUNNING})
    assert backend.states(["2"])["2"].status == JobStatus.QUEUED
    answers = backend.cancel_many(["1", "2", "99", "x/../1", "1"])
    assert set(answers) == {"1", "2", "99", "x/../1"}  # each id once
    assert answers["1"] is None and answers["2"] is None
    assert isinstance(answers["99"], BatchError) and "not known" in str(answers["99"])
    assert isinstance(answers["x/../1"], BatchError) and "no such job" in str(answers["x/../1"])
    assert backend.states(["1"])["1"].status == JobStatus.CANCELLED
    queued = backend.states(["2"])["2"]
    assert (queued.status, queued.reason) == (JobStatus.CANCELLED, "cancelled before it started")
    # job 3 starts in the slot job 1 left and ends: a cancel of an ended job changes nothing
    done = wait(backend, "3", {JobStatus.COMPLETED})
    assert backend.cancel_many(["3"]) == {"3": None}
    assert backend.states(["3"])["3"] == done


def test_one_jobs_cancel_and_delete_are_the_batch_of_one(local):
    backend = local(max_running=2)
    backend.submit(spec(1, "while :; do sleep 0.1; done"))
    backend.submit(spec(2, "exit 0"))
    wait(backend, "1", {JobStatus.RUNNING})
    wait(backend, "2", {JobStatus.COMPLETED})
    with pytest.raises(BatchError, match="not known"):
        backend.cancel("42")
    with pytest.raises(BatchError, match="has not ended"):
        backend.delete("1")
    answers = backend.delete_many(["1", "2"])
    assert answers["2"] is None and "has not ended" in str(answers["1"])
    assert not (backend.root / "2").exists() and (backend.root / "1").is_dir()
    backend.cancel("1")
    backend.delete("1")
    assert not (backend.root / "1").exists()

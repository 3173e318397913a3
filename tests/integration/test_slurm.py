"""The SLURM backend against a real single-node cluster (bin/slurm-test-cluster)."""

import os
import time
from pathlib import Path

import pytest

from ijpweb.batch import BatchError, JobSpec
from ijpweb.batch.slurm import SlurmBackend
from ijpweb.models import JobStatus
from ijpweb.planning import SESSION_ARG, SESSION_ENV

pytestmark = pytest.mark.once  # the cluster is the system under test, not the database


@pytest.fixture
def slurm(slurm_cluster, tmp_path):
    return SlurmBackend("slurm", tmp_path / "jobs", slurm_conf=slurm_cluster)


_ids = iter(range(10_000, 20_000))


def spec(script, *args, env=None):
    return JobSpec(next(_ids), "db/alice", "/bin/sh", ("-c", script, "job", *args), env or {})


def wait(backend, job_id, statuses, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        state = backend.states([job_id])[job_id]
        if state.status in statuses or time.monotonic() > deadline:
            assert state.status in statuses, f"job {job_id} is {state}"
            return state
        time.sleep(0.3)


def test_outcomes_are_kept(slurm):
    ok = slurm.submit(spec('echo "out $1"; echo err >&2', "a b"))
    failing = slurm.submit(spec("exit 3"))
    missing = slurm.submit(JobSpec(next(_ids), "db/alice", "/nonexistent/program", ()))
    state = wait(slurm, ok, {JobStatus.COMPLETED})
    assert state.exit_code == 0 and state.started_at and state.finished_at
    assert slurm.read(ok, "stdout") == b"out a b\n" and slurm.read(ok, "stderr") == b"err\n"
    state = wait(slurm, failing, {JobStatus.FAILED})
    assert (state.exit_code, state.reason) == (3, "exit code 3")
    state = wait(slurm, missing, {JobStatus.FAILED})
    assert state.exit_code == 127 and b"cannot start" in slurm.read(missing, "stderr")


def test_running_output_grows_then_cancel(slurm):
    job = slurm.submit(spec("for i in 1 2 3 4 5 6 7 8 9 10; do echo line $i; sleep 1; done"))
    wait(slurm, job, {JobStatus.RUNNING})
    deadline = time.monotonic() + 20
    while b"line 2" not in slurm.read(job, "stdout"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    with pytest.raises(BatchError, match="has not ended"):
        slurm.delete(job)
    slurm.cancel(job)
    state = wait(slurm, job, {JobStatus.CANCELLED})
    assert state.reason == "cancelled"
    slurm.delete(job)
    with pytest.raises(BatchError):
        slurm.read(job, "stdout")


def test_held_jobs_are_held(slurm_cluster, tmp_path):
    held = SlurmBackend("slurm", tmp_path / "held", slurm_conf=slurm_cluster, sbatch_options=["--hold"])
    job = held.submit(spec("true"))
    assert wait(held, job, {JobStatus.HELD}).status == JobStatus.HELD
    held.cancel(job)
    wait(held, job, {JobStatus.CANCELLED})


def test_one_squeue_call_for_many_jobs(slurm):
    jobs = [slurm.submit(spec("true")) for _ in range(5)]
    for j in jobs:
        wait(slurm, j, {JobStatus.COMPLETED})
    calls = []
    run = slurm._run
    slurm._run = lambda argv, **kw: calls.append(argv[0]) or run(argv, **kw)
    states = slurm.states(jobs + ["999999"])
    assert calls == ["squeue", "sacct"]  # one of each, whatever the number of jobs
    assert all(states[j].status == JobStatus.COMPLETED for j in jobs)
    assert states["999999"].status == JobStatus.UNKNOWN  # never assumed to have succeeded


def test_session_in_the_environment_not_in_argv(slurm):
    secret = "s3cr3t-session"
    job = slurm.submit(
        JobSpec(
            next(_ids),
            "db/alice",
            "/bin/sh",
            ("-c", 'echo "env=$IJP_SESSION_ID"; tr "\\0" " " < /proc/$$/cmdline', "job", SESSION_ARG),
            {SESSION_ENV: secret},
        )  # fmt: skip
    )
    wait(slurm, job, {JobStatus.COMPLETED})
    out = slurm.read(job, "stdout").decode()
    assert f"env={secret}" in out and secret not in out.splitlines()[1]
    assert (
        oct((Path(os.path.realpath(slurm.root / "by-slurm-id" / job)) / "spec.json").stat().st_mode & 0o777)
        == "0o600"
    )


def test_a_dead_controller_is_an_error_not_a_guess(tmp_path):
    dead = SlurmBackend("slurm", tmp_path / "jobs", slurm_conf=str(tmp_path / "nowhere.conf"))
    with pytest.raises(BatchError):
        dead.states(["1"])


def test_find_by_portal_job_id(slurm):
    s = spec("true")
    slurm_id = slurm.submit(s)
    assert slurm.find([s.job_id, 987654]) == {s.job_id: slurm_id}
    wait(slurm, slurm_id, {JobStatus.COMPLETED})
    assert slurm.find([s.job_id]) == {s.job_id: slurm_id}


def test_portals_sharing_a_cluster_do_not_find_each_others_jobs(slurm_cluster, tmp_path):
    a = SlurmBackend("slurm", tmp_path / "a", slurm_conf=slurm_cluster, job_prefix="portal-a")
    b = SlurmBackend("slurm", tmp_path / "b", slurm_conf=slurm_cluster, job_prefix="portal-b")
    s = spec("true")
    slurm_id = a.submit(s)
    assert a.find([s.job_id]) == {s.job_id: slurm_id}
    assert b.find([s.job_id]) == {}

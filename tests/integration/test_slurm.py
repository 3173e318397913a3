"""The SLURM backend against a real single-node cluster (bin/slurm-test-cluster)."""

import os
import re
import time
from pathlib import Path

import pytest

from ijpweb.batch import BatchError, JobSpec
from ijpweb.batch.slurm import SlurmBackend
from ijpweb.planning import SESSION_ARG, SESSION_ENV
from ijpweb.states import JobStatus

from ..unit.test_local_backend import _processes

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
    # where it ran, from the completion log: the test cluster's one node
    assert (state.nodes, state.hosts) == (
        1,
        "localhost",
    ) and state.cores >= 1  # bin/slurm-test-cluster's node
    assert slurm.read(ok, "stdout") == b"out a b\n" and slurm.read(ok, "stderr") == b"err\n"
    state = wait(slurm, failing, {JobStatus.FAILED})
    assert (state.exit_code, state.reason) == (3, "exit code 3")
    state = wait(slurm, missing, {JobStatus.FAILED})
    assert state.exit_code == 127 and b"cannot start" in slurm.read(missing, "stderr")


def test_running_output_grows_then_cancel(slurm):
    job = slurm.submit(spec("for i in 1 2 3 4 5 6 7 8 9 10; do echo line $i; sleep 1; done"))
    running = wait(slurm, job, {JobStatus.RUNNING})
    assert running.nodes == 1 and running.cores >= 1 and running.hosts  # from squeue
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


def test_jobs_that_left_the_queue_together_are_read_from_sacct_in_batches(slurm):
    # failed jobs: squeue still lists them, their exit codes are in the completion log
    jobs = [slurm.submit(spec(f"exit {n + 1}")) for n in range(4)]
    for j in jobs:
        wait(slurm, j, {JobStatus.FAILED})
    calls = []
    run = slurm._run
    slurm._run = lambda argv, **kw: calls.append(argv) or run(argv, **kw)
    slurm.sacct_ids_chars = max(len(j) for j in jobs) + 1  # one id per call
    states = slurm.states(jobs)
    assert [a[0] for a in calls] == ["squeue"] + ["sacct"] * 4
    assert sorted(a[-1] for a in calls[1:]) == sorted(jobs)
    assert [(states[j].status, states[j].exit_code) for j in jobs] == [
        (JobStatus.FAILED, n + 1) for n in range(4)
    ]


def test_twenty_thousand_jobs_gone_from_the_queue_are_unknown_not_an_error(slurm):
    """All of them in one sacct argument would be refused by the kernel (E2BIG: over
    128 KiB), and the harvest would call the whole backend dead."""
    gone = [f"{9_000_000 + n // 1000}_{n % 1000}" for n in range(20_000)]
    (slurm.root / "by-slurm-id").mkdir(exist_ok=True)
    for i in gone[::1000]:  # some of them recorded their raw id, as array tasks do
        d = slurm.root / "by-slurm-id" / i
        d.mkdir()
        (d / "slurm.json").write_text(f'{{"job_id": "{8_000_000 + int(i.split("_")[0])}"}}')
    plain = [str(7_000_000 + n) for n in range(20_000)]  # and plain jobs, by their own ids
    states = slurm.states(gone + plain)
    assert {s.status for s in states.values()} == {JobStatus.UNKNOWN}
    assert len(states) == 40_000


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
    dead = SlurmBackend("slurm", tmp_path / "jobs", slurm_conf=str(tmp_path / "nowhere.conf"), timeout=3)
    with pytest.raises(BatchError, match="squeue"):
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


def test_a_job_array_runs_many_jobs_from_one_sbatch(slurm):
    specs = [
        spec(f'echo "job {i} $1"; echo e{i} >&2; exit {3 if i == 2 else 0}', f"arg {i}") for i in range(5)
    ]
    calls = []
    run = slurm._run
    slurm._run = lambda argv, **kw: calls.append(argv[0]) or run(argv, **kw)
    ids = slurm.submit_many(specs)
    del slurm._run
    assert calls == ["sbatch"]  # one call for all five
    (array,) = {i.partition("_")[0] for i in ids.values()}
    assert [ids[s.job_id] for s in specs] == [f"{array}_{t}" for t in range(5)]
    for i, s in enumerate(specs):
        state = wait(slurm, ids[s.job_id], {JobStatus.COMPLETED, JobStatus.FAILED})
        assert (state.status, state.exit_code) == (
            (JobStatus.FAILED, 3) if i == 2 else (JobStatus.COMPLETED, 0)
        )
        # each task has its own directory, output and error
        assert slurm.read(ids[s.job_id], "stdout") == f"job {i} arg {i}\n".encode()
        assert slurm.read(ids[s.job_id], "stderr") == f"e{i}\n".encode()
    # after a crash the portal finds every task by its portal job id, once it has left the queue too
    assert slurm.find([s.job_id for s in specs] + [987654]) == ids
    states = slurm.states(list(ids.values()))
    assert [states[ids[s.job_id]].status for s in specs].count(JobStatus.COMPLETED) == 4


def test_array_tasks_are_found_while_queued_and_cancelled_one_by_one(slurm_cluster, tmp_path):
    held = SlurmBackend("slurm", tmp_path / "held", slurm_conf=slurm_cluster, sbatch_options=["--hold"])
    specs = [spec("true") for _ in range(3)]
    ids = held.submit_many(specs)
    assert held.find([s.job_id for s in specs]) == ids
    assert {st.status for st in held.states(list(ids.values())).values()} == {JobStatus.HELD}
    first = ids[specs[0].job_id]
    held.cancel(first)
    assert wait(held, first, {JobStatus.CANCELLED}).status == JobStatus.CANCELLED
    assert held.states([ids[specs[1].job_id]])[ids[specs[1].job_id]].status == JobStatus.HELD
    for slurm_id in list(ids.values())[1:]:
        held.cancel(slurm_id)


def test_resources_come_from_the_ini_and_the_job_type(slurm_cluster, tmp_path):
    backend = SlurmBackend(
        "slurm", tmp_path / "jobs", slurm_conf=slurm_cluster, resources={"time": "10", "cpus": "1"},
        sbatch_options=["--hold"],
    )  # fmt: skip
    plain = backend.submit(spec("true"))
    s = spec("true")
    tuned = backend.submit(JobSpec(s.job_id, s.owner, s.executable, s.args, resources={"time": "0:05:00"}))
    limits = {}
    for job in (plain, tuned):
        text = backend._run(["scontrol", "show", "job", job])
        limits[job] = re.search(r"TimeLimit=(\S+)", text).group(1)
        backend.cancel(job)
    assert limits == {plain: "00:10:00", tuned: "00:05:00"}


SANDBOXED = """
echo "session=$IJP_SESSION_ID"
echo "jobs: $(ls "$1")"
cat "$2" >/dev/null 2>&1 && echo "reads another job's spec"
ls "$3" >/dev/null 2>&1 && echo "sees the cluster's files"
echo x > "$4/planted" 2>/dev/null
echo kept > "$JOB_OUTPUT_DIR/result" && echo "output ok"
echo "pid $$"
"""


def test_jobs_and_array_tasks_run_sandboxed_on_the_node(slurm, slurm_cluster):
    other = slurm.submit(spec("true"))
    wait(slurm, other, {JobStatus.COMPLETED})
    other_spec = Path(os.path.realpath(slurm.root / "by-slurm-id" / other)) / "spec.json"
    cluster = Path(slurm_cluster).parent
    secret = "s3cr3t-slurm-session"

    def sandboxed():
        s = spec(SANDBOXED, str(slurm.root), str(other_spec), str(cluster), str(slurm.root.parent))
        return JobSpec(s.job_id, s.owner, s.executable, s.args, {SESSION_ENV: secret})

    single = sandboxed()
    ids = {single.job_id: slurm.submit(single), **slurm.submit_many([sandboxed(), sandboxed()])}
    for job_id, slurm_id in ids.items():
        wait(slurm, slurm_id, {JobStatus.COMPLETED})
        out = slurm.read(slurm_id, "stdout").decode()
        # of the job directories only its own; its own PID namespace (bwrap's init is 1)
        assert out.splitlines() == [f"session={secret}", f"jobs: {job_id}", "output ok", "pid 2"], out
        d = slurm.root / str(job_id)
        assert (d / "output" / "result").read_text() == "kept\n"
        assert not (d / "secret.json").exists()
        for f in d.rglob("*"):  # (but stdout, where the job printed it)
            assert not f.is_file() or f.name == "stdout" or secret.encode() not in f.read_bytes(), f
    assert not (slurm.root.parent / "planted").exists()


def test_cancel_ends_every_process_of_the_sandbox(slurm):
    job = slurm.submit(spec("sleep 4011 & setsid sleep 4011 & sleep 4011; wait"))
    wait(slurm, job, {JobStatus.RUNNING})
    deadline = time.monotonic() + 20
    while len(_processes("4011")) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    slurm.cancel(job)
    wait(slurm, job, {JobStatus.CANCELLED})
    deadline = time.monotonic() + 20
    while _processes("4011"):
        assert time.monotonic() < deadline, "processes of the cancelled job are still running"
        time.sleep(0.1)

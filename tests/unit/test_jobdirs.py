"""Issue 11, point 2: two processes never prepare the same job directory, and one a killed
process left half-written (with the session in it) is removed."""

from __future__ import annotations

import json
import multiprocessing
import os
import time

import pytest

from ijpweb.batch import JobBusy, JobSpec
from ijpweb.batch.jobdirs import HOST, LEFTOVER_SECONDS, NEW, OWNER, clean_leftovers, prepare
from ijpweb.batch.local import from_settings
from ijpweb.planning import SESSION_ENV

SECRET = "a-catalog-session-left-behind"


def spec(job_id: int = 7) -> JobSpec:
    return JobSpec(job_id, "db/alice", "/bin/true", (), {SESSION_ENV: SECRET})


def leftover(root, job_id: int, owner: dict | None, age: float = 0.0):
    """A job directory being written, as a writer leaves it when it is killed."""
    tmp = root / NEW / str(job_id)
    tmp.mkdir(parents=True)
    (tmp / "secret.json").write_text(json.dumps({SESSION_ENV: SECRET}))
    if owner is not None:
        (tmp / OWNER).write_text(json.dumps(owner))
    if age:
        then = time.time() - age
        os.utime(tmp, (then, then))
    return tmp


def dead_pid() -> int:
    proc = multiprocessing.get_context("fork").Process(target=lambda: None)
    proc.start()
    proc.join()
    return proc.pid  # reaped: no process has it now


def _prepare_when_told(root, go, results):
    go.wait()
    try:
        d, created = prepare(root, spec(), [], False)
        results.put(("created" if created else "existed", str(d)))
    except JobBusy as e:
        results.put(("busy", str(e)))


def test_two_processes_preparing_one_job_make_one_directory_and_leave_nothing(tmp_path):
    ctx = multiprocessing.get_context("fork")
    for round_ in range(20):  # the race is a matter of timing: run it many times
        root = tmp_path / str(round_)
        root.mkdir()
        go, results = ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=_prepare_when_told, args=(root, go, results)) for _ in range(2)]
        for p in procs:
            p.start()
        go.set()
        for p in procs:
            p.join(30)
        outcomes = sorted(results.get(timeout=5)[0] for _ in procs)
        # one made it; the other found it made, or backed off while it was being made
        assert outcomes in (["created", "existed"], ["busy", "created"]), outcomes
        assert os.listdir(root / NEW) == []  # nothing half-written left by the loser
        assert sorted(os.listdir(root / "7")) == ["output", "secret.json", "spec.json", "work"]


def test_two_threads_preparing_one_job_make_one_directory_and_leave_nothing(tmp_path):
    """Threads of one process share its pid: a temporary directory named by the pid was
    removed under the other thread's feet."""
    import threading

    for round_ in range(50):
        root = tmp_path / str(round_)
        root.mkdir()
        barrier, outcomes = threading.Barrier(4), []

        def run(root=root, barrier=barrier, outcomes=outcomes):
            barrier.wait()
            try:
                outcomes.append("created" if prepare(root, spec(), [], False)[1] else "existed")
            except JobBusy:
                outcomes.append("busy")
            except OSError as e:  # noqa: PERF203 - what the old code did
                outcomes.append(f"failed: {e}")

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(outcomes).count("created") == 1 and not [o for o in outcomes if o.startswith("failed")]
        assert os.listdir(root / NEW) == []
        assert sorted(os.listdir(root / "7")) == ["output", "secret.json", "spec.json", "work"]


def test_a_job_being_prepared_by_a_live_process_is_left_to_it(tmp_path):
    mine = leftover(tmp_path, 7, {"host": HOST, "pid": os.getpid()})
    with pytest.raises(JobBusy, match=rf"job 7 is being prepared by process {os.getpid()} on "):
        prepare(tmp_path, spec(), [], False)
    assert (mine / "secret.json").exists() and not (tmp_path / "7").exists()
    clean_leftovers(tmp_path)  # and the purge leaves it too
    assert mine.exists()


@pytest.mark.parametrize(
    "owner",
    [
        "dead",  # a process of this host that was killed while it wrote it
        None,  # killed between taking it and naming itself
        "garbage",
    ],
)
def test_a_killed_writers_leftover_with_the_session_is_removed_and_the_job_prepared(tmp_path, owner):
    if owner == "dead":
        owner = {"host": HOST, "pid": dead_pid()}
    elif owner == "garbage":
        owner = {"host": HOST, "pid": "not a pid"}
    leftover(tmp_path, 7, owner)
    d, created = prepare(tmp_path, spec(), [], False)
    assert created and os.listdir(tmp_path / NEW) == []
    assert not (d / OWNER).exists()
    # the new directory holds this job's session file, made by this process
    assert json.loads((d / "secret.json").read_text()) == {SESSION_ENV: SECRET}


def test_another_hosts_leftover_waits_until_it_is_old(tmp_path):
    """Another host's writer (job directories on a shared filesystem) cannot be asked
    whether it lives: its directory is left alone until LEFTOVER_SECONDS have passed."""
    theirs = leftover(tmp_path, 7, {"host": "another-host.example", "pid": 1})
    with pytest.raises(JobBusy, match="on another-host.example"):
        prepare(tmp_path, spec(), [], False)
    clean_leftovers(tmp_path)
    assert theirs.exists()
    old = leftover(tmp_path, 8, {"host": "another-host.example", "pid": 1}, age=LEFTOVER_SECONDS + 60)
    clean_leftovers(tmp_path)
    assert not old.exists() and theirs.exists()


def test_the_purge_removes_a_leftover_of_a_process_killed_after_the_backend_started(tmp_path):
    """The scheduler's purge calls each backend's clean_leftovers (not only its start)."""
    backend = from_settings("local", {"dir": str(tmp_path / "jobs"), "sandbox": "none"})
    dead = leftover(backend.root, 9, {"host": HOST, "pid": dead_pid()})
    alive = leftover(backend.root, 10, {"host": HOST, "pid": os.getpid()})
    backend.clean_leftovers()
    assert not dead.exists() and alive.exists()

"""How local jobs are started (issue 12, point 3), with real launchers and processes: the
backend's lock covers only the claim, a hand-over reads only the queue, jobs behind a
running one start in forks of its launcher, and several processes share max_running."""

import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

from ijpweb.batch.local import LocalBackend
from ijpweb.batch.runner import LOCK, QUEUE, SERVED, STARTED, dispatch, launch, queued
from ijpweb.states import JobStatus

from .test_local_backend import _processes, _until, spec, wait

ROOT = Path(__file__).resolve().parents[2]


def _lock_is_free(root: Path) -> bool:
    """Whether another holder could take the backend's lock now (an flock conflicts
    between two open file descriptions, also in one process)."""
    fd = os.open(root / LOCK, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_no_launcher_is_started_while_the_lock_is_held(local):
    """Five queued jobs claimed by one dispatch: each launcher is started after the lock
    is released, so a start that is slow (a loaded machine) holds up no other process."""
    b = local(max_running=1)
    b.submit(spec(1, "while [ ! -e gate ]; do sleep 0.05; done"))
    for i in range(2, 7):
        b.submit(spec(i, "echo $IJP_JOB_ID"))
    assert sorted((name for name, _, _ in queued(b.root / QUEUE)), key=int) == ["2", "3", "4", "5", "6"]
    free_at_start = []

    def start(d, python):
        free_at_start.append(_lock_is_free(b.root))
        return launch(d, python)

    assert len(dispatch(b.root, 10, sys.executable, start)) == 5
    assert free_at_start == [True] * 5  # every launcher started with the lock released
    (b.root / "1" / "work" / "gate").touch()
    for i in range(1, 7):
        assert wait(b, str(i), {JobStatus.COMPLETED}).exit_code == 0
    assert [b.read(str(i), "stdout") for i in range(2, 7)] == [f"{i}\n".encode() for i in range(2, 7)]


AUDITED = textwrap.dedent(
    """
    import os, sys
    from ijpweb.batch.runner import dispatch
    root = sys.argv[1]
    seen = []
    def hook(event, args):
        if event in ("open", "os.listdir", "os.scandir", "os.mkdir", "os.rename", "os.remove"):
            seen.append(os.fsdecode(args[0]) if isinstance(args[0], (str, bytes)) else str(args[0]))
    sys.addaudithook(hook)
    pids = dispatch(root, 4, sys.executable)
    sys.addaudithook(lambda *a: None)
    print("\\n".join(seen))
    print("pids", len(pids))
    """
)


def test_a_hand_over_reads_only_the_waiting_jobs(local):
    """500 jobs that have ended, one running and one waiting: a dispatch opens and lists
    nothing of the 500 (Python's audit events of every open, listdir, scandir, mkdir,
    rename and remove it makes)."""
    b = local(max_running=1)
    b.submit(spec(1, "true"))
    wait(b, "1", {JobStatus.COMPLETED})
    done = b.root / "1"
    for i in range(3, 503):  # ended jobs, as they accumulate over months
        d = b.root / str(i)
        d.mkdir()
        for f in ("spec.json", "started.json", "exit.json", "launched"):
            (d / f).write_bytes((done / f).read_bytes())
    b.submit(spec(600, "while [ ! -e gate ]; do sleep 0.05; done"))
    b.submit(spec(601, "echo waited"))  # behind it
    wait(b, "600", {JobStatus.RUNNING})
    assert [name for name, _, _ in queued(b.root / QUEUE)] == ["601"]
    res = subprocess.run(
        [sys.executable, "-c", AUDITED, str(b.root)], capture_output=True, text=True, timeout=60, check=True
    )
    *paths, pids = res.stdout.splitlines()
    assert pids == "pids 1"  # (max_running 4 in this call: 601 starts)
    inside = {Path(p).relative_to(b.root).parts or ("(the job directory root)",) for p in paths
              if Path(p).is_relative_to(b.root)}  # fmt: skip
    # (and .served/<owner>: when the owner last had a job started)
    assert {parts[0] for parts in inside} <= {QUEUE, STARTED, LOCK, SERVED, "600", "601"}, sorted(inside)
    assert wait(b, "601", {JobStatus.COMPLETED}).exit_code == 0
    (b.root / "600" / "work" / "gate").touch()
    assert wait(b, "600", {JobStatus.COMPLETED}).exit_code == 0


def test_jobs_behind_a_running_one_start_in_forks_of_its_launcher(local):
    """No new interpreter for a queued job: the launcher whose job ends forks the next
    launcher. It is a process of its own (its group, its records), cancelled alone."""
    b = local(max_running=1)
    b.submit(spec(1, "while [ ! -e gate ]; do sleep 0.05; done"))
    b.submit(spec(2, "sleep 3021"))
    b.submit(spec(3, "echo three"))
    first = wait(b, "1", {JobStatus.RUNNING})
    assert first.status == JobStatus.RUNNING
    (b.root / "1" / "work" / "gate").touch()
    _until(lambda: (b.root / "2" / "started.json").exists() and _processes("3021"))  # no backend call
    one = json.loads((b.root / "1" / "started.json").read_text())
    two = json.loads((b.root / "2" / "started.json").read_text())
    assert two["pid"] != one["pid"] and two["pgid"] == two["pid"]  # a session of its own
    cmdline = Path(f"/proc/{two['pid']}/cmdline").read_bytes().split(b"\0")
    assert str(b.root / "1").encode() in cmdline  # a fork: the first launcher's command line
    assert b.states(["2"])["2"].status == JobStatus.RUNNING  # known by pid and start time
    b.cancel("2")
    assert b.states(["2"])["2"].status == JobStatus.CANCELLED
    assert _processes("3021") == []
    assert wait(b, "3", {JobStatus.COMPLETED}).exit_code == 0
    assert b.read("3", "stdout") == b"three\n"
    assert b.states(["1"])["1"].status == JobStatus.COMPLETED


def test_a_recycled_pid_is_not_a_launcher(local):
    """A launcher is known by its pid and when it began: a live process that got its pid
    (here: this test's) is not taken for it, with or without the start time recorded."""
    b = local(max_running=1)
    b.submit(spec(1, "true"))
    wait(b, "1", {JobStatus.COMPLETED})
    d = b.root / "1"
    (d / "exit.json").unlink()
    record = json.loads((d / "started.json").read_text())
    for forged in ({**record, "pid": os.getpid()}, {k: v for k, v in record.items() if k != "began"}):
        forged["pid"] = os.getpid()
        (d / "started.json").write_text(json.dumps(forged))
        state = b.states(["1"])["1"]
        assert state.status == JobStatus.FAILED and "wrapper ended" in state.reason


SUBMITTER = textwrap.dedent(
    """
    import sys
    from ijpweb.batch import JobSpec
    from ijpweb.batch.local import LocalBackend
    root, first = sys.argv[1], int(sys.argv[2])
    b = LocalBackend("local", root, max_running=2)
    for i in range(first, first + 8):
        b.submit(JobSpec(i, "alice", "/bin/sh", ("-c", "sleep 0.3",)))
    """
)


def test_several_processes_share_max_running(tmp_path):
    """Three portal processes hand 8 jobs each to one job directory with max_running 2:
    never more than 2 run, and every one runs (the launchers drain the queue)."""
    root = tmp_path / "jobs"
    LocalBackend("local", root, max_running=2)
    procs = [
        subprocess.Popen([sys.executable, "-c", SUBMITTER, str(root), str(first)]) for first in (1, 101, 201)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    ids = [i for first in (1, 101, 201) for i in range(first, first + 8)]
    _until(lambda: all((root / str(i) / "exit.json").exists() for i in ids), timeout=60)
    spans = []
    for i in ids:
        start = json.loads((root / str(i) / "started.json").read_text())["at"]
        end = json.loads((root / str(i) / "exit.json").read_text())
        assert end["code"] == 0, (i, end)
        spans.append((datetime.fromisoformat(start), datetime.fromisoformat(end["at"])))
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak <= 2, f"{peak} jobs ran at once"
    assert peak == 2  # and the limit was used


def test_a_launcher_that_cannot_start_fails_its_job_and_frees_its_slot(local):
    b = local(max_running=1, python="/nonexistent/python")
    b.submit(spec(1, "true"))
    state = wait(b, "1", {JobStatus.FAILED})
    assert state.exit_code == 127 and b"cannot start the job's launcher" in b.read("1", "stderr")
    assert os.listdir(b.root / STARTED) == []
    good = local(max_running=1)
    good.submit(spec(2, "true"))
    assert wait(good, "2", {JobStatus.COMPLETED}).exit_code == 0


def test_what_is_private_is_hidden_after_at_most_a_second(tmp_path):
    """A launcher and its forks share one scan of /etc for HIDDEN_SECONDS: a file made
    private shows no longer than that in sandboxes set up afterwards."""
    from ijpweb.batch.runner import HIDDEN_SECONDS, hidden_now

    top = tmp_path / "etc"
    (top / "conf.d").mkdir(parents=True)
    for d in (top, top / "conf.d"):  # readable by all, whatever the umask (the portal's: 077)
        d.chmod(0o755)
    key = top / "conf.d" / "site.key"
    key.write_text("k")
    key.chmod(0o644)
    assert hidden_now(str(top)) == []
    key.chmod(0o600)
    deadline = time.monotonic() + HIDDEN_SECONDS + 0.5
    while time.monotonic() < deadline and hidden_now(str(top)) != [str(key)]:
        time.sleep(0.05)
    # (asked once more after the deadline: a stalled test machine cannot fail it early)
    assert hidden_now(str(top)) == [str(key)], "a private file still shows after the scan's time"


def test_a_job_does_not_inherit_pythons_ignored_signals(local):
    """Python ignores SIGPIPE and SIGXFSZ; the launcher starts the job with them at their
    defaults (as subprocess did), so `yes | head` ends and a file size limit kills."""
    b = local(max_running=2)
    b.submit(spec(1, "grep SigIgn /proc/self/status; yes | head -n 1"))
    assert wait(b, "1", {JobStatus.COMPLETED}).exit_code == 0
    first, second = b.read("1", "stdout").decode().splitlines()
    ignored = int(first.split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1)) and not ignored & (1 << (signal.SIGXFSZ - 1))
    assert second == "y"

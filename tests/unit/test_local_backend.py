"""The local backend with real processes: wrapper records, limits, cancel, restart."""

import contextlib
import json
import os
import shutil
import signal
import stat
import time
from pathlib import Path

import pytest

from ijpweb.batch import BatchError, JobSpec
from ijpweb.batch.local import LocalBackend
from ijpweb.planning import SESSION_ARG, SESSION_ENV
from ijpweb.states import JobStatus


def spec(job_id, script, *args, env=None):
    return JobSpec(job_id, "alice", "/bin/sh", ("-c", script, "job", *args), env or {})


def wait(backend, job_id, statuses, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = backend.states([job_id])[job_id]
        if state.status in statuses:
            return state
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} is {state.status}, not {statuses}")


@pytest.fixture
def backend(tmp_path):
    b = LocalBackend("local", tmp_path / "jobs", max_running=4)
    yield b
    for d in (tmp_path / "jobs").glob("[0-9]*"):
        with contextlib.suppress(BatchError):
            b.cancel(d.name)


def test_exit_codes_and_output(backend):
    backend.submit(spec(1, 'echo "out $1"; echo err >&2; exit 0', "a b"))
    backend.submit(spec(2, "exit 3"))
    backend.submit(JobSpec(3, "alice", "/nonexistent/program", ()))
    ok = wait(backend, "1", {JobStatus.COMPLETED})
    assert ok.exit_code == 0 and ok.started_at and ok.finished_at >= ok.started_at
    assert backend.read("1", "stdout") == b"out a b\n"
    assert backend.read("1", "stderr") == b"err\n"
    assert backend.read("1", "stdout", offset=4) == b"a b\n"
    failed = wait(backend, "2", {JobStatus.FAILED})
    assert (failed.exit_code, failed.reason) == (3, "exit code 3")
    missing = wait(backend, "3", {JobStatus.FAILED})
    assert missing.exit_code == 127 and b"cannot start" in backend.read("3", "stderr")


def test_concurrency_limit_keeps_the_rest_queued(tmp_path):
    b = LocalBackend("local", tmp_path / "jobs", max_running=1)
    gate = b.root / "1" / "work" / "gate"  # where the sandboxed job can see it
    b.submit(spec(1, "while [ ! -e gate ]; do sleep 0.05; done"))
    b.submit(spec(2, "true"))
    wait(b, "1", {JobStatus.RUNNING})
    time.sleep(0.3)
    assert b.states(["2"])["2"].status == JobStatus.QUEUED
    gate.touch()
    wait(b, "1", {JobStatus.COMPLETED})
    wait(b, "2", {JobStatus.COMPLETED})


def _processes(token):
    """Live processes, in any PID namespace, with ``token`` as one of their arguments."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if token.encode() in cmdline and stat[stat.rindex(")") + 2] != "Z":
            out.append(int(entry))
    return out


def _until(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_cancel_stops_that_job_and_nothing_else(backend):
    # a child in the background and one in a session of its own: both inside the sandbox
    backend.submit(spec(1, "sleep 3011 & setsid sleep 3011 & sleep 3011; wait"))
    backend.submit(spec(2, "sleep 3012"))
    wait(backend, "1", {JobStatus.RUNNING})
    wait(backend, "2", {JobStatus.RUNNING})
    _until(lambda: len(_processes("3011")) == 3)
    backend.cancel("1")
    assert backend.states(["1"])["1"].status == JobStatus.CANCELLED
    assert not _processes("3011"), "the cancelled job's processes are still running"
    assert backend.states(["2"])["2"].status == JobStatus.RUNNING and _processes("3012")


def test_cancel_lets_the_program_end_first(backend):
    backend.submit(spec(1, "trap 'echo terminated; exit 0' TERM; echo waiting; sleep 300 & wait"))
    wait(backend, "1", {JobStatus.RUNNING})
    _until(lambda: backend.read("1", "stdout") == b"waiting\n")
    backend.cancel("1")
    assert backend.read("1", "stdout") == b"waiting\nterminated\n"
    assert backend.states(["1"])["1"].status == JobStatus.CANCELLED


def test_jobs_survive_a_restart_of_the_portal(tmp_path):
    first = LocalBackend("local", tmp_path / "jobs")
    gate = first.root / "1" / "work" / "gate"
    first.submit(spec(1, "echo started; while [ ! -e gate ]; do sleep 0.05; done; echo done"))
    wait(first, "1", {JobStatus.RUNNING})
    del first  # the portal goes away; the job does not
    second = LocalBackend("local", tmp_path / "jobs")
    assert second.states(["1"])["1"].status == JobStatus.RUNNING
    gate.touch()
    assert wait(second, "1", {JobStatus.COMPLETED}).exit_code == 0
    assert second.read("1", "stdout") == b"started\ndone\n"


def test_delete_only_once_ended(backend):
    backend.submit(spec(1, "sleep 30"))
    wait(backend, "1", {JobStatus.RUNNING})
    with pytest.raises(BatchError, match="has not ended"):
        backend.delete("1")
    backend.cancel("1")
    deadline = time.monotonic() + 10
    while True:
        try:
            backend.delete("1")
            break
        except BatchError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert not (backend.root / "1").exists()


def test_session_id_in_environment_never_in_argv(backend):
    secret = "s3cr3t-session-id"
    s = JobSpec(
        1,
        "alice",
        "/bin/sh",
        ("-c", 'echo "env=$IJP_SESSION_ID"; cat /proc/$$/cmdline | tr "\\0" " "', "job", SESSION_ARG),
        {SESSION_ENV: secret},
    )
    backend.submit(s)
    wait(backend, "1", {JobStatus.COMPLETED})
    out = backend.read("1", "stdout").decode()
    assert f"env={secret}" in out
    cmdline = out.splitlines()[1]
    assert secret not in cmdline and "sessionId" not in cmdline
    spec_file = backend.root / "1" / "spec.json"
    assert oct(spec_file.stat().st_mode & 0o777) == "0o600"


def test_portal_secrets_do_not_leak_into_jobs(backend, monkeypatch):
    monkeypatch.setenv("IJP_AUTH_SECRET", "do-not-leak")
    backend.submit(spec(1, "env"))
    wait(backend, "1", {JobStatus.COMPLETED})
    assert b"do-not-leak" not in backend.read("1", "stdout")


def test_unknown_ids_are_unknown(backend):
    assert backend.states(["999"])["999"].status == JobStatus.UNKNOWN
    assert backend.states(["../etc"])["../etc"].status == JobStatus.UNKNOWN
    with pytest.raises(BatchError):
        backend.read("../etc", "stdout")


def test_the_launcher_imports_the_standard_library_only(tmp_path):
    """It runs by path with -I -S (no site-packages at all), and -X importtime lists
    every module it loads: all of them the standard library's."""
    import subprocess
    import sys

    from ijpweb.batch.jobdirs import prepare
    from ijpweb.batch.local import RUNNER

    d, _ = prepare(tmp_path, JobSpec(1, "alice", "/bin/echo", ("hello",)), [], False, None)
    res = subprocess.run(
        [sys.executable, "-I", "-S", "-X", "importtime", RUNNER, str(d)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    modules = {
        line.rsplit("|", 1)[1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")
    }
    modules.discard("imported package")  # the header line
    assert {"_json", "_signal", "fcntl"} <= modules  # what it does use is listed
    outside = {m for m in modules if m.split(".")[0] not in sys.stdlib_module_names}
    assert outside == set(), f"the launcher imports {outside}"
    assert not any(m.startswith(("ijpweb", "sqlalchemy", "pyramid")) for m in modules)
    # nor the standard library's heavier modules: every launcher's start would pay for them
    # (subprocess with locale and threading, pathlib with urllib.parse, json and signal with
    # re and enum: 30 ms of imports where the interpreter itself takes 10)
    heavy = {"subprocess", "locale", "threading", "pathlib", "urllib.parse", "contextlib", "datetime",
             "json", "re", "enum"}  # fmt: skip
    assert modules & heavy == set(), f"the launcher imports {sorted(modules & heavy)}"
    assert (d / "stdout").read_text() == "hello\n"  # and it ran the job (unsandboxed: spec said none)


def test_no_sandbox_only_when_the_ini_says_so(tmp_path):
    from ijpweb.batch.local import from_settings
    from ijpweb.batch.sandbox import Sandbox

    with pytest.raises(ValueError, match=r"ijp\.batch\.local\.sandbox: .*/nonexistent/bwrap.*sandbox = none"):
        LocalBackend("local", tmp_path / "a", sandbox=Sandbox(bwrap="/nonexistent/bwrap"))
    with pytest.raises(ValueError, match=r"ijp\.batch\.local\.sandbox: bwrap or none, not 'off'"):
        from_settings("local", {"dir": str(tmp_path / "b"), "sandbox": "off"})
    with pytest.raises(ValueError, match=r"ijp\.batch\.local\.path: .* holds the job directories"):
        from_settings("local", {"dir": str(tmp_path / "c" / "jobs"), "path": str(tmp_path / "c")})
    # written out: the job runs as the portal's account and sees what it sees
    outside = tmp_path / "outside.txt"
    outside.write_text("visible")
    plain = from_settings("local", {"dir": str(tmp_path / "d"), "sandbox": "none"})
    plain.submit(spec(1, f'cat "{outside}"; echo; id -u'))
    wait(plain, "1", {JobStatus.COMPLETED})
    assert plain.read("1", "stdout") == f"visible\n{os.getuid()}\n".encode()


def test_the_sandbox_is_tried_once_per_process(tmp_path):
    from ijpweb.batch.sandbox import probe

    LocalBackend("local", tmp_path / "a")
    before = probe.cache_info()
    LocalBackend("local", tmp_path / "b")
    after = probe.cache_info()
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)


def test_files_are_the_portals_alone(backend, monkeypatch):
    old = os.umask(0o022)  # whatever the process's umask, the modes are the same
    try:
        backend.submit(spec(1, 'echo out; echo kept > "$JOB_OUTPUT_DIR/result"; mkdir sub; touch sub/f'))
        wait(backend, "1", {JobStatus.COMPLETED})
    finally:
        os.umask(old)
    d = backend.root / "1"

    def mode(p):
        return oct(stat.S_IMODE(p.stat().st_mode))

    assert (
        mode(backend.root)
        == mode(d)
        == mode(d / "work")
        == mode(d / "output")
        == mode(d / "work" / "sub")
        == "0o700"
    )
    for f in ("spec.json", "stdout", "stderr", "started.json", "exit.json", "output/result", "work/sub/f"):
        assert mode(d / f) == "0o600", f


def test_the_session_is_in_no_file_once_the_job_started(backend):
    secret = "s3cr3t-in-no-file"
    backend.submit(spec(1, "while [ ! -e gate ]; do sleep 0.05; done", env={SESSION_ENV: secret}))
    wait(backend, "1", {JobStatus.RUNNING})
    d = backend.root / "1"
    assert not (d / "secret.json").exists()
    assert all(secret.encode() not in f.read_bytes() for f in d.rglob("*") if f.is_file())
    (d / "work" / "gate").touch()
    wait(backend, "1", {JobStatus.COMPLETED})


def test_session_in_argv_where_a_facility_opts_in_but_never_in_spec_json(tmp_path):
    legacy = LocalBackend("local", tmp_path / "jobs", session_in_argv=True)
    secret = "s3cr3t-legacy"
    legacy.submit(
        JobSpec(1, "alice", "/bin/sh", ("-c", 'echo "$1"', "job", SESSION_ARG), {SESSION_ENV: secret})
    )
    assert secret not in (legacy.root / "1" / "spec.json").read_text()
    wait(legacy, "1", {JobStatus.COMPLETED})
    assert legacy.read("1", "stdout") == f"--sessionId={secret}\n".encode()


def test_leftovers_of_a_crash_are_removed_at_start(tmp_path):
    root = tmp_path / "jobs"
    LocalBackend("local", root)
    dead = root / ".new" / "7.999999999"  # a writer that is gone
    dead.mkdir(parents=True)
    (dead / "secret.json").write_text('{"IJP_SESSION_ID": "left-behind"}')
    mine = root / ".new" / f"8.{os.getpid()}"  # one this process is writing
    mine.mkdir()
    LocalBackend("local", root)
    assert not dead.exists() and mine.exists()


def test_a_hand_over_reads_the_queue_not_every_job(tmp_path):
    b = LocalBackend("local", tmp_path / "jobs", max_running=1)
    b.submit(spec(1, "true"))
    wait(b, "1", {JobStatus.COMPLETED})
    # a directory the queue does not name is not the dispatcher's business
    stray = b.root / "5"
    stray.mkdir()
    (stray / "spec.json").write_text('{"executable": "/bin/true", "argv": [], "env": {}}')
    b.submit(spec(2, "true"))
    wait(b, "2", {JobStatus.COMPLETED})
    assert not (stray / "launched").exists()
    # job directories of an older version (no queue/ yet) are queued once, at start
    shutil.rmtree(b.root / "queue")
    shutil.rmtree(b.root / "running")
    (stray / "spec.json").unlink()
    old = LocalBackend("local", b.root)
    assert sorted(os.listdir(old.root / "queue")) == ["5"]


def test_a_queue_drains_without_the_portal_asking(tmp_path):
    """Each launcher starts the next queued job as its own ends: nothing waits for the
    backend's next call (a harvest every few seconds)."""
    b = LocalBackend("local", tmp_path / "jobs", max_running=1)
    for i in range(1, 6):
        b.submit(spec(i, "echo $IJP_JOB_ID"))
    ends = [b.root / str(i) / "exit.json" for i in range(1, 6)]
    _until(lambda: all(e.exists() for e in ends), timeout=30)  # no states(), no submit
    starts = [json.loads((b.root / str(i) / "started.json").read_text())["at"] for i in range(1, 6)]
    assert starts == sorted(starts)  # in order, one at a time
    assert [b.read(str(i), "stdout") for i in range(1, 6)] == [f"{i}\n".encode() for i in range(1, 6)]


def test_a_job_cancelled_before_it_starts_leaves_no_session_behind(tmp_path):
    b = LocalBackend("local", tmp_path / "jobs", max_running=1)
    b.submit(spec(1, "while [ ! -e gate ]; do sleep 0.05; done"))
    b.submit(spec(2, "echo ran", env={SESSION_ENV: "s3cr3t-never-used"}))
    assert (b.root / "2" / "secret.json").exists()  # queued, its session waiting on disk
    b.cancel("2")
    assert not (b.root / "2" / "secret.json").exists()
    (b.root / "1" / "work" / "gate").touch()
    wait(b, "1", {JobStatus.COMPLETED})
    assert wait(b, "2", {JobStatus.CANCELLED}).reason == "cancelled before it started"
    assert b.read("2", "stdout") == b""


def test_a_launcher_killed_as_it_starts_the_sandbox_leaves_nothing_running(tmp_path):
    """The portal's test clean-up, an OOM kill or a cancel's SIGKILL may hit a launcher at
    any moment, also while bwrap is still setting up (before its own --die-with-parent)."""
    b = LocalBackend("local", tmp_path / "jobs", max_running=30)
    for i in range(1, 21):
        b.submit(spec(i, "sleep 4301"))
        d = b.root / str(i)
        _until(lambda d=d: (d / "started.json").exists())
        time.sleep(i * 0.001)  # from just before bwrap starts to well into its set-up
        with contextlib.suppress(ProcessLookupError):
            os.killpg(json.loads((d / "started.json").read_text())["pgid"], signal.SIGKILL)
    time.sleep(1)
    # the harvest finds each launcher gone without an exit record: the job failed, and
    # whatever bwrap had started already is ended with it
    states = b.states([str(i) for i in range(1, 21)])
    assert {s.status for s in states.values()} == {JobStatus.FAILED}
    _until(lambda: _processes("4301") == [])


# forks until refused (at most 200), then says how many it got
FORKS = (
    "import os, resource, signal, time\n"
    "print('limits', *(resource.getrlimit(r)[0] for r in (resource.RLIMIT_NPROC, resource.RLIMIT_AS)))\n"
    "pids = []\n"
    "for _ in range(200):\n"
    "    try: pid = os.fork()\n"
    "    except OSError: break\n"
    "    if pid == 0: time.sleep(30); os._exit(0)\n"
    "    pids.append(pid)\n"
    "print('forked', len(pids), flush=True)\n"
    "[os.kill(p, signal.SIGKILL) for p in pids]"
)


def test_a_job_cannot_exhaust_the_hosts_memory_processes_or_files(tmp_path):
    """A hostile program: /tmp is a bounded tmpfs, and the process, address-space and
    file-size limits of the ini hold for it and everything it starts."""
    from ijpweb.batch.local import from_settings

    b = from_settings(
        "local",
        {"dir": str(tmp_path / "jobs"), "tmp_size": "4M", "processes": "64",
         "memory": "1G", "file_size": "8M"},
    )  # fmt: skip
    script = (
        "dd if=/dev/zero of=/tmp/fill bs=1M count=16 2>/dev/null; echo tmp $(( $(stat -c %s /tmp/fill) >> 20 ))M;"
        "dd if=/dev/zero of=$JOB_OUTPUT_DIR/big bs=1M count=16 2>/dev/null; echo file $(( $(stat -c %s $JOB_OUTPUT_DIR/big) >> 20 ))M;"
        'exec python3 -c "' + FORKS + '"'
    )
    b.submit(spec(1, script))
    wait(b, "1", {JobStatus.COMPLETED, JobStatus.FAILED}, timeout=60)
    lines = dict(line.split(" ", 1) for line in b.read("1", "stdout").decode().splitlines())
    assert lines["tmp"] == "4M"  # the tmpfs is full at its size
    assert lines["file"] == "8M"  # RLIMIT_FSIZE
    assert lines["limits"] == f"64 {1 << 30}"
    assert 0 < int(lines["forked"]) < 64  # RLIMIT_NPROC (the user's other processes count too)
    b.cancel("1")


def test_resource_limits_are_checked_in_the_ini(tmp_path):
    from ijpweb.batch.local import from_settings
    from ijpweb.batch.sandbox import Sandbox

    with pytest.raises(ValueError, match=r"ijp\.batch\.local\.tmp_size: a size in bytes .* not '1X'"):
        from_settings("local", {"dir": str(tmp_path / "a"), "tmp_size": "1X"})
    with pytest.raises(
        ValueError, match=r"ijp\.batch\.local\.processes: a positive whole number, or none; not '2G'"
    ):
        from_settings("local", {"dir": str(tmp_path / "b"), "processes": "2G"})
    unlimited = from_settings("local", {"dir": str(tmp_path / "c"), "tmp_size": "none", "processes": ""})
    assert unlimited.sandbox["tmp_size"] is None and "processes" not in unlimited.sandbox["limits"]
    default = from_settings("local", {"dir": str(tmp_path / "d")})
    assert default.sandbox["tmp_size"] == Sandbox().tmp_size == 1 << 30
    assert default.sandbox["limits"] == {"processes": 4096}

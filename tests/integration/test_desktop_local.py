"""Issue 14, points 1, 3 and 7 on the local backend, with the real programs: an interactive
job's session (bubblewrap, Xvfb, x11vnc, the supervisor ijpweb/batch/session.py) starts,
says where its VNC server listens, answers RFB with VNC authentication only, takes its own
password and no other, and ends (End session, the program's exit, the time limit) leaving
no process behind; a VNC server that cannot listen fails the job with the reason within
the ready timeout; max_interactive refuses; a restarted backend still reports the session;
and carol, in her own sandbox with the network, reaches neither bob's X display nor his
password."""

import contextlib
import json
import os
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from ijpweb.batch import BatchError, JobSpec
from ijpweb.batch.local import LocalBackend
from ijpweb.batch.runner import BWRAP, password_pipe
from ijpweb.batch.sandbox import Sandbox
from ijpweb.states import JobStatus

MISSING = [p for p in ("Xvfb", "x11vnc", "xdpyinfo") if shutil.which(p) is None]
pytestmark = [
    pytest.mark.once,  # the backend and its processes only: no database under test
    pytest.mark.skipif(
        bool(MISSING),
        reason=f"not installed: {', '.join(MISSING)} (Debian: apt-get install xvfb x11vnc x11-utils)",
    ),
    pytest.mark.skipif(
        not os.access(BWRAP, os.X_OK),
        reason=f"bubblewrap is not installed ({BWRAP}): apt-get install bubblewrap",
    ),
]
BOB_SESSION = "bob-session-5e8d2c41"
CAROL_SESSION = "carol-session-9a1b7f03"
ENDED = {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}
# the program: checks that it has a display, then stays until its session ends
SHOWS = "xdpyinfo >/dev/null && echo display-ok:$DISPLAY; exec sleep 600"


def make_backend(root: Path, kind: str = "bwrap", **kw) -> LocalBackend:
    return LocalBackend(
        "local", root, path=[str(Path(sys.executable).parent)], sandbox=Sandbox(kind=kind), **kw
    )


@pytest.fixture
def backend(tmp_path):
    b = make_backend(tmp_path / "jobs")
    yield b
    for d in b.root.glob("[0-9]*"):
        with contextlib.suppress(BatchError):
            b.cancel(d.name)


def desktop_job(job_id, script=SHOWS, owner="db/bob", session=BOB_SESSION, **desktop) -> JobSpec:
    return JobSpec(
        job_id, owner, "/bin/sh", ("-c", script, "job"), {"IJP_SESSION_ID": session}, interactive=True,
        desktop={"time_limit": 600, "geometry": "800x600", "ready_timeout": 30, **desktop},
    )  # fmt: skip


def wait(backend, job_id, until, timeout=90):
    """``job_id``'s state (the backend's id: local or SLURM) once ``until`` holds for it."""
    deadline = time.monotonic() + timeout
    while not until(state := backend.states([job_id])[job_id]):
        assert time.monotonic() < deadline, f"job {job_id} is {state}"
        time.sleep(0.1)
    return state


def ready(backend, job_id, timeout=90):
    state = wait(backend, job_id, lambda s: s.desktop is not None or s.status in ENDED, timeout)
    assert state.status == JobStatus.RUNNING and state.desktop is not None, state
    return state


def ended(backend, job_id, timeout=90):
    return wait(backend, job_id, lambda s: s.status in ENDED, timeout)


def recv(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    return data


def rfb(host: str, port: int, password: str | None = None) -> dict:
    """The RFB opening as a viewer makes it: the banner, the security types offered and,
    with ``password``, the VNC authentication's result and (when it succeeded) the
    framebuffer's size from ServerInit."""
    from ijpweb.desktop.rfb import vnc_response

    out = {}
    with socket.create_connection((host, port), timeout=10) as s:
        out["banner"] = recv(s, 12)
        s.sendall(b"RFB 003.008\n")
        out["types"] = list(recv(s, recv(s, 1)[0]))
        if password is None:
            return out
        s.sendall(bytes([2]))
        s.sendall(vnc_response(password, recv(s, 16)))
        out["result"] = int.from_bytes(recv(s, 4), "big")
        if out["result"] == 0:
            s.sendall(b"\x01")  # ClientInit, shared
            init = recv(s, 4)
            out["size"] = (int.from_bytes(init[:2], "big"), int.from_bytes(init[2:], "big"))
    return out


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def processes() -> dict[int, tuple[str, bytes, bytes, str]]:
    """Every process: (start time, argv, environment, its PID namespace)."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _read(f"/proc/{entry}/stat").decode(errors="replace")
        if not stat or stat[stat.rindex(")") + 2 :].split()[0] == "Z":
            continue
        try:
            ns = os.readlink(f"/proc/{entry}/ns/pid")
        except OSError:
            ns = ""
        out[int(entry)] = (
            stat[stat.rindex(")") + 2 :].split()[19],
            _read(f"/proc/{entry}/cmdline"),
            _read(f"/proc/{entry}/environ"),
            ns,
        )
    return out


def session_processes(jobdir: Path, job_id: str) -> dict[int, str]:
    """The processes of a job's session (pid: start time): its launcher's bubblewrap (by the
    work directory it binds), everything in its PID namespace, and anything whose argv or
    environment names the job's directory (the supervisor's --dir, the program's JOB_WORK_DIR;
    not its id: other tests run jobs with the same ids)."""
    procs = processes()
    work = str(jobdir / "work").encode()
    bwraps = {p for p, (_, argv, _, _) in procs.items() if argv.startswith(BWRAP.encode()) and work in argv}
    ours = os.readlink("/proc/self/ns/pid")
    namespaces = set()
    for pid in bwraps:
        for child in _read(f"/proc/{pid}/task/{pid}/children").split():
            ns = procs.get(int(child), ("", b"", b"", ""))[3]
            if ns and ns != ours:
                namespaces.add(ns)
    marks = (str(jobdir / "desktop").encode(), f"JOB_WORK_DIR={jobdir / 'work'}\0".encode())
    return {
        p: began
        for p, (began, argv, env, ns) in procs.items()
        if p in bwraps or ns in namespaces or any(m in argv or m in env for m in marks)
    }


def gone(pids: dict[int, str], timeout: float = 10.0) -> dict[int, str]:
    """Of ``pids`` (pid: start time), those still running after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        procs = processes()
        left = {p: b for p, b in pids.items() if p in procs and procs[p][0] == b}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def names_of(pids) -> list[bytes]:
    return [_read(f"/proc/{p}/cmdline").split(b"\0")[0] for p in pids]


def test_a_session_starts_answers_vnc_and_ends_with_nothing_left(backend, tmp_path):
    backend.submit(desktop_job(1))
    state = ready(backend, "1")
    d = backend.root / "1"
    info = state.desktop
    assert info.host == "127.0.0.1" and 0 < info.port < 65536
    assert info.ready_at is not None and info.ends_at is not None
    assert 590 <= (info.ends_at - info.ready_at).total_seconds() <= 601
    record = json.loads((d / "desktop" / "state.json").read_text())
    assert record["geometry"] == "800x600" and record["port"] == info.port

    # the VNC server: RFB 3.8, VNC authentication only (never None), its password and no other
    opening = rfb(info.host, info.port)
    assert opening["banner"] == b"RFB 003.008\n" and opening["types"] == [2]
    password = backend.desktop_password("1")
    assert len(password) == 8 and password.isalnum()
    assert rfb(info.host, info.port, password)["result"] == 0
    assert rfb(info.host, info.port, password)["size"] == (800, 600)  # the geometry asked for
    wrong = "x" + password[1:] if password[0] != "x" else "y" + password[1:]
    assert rfb(info.host, info.port, wrong)["result"] != 0
    assert (d / "desktop.secret").stat().st_mode & 0o777 == 0o600

    # the program got its display (and the session's environment, as batch jobs do)
    wait(backend, "1", lambda s: b"display-ok" in backend.read("1", "stdout"))
    assert backend.read("1", "stdout").decode().strip().startswith("display-ok::")

    # neither the password nor the catalog session in any process's argv, nor in the
    # records the job wrote; the password is in no process's environment, bubblewrap's
    # included (the supervisor reads it from a pipe the launcher wrote and closed)
    procs = processes()
    assert all(
        password.encode() not in argv and BOB_SESSION.encode() not in argv for _, argv, _, _ in procs.values()
    )
    assert [p for p, (_, _, env, _) in procs.items() if password.encode() in env] == []
    for f in (d / "desktop").iterdir():
        assert password not in f.read_text() and BOB_SESSION not in f.read_text()

    # a restarted portal (a new backend on the same directory) still has the session
    again = make_backend(backend.root)
    assert again.states(["1"])["1"].desktop == info
    assert again.desktop_password("1") == password

    # End session: COMPLETED with the reason, and nothing of the session left
    members = session_processes(d, "1")
    assert len(members) >= 4, names_of(members)  # bwrap, its init, the supervisor, Xvfb, x11vnc, sleep
    assert {os.path.basename(n) for n in names_of(members)} >= {b"Xvfb", b"x11vnc", b"sleep"}
    assert again.end_sessions(["1"], "ended by the user") == {"1": None}
    state = backend.states(["1"])["1"]
    assert (state.status, state.reason, state.desktop) == (JobStatus.COMPLETED, "ended by the user", None)
    assert gone(members) == {}
    assert session_processes(d, "1") == {}
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((info.host, info.port), timeout=5)


PORTAL = """
import sys
import threading
from ijpweb.batch import JobSpec
from ijpweb.batch.local import LocalBackend
from ijpweb.batch.sandbox import Sandbox
b = LocalBackend("local", sys.argv[1], path=[sys.argv[2]], sandbox=Sandbox())
b.submit(JobSpec(8, "db/bob", "/bin/sh", ("-c", "exec sleep 600", "job"), {"IJP_SESSION_ID": "s"},
                 interactive=True, desktop={"time_limit": 600, "geometry": "800x600", "ready_timeout": 30}))
print(b.states(["8"])["8"].status.name)
"""


def test_a_session_outlives_the_portal_process_that_started_it(backend):
    import subprocess

    # a portal process submits the job and exits (as a restart ends it)
    out = subprocess.run(
        [sys.executable, "-c", PORTAL, str(backend.root), str(Path(sys.executable).parent)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert out.stdout.strip() in ("QUEUED", "RUNNING"), out
    # the next one finds it running, its desktop ready, and can end it
    info = ready(backend, "8").desktop
    assert rfb(info.host, info.port, backend.desktop_password("8"))["result"] == 0
    members = session_processes(backend.root / "8", "8")
    assert backend.end_sessions(["8"], "ended by the user") == {"8": None}
    assert backend.states(["8"])["8"].reason == "ended by the user"
    assert gone(members) == {}


def test_orphans_are_reaped_while_the_session_runs(backend):
    """What the program leaves behind (a shell's background jobs whose parent has gone)
    becomes the supervisor's, which collects their ends: no zombies pile up."""
    script = "for i in 1 2 3 4 5 6 7 8 9 10; do (sleep 0.1 &) ; done; echo spawned; exec sleep 600"
    backend.submit(desktop_job(9, script))
    ready(backend, "9")
    wait(backend, "9", lambda s: b"spawned" in backend.read("9", "stdout"))
    d = str(backend.root / "9" / "desktop").encode()
    (sup,) = [
        p
        for p, (_, argv, _, _) in processes().items()
        if b"session.py" in argv and d in argv and not argv.startswith((BWRAP.encode(), b"/usr/bin/setpriv"))
    ]

    def zombies():
        out = []
        for entry in os.listdir("/proc"):
            stat = _read(f"/proc/{entry}/stat").decode(errors="replace") if entry.isdigit() else ""
            fields = stat[stat.rindex(")") + 2 :].split() if stat else []
            if fields and fields[0] == "Z" and int(fields[1]) == sup:
                out.append(int(entry))
        return out

    time.sleep(1.5)  # the orphans' sleeps are over
    assert wait(backend, "9", lambda s: not zombies(), timeout=10).status == JobStatus.RUNNING


def test_the_program_exiting_ends_the_session(backend):
    backend.submit(desktop_job(2, "xdpyinfo >/dev/null || exit 9; sleep 1; exit 4"))
    state = ended(backend, "2")
    assert (state.status, state.reason) == (JobStatus.COMPLETED, "the program exited (exit code 4)")
    assert session_processes(backend.root / "2", "2") == {}
    backend.submit(desktop_job(3, "exit 0"))
    state = ended(backend, "3")
    assert (state.status, state.reason) == (JobStatus.COMPLETED, "the program exited (exit code 0)")


def test_an_x_client_without_its_display_says_why(backend):
    # a program that cannot open the display (here: another one) ends the session with its words
    backend.submit(desktop_job(4, "DISPLAY=:55 exec xdpyinfo"))
    state = ended(backend, "4")
    assert state.status == JobStatus.COMPLETED
    assert state.reason.startswith("the program exited (exit code 1): ") and "display" in state.reason


def test_the_time_limit_ends_the_session(backend):
    backend.submit(desktop_job(5, SHOWS, time_limit=3))
    members = None
    state = wait(backend, "5", lambda s: s.desktop is not None or s.status in ENDED)
    members = session_processes(backend.root / "5", "5")
    state = ended(backend, "5")
    assert (state.status, state.reason) == (JobStatus.COMPLETED, "the time limit (0:00:03) was reached")
    assert gone(members) == {}


def test_a_vnc_server_that_cannot_listen_fails_the_job_in_time(tmp_path):
    b = make_backend(tmp_path / "jobs", desktop_bind="203.0.113.77")  # TEST-NET-3: not this host's
    b.submit(desktop_job(6, ready_timeout=20))
    t = time.monotonic()
    state = ended(b, "6", timeout=30)
    assert time.monotonic() - t < 20
    assert state.status == JobStatus.FAILED
    assert state.reason.startswith(
        "the desktop did not start: the VNC server cannot listen on 203.0.113.77: "
    )
    assert session_processes(b.root / "6", "6") == {}


def this_hosts_address() -> str | None:
    """This host's own IPv4 address other than the loopback (the route to a public address's), if any."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("198.51.100.1", 9))  # (UDP: nothing is sent)
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address  # noqa: S104


@pytest.mark.parametrize("bind", ["localhost", "the host's address"])
def test_the_vnc_server_listens_on_the_bind_address_only(tmp_path, bind):
    if bind != "localhost":
        bind = this_hosts_address()
        if bind is None:
            pytest.skip("this host has no IPv4 address besides the loopback")
    b = make_backend(tmp_path / "jobs", desktop_bind=bind)
    try:
        b.submit(desktop_job(7))
        info = ready(b, "7").desktop
        assert info.host == ("127.0.0.1" if bind == "localhost" else bind)
        assert rfb(info.host, info.port, b.desktop_password("7"))["result"] == 0
        if bind != "localhost":  # only there: not on the loopback
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", info.port), timeout=5)
    finally:
        b.cancel_many(["7"])


def test_max_interactive_refuses_and_sessions_take_no_batch_slot(tmp_path):
    b = make_backend(tmp_path / "jobs", max_running=1, max_interactive=1)
    try:
        b.submit(JobSpec(10, "db/bob", "/bin/sh", ("-c", "exec sleep 600", "job")))  # the one batch slot
        wait(b, "10", lambda s: s.status == JobStatus.RUNNING)
        b.submit(desktop_job(11))  # starts all the same: outside the queue
        ready(b, "11")
        with pytest.raises(BatchError, match=r"at most 1 desktop session at once .*max_interactive.*end one"):
            b.submit(desktop_job(12, owner="db/carol", session=CAROL_SESSION))
        assert not (b.root / "12").exists()
        b.end_sessions(["11"], "ended by the user")
        b.submit(desktop_job(12, owner="db/carol", session=CAROL_SESSION))
        ready(b, "12")
    finally:
        b.cancel_many(["10", "11", "12"])


def test_max_interactive_holds_when_submissions_race(tmp_path):
    """Four submissions at once (as several portal processes' submitters) for two places:
    two start, two are refused; none is queued to start later."""
    from concurrent.futures import ThreadPoolExecutor

    b = make_backend(tmp_path / "jobs", max_interactive=2)
    barrier = threading.Barrier(4)

    def submit(job_id):
        barrier.wait()
        try:
            return b.submit(desktop_job(job_id))
        except BatchError as e:
            return e

    try:
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(submit, [50, 51, 52, 53]))
        started = [a for a in answers if isinstance(a, str)]
        assert len(started) == 2, answers
        assert all("at most 2 desktop sessions" in str(a) for a in answers if not isinstance(a, str))
        for job_id in started:
            ready(b, job_id)
        assert sorted(p.name for p in b.root.glob("[0-9]*")) == sorted(started)
    finally:
        b.cancel_many(["50", "51", "52", "53"])


def test_end_sessions_refuses_a_batch_job_and_cancel_stays_cancelled(backend):
    backend.submit(JobSpec(20, "db/bob", "/bin/sh", ("-c", "exec sleep 600", "job")))
    wait(backend, "20", lambda s: s.status == JobStatus.RUNNING)
    answers = backend.end_sessions(["20"], "ended by the user")
    assert "batch job" in str(answers["20"])
    assert backend.states(["20"])["20"].status == JobStatus.RUNNING
    with pytest.raises(BatchError, match="has no desktop"):
        backend.desktop_password("20")
    backend.submit(desktop_job(21))
    ready(backend, "21")
    backend.cancel("21")
    assert backend.states(["21"])["21"].status == JobStatus.CANCELLED


def test_unsandboxed_sessions_end_whole(tmp_path):
    """sandbox = none: no PID namespace; the supervisor, as the subreaper of everything the
    program starts, still ends it all, even a process that left the program's session."""
    b = make_backend(tmp_path / "jobs", kind="none")
    b.submit(desktop_job(30, "setsid sleep 600 & xdpyinfo >/dev/null && echo display-ok; exec sleep 600"))
    info = ready(b, "30").desktop
    wait(b, "30", lambda s: b"display-ok" in b.read("30", "stdout"))
    password = b.desktop_password("30")
    assert rfb(info.host, info.port, password)["result"] == 0
    members = session_processes(b.root / "30", "30")
    # no bubblewrap here: the supervisor read the password from its pipe, and nothing holds it
    mark = f"JOB_WORK_DIR={b.root / '30' / 'work'}\0".encode()
    with_job = [p for p, (_, _, env, _) in processes().items() if mark in env]
    assert (
        len(with_job) >= 2 and [p for p in with_job if password.encode() in _read(f"/proc/{p}/environ")] == []
    )
    assert sum(os.path.basename(n) == b"sleep" for n in names_of(members)) == 2
    b.end_sessions(["30"], "no viewer for 30 minutes")
    state = b.states(["30"])["30"]
    assert (state.status, state.reason) == (JobStatus.COMPLETED, "no viewer for 30 minutes")
    assert gone(members) == {}
    assert session_processes(b.root / "30", "30") == {}


CAROL = r"""
import json, os, socket, sys
bob = json.loads(sys.argv[1])
out = {}
n = bob["display"]
for name, family, address in (
    ("abstract X socket", socket.AF_UNIX, f"\0/tmp/.X11-unix/X{n}"),
    ("X over TCP", socket.AF_INET, ("127.0.0.1", 6000 + n)),
    ("X over TCP :0", socket.AF_INET, ("127.0.0.1", 6000)),
):
    if family == socket.AF_INET and address[1] > 65535:
        out[name] = "refused: no TCP port is 6000 + a display number this large"
        continue
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(address)
        out[name] = "connected"
    except OSError as e:
        out[name] = f"refused: {e}"
    s.close()
for path in bob["files"]:
    try:
        with open(path) as fh:
            out[path] = "read: " + fh.read(100)
    except OSError as e:
        out[path] = f"refused: {e}"
# bob's VNC server: reachable (the network is kept), and it asks for a password
s = socket.create_connection(("127.0.0.1", bob["port"]), timeout=5)
banner = s.recv(12)
s.sendall(b"RFB 003.008\n")
n = s.recv(1)[0]
out["vnc"] = [banner.decode(), list(s.recv(n))]
s.close()
# and her own desktop record, forged to send the portal's proxy to bob's server
if os.path.isdir(bob["own"]):
    import time
    while not os.path.exists(os.path.join(bob["own"], "state.json")):  # after the supervisor's own
        time.sleep(0.05)
    with open(os.path.join(bob["own"], "state.json.tmp"), "w") as fh:
        json.dump({"host": "127.0.0.1", "port": bob["port"], "ready_at": None}, fh)
    os.replace(os.path.join(bob["own"], "state.json.tmp"), os.path.join(bob["own"], "state.json"))
print(json.dumps(out))
sys.stdout.flush()
os.execv("/bin/sleep", ["sleep", "600"])
"""


def test_carol_reaches_neither_bobs_display_nor_his_password(backend):
    backend.submit(desktop_job(40))
    info = ready(backend, "40").desktop
    bob = backend.root / "40"
    files = [str(bob / "desktop.secret"), str(bob / "desktop" / "state.json"), "/tmp/.X11-unix/X0"]
    own = backend.root / "41" / "desktop"
    display = json.loads((bob / "desktop" / "state.json").read_text())["display"]
    arg = json.dumps({"files": files, "port": info.port, "own": str(own), "display": display})
    carol = JobSpec(41, "db/carol", sys.executable, ("-I", "-c", CAROL, arg), {"IJP_SESSION_ID": CAROL_SESSION},
                    interactive=True, desktop={"time_limit": 600, "geometry": "800x600", "ready_timeout": 30})  # fmt: skip
    backend.submit(carol)
    wait(backend, "41", lambda s: backend.read("41", "stdout").strip() or s.status in ENDED)
    report = json.loads(backend.read("41", "stdout"))
    assert report["abstract X socket"].startswith("refused"), report
    assert report["X over TCP"].startswith("refused") and report["X over TCP :0"].startswith("refused"), (
        report
    )
    assert report[files[0]].startswith("refused") and report[files[1]].startswith("refused"), report
    # /tmp/.X11-unix/X0 in her sandbox is her own display's socket (a socket: not readable as a file)
    assert report[files[2]].startswith("refused"), report
    assert report["vnc"] == ["RFB 003.008\n", [2]]
    # her forged record is taken as hers (the shape is fine), but her password opens nothing of bob's
    forged = wait(backend, "41", lambda s: s.desktop is not None and s.desktop.port == info.port).desktop
    assert rfb(forged.host, forged.port, backend.desktop_password("41"))["result"] != 0
    assert rfb(info.host, info.port, backend.desktop_password("40"))["result"] == 0


SUPERVISOR = Path(__file__).resolve().parents[2] / "ijpweb" / "batch" / "session.py"
# the supervisor run as the launcher runs it, but finding Xvfb and x11vnc in ``bin`` only
WITH_PROGRAMS = (
    "import sys; sys.path.insert(0, {folder!r}); import session; session.X_DIRS = ({bin!r},); "
    "sys.exit(session.main(['session.py', *sys.argv[1:]]))"
)


def supervise(
    tmp_path: Path, programs: dict[str, str], ready_timeout: int, time_limit: int = 600
) -> tuple[int, dict, float]:
    """Run the supervisor with these programs as its Xvfb/x11vnc (name: a path to link, or
    a script's text); its exit code, its ended.json and how long it took."""
    import subprocess

    bin_, desktop = tmp_path / "bin", tmp_path / "desktop"
    bin_.mkdir()
    desktop.mkdir()
    for name, what in programs.items():
        if what.startswith("/"):
            (bin_ / name).symlink_to(what)
        else:
            (bin_ / name).write_text(what)
            (bin_ / name).chmod(0o755)
    code = WITH_PROGRAMS.format(folder=str(SUPERVISOR.parent), bin=str(bin_))
    password = password_pipe("abcd1234")
    argv = [sys.executable, "-I", "-S", "-c", code, "--dir", str(desktop), "--geometry", "640x480",
            "--time-limit", str(time_limit), "--ready-timeout", str(ready_timeout), "--bind", "127.0.0.1",
            "--password-fd", str(password), "--", "/bin/sh", "-c", "exec sleep 600"]  # fmt: skip
    env = {"PATH": os.defpath, "IJP_JOB_ID": "supervised-" + tmp_path.name}
    t = time.monotonic()
    try:
        proc = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, timeout=60, check=False,
                              pass_fds=(password,))  # fmt: skip
    finally:
        os.close(password)
    return proc.returncode, json.loads((desktop / "ended.json").read_text()), time.monotonic() - t


def test_a_vnc_server_that_never_answers_fails_within_the_ready_timeout(tmp_path):
    silent = "#!/bin/sh\necho 'fake x11vnc: listening nowhere' >&2\nexec sleep 6017\n"
    code, record, took = supervise(
        tmp_path, {"Xvfb": shutil.which("Xvfb"), "x11vnc": silent}, ready_timeout=2
    )
    assert code == 3
    assert (
        record["failed"] == "the VNC server did not answer within 2 s: x11vnc: fake x11vnc: listening nowhere"
    )
    assert not (tmp_path / "desktop" / "state.json").exists()
    # it gave up, not waited for ever: far less than the fake server's 6017 s sleep (not a
    # speed bound: the reason above says it was the 2 s timeout that ended it)
    assert took < 120
    # nothing left: the fake server, Xvfb, the program
    mine = f"supervised-{tmp_path.name}".encode()
    assert [
        p for p, (_, argv, env, _) in processes().items() if mine in env or argv == b"sleep\x006017\x00"
    ] == []


def test_missing_x_programs_are_named(tmp_path):
    code, record, _ = supervise(tmp_path, {}, ready_timeout=5)
    assert (code, record["failed"]) == (3, "Xvfb is not installed (Debian: apt-get install xvfb)")


TRAP = r"""
import os, select, socket, sys
# carol's job (the network kept) takes the X servers' abstract socket names first
traps = {}
for n in range(12):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(f"\0/tmp/.X11-unix/X{n}")
        s.listen(8)
        traps[s] = n
    except OSError:
        s.close()
print("trapped", *sorted(traps.values()), flush=True)
while True:
    ready, _, _ = select.select(list(traps), [], [], 1)
    for s in ready:
        conn, _ = s.accept()
        print("caught a client on", traps[s], flush=True)
        conn.close()
"""


def test_carols_trap_on_the_x_socket_names_catches_nothing_of_bob(backend):
    """The attack the abstract socket namespace allows: carol listens on @/tmp/.X11-unix/XN
    before bob's session starts, hoping his program and his VNC server connect to her
    instead of to his own display. Bob's supervisor takes a display whose name is free and
    holds it; his clients reach his own server."""
    trap = JobSpec(60, "db/carol", sys.executable, ("-I", "-c", TRAP), {"IJP_SESSION_ID": CAROL_SESSION},
                   network=True)  # fmt: skip
    backend.submit(trap)
    wait(backend, "60", lambda s: b"trapped" in backend.read("60", "stdout"))
    trapped = backend.read("60", "stdout").decode().split("\n")[0].split()[1:]
    assert trapped, "carol trapped no name"
    # bob's program says which server it reached: the size of its screen
    backend.submit(desktop_job(61, "xdpyinfo | grep dimensions; echo display:$DISPLAY; exec sleep 600"))
    info = ready(backend, "61").desktop
    wait(backend, "61", lambda s: b"display:" in backend.read("61", "stdout"))
    display = json.loads((backend.root / "61" / "desktop" / "state.json").read_text())["display"]
    assert str(display) not in trapped
    out = backend.read("61", "stdout").decode()
    assert "dimensions:    800x600 pixels" in out and f"display::{display}" in out, out
    assert rfb(info.host, info.port, backend.desktop_password("61"))["size"] == (800, 600)
    assert b"caught" not in backend.read("60", "stdout"), backend.read("60", "stdout")


def test_a_port_taken_meanwhile_is_tried_again(tmp_path):
    """The free port the supervisor found is taken before x11vnc binds it (another session
    started at the same moment): x11vnc says so and exits; the supervisor takes another."""
    marker = tmp_path / "tried"
    racing = (
        "#!/bin/sh\n"
        f"if [ ! -e {marker} ]; then touch {marker}; "
        "echo 'ListenOnTCPPort: Address already in use' >&2; exit 1; fi\n"
        f'exec {shutil.which("x11vnc")} "$@"\n'
    )
    code, record, _ = supervise(
        tmp_path, {"Xvfb": shutil.which("Xvfb"), "x11vnc": racing}, ready_timeout=20, time_limit=3
    )
    assert marker.exists()  # the first try failed as a race does
    state = json.loads((tmp_path / "desktop" / "state.json").read_text())
    assert state["host"] == "127.0.0.1" and 0 < state["port"] < 65536
    assert code == 0 and record["reason"] == "the time limit (0:00:03) was reached"


# carol's findings F1 and F7: her program stops its supervisor (SIGSTOP to its parent), the
# only clock inside the sandbox; the launcher, outside, keeps the limits all the same
AFTER_READY = 'while [ ! -e "$D/state.json" ]; do sleep 0.1; done; kill -STOP $PPID; exec sleep 600'


def test_a_stopped_supervisor_does_not_stop_the_time_limit(backend):
    d = backend.root / "71" / "desktop"
    backend.submit(desktop_job(71, f"D={d}; " + AFTER_READY, time_limit=3))
    ready(backend, "71")
    members = session_processes(backend.root / "71", "71")
    t = time.monotonic()
    state = ended(backend, "71", timeout=30)
    assert time.monotonic() - t < 3 + 5 + 5 + 3  # the limit, the launcher's slack, the grace
    assert (state.status, state.reason) == (JobStatus.COMPLETED, "the time limit (0:00:03) was reached")
    assert gone(members) == {}


def test_a_stopped_supervisor_does_not_stop_the_ready_timeout(backend):
    backend.submit(desktop_job(72, "kill -STOP $PPID; exec sleep 600", ready_timeout=3))
    state = ended(backend, "72", timeout=30)
    assert (state.status, state.reason) == (JobStatus.FAILED, "the desktop did not start within 3 s")
    assert session_processes(backend.root / "72", "72") == {}


def test_unsandboxed_end_leaves_nothing_even_with_the_supervisor_stopped(tmp_path):
    b = make_backend(tmp_path / "jobs", kind="none")
    marker = f"carol-escapee-{os.getpid()}"
    d = b.root / "95" / "desktop"
    script = (
        f'while [ ! -e "{d}/state.json" ]; do sleep 0.1; done; '
        f'setsid bash -c "exec -a {marker} sleep 1000" </dev/null >/dev/null 2>&1 & '
        "sleep 0.5; kill -STOP $PPID; echo stopped-it; exec sleep 600"
    )
    b.submit(desktop_job(95, script))
    ready(b, "95")
    wait(b, "95", lambda s: b"stopped-it" in b.read("95", "stdout"))
    assert any(marker.encode() in argv for _, argv, _, _ in processes().values())
    assert b.end_sessions(["95"], "ended by the user") == {"95": None}
    assert ended(b, "95").status == JobStatus.COMPLETED
    assert [p for p, (_, argv, _, _) in processes().items() if marker.encode() in argv] == []


HOLD = r"""
import socket, time
held = []
for n in range(300):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind("\0/tmp/.X11-unix/X%d" % n)
        held.append(s)
    except OSError:
        s.close()
print("held", len(held), flush=True)
time.sleep(600)
"""


def test_holding_the_low_display_names_blocks_no_one(backend):
    """carol's F8: her job (any with the host's network) binds the abstract names of the
    low displays; bob's supervisor draws its display at random from :1000 to :999999999,
    so she can neither hold every name (a billion sockets) nor guess his."""
    carol = JobSpec(62, "db/carol", sys.executable, ("-I", "-c", HOLD), {"IJP_SESSION_ID": CAROL_SESSION},
                    network=True)  # fmt: skip
    backend.submit(carol)
    wait(backend, "62", lambda s: b"held" in backend.read("62", "stdout") or s.status in ENDED)
    assert int(backend.read("62", "stdout").split()[1]) >= 250
    backend.submit(desktop_job(63, "xdpyinfo | grep dimensions; exec sleep 600"))
    info = ready(backend, "63").desktop
    display = json.loads((backend.root / "63" / "desktop" / "state.json").read_text())["display"]
    assert 1000 <= display <= 999_999_999
    assert rfb(info.host, info.port, backend.desktop_password("63"))["size"] == (800, 600)
    wait(backend, "63", lambda s: b"800x600" in backend.read("63", "stdout"))


IMPOSTOR = (
    "#!/bin/sh\n"
    "# another process takes the port the supervisor chose and answers with an RFB banner\n"
    'port=""; prev=""; for a in "$@"; do [ "$prev" = "-rfbport" ] && port=$a; prev=$a; done\n'
    f'{sys.executable} -I -c "import socket,sys\n'
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(8)\n"
    "while True:\n"
    '    c, _ = s.accept(); c.sendall(b\'RFB 003.008\\\\n\'); c.close()" "$port" &\n'
    "exec sleep 6019\n"
)


def test_an_impostor_on_the_vnc_port_is_not_taken_for_the_vnc_server(tmp_path):
    """Carol's note: the supervisor probes a free port and x11vnc binds it a moment later;
    a process of hers that binds it first and answers with a banner would be recorded as
    bob's VNC server. Only a listener that is x11vnc's own socket counts."""
    code, record, _ = supervise(tmp_path, {"Xvfb": shutil.which("Xvfb"), "x11vnc": IMPOSTOR}, ready_timeout=3)
    assert not (tmp_path / "desktop" / "state.json").exists()
    assert code == 3 and record["failed"].startswith("the VNC server did not answer within 3 s")

"""Issue 10, point 1, as the hostile user: a job sees only its own world. A hostile job
type (tests/data/hostile, not a shipped one) is planned and handed over as the portal
does it, and runs on the local backend in its bubblewrap sandbox next to bob's jobs and a
live portal; it tries to read, list and write what carol must not, to reach the network,
and to leave the sandbox."""

import contextlib
import hashlib
import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest

from ijpweb import planning
from ijpweb.batch import BatchError, JobSpec
from ijpweb.batch.local import LocalBackend
from ijpweb.batch.runner import BWRAP
from ijpweb.batch.submitter import job_spec
from ijpweb.jobtypes import JobTypes
from ijpweb.models import Job, Submission
from ijpweb.states import JobStatus

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = ROOT / "tests" / "data" / "hostile"
pytestmark = [
    pytest.mark.once,  # the live portal's own database
    pytest.mark.skipif(
        not os.access(BWRAP, os.X_OK),
        reason=f"bubblewrap is not installed ({BWRAP}): apt-get install bubblewrap",
    ),
]
BOB_SESSION = "bob-session-2f1c9a"
CAROL_SESSION = "carol-session-7d3e5b"


@pytest.fixture
def backend(tmp_path):
    b = LocalBackend(
        "local",
        tmp_path / "jobs",
        max_running=1,
        path=[str(HOSTILE / "scripts"), str(Path(sys.executable).parent)],
    )
    yield b
    for d in b.root.glob("[0-9]*"):
        with contextlib.suppress(BatchError):
            b.cancel(d.name)


def wait(backend, job_id, statuses, timeout=60):
    deadline = time.monotonic() + timeout
    while (state := backend.states([job_id])[job_id]).status not in statuses:
        assert time.monotonic() < deadline, f"job {job_id} is {state}"
        time.sleep(0.05)
    return state


def hand_over(backend, job_id: int, job_type: str, targets: dict, icat_url: str) -> None:
    """carol's job as the portal makes it: planned from the job type and her option
    value, then the JobSpec of job_spec (the session only if the type asks for it)."""
    jt = JobTypes(HOSTILE).current().get(job_type)
    (jp,) = planning.plan(
        jt, planning.Selection(), {"Targets": json.dumps(targets)}, icat_url=icat_url, ids_url=icat_url
    ).jobs
    sub = Submission(
        executable=jt.executable, interactive=False, family=None, resources={},
        catalog_session=CAROL_SESSION if jt.session_id else None,
    )  # fmt: skip
    backend.submit(job_spec(Job(id=job_id, owner="db/carol", argv=list(jp.args), submission=sub)))


def bob(job_id, script):
    return JobSpec(job_id, "db/bob", "/bin/sh", ("-c", script, "job"), {planning.SESSION_ENV: BOB_SESSION})


@pytest.mark.parametrize(
    ("job_type", "catalog"),
    [("Hostile", False), ("Hostile with the catalog", True)],
    ids=["plain", "catalog"],
)
def test_a_hostile_job_reaches_nothing_of_bob_or_the_portal(live_server, backend, job_type, catalog):
    url, engine = live_server
    portal = Path(engine.url.database).parent  # the live portal's database and file store
    root = backend.root
    # bob: a job running (until its gate opens), another queued with its session on disk
    backend.submit(bob(1, "echo bob-was-here; while [ ! -e gate ]; do sleep 0.05; done"))
    wait(backend, "1", {JobStatus.RUNNING})
    planted = [root / "planted", root / "1" / "work" / "planted", portal / "planted", ROOT / "ijpweb" / "planted.py",
               HOSTILE / "scripts" / "planted", Path("/etc/planted"), Path("/usr/planted")]  # fmt: skip
    stored = next(p for p in (portal / "files").rglob("*") if p.is_file())
    targets = {
        "read": [str(p) for p in (
            root / "1" / "spec.json", root / "1" / "stdout", root / "1" / "started.json",
            root / "3" / "secret.json", root / "3" / "spec.json",
            root / "2" / "spec.json", root / "2" / "secret.json",  # its own, as the portal wrote them
            Path(engine.url.database), Path(f"{engine.url.database}-wal"), stored,
            ROOT / "testing.ini", ROOT / "development.ini",
            Path(f"/proc/{os.getpid()}/environ"), Path(f"/proc/{os.getpid()}/cmdline"),
            Path("/etc/shadow"), Path("/etc/gshadow"),
        )],
        "list": [str(p) for p in (root, root / "1", root / "3", portal, portal / "files", ROOT, ROOT / "var", "/root", "/home", "/proc")],
        "write": [str(p) for p in planted],
        "connect": ["127.0.0.1", int(url.rsplit(":", 1)[1])],
    }  # fmt: skip
    hand_over(backend, 2, job_type, targets, url)
    backend.submit(bob(3, "echo second"))
    assert (root / "3" / "secret.json").exists()  # queued behind job 2, its session on disk
    (root / "1" / "work" / "gate").touch()
    state = wait(backend, "2", {JobStatus.COMPLETED, JobStatus.FAILED})
    out, err = backend.read("2", "stdout").decode(), backend.read("2", "stderr").decode()
    assert state.status == JobStatus.COMPLETED, (state, err)
    report = json.loads(out)

    assert {p: r for p, r in report["read"].items() if not r.startswith("refused")} == {}
    listed = report["list"]
    assert listed[str(root)] == ["2"]  # its own directory (what the sandbox shows of it), no other
    for p in (root / "1", root / "3", portal, portal / "files", ROOT / "var", "/home"):
        assert str(listed[str(p)]).startswith("refused"), (p, listed[str(p)])
    assert "var" not in listed[str(ROOT)] and "testing.ini" not in listed[str(ROOT)]
    assert listed["/root"] == [".pyenv"] or str(listed["/root"]).startswith("refused")  # the Python only
    assert len([e for e in listed["/proc"] if e.isdigit()]) <= 3  # its own PID namespace
    for p in planted:
        assert not p.exists(), f"the job planted {p}"
    assert report["connect"] == "connected" if catalog else report["connect"].startswith("refused")
    assert all(r.startswith("refused") for r in report["escape"].values()), report["escape"]

    # what it may: its own directories, its session (if its type asks for it) in its environment
    assert all(r == "written" for r in report["own"].values()), report["own"]
    if os.geteuid() == 0:
        assert report["uid"] != 0
    for name, folder in (("JOB_WORK_DIR", "work"), ("JOB_OUTPUT_DIR", "output")):
        mine = root / "2" / folder / f"mine-{name}.txt"
        assert mine.read_text() == "planted by a hostile job\n"
        assert stat.S_IMODE(mine.stat().st_mode) == 0o600
    expected = hashlib.sha256(CAROL_SESSION.encode()).hexdigest() if catalog else None
    assert report["session"] == expected
    assert "IJP_AUTH_SECRET" not in report["env"] and "SLURM_CONF" not in report["env"]
    # and no file of its directory holds the session once it started
    assert not (root / "2" / "secret.json").exists()
    for f in (root / "2").rglob("*"):
        assert not f.is_file() or CAROL_SESSION.encode() not in f.read_bytes(), f


PORTAL_FILES = r"""
import json, os, stat, sys, time
from pathlib import Path
from pyramid.paster import get_appsettings
import sqlalchemy as sa
from ijpweb import main
from ijpweb.batch import JobSpec
from ijpweb.models import get_engine

settings = dict(get_appsettings(sys.argv[1]))
app = main({}, **settings)  # as pserve starts it
engine = get_engine(settings)
with engine.begin() as c:  # a write: SQLite's WAL appears
    c.execute(sa.text("CREATE TABLE modes_probe (x INTEGER)"))
    db = Path(engine.url.database)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm"))}
local = app.registry["ijp.backends"]["local"]
local.submit(JobSpec(1, "db/alice", "/bin/sh", ("-c", 'echo out; echo kept > "$JOB_OUTPUT_DIR/r"', "job")))
while local.states(["1"])["1"].status.live:
    time.sleep(0.05)
for p in [local.root, *local.root.rglob("*")]:
    modes[str(p.relative_to(local.root.parent))] = stat.S_IMODE(p.lstat().st_mode)
print(json.dumps(modes))
"""


def test_the_portal_keeps_its_files_to_itself(tmp_path):
    """From a umask of 022, ijp-admin and the portal create the database, its WAL, the
    file store, job directories and what jobs write for the portal's account alone."""
    import subprocess

    ini = tmp_path / "portal.ini"
    ini.write_text(
        (ROOT / "testing.ini")
        .read_text()
        .replace("%(here)s/migrations", str(ROOT / "migrations"))
        .replace("%(here)s/jobtypes", str(ROOT / "jobtypes"))
        .replace("%(here)s/datasettypes", str(ROOT / "datasettypes"))
    )
    (tmp_path / "var").mkdir(mode=0o755)  # as make migrate makes it
    env = {k: v for k, v in os.environ.items() if k != "IJP_TEST_DATABASE_URL"}
    for command in (["migrate"], ["load-demo"]):
        subprocess.run(
            [str(Path(sys.executable).parent / "ijp-admin"), str(ini), *command],
            check=True, capture_output=True, timeout=300, env=env, preexec_fn=lambda: os.umask(0o022),
        )  # fmt: skip
    res = subprocess.run(
        [sys.executable, "-c", PORTAL_FILES, str(ini)],
        check=True, capture_output=True, text=True, timeout=300, env=env, preexec_fn=lambda: os.umask(0o022),
    )  # fmt: skip
    modes = json.loads(res.stdout.strip().splitlines()[-1])
    assert modes["testing.sqlite"] == modes["testing.sqlite-wal"] == modes["testing.sqlite-shm"] == 0o600
    files = tmp_path / "var" / "testing-files"
    stored = [p for p in files.rglob("*")]
    assert stored and all(stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600) for p in stored)
    assert stat.S_IMODE(files.stat().st_mode) == 0o700
    jobs = {name: mode for name, mode in modes.items() if name.startswith("testing-jobs")}
    assert "testing-jobs/1/output/r" in jobs and "testing-jobs/1/stdout" in jobs
    wrong = {name: oct(mode) for name, mode in jobs.items() if mode not in (0o600, 0o700)}
    assert wrong == {}


# --- ijp-batchserver: its jobs are sandboxed the same way ---------------------------------

BATCH_INI = """[app:main]
use = egg:ijpweb#batchserver
icat_urls = {portal}
portals = db/ijp-portal
executables = date printenv
database = sqlite:///{tmp}/batch.sqlite
backend.type = local
backend.dir = {tmp}/jobs
backend.max_running = 2
backend.python = {python}
{extra}

[server:main]
use = egg:waitress#main
listen = 127.0.0.1:{port}
"""


def batch_server_ini(tmp: Path, portal: str, extra: str = "") -> tuple[Path, str]:
    from tests.integration.test_batchserver import free_port

    port = free_port()
    ini = tmp / "batchserver.ini"
    ini.write_text(BATCH_INI.format(portal=portal, tmp=tmp, python=sys.executable, extra=extra, port=port))
    return ini, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def batch_server(live_server, tmp_path_factory):
    """``ijp-batchserver INI`` with the default sandbox; yields (url, portal, engine, tmp, pid)."""
    from tests.integration.test_batchserver import running_batch_server

    portal, engine = live_server
    tmp = tmp_path_factory.mktemp("sandboxed-batchserver")
    ini, url = batch_server_ini(tmp, portal)
    with running_batch_server(engine, ini, url) as proc:
        yield url, portal, engine, tmp, proc.pid


def run_remote(base, sid, icat, executable, *parameters):
    """Submit as the original protocol's clients do; wait; return (status, stdout, stderr)."""
    from tests.integration.test_batchserver import call

    status, body = call(base, "POST", "submit", sid, icat, executable=executable, parameter=list(parameters))
    assert status == 200, body
    job = body["jobId"]
    deadline = time.monotonic() + 30
    while (word := call(base, "GET", f"status/{job}", sid, icat)[1]["status"]) not in (
        "Completed",
        "Cancelled",
    ):
        assert time.monotonic() < deadline, word
        time.sleep(0.1)
    out = call(base, "GET", f"output/{job}", sid, icat)[1].decode()
    err = call(base, "GET", f"error/{job}", sid, icat)[1].decode()
    return job, out, err


def test_date_f_through_the_batch_server_reads_nothing_of_others(batch_server):
    """The issue's attack: ``date -f FILE`` prints each line of FILE in its complaint."""
    from tests.integration.test_batchserver import login

    base, icat, engine, tmp, server_pid = batch_server
    bob, carol = login(engine, "bob"), login(engine, "carol")
    bobs, _, _ = run_remote(base, bob, icat, "printenv", "IJP_SESSION_ID")
    _, work, _ = run_remote(base, carol, icat, "printenv", "JOB_WORK_DIR")
    root = Path(work.strip()).parents[1]  # where the jobs live, as her job learns it
    assert root == tmp / "jobs"
    for target in (
        root / bobs / "spec.json", root / bobs / "stdout", tmp / "batch.sqlite", tmp / "batchserver.ini",
        Path(f"/proc/{server_pid}/environ"), Path("/etc/shadow"), Path("/etc/gshadow"),
    ):  # fmt: skip
        _, out, err = run_remote(base, carol, icat, "date", "-f", str(target))
        assert out == "" and err.count("\n") == 1, (target, out, err)
        assert "No such file or directory" in err or "Permission denied" in err, (target, err)
        assert bob not in err and "root:" not in err


def test_a_portals_job_without_a_users_session_gets_none(batch_server):
    from ijpweb.batch.remote import RemoteBackend
    from tests.integration.test_batchserver import PORTAL_PASSWORD

    base, icat, engine, tmp, _ = batch_server
    remote = RemoteBackend("remote", base, icat, "ijp-portal", PORTAL_PASSWORD)
    job = remote.submit(JobSpec(90_001, "db/carol", "printenv", ("IJP_SESSION_ID",)))
    deadline = time.monotonic() + 30
    while (state := remote.states([job])[job]).status.live:
        assert time.monotonic() < deadline, state
        time.sleep(0.1)
    # printenv finds no session: not the portal's own login
    assert (state.status, state.exit_code, remote.read(job, "stdout")) == (JobStatus.FAILED, 1, b"")


def test_a_batch_server_that_cannot_sandbox_refuses_to_start(live_server, tmp_path):
    import subprocess

    ini, _ = batch_server_ini(tmp_path, live_server[0], "backend.bwrap = /nonexistent/bwrap")
    res = subprocess.run(
        [str(Path(sys.executable).parent / "ijp-batchserver"), str(ini)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 1
    assert "backend.sandbox: jobs cannot be sandboxed here: /nonexistent/bwrap is not installed" in res.stderr
    assert "backend.sandbox = none" in res.stderr

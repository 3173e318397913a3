"""Issue 11, point 2: two portal processes on one PostgreSQL database.

Two real portal processes (pserve, separate OS processes, the scheduler enabled in both,
``ijp.deployment = production`` with one IJP_AUTH_SECRET) share a throw-away database. 300
jobs are submitted one per input through /api/v1 (ten submissions of a job type for 30 datasets, half
through each process: each lists the backends in its own order, so the first process's
go to the local backend and the second's to the SLURM test cluster), and the process
leading the harvest is killed (SIGKILL) while jobs are still being handed over. Then:
every job is in the database once and in its batch system once (its local job directory;
SLURM's queue and completion log by job name), the survivor takes the lead and harvests
every job to its end, nothing is left Submitting or half-written under ``.new/``, and the
logins made on the killed process work on the survivor.

PostgreSQL only (tests/run.sh runs the suite again on a throw-away cluster): on SQLite
there is one portal process.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from ijpweb.leaders import lock_key
from ijpweb.models import Job, get_engine
from ijpweb.states import JobStatus

from ..conftest import IDS_KEY, NO_SANDBOX, ROOT, free_port, load_demo, migrate
from ..functional.test_demo_jobs import datasets_of
from .test_crash import slurm_names

URL = os.environ.get("IJP_TEST_DATABASE_URL", "")
# several portal processes share one PostgreSQL database: the PostgreSQL pass only (on
# SQLite there is one process)
pytestmark = pytest.mark.postgresql
SUBMISSIONS = 10  # of 30 datasets each: 300 jobs
SECRET = "multiprocess-test-secret-0123456789abcdef"
ENDED = {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}


@pytest.fixture
def database():
    """A database of its own on the test server (the portals commit to it), dropped after."""
    name = f"ijp_multiprocess_{os.getpid()}"
    server = sa.create_engine(URL, isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
            c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.ProgrammingError as e:
        pytest.skip(f"the test role cannot create a database (CREATEDB, as tests/run.sh grants it): {e.orig}")
    url = sa.make_url(URL).set(database=name)
    yield url.render_as_string(hide_password=False)
    with server.connect() as c:
        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    server.dispose()


def portal_ini(tmp: Path, name: str, port: int, backends: str, slurm_conf: str) -> Path:
    """testing.ini as production runs it: the scheduler on, several backends, this port."""
    text = (ROOT / "testing.ini").read_text()
    replace = {
        "ijp.scheduler.enabled = false": "ijp.deployment = production\nijp.scheduler.enabled = true",
        "ijp.harvest.seconds = 2": "ijp.harvest.seconds = 0.5",
        "listen = 127.0.0.1:6544": f"listen = 127.0.0.1:{port}",
        "script_location = %(here)s/migrations": f"script_location = {ROOT / 'migrations'}",
        "ijp.jobtypes_dir = %(here)s/jobtypes": f"ijp.jobtypes_dir = {ROOT / 'jobtypes'}",
        "ijp.datasettypes_dir = %(here)s/datasettypes": f"ijp.datasettypes_dir = {ROOT / 'datasettypes'}",
        "ijp.filestore = %(here)s/var/testing-files": f"ijp.filestore = {tmp / 'files'}",
        "ijp.ids.key_file = %(here)s/var/testing-ids.key": "ijp.ids.key_file =",
        "ijp.batch.backends = local": (
            f"ijp.batch.backends = {backends}\n"
            f"ijp.batch.cluster.type = slurm\nijp.batch.cluster.slurm_conf = {slurm_conf}\n"
            f"ijp.batch.cluster.dir = {tmp / 'cluster'}\n"
            f"ijp.batch.cluster.job_prefix = mp{os.getpid()}\n"
            # one sbatch per job, so that SLURM names each by its portal id (test_arrays.py
            # has job arrays)
            "ijp.batch.cluster.arrays = false\n"
            f"ijp.batch.cluster.path = {ROOT / 'jobtypes' / 'scripts'} {Path(sys.executable).parent}"
        ),
        "ijp.batch.local.dir = %(here)s/var/testing-jobs": f"ijp.batch.local.dir = {tmp / 'local'}",
        "ijp.batch.local.path = %(here)s/jobtypes/scripts %(here)s/.venv/bin": (
            f"ijp.batch.local.path = {ROOT / 'jobtypes' / 'scripts'} {Path(sys.executable).parent}"
        ),
    }
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    if NO_SANDBOX:  # (its tests are skipped, saying why: the others run jobs unsandboxed)
        text = text.replace("ijp.batch.local.sandbox = bwrap", "ijp.batch.local.sandbox = none")
        text = text.replace(
            "ijp.batch.cluster.arrays", "ijp.batch.cluster.sandbox = none\nijp.batch.cluster.arrays"
        )
    ini = tmp / f"{name}.ini"
    ini.write_text(text)
    return ini


class Portal:
    def __init__(self, tmp: Path, name: str, backends: str, db_url: str, slurm_conf: str):
        self.name, self.port = name, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ini = portal_ini(tmp, name, self.port, backends, slurm_conf)
        self.log = tmp / f"{name}.log"
        env = {**os.environ, "IJP_DATABASE_URL": db_url, "IJP_AUTH_SECRET": SECRET, "IJP_IDS_KEY": IDS_KEY}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "pserve"), str(self.ini)],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(self.url + "/login", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert self.proc.poll() is None, self.tail()
            assert time.monotonic() < deadline, self.tail()
            time.sleep(0.2)

    def tail(self) -> str:
        return self.log.read_text()[-3000:]

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=30)  # reaped: its pid is gone (a zombie would look alive)


def leader_pid(engine, task: str) -> int | None:
    """The OS process (as its lock connection names it) holding ``task``'s lead."""
    key = lock_key("ijpweb", task)
    with engine.connect() as c:
        name = c.execute(
            sa.text(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                "AND l.classid::bigint = (:key >> 32) & 4294967295 AND l.objid::bigint = :key & 4294967295"
            ),
            {"key": key},
        ).scalar()
    m = re.search(r":(\d+)$", name or "")
    return int(m.group(1)) if m else None


def counts(engine) -> Counter:
    with engine.connect() as c:
        return Counter(dict(c.execute(sa.select(Job.status, sa.func.count()).group_by(Job.status)).all()))


def csrf(session: requests.Session, base: str) -> str:
    page = session.get(base + "/login", timeout=10)
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def test_two_processes_share_the_work_and_survive_the_leaders_sigkill(database, slurm_cluster, tmp_path):
    engine = get_engine({"sqlalchemy.url": database})
    migrate(engine)
    load_demo(engine, str(tmp_path / "files"))
    datasets = datasets_of(engine, "LMF-2026-001") + datasets_of(engine, "LMF-2026-002")
    assert len(datasets) == 30

    first = Portal(tmp_path, "first", "local cluster", database, slurm_cluster)
    # the first process takes every lead before the second starts
    deadline = time.monotonic() + 10
    while leader_pid(engine, "harvest") != first.proc.pid:
        assert time.monotonic() < deadline, first.tail()
        time.sleep(0.1)
    second = Portal(tmp_path, "second", "cluster local", database, slurm_cluster)
    portals = {first.proc.pid: first, second.proc.pid: second}
    try:
        # logins on the leader: an API token, and the web form rendered by the other process
        token = requests.post(
            first.url + "/api/v1/session", json={"username": "alice", "password": "alice-demo"}, timeout=30
        ).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        web = requests.Session()
        form = csrf(web, second.url)
        login = web.post(
            first.url + "/login", data={"username": "alice", "password": "alice-demo", "csrf_token": form},
            allow_redirects=False, timeout=30,
        )  # fmt: skip
        assert login.status_code == 303, login.text[:500]
        late_form = csrf(web, first.url)  # rendered by the process about to be killed

        for n in range(SUBMISSIONS):
            portal = (first, second)[n % 2]
            r = requests.post(
                portal.url + "/api/v1/submissions",
                json={"job_type": "Test args - datasets only", "datasets": datasets, "mode": "each", "confirm": True},
                headers=auth, timeout=60,
            )  # fmt: skip
            assert r.status_code == 201, r.text
        total = 30 * SUBMISSIONS
        assert sum(counts(engine).values()) == total

        # kill the leader while jobs are still being handed over
        deadline = time.monotonic() + 60
        while True:
            now = counts(engine)
            if 0 < now[JobStatus.SUBMITTING] < total - 20:
                break
            assert now[JobStatus.SUBMITTING], f"every job was handed over before the kill: {now}"
            assert time.monotonic() < deadline, first.tail()
            time.sleep(0.02)
        leader = portals[leader_pid(engine, "harvest")]
        survivor = second if leader is first else first
        killed_at = time.monotonic()
        leader.kill()
        at_kill = counts(engine)
        half_written = [p.name for r in ("local", "cluster") for p in (tmp_path / r / ".new").glob("*")]
        deadline = killed_at + 120  # (a bound against hanging; how fast: bench/bench_takeover.py)
        while leader_pid(engine, "harvest") != survivor.proc.pid:
            assert time.monotonic() < deadline, f"the survivor never took the lead\n{survivor.tail()}"
            time.sleep(0.01)
        took_over = time.monotonic() - killed_at
        print(f"\nat the kill: {dict(at_kill)}, half-written job directories {half_written}; "
              f"the survivor led the harvest {took_over:.2f} s after the SIGKILL")  # fmt: skip

        # the logins made on the killed process work on the survivor, and its form posts there
        assert (
            requests.get(survivor.url + "/api/v1/session", headers=auth, timeout=10).json()["user"]
            == "db/alice"
        )
        page = web.get(survivor.url + "/jobs", allow_redirects=False, timeout=10)
        assert page.status_code == 200 and "alice" in page.text.lower(), page.status_code
        logout = web.post(
            survivor.url + "/logout", data={"csrf_token": late_form}, allow_redirects=False, timeout=10
        )
        assert logout.status_code in (302, 303), logout.status_code
        assert web.get(survivor.url + "/jobs", allow_redirects=False, timeout=10).status_code in (302, 303)

        # every job ends: handed over once, harvested by the survivor
        deadline = time.monotonic() + 150
        while True:
            now = counts(engine)
            if sum(now[s] for s in ENDED) == total:
                break
            assert time.monotonic() < deadline, f"{dict(now)}\n{survivor.tail()}"
            time.sleep(0.5)
        print(f"all {total} jobs ended {time.monotonic() - killed_at:.1f} s after the kill: {dict(now)}")
    finally:
        for p in (first, second):
            p.kill(signal.SIGTERM if p.proc.poll() is None else signal.SIGKILL)

    with engine.connect() as c:
        rows = c.execute(sa.select(Job.id, Job.status, Job.backend, Job.backend_job_id)).all()
    assert len(rows) == total and len({r.id for r in rows}) == total
    assert Counter(r.status for r in rows) == Counter({JobStatus.COMPLETED: total}), Counter(
        r.status for r in rows
    )
    by_backend = Counter(r.backend for r in rows)
    assert by_backend["local"] and by_backend["cluster"], by_backend  # fanned out to both
    # local: one job directory each, named by the portal id, and nothing half-written
    local = {r.id for r in rows if r.backend == "local"}
    dirs = {int(p.name) for p in (tmp_path / "local").iterdir() if p.name.isdigit()}
    assert dirs == local
    for root in (tmp_path / "local", tmp_path / "cluster"):
        new = root / ".new"
        assert not new.exists() or os.listdir(new) == [], os.listdir(new)
        assert not list(root.glob("*/secret.json"))  # every session taken by its launcher
    # SLURM: each job once, by its name (<job_prefix>-<portal id>), with one SLURM id each
    cluster = [r for r in rows if r.backend == "cluster"]
    names = slurm_names(slurm_cluster)
    prefix = f"mp{os.getpid()}-"
    assert Counter(names[f"{prefix}{r.id}"] for r in cluster) == Counter({1: len(cluster)})
    assert sum(n for name, n in names.items() if name.startswith(prefix)) == len(cluster)
    assert len({r.backend_job_id for r in cluster}) == len(cluster)
    print(f"jobs per backend: {dict(by_backend)}; takeover {took_over:.2f} s")
    engine.dispose()

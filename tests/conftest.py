"""Test wiring (the Pyramid cookiecutter's): migrations once per session, one app, and a
doomed transaction per test shared by the test and the app, so nothing a test writes
survives it. The demo catalog is loaded once, committed, for every test to read.

The database is SQLite unless IJP_TEST_DATABASE_URL names another (tests/run.sh runs
the suite a second time on a throw-away PostgreSQL where one can be started).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
import transaction
import webtest
from pyramid.paster import get_appsettings

from ijpweb import main
from ijpweb.batch.runner import kill_sandbox
from ijpweb.catalog import demo
from ijpweb.catalog.ids import FileStore
from ijpweb.models import (
    Job,
    LoginFailure,
    Submission,
    get_engine,
    get_session_factory,
    get_tm_session,
    upgrade,
)
from ijpweb.models.meta import Base

ROOT = Path(__file__).resolve().parents[1]
IDS_KEY = "test-ids-key-not-for-production"  # signs the test catalogs' datafile locations


def pytest_addoption(parser):
    parser.addoption("--ini", action="store", default=str(ROOT / "testing.ini"))


def _no_sandbox() -> str | None:
    """Why jobs cannot be sandboxed here (bubblewrap absent or failing), or None."""
    from ijpweb.batch.runner import BWRAP
    from ijpweb.batch.sandbox import probe, python_dirs

    return probe(BWRAP, tuple(python_dirs()), "nobody")


NO_SANDBOX = _no_sandbox()
# the tests of the sandbox itself, and of backends and servers started with its default
SANDBOX_TESTS = {"test_local_backend", "test_sandbox", "test_slurm", "test_arrays", "test_crash",
                 "test_outage", "test_batchserver", "test_demo_jobs"}  # fmt: skip


def pytest_report_header(config):
    url = os.environ.get("IJP_TEST_DATABASE_URL")
    lines = [f"database: {'PostgreSQL (' + url.split('@')[-1] + ')' if url else 'SQLite'}"]
    if NO_SANDBOX:
        lines.append(f"sandbox: none ({NO_SANDBOX}): its tests are skipped")
    return lines


def pytest_collection_modifyitems(config, items):
    # a test of one database's behaviour runs in that database's pass (tests/run.sh runs
    # both), and is deselected in the other's, not skipped
    other = "sqlite" if os.environ.get("IJP_TEST_DATABASE_URL", "").startswith("postgresql") else "postgresql"
    deselected = [item for item in items if item.get_closest_marker(other)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker(other)]
    if NO_SANDBOX:
        skip = pytest.mark.skip(reason=f"jobs cannot be sandboxed here: {NO_SANDBOX}")
        for item in items:
            if item.module.__name__.rpartition(".")[2] in SANDBOX_TESTS:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory):
    return tmp_path_factory.mktemp("ijp")


@pytest.fixture(scope="session")
def db_url(tmp_root):
    return os.environ.get("IJP_TEST_DATABASE_URL") or f"sqlite:///{tmp_root / 'test.sqlite'}"


def portal_settings(ini: str, tmp: Path, db_url: str, **extra: str) -> dict:
    """testing.ini with everything that writes pointed under ``tmp``."""
    settings = dict(get_appsettings(ini))
    settings.update(
        {
            "sqlalchemy.url": db_url,
            "ijp.batch.local.dir": str(tmp / "jobs"),
            "ijp.filestore": str(tmp / "files"),
            "ijp.jobtypes_dir": str(ROOT / "jobtypes"),
            "ijp.datasettypes_dir": str(ROOT / "datasettypes"),
            "ijp.batch.local.path": f"{ROOT / 'jobtypes' / 'scripts'} {Path(sys.executable).parent}",
            "auth.secret": "test-secret-not-for-production",
            # without bubblewrap the portal refuses to start its backend: the other tests
            # run their jobs unsandboxed (and the sandbox's own tests are skipped)
            **({"ijp.batch.local.sandbox": "none"} if NO_SANDBOX else {}),
            "ijp.ids.key": IDS_KEY,
            **extra,
        }
    )
    return settings


def migrate(engine, ini: str = str(ROOT / "testing.ini"), revision: str = "head") -> None:
    upgrade(engine, ini, revision)


def load_demo(engine, filestore: str, ids_key: str = IDS_KEY) -> None:
    tm = transaction.TransactionManager(explicit=True)
    with tm:
        demo.load(get_tm_session(get_session_factory(engine), tm), FileStore(filestore, ids_key.encode()))


@pytest.fixture(scope="session")
def app_settings(request, tmp_root, db_url):
    return portal_settings(request.config.option.ini, tmp_root, db_url)


def _wipe(engine):
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))


@pytest.fixture(scope="session")
def dbengine(app_settings, request):
    engine = get_engine(app_settings)
    _wipe(engine)
    migrate(engine, request.config.option.ini)
    load_demo(engine, app_settings["ijp.filestore"])
    yield engine
    _wipe(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def app(app_settings, dbengine):
    return main({}, dbengine=dbengine, **app_settings)


@pytest.fixture
def tm():
    tm = transaction.TransactionManager(explicit=True)
    tm.begin()
    tm.doom()
    yield tm
    tm.abort()


@pytest.fixture
def dbsession(app, tm):
    return get_tm_session(app.registry["dbsession_factory"], tm)


@pytest.fixture
def backends(app):
    return app.registry["ijp.backends"]


@pytest.fixture(autouse=True)
def clean_jobs(app_settings):
    """Job ids may repeat between tests (each test's rows are rolled back), so each
    test starts with an empty job directory and leaves no process behind."""
    yield
    root = Path(app_settings["ijp.batch.local.dir"])
    if not root.exists():
        return
    # again while something is left: a job whose wrapper was starting records its start
    # (and writes into its directory) only after the first look
    deadline = time.monotonic() + 5
    while True:
        for started in root.glob("*/started.json"):
            try:
                pgid = int(re.search(r'"pgid": (\d+)', started.read_text()).group(1))
                os.killpg(pgid, signal.SIGKILL)
            except (AttributeError, OSError, ValueError):
                pass
        left = [child for child in root.iterdir() if child.is_dir()]
        if not left or time.monotonic() > deadline:
            break
        for child in left:
            kill_sandbox(child)  # a wrapper killed while bwrap set up leaves the sandbox running
            shutil.rmtree(child, ignore_errors=True)
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def forget_failed_logins(request):
    """Failed logins are counted in a transaction of their own, committed (as in
    production, see ijpweb.throttle), not in the test's: each test starts with none."""
    yield
    if "dbengine" in request.fixturenames:
        with request.getfixturevalue("dbengine").begin() as conn:
            conn.execute(sa.delete(LoginFailure.__table__))


class TestApp(webtest.TestApp):
    def get_csrf_token(self):
        """Load a page to set the CSRF cookie, then return the token."""
        if "csrf_token" not in self.cookies:
            self.get("/login")
        return self.cookies["csrf_token"]

    def login(self, user="alice", password=None, status=303):
        token = self.get_csrf_token()
        return self.post(
            "/login",
            {"username": user, "password": password or f"{user}-demo", "csrf_token": token},
            status=status,
        )

    def htmx(self, method, url, params=None, **kw):
        headers = {"HX-Request": "true", "X-CSRF-Token": self.get_csrf_token()}
        headers.update(kw.pop("headers", {}))
        if method == "GET":
            return self.get(url, params, headers=headers, **kw)
        return self.post(url, params, headers=headers, **kw)


def make_testapp(app, tm, dbsession) -> TestApp:
    """A TestApp whose requests join the test's (doomed) transaction."""
    environ = {"HTTP_HOST": "example.com", "tm.active": True, "tm.manager": tm, "app.dbsession": dbsession}
    return TestApp(app, extra_environ=environ)


@pytest.fixture
def testapp(app, tm, dbsession):
    return make_testapp(app, tm, dbsession)


@pytest.fixture
def doc(testapp):
    """The OpenAPI document the app serves."""
    return testapp.get("/api/v1/openapi.json").json


@pytest.fixture
def alice(testapp):
    testapp.login("alice")
    return testapp


def free_port() -> int:
    """A TCP port free on loopback now (a server of the test binds it next)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(app, threads: int = 4, port: int = 0, **adjustments):
    """Serve ``app`` with waitress on a thread (a free port unless given; more of
    waitress's settings in ``adjustments``); yields its URL, or with ``unix_socket`` (and
    then no TCP port) ``unix:<its path>``. Stopping closes the server while its thread may
    be in select(): the OSError that raises there is the stop, not an error."""
    from waitress.server import create_server

    if "unix_socket" in adjustments:
        server = create_server(app, threads=threads, **adjustments)
    else:
        server = create_server(app, host="127.0.0.1", port=port, threads=threads, **adjustments)
    stopping = threading.Event()

    def run():
        try:
            server.run()
        except OSError:
            if not stopping.is_set():
                raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        unix = adjustments.get("unix_socket")
        yield f"unix:{unix}" if unix else f"http://127.0.0.1:{server.effective_port}"
    finally:
        stopping.set()
        server.close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """The portal as `make run` starts it (harvester on), on a free port, with its own
    committed SQLite database and demo catalog. Yields (url, engine)."""
    tmp = tmp_path_factory.mktemp("live")
    settings = portal_settings(
        str(ROOT / "testing.ini"),
        tmp,
        f"sqlite:///{tmp / 'live.sqlite'}",
        **{"ijp.scheduler.enabled": "true", "ijp.harvest.seconds": "0.5"},
    )
    engine = get_engine(settings)
    migrate(engine)
    load_demo(engine, settings["ijp.filestore"])
    app = main({}, **settings)
    with serving(app) as url:
        yield url, engine
        app.registry["ijp.scheduler"].shutdown(wait=False)


@pytest.fixture
def portal_engine(tmp_path):
    """A portal database of its own (SQLite, migrated, committed), for tests that drive
    the submitter and harvester against a real cluster."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'portal.sqlite'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A real single-node SLURM cluster (bin/slurm-test-cluster), or a skip saying why."""
    missing = [
        c for c in ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "sacct") if not shutil.which(c)
    ]
    if missing:
        pytest.skip(
            f"SLURM is not installed (missing {', '.join(missing)}): apt-get install slurmctld slurmd slurm-client munge"
        )
    base = tmp_path_factory.mktemp("slurm")
    script = ROOT / "bin" / "slurm-test-cluster"
    import subprocess

    started = subprocess.run([str(script), "start", str(base)], capture_output=True, text=True, timeout=120)
    if started.returncode != 0:
        pytest.fail(f"the test SLURM cluster did not start: {started.stderr.strip()}")
    yield str(base / "slurm.conf")
    subprocess.run([str(script), "stop", str(base)], capture_output=True, timeout=120)


@contextmanager
def committing_sessions(dbengine, owners_like: str):
    """Sessions that commit (one per request or background cycle, as the portal's), each
    closed afterwards; the jobs and submissions of owners LIKE ``owners_like`` (the test's
    own, committed) are removed at the end."""
    from sqlalchemy.orm import Session

    opened = []

    def session():
        s = Session(dbengine, expire_on_commit=False)
        opened.append(s)
        return s

    try:
        yield session
    finally:
        for s in opened:
            s.close()
        with Session(dbengine) as s, s.begin():
            s.execute(sa.delete(Job).where(Job.owner.like(owners_like)))
            s.execute(sa.delete(Submission).where(Submission.owner.like(owners_like)))

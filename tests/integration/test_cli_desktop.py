"""Issue 14, point 4: ``ijp connect JOB`` and ``ijp end JOB``, run as a user runs them (the
installed console script, in its own process) against a portal served by waitress, whose
job types include an interactive one. The portal's background work is off: the job stays
with the portal, and its desktop is made ready as the harvest does (harvest_desktops), so
what the commands say is decided here, not by a backend's timing."""

import json
import os
import shutil
import stat
import subprocess
from datetime import timedelta

import pytest
import sqlalchemy as sa
import transaction

from ijpweb import main
from ijpweb.batch import BatchState, DesktopInfo
from ijpweb.batch.harvest import harvest_desktops
from ijpweb.models import Job, get_session_factory, get_tm_session, utcnow
from ijpweb.models.desktops import Desktop
from ijpweb.states import JobStatus

from ..conftest import ROOT, get_engine, load_demo, migrate, portal_settings, serving
from ..functional.test_desktop_pages import INTERACTIVE
from .test_cli import IJP

pytestmark = [
    pytest.mark.once,
    pytest.mark.skipif(IJP is None, reason="the ijp console script is not installed (pip install -e .)"),
]


@pytest.fixture(scope="module")
def desktop_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli-desktop")
    types = tmp / "jobtypes"
    types.mkdir()
    for f in (ROOT / "jobtypes").glob("*.xml"):
        shutil.copy(f, types)
    (types / "desktop_test.xml").write_text(INTERACTIVE)
    settings = portal_settings(
        str(ROOT / "testing.ini"), tmp, f"sqlite:///{tmp / 'live.sqlite'}",
        **{"ijp.scheduler.enabled": "false", "ijp.jobtypes_dir": str(types)},
    )  # fmt: skip
    engine = get_engine(settings)
    migrate(engine)
    load_demo(engine, settings["ijp.filestore"])
    app = main({}, **settings)
    with serving(app) as url:
        yield url, engine
    engine.dispose()


@pytest.fixture
def ijp(desktop_server, tmp_path):
    url, _ = desktop_server
    env = {k: v for k, v in os.environ.items() if not k.startswith("IJP_") and k != "BROWSER"}
    env["IJP_CONFIG_DIR"] = str(tmp_path / "cfg")
    # a "browser" that records what it was asked to open (webbrowser honours $BROWSER)
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\necho "$1" >> {tmp_path / "opened"}\n')
    browser.chmod(browser.stat().st_mode | stat.S_IXUSR)

    def run(*args, stdin="", expect=0, **extra):
        proc = subprocess.run(
            [IJP, *args], input=stdin, capture_output=True, text=True, timeout=120,
            env=env | extra, start_new_session=True,
        )  # fmt: skip
        assert expect is None or proc.returncode == expect, (args, proc.returncode, proc.stdout, proc.stderr)
        return proc

    run.url, run.browser, run.opened = url, str(browser), tmp_path / "opened"
    run("login", "--url", url, "db", "username", "bob", "password", "-", stdin="bob-demo\n")
    return run


def _ready(engine, job_id):
    tm = transaction.TransactionManager(explicit=True)
    with tm:
        db = get_tm_session(get_session_factory(engine), tm)
        job = db.get(Job, job_id)
        job.status, job.backend_job_id = JobStatus.RUNNING, f"cli{job_id}"
        db.flush()
        now = utcnow()
        info = DesktopInfo("127.0.0.1", 5999, now, now + timedelta(hours=1))
        harvest_desktops(db, {("local", f"cli{job_id}"): BatchState(JobStatus.RUNNING, desktop=info)}, now)


def test_connect_prints_the_url_opens_a_browser_and_end_ends_it(ijp, desktop_server):
    _, engine = desktop_server
    assert "an interactive job type" in ijp("jobtype", "Desktop test").stdout
    got = json.loads(ijp("submit", "Desktop test", "--no-wait", "--geometry", "1024x768", "--json").stdout)
    job_id = got["jobs"][0]["id"]
    url = f"{ijp.url}/jobs/{job_id}/desktop"
    assert got["jobs"][0]["interactive"] == {"state": "starting", "url": url}
    # starting: the URL, and a word that it is starting
    starting = ijp("connect", str(job_id), "--no-browser")
    assert starting.stdout == url + "\n" and "is starting" in starting.stderr
    assert not ijp.opened.exists()
    _ready(engine, job_id)
    assert json.loads(ijp("connect", str(job_id), "--json").stdout) == {
        "state": "ready",
        "url": url,
        "job": job_id,
    }
    # opened in the browser $BROWSER names
    assert ijp("connect", str(job_id), BROWSER=ijp.browser).stdout == url + "\n"
    assert ijp.opened.read_text() == url + "\n"
    # no browser to be had: the URL all the same, and a word why nothing opened
    bare = ijp(
        "connect",
        str(job_id),
        BROWSER="/nonexistent-browser",
        DISPLAY="",
        WAYLAND_DISPLAY="",
        PATH="/nonexistent",
    )
    assert bare.stdout == url + "\n"
    assert "Desktop:" in ijp("status", str(job_id)).stdout
    # a batch job has no desktop; another user's job is not found
    date = json.loads(ijp("submit", "Date", "--no-wait", "--json").stdout)["jobs"][0]["id"]
    assert "is a batch job: it has no desktop" in ijp("connect", str(date), "--no-browser", expect=4).stderr
    ijp("end", str(date), expect=4)
    ijp("login", "db", "username", "carol", "password", "-", stdin="carol-demo\n")
    ijp("connect", str(job_id), "--no-browser", expect=4)
    ijp("end", str(job_id), expect=4)
    ijp("login", "db", "username", "bob", "password", "-", stdin="bob-demo\n")
    # the backend is asked to end it (this test's job is not really with one: the portal says so)
    ended = ijp("end", str(job_id), expect=6)
    assert "could not be ended" in ended.stderr
    with engine.connect() as conn:
        assert conn.execute(sa.select(Desktop.ended_reason).where(Desktop.job_id == job_id)).scalar() is None


def test_end_of_a_job_still_with_the_portal_ends_it_at_once(ijp):
    job_id = json.loads(ijp("submit", "Desktop test", "--no-wait", "--json").stdout)["jobs"][0]["id"]
    assert ijp("end", str(job_id)).stdout == f"Job {job_id}: the session is ending.\n"
    gone = ijp("connect", str(job_id), "--no-browser", expect=5)
    assert "has ended" in gone.stderr
    ijp("end", str(job_id), expect=5)


def test_a_session_past_the_limit_is_refused_naming_it(ijp):
    """ijp.desktop.max_per_user (2 here): the third live session is refused, exit 5, nothing made."""
    for _ in range(3):
        proc = ijp("submit", "Desktop test", "--no-wait", expect=None)
        if proc.returncode != 0:
            break
    assert proc.returncode == 5, (proc.stdout, proc.stderr)
    assert (
        "desktop sessions running, the most allowed (ijp.desktop.max_per_user = 2): end one first"
        in proc.stderr
    )
    assert proc.stderr.splitlines()[-1].startswith("ijp: You have 2 desktop sessions running")

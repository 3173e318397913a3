"""Issue 14, point 3: a desktop no one views ends by the idle timeout, and End session ends
one, with the real local backend (Xvfb, x11vnc and the Terminal job type's xterm in the
job's sandbox), the submitter and the harvest driven by hand as the scheduler runs them."""

import shutil
import time
from datetime import timedelta

import pytest

from ijpweb.batch.harvest import harvest
from ijpweb.batch.submitter import submit_pending
from ijpweb.jobs.desktops import STALE_VIEWERS, end_idle, idle_reason
from ijpweb.models import Job, utcnow
from ijpweb.models.desktops import Desktop
from ijpweb.settings import DesktopSettings
from ijpweb.states import JobStatus

from .test_desktop_pages import cookie_of, token
from .test_flow import dataset_ids

MISSING = [p for p in ("Xvfb", "x11vnc", "xterm") if shutil.which(p) is None]
pytestmark = pytest.mark.skipif(
    bool(MISSING),
    reason=f"{', '.join(MISSING)} not installed (apt-get install xvfb x11vnc xterm xfonts-base)",
)


def cycle(db, backends, settings, until, timeout=90):
    """Hand jobs over and harvest (the scheduler's submit and harvest) until ``until()``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        submit_pending(db, backends, desktop=settings)
        harvest(db, backends)
        db.expire_all()
        if until():
            return
        time.sleep(0.3)
    raise AssertionError("not reached in time")


@pytest.fixture
def terminal(testapp, dbsession, backends):
    """Alice's Terminal job, running, its desktop ready; yields its id and ends it after."""
    alice = token(testapp, "alice")
    datasets = dataset_ids(dbsession, "confocal", "LMF-2026-001")[:1]
    got = testapp.post_json(
        "/api/v1/submissions",
        {"job_type": "Terminal", "geometry": "800x600", "datasets": datasets},
        headers=alice,
        status=201,
    )
    job_id = got.json["jobs"][0]["id"]
    settings = testapp.app.registry.settings["ijp"].desktop
    cycle(
        dbsession,
        backends,
        settings,
        lambda: dbsession.get(Desktop, job_id).state != "starting" or not dbsession.get(Job, job_id).live,
    )
    desktop = dbsession.get(Desktop, job_id)
    assert desktop.state == "ready", (dbsession.get(Job, job_id).status, dbsession.get(Job, job_id).reason)
    yield job_id, alice, settings
    job = dbsession.get(Job, job_id)
    if job.live and job.backend_job_id:
        backends[job.backend].cancel(job.backend_job_id)


def test_a_desktop_no_one_views_ends_by_the_idle_timeout(testapp, dbsession, backends, terminal):
    job_id, alice, settings = terminal
    desktop = dbsession.get(Desktop, job_id)
    assert desktop.host == "127.0.0.1" and 1 <= desktop.port <= 65535 and desktop.ready_at is not None
    idle = DesktopSettings(idle_minutes=1)
    # viewed now (a viewer left a moment ago): not idle
    desktop.viewer_seen_at = utcnow()
    dbsession.flush()
    assert end_idle(dbsession, backends, idle) == 0
    # a viewer connected, its proxy refreshing viewer_seen_at (every CHECK_SECONDS): never
    # idle, however long ago the desktop became ready
    desktop.ready_at = utcnow() - timedelta(hours=1)
    desktop.viewers, desktop.viewer_seen_at = 1, utcnow() - timedelta(seconds=40)
    dbsession.flush()
    assert end_idle(dbsession, backends, idle) == 0
    testapp.login("alice")
    assert "No one has viewed" not in testapp.get(f"/jobs/{job_id}").text
    # carol's F3: a count a dead proxy left (killed while someone watched: no -1, and no
    # refresh of viewer_seen_at for an hour) is no viewer: the desktop is idle, and the job
    # page warns of it
    desktop.viewer_seen_at = utcnow() - timedelta(hours=1)
    assert timedelta(hours=1) > STALE_VIEWERS
    dbsession.flush()
    assert "No one has viewed this desktop for 60 minutes" in testapp.get(f"/jobs/{job_id}").text
    # no one for longer than idle_minutes: ended, through the backend
    assert end_idle(dbsession, backends, idle) == 1
    dbsession.expire_all()
    assert dbsession.get(Desktop, job_id).ended_reason == idle_reason(1) == "no viewer for 1 minutes"
    testapp.login("alice")
    assert "Ending…" in testapp.get(f"/jobs/{job_id}").text
    assert end_idle(dbsession, backends, idle) == 0  # asked once
    cycle(dbsession, backends, settings, lambda: not dbsession.get(Job, job_id).live)
    job = dbsession.get(Job, job_id)
    assert (job.status, job.reason) == (JobStatus.COMPLETED, "no viewer for 1 minutes")
    d = dbsession.get(Desktop, job_id)
    assert (d.state, d.ended_reason, d.host, d.port) == ("ended", "no viewer for 1 minutes", None, None)
    page = testapp.get(f"/jobs/{job_id}")
    assert "Ended" in page.text and "no viewer for 1 minutes" in page.text
    testapp.get(f"/jobs/{job_id}/desktop", status=410)
    assert testapp.get(f"/api/v1/jobs/{job_id}", headers=alice).json["interactive"]["state"] == "ended"


def test_end_session_from_the_page_ends_the_real_session(testapp, dbsession, backends, terminal):
    job_id, alice, settings = terminal
    testapp.login("alice")
    assert "Open desktop" in testapp.get(f"/jobs/{job_id}").text
    assert cookie_of(testapp.get(f"/jobs/{job_id}/desktop"))[0] is not None
    testapp.post(f"/jobs/{job_id}/end", {"csrf_token": testapp.get_csrf_token()}, status=303)
    assert "Ending…" in testapp.get(f"/jobs/{job_id}").text
    cycle(dbsession, backends, settings, lambda: not dbsession.get(Job, job_id).live)
    job = dbsession.get(Job, job_id)
    assert (job.status, job.reason) == (JobStatus.COMPLETED, "ended by the user")
    assert dbsession.get(Desktop, job_id).state == "ended"

"""carol's attacks on a session's clock (issue 14, FINDINGS F1 and F6), against the portal
side: her program runs in the same sandbox as its session's supervisor, stops it
(``kill -STOP $PPID``) and writes desktop/state.json itself. The portal must still date the
desktop by its own clock, and end it when it has not started within the ready timeout or
has passed its time limit (ijpweb.jobs.desktops.end_overdue, run with the harvest). Real
local backend (bubblewrap, Xvfb, x11vnc), real database; the harvest driven by hand."""

import inspect
import time
from datetime import timedelta

import pytest

from ijpweb.batch import JobSpec
from ijpweb.batch.harvest import harvest
from ijpweb.jobs.desktops import end_idle, end_overdue, not_started_reason, time_limit_reason
from ijpweb.models import Job, utcnow
from ijpweb.models.desktops import Desktop
from ijpweb.models.jobs import as_utc
from ijpweb.states import JobStatus

from .test_desktop_idle import pytestmark  # noqa: F401 (Xvfb, x11vnc, xterm installed)
from .test_desktop_pages import token
from .test_flow import dataset_ids

# stop the supervisor before it starts its VNC server: it never reports ready nor failed
AT_ONCE = "kill -STOP $PPID; exec sleep 600"
# the program stops the supervisor (whose own time limit therefore never fires) and writes
# the desktop's record itself: ready 50 s from now (as far ahead as a backend lets a record
# be; a later one is refused there, ijpweb.batch.jobdirs.FUTURE_SECONDS), ending in 2099
FUTURE = "2099-01-01T00:00:00+00:00"
FORGED = (
    "kill -STOP $PPID; R=$(date -u -d '+50 seconds' +%Y-%m-%dT%H:%M:%S+00:00); "
    'printf \'{"host": "127.0.0.1", "port": 5999, "ready_at": "%s", "ends_at": "%s"}\' "$R" "$T" > "$D/.f" '
    '&& mv "$D/.f" "$D/state.json"; exec sleep 600'
)
LIMIT = 600  # the session's time limit the supervisor is given (and the portal knows)


def hand_over(testapp, dbsession, backends, script):
    """Alice's Terminal submission, recorded by the portal (its Desktop row "starting"),
    handed to the local backend with ``script`` as its program (what carol's job type runs);
    returns its job id once the harvest has seen it run."""
    alice = token(testapp, "alice")
    datasets = dataset_ids(dbsession, "confocal", "LMF-2026-001")[:1]
    job_id = testapp.post_json(
        "/api/v1/submissions", {"job_type": "Terminal", "datasets": datasets}, headers=alice, status=201
    ).json["jobs"][0]["id"]
    job = dbsession.get(Job, job_id)
    d = backends["local"].root / str(job_id) / "desktop"
    spec = JobSpec(
        job_id, job.owner, "/bin/sh", ("-c", f"D={d}; T={FUTURE}; {script}", "job"), {}, interactive=True,
        desktop={"time_limit": LIMIT, "geometry": "800x600", "ready_timeout": 60},
    )  # fmt: skip
    job.backend_job_id, job.status = backends["local"].submit(spec), JobStatus.QUEUED
    dbsession.flush()
    return job_id


def harvest_until(dbsession, backends, until, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        harvest(dbsession, backends, desktop=None)
        dbsession.expire_all()
        if until():
            return
        time.sleep(0.3)
    raise AssertionError("not reached in time")


def _failed_flag(backend) -> bool:
    return "failed" in inspect.signature(backend.end_sessions).parameters


@pytest.fixture
def settings(testapp):
    return testapp.app.registry.settings["ijp"].desktop


def test_a_desktop_that_never_starts_is_ended_by_the_portal(testapp, dbsession, backends, settings):
    job_id = hand_over(testapp, dbsession, backends, AT_ONCE)
    harvest_until(dbsession, backends, lambda: dbsession.get(Job, job_id).started_at is not None)
    job = dbsession.get(Job, job_id)
    assert job.status == JobStatus.RUNNING and dbsession.get(Desktop, job_id).state == "starting"
    started = as_utc(job.started_at)
    # within the ready timeout and its margin: nothing is ended
    assert (
        end_overdue(dbsession, backends, settings, now=started + timedelta(seconds=settings.ready_seconds))
        == 0
    )
    # past them (the supervisor, stopped, never fails it): the portal ends it
    later = started + timedelta(seconds=settings.ready_seconds + 31)
    assert end_idle(dbsession, backends, settings, now=later) == 0  # (it is not ready: not idle)
    assert end_overdue(dbsession, backends, settings, now=later) == 1
    assert end_overdue(dbsession, backends, settings, now=later) == 0  # asked once
    reason = not_started_reason(settings)
    assert reason == f"the desktop did not start within {settings.ready_seconds} s"
    harvest_until(dbsession, backends, lambda: not dbsession.get(Job, job_id).live)
    job = dbsession.get(Job, job_id)
    failed = _failed_flag(backends["local"])
    assert job.status == (JobStatus.FAILED if failed else JobStatus.COMPLETED), (job.status, job.reason)
    assert reason in job.reason
    d = dbsession.get(Desktop, job_id)
    assert d.state == "ended" and reason in d.ended_reason


def test_a_job_cannot_date_its_desktop_nor_outlive_its_time_limit(testapp, dbsession, backends, settings):
    job_id = hand_over(testapp, dbsession, backends, FORGED)
    # the backend reports what the job wrote; the harvest records its own clock
    seen = []

    def ready():
        state = backends["local"].states([dbsession.get(Job, job_id).backend_job_id]).popitem()[1]
        if state.desktop is not None:
            seen.append(state.desktop)
        return dbsession.get(Desktop, job_id).state != "starting"

    before = utcnow()
    harvest_until(dbsession, backends, ready)
    after = utcnow()
    # what the job claims: ready in the future, ending in 2099
    assert seen and seen[0].ready_at > after and seen[0].ends_at.year == 2099, seen
    d, job = dbsession.get(Desktop, job_id), dbsession.get(Job, job_id)
    assert d.state == "ready", (job.status, job.reason)
    assert before - timedelta(seconds=1) <= as_utc(d.ready_at) <= after, d.ready_at
    # the submission's time limit (the Terminal type's, else ijp.desktop.time_limit), from
    # the job's start as the backend recorded it: never the job's
    limit = settings.spec(job.submission.resources)["time_limit"]
    assert as_utc(d.ends_at) == as_utc(job.started_at) + timedelta(seconds=limit)
    idle_at = as_utc(d.ready_at) + timedelta(minutes=settings.idle_minutes, seconds=1)
    # the time limit passed (and its grace): the portal ends it, the supervisor being stopped
    ends = as_utc(dbsession.get(Desktop, job_id).ends_at)
    assert end_overdue(dbsession, backends, settings, now=ends + timedelta(seconds=59)) == 0
    assert end_overdue(dbsession, backends, settings, now=ends + timedelta(seconds=61)) == 1
    assert end_idle(dbsession, backends, settings, now=idle_at) == 0  # ending already
    harvest_until(dbsession, backends, lambda: not dbsession.get(Job, job_id).live)
    job = dbsession.get(Job, job_id)
    assert (job.status, job.reason) == (JobStatus.COMPLETED, time_limit_reason(limit))
    assert dbsession.get(Desktop, job_id).state == "ended"


def test_the_idle_timeout_counts_from_the_portals_clock(testapp, dbsession, backends, settings):
    """With the record dated ready in the future and no viewer: idle-ended by the harvest's
    clock, from when the harvest saw it ready."""
    job_id = hand_over(testapp, dbsession, backends, FORGED)
    harvest_until(dbsession, backends, lambda: dbsession.get(Desktop, job_id).state != "starting")
    d = dbsession.get(Desktop, job_id)
    assert d.state == "ready" and as_utc(d.ready_at) <= utcnow()
    idle_at = as_utc(d.ready_at) + timedelta(minutes=settings.idle_minutes, seconds=1)
    assert end_idle(dbsession, backends, settings, now=idle_at) == 1
    harvest_until(dbsession, backends, lambda: not dbsession.get(Job, job_id).live)
    assert dbsession.get(Job, job_id).reason == f"no viewer for {settings.idle_minutes:g} minutes"

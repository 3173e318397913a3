"""Issue 11, point 5: what operators watch. ``GET /healthz`` (no login; 200 or 503 with
each check), ``GET /metrics`` (Prometheus text, with ijp.metrics.token), and outages
logged once a minute with their reason instead of a traceback every second."""

import logging
import stat
import threading
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ijpweb import health, main, outages
from ijpweb.batch.harvest import harvest
from ijpweb.batch.sandbox import Sandbox
from ijpweb.batch.slurm import SlurmBackend
from ijpweb.models import BackendHealth, get_engine, utcnow
from ijpweb.states import JobStatus

from ..conftest import ROOT, make_testapp, portal_settings
from .test_console import make_job

TOKEN = "metrics-token-for-the-tests-only"


@pytest.fixture(scope="module")
def watched(app_settings, dbengine, tmp_path_factory):
    """A portal whose /metrics wants TOKEN, on the test database."""
    settings = portal_settings(str(ROOT / "testing.ini"), tmp_path_factory.mktemp("watched"), app_settings["sqlalchemy.url"],
                               **{"ijp.metrics.token": TOKEN})  # fmt: skip
    settings["ijp.batch.local.dir"] = app_settings["ijp.batch.local.dir"]
    return main({}, dbengine=dbengine, **settings)


@pytest.fixture
def scraper(watched, tm, dbsession):
    return make_testapp(watched, tm, dbsession)


def seen(db, name="local", error=None, at=None, seconds=0.25):
    health.record(db, {name: health.Check(seconds, error)}, now=at)
    db.flush()


def scrape(app, **headers) -> dict:
    """The samples of /metrics: {(name, frozenset(labels)): value}."""
    text = app.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}", **headers}).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


# --- /healthz ------------------------------------------------------------------------------------


def test_healthz_needs_no_login_and_is_503_until_every_backend_was_harvested(testapp, dbsession):
    resp = testapp.get("/healthz", status=503)
    body = resp.json
    assert body["status"] == "failing" and body["database"] == {"ok": True}
    assert body["backends"]["local"]["ok"] is False
    assert body["backends"]["local"]["reason"] == "not harvested yet"
    assert resp.headers["Cache-Control"] == "no-store"
    seen(dbsession)
    body = testapp.get("/healthz", status=200).json
    assert body["status"] == "ok" and body["backends"]["local"]["ok"] is True
    assert body["backends"]["local"]["reachable"] is True and body["backends"]["local"]["paused"] is False
    # who runs the background work: this test process runs none of it; a harvest just now
    # says that some process does
    assert body["scheduler"]["this_process"]["harvest"] is False
    assert body["scheduler"]["some_process_harvests"] is True


def test_healthz_is_503_when_a_backend_did_not_answer_without_telling_why(testapp, dbsession):
    seen(dbsession, error="squeue failed: cannot reach slurm-ctl.internal.example:6817")
    body = testapp.get("/healthz", status=503).json
    local = body["backends"]["local"]
    assert local["ok"] is False and local["reachable"] is False
    assert "did not answer" in local["reason"]
    # the reason's text is for staff (the console), not for anyone asking /healthz
    assert "slurm-ctl" not in testapp.get("/healthz", status=503).text


def test_healthz_is_503_when_nobody_harvests_any_more(testapp, dbsession):
    seen(dbsession, at=utcnow() - timedelta(minutes=10))
    body = testapp.get("/healthz", status=503).json
    assert "not harvested for" in body["backends"]["local"]["reason"]
    assert body["scheduler"]["some_process_harvests"] is False


def test_healthz_tells_no_user_data(testapp, dbsession):
    make_job(dbsession, "db/carol", JobStatus.RUNNING, session="carols-catalog-session-secret")
    seen(dbsession)
    text = testapp.get("/healthz").text
    assert "carol" not in text and "secret" not in text and "db/" not in text


def test_healthz_is_503_when_the_database_is_unreachable(app_settings, tmp_path):
    broken = get_engine({"sqlalchemy.url": f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.sqlite'}"})
    app = main({}, dbengine=broken, **app_settings)
    from webtest import TestApp

    body = TestApp(app, extra_environ={"HTTP_HOST": "example.com"}).get("/healthz", status=503).json
    assert body["status"] == "failing" and body["database"] == {"ok": False, "reason": "could not be reached"}
    assert body["backends"]["local"]["ok"] is False


# --- /metrics -----------------------------------------------------------------------------------


def test_metrics_are_off_without_a_token_setting(testapp):
    assert "ijp.metrics.token" in testapp.get("/metrics", status=404).text


def test_metrics_want_the_token(scraper):
    resp = scraper.get("/metrics", status=401)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    scraper.get("/metrics", headers={"Authorization": "Bearer " + TOKEN[:-1]}, status=401)
    scraper.get("/metrics", headers={"Authorization": "Bearer " + TOKEN + "x"}, status=401)
    scraper.get("/metrics", {"token": TOKEN}, status=401)  # never in a URL (it would be logged)
    # a user's API token is no metrics token either
    scraper.login("bob")
    scraper.get("/metrics", status=401)


def test_metrics_count_jobs_by_status_and_backend_and_the_backlog(scraper, dbsession):
    before = scrape(scraper)
    for status in (JobStatus.SUBMITTING, JobStatus.SUBMITTING, JobStatus.QUEUED, JobStatus.FAILED):
        make_job(dbsession, "db/bob", status)
    seen(dbsession, seconds=0.5)
    after = scrape(scraper)
    resp = scraper.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.content_type == "text/plain" and "version=" in resp.headers["Content-Type"]

    def grew(name, **labels):
        key = (name, frozenset(labels.items()))
        return after[key] - before.get(key, 0)

    assert grew("ijp_jobs", status="Submitting", backend="local") == 2
    assert grew("ijp_jobs", status="Queued", backend="local") == 1
    assert grew("ijp_jobs", status="Failed", backend="local") == 1
    assert grew("ijp_jobs", status="Running", backend="local") == 0
    assert grew("ijp_submit_backlog", backend="local") == 2
    assert after[("ijp_database_up", frozenset())] == 1
    assert after[("ijp_backend_reachable", frozenset({("backend", "local")}))] == 1
    assert after[("ijp_backend_harvest_duration_seconds", frozenset({("backend", "local")}))] == 0.5
    assert after[("ijp_backend_paused", frozenset({("backend", "local")}))] == 0


def test_harvest_errors_are_counted(scraper, dbsession):
    seen(dbsession)
    base = scrape(scraper)[("ijp_backend_harvest_errors_total", frozenset({("backend", "local")}))]
    for _ in range(3):
        seen(dbsession, error="it did not answer")
    after = scrape(scraper)
    assert after[("ijp_backend_harvest_errors_total", frozenset({("backend", "local")}))] == base + 3
    assert after[("ijp_backend_reachable", frozenset({("backend", "local")}))] == 0


def test_request_latency_is_labelled_by_route_name_not_path(scraper, dbsession):
    scraper.login("bob")
    scraper.get("/jobs/987654321", status=404)
    scraper.get("/api/v1/jobs/987654322", status=404)
    scraper.get("/no/such/page/987654323", status=404)
    text = scraper.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    assert "98765432" not in text  # no raw path, no id: one series per route
    samples = scrape(scraper)
    count = "ijp_request_duration_seconds_count"
    assert samples[(count, frozenset({("route", "jobs.detail"), ("method", "GET")}))] >= 1
    assert samples[(count, frozenset({("route", "api.job"), ("method", "GET")}))] >= 1
    assert samples[(count, frozenset({("route", "(none)"), ("method", "GET")}))] >= 1
    assert samples[(count, frozenset({("route", "auth.login"), ("method", "POST")}))] >= 1


# --- outages: one line a minute, with the reason ------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(outages, "QUIET", outages.Quiet(clock=c))
    return c


def failing_command(directory, name, message):
    """A real program ``name`` that prints ``message`` to stderr and exits 1."""
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{message}' >&2\nexit 1\n")
    path.chmod(stat.S_IRWXU)


def outage_lines(caplog):
    """The outage lines this test's own thread logged (not a live server's scheduler's)."""
    here = threading.get_ident()
    return [r for r in caplog.records if r.name == "ijpweb.outages" and r.thread == here]


def test_a_backend_whose_commands_fail_is_logged_once_a_minute(tmp_path, dbsession, clock, caplog):
    bin_dir = tmp_path / "bin"
    for command in ("sinfo", "squeue"):
        failing_command(
            bin_dir, command, "slurm_load_partitions: Unable to contact slurm controller (connect failure)"
        )
    broken = SlurmBackend("broken", tmp_path / "jobs", sandbox=Sandbox(kind="none"), timeout=10)
    broken.env["PATH"] = str(bin_dir)
    live = make_job(dbsession, "db/bob", JobStatus.RUNNING, backend="broken")
    live.backend_job_id = "4242"
    dbsession.flush()
    backends = {"broken": broken}
    caplog.set_level(logging.INFO, logger="ijpweb")
    first = utcnow()
    for _ in range(30):  # a harvest every 2 s for a minute
        asked = {}
        harvest(dbsession, backends, asked)
        health.record(dbsession, health.observe(backends, asked))
        clock.now += 2
    lines = outage_lines(caplog)
    assert len(lines) == 1
    assert lines[0].getMessage() == (
        "harvest of backend broken failed: squeue failed: slurm_load_partitions: Unable to contact slurm "
        "controller (connect failure)"
    )
    assert lines[0].exc_info is None  # an outage: no traceback
    asked = {}
    harvest(dbsession, backends, asked)
    health.record(dbsession, health.observe(backends, asked))
    lines = outage_lines(caplog)
    assert len(lines) == 2 and "(29 more time(s) in the last 60 s)" in lines[1].getMessage()
    row = dbsession.get(BackendHealth, "broken")
    dbsession.refresh(row)
    assert row.reachable is False and row.errors == 31 and row.last_error.startswith("squeue failed")
    assert row.error_since is not None and row.error_since.replace(tzinfo=None) >= first.replace(tzinfo=None)
    assert dbsession.get(type(live), live.id).status == JobStatus.UNKNOWN
    # SLURM answers again: said once, and the row shows it reachable (its last error kept)
    for command in ("squeue", "sacct"):
        (bin_dir / command).write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / command).chmod(stat.S_IRWXU)
    (bin_dir / "sinfo").write_text("#!/bin/sh\necho 'n1|idle|0/4/0/4|0.01|none'\n")
    asked = {}
    harvest(dbsession, backends, asked)
    health.record(dbsession, health.observe(backends, asked))
    lines = outage_lines(caplog)
    assert lines[-1].getMessage() == "harvest of backend broken works again (after 31 failure(s))"
    dbsession.refresh(row)
    assert row.reachable is True and row.error_since is None and row.last_error.startswith("squeue failed")
    assert row.nodes == [
        {"name": "n1", "state": "idle", "cpus_alloc": 0, "cpus_total": 4, "load": 0.01, "reason": ""}
    ]


def test_an_unreachable_database_is_logged_once_a_minute(app_settings, tmp_path, clock, caplog):
    broken = get_engine({"sqlalchemy.url": f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.sqlite'}"})
    scheduler = main({}, dbengine=broken, **app_settings).registry["ijp.scheduler"]
    caplog.set_level(logging.INFO, logger="ijpweb")
    for _ in range(61):  # the submitter, every second for a minute
        scheduler.submit()
        clock.now += 1
    lines = outage_lines(caplog)
    assert [r.getMessage() for r in lines] == [
        "submit failed: the database did not answer: unable to open database file",
        "submit failed: the database did not answer: unable to open database file "
        "(59 more time(s) in the last 60 s)",
    ]
    assert all(r.exc_info is None for r in lines)
    assert not [r for r in caplog.records if r.exc_info]  # no traceback anywhere


def test_a_bug_keeps_its_traceback_once_a_minute(clock, caplog):
    caplog.set_level(logging.INFO, logger="ijpweb")
    for _ in range(5):
        try:
            {}["missing"]
        except KeyError as e:
            outages.failed("purge", e)
    (line,) = outage_lines(caplog)
    assert line.getMessage() == "purge failed: KeyError: 'missing'" and line.exc_info is not None

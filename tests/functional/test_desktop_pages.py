"""Issue 14, the web faces of interactive jobs: submission (a Desktop row, the geometry, the
limits on every face), the harvest's desktop rows, the job page's panel, the viewer page
and its token (cookie, refusals, never in a page or a log), End session, the API's
``interactive`` object, and logout forgetting the tokens.

The desktops here are driven through the harvest's own function (harvest_desktops) with
the BatchState values a backend answers; the real sessions run in
tests/functional/test_desktop_idle.py and the browser tests."""

import hashlib
import logging
import shutil
from datetime import timedelta
from http.cookies import SimpleCookie

import pytest
import sqlalchemy as sa

from ijpweb import main
from ijpweb.batch import BatchState, DesktopInfo
from ijpweb.batch.harvest import harvest_desktops, purge_expired_sessions, write_state
from ijpweb.models import Job, Submission, WebSession, utcnow
from ijpweb.models.desktops import Desktop, DesktopToken
from ijpweb.states import JobStatus

from ..conftest import ROOT, make_testapp, portal_settings

API = "/api/v1"
INTERACTIVE = """<jobType>
    <name>Desktop test</name>
    <description>An interactive type of the tests.</description>
    <executable>xterm</executable>
    <type>interactive</type>
</jobType>
"""


def desktop_portal(app_settings, dbengine, tmp, **extra):
    """A portal on the test database whose job types include an interactive one."""
    types = tmp / "jobtypes"
    types.mkdir()
    for f in (ROOT / "jobtypes").glob("*.xml"):
        shutil.copy(f, types)
    (types / "desktop_test.xml").write_text(INTERACTIVE)
    settings = portal_settings(str(ROOT / "testing.ini"), tmp, app_settings["sqlalchemy.url"], **extra)
    settings.update({k: app_settings[k] for k in ("ijp.batch.local.dir", "ijp.filestore")})
    settings["ijp.jobtypes_dir"] = str(types)
    return main({}, dbengine=dbengine, **settings)


@pytest.fixture(scope="module")
def dportal(app_settings, dbengine, tmp_path_factory):
    return desktop_portal(
        app_settings, dbengine, tmp_path_factory.mktemp("desktops"),
        **{"ijp.desktop.max_per_user": "2", "ijp.batch.local.max_interactive": "3"},
    )  # fmt: skip


@pytest.fixture
def dapp(dportal, tm, dbsession):
    return make_testapp(dportal, tm, dbsession)


def token(app, user):
    resp = app.post_json(API + "/session", {"username": user, "password": f"{user}-demo"}, status=201)
    return {"Authorization": f"Bearer {resp.json['token']}"}


def submit(app, headers, status=201, **body):
    return app.post_json(
        API + "/submissions", {"job_type": "Desktop test", **body}, headers=headers, status=status
    )


def job_count(db) -> int:
    return db.scalar(sa.select(sa.func.count()).select_from(Job))


def make_ready(db, job_id, host="127.0.0.1", port=5901, ready_at=None):
    """The job runs and its VNC server answers: as the harvest writes it (a harvest at
    ``ready_at``: the portal's clock dates a desktop ready, not the job's record)."""
    ready_at = ready_at or utcnow()
    job = db.get(Job, job_id)
    job.status, job.backend_job_id, job.started_at = JobStatus.RUNNING, f"t{job_id}", ready_at
    db.flush()
    info = DesktopInfo(host, port, ready_at, ready_at + timedelta(hours=8))
    harvest_desktops(
        db, {("local", job.backend_job_id): BatchState(JobStatus.RUNNING, desktop=info)}, ready_at
    )
    db.expire_all()
    return db.get(Desktop, job_id)


def web_login(app, user):
    app.login(user)
    return app


def cookie_of(resp, name="ijp_desktop"):
    for header in resp.headers.getall("Set-Cookie"):
        c = SimpleCookie()
        c.load(header)
        if name in c:
            return c[name], header
    return None, None


# --- submission ------------------------------------------------------------------------------------


def test_an_interactive_submission_gets_a_starting_desktop_and_its_geometry(dapp, dbsession):
    bob = token(dapp, "bob")
    types = {t["name"]: t for t in dapp.get(API + "/jobtypes", headers=bob).json["jobtypes"]}
    assert types["Desktop test"]["interactive"] is True and types["Date"]["interactive"] is False
    resp = submit(dapp, bob, geometry="5000x100")
    job = resp.json["jobs"][0]
    assert job["interactive"] == {"state": "starting", "url": f"http://example.com/jobs/{job['id']}/desktop"}
    assert dbsession.get(Desktop, job["id"]).state == "starting"
    sub = dbsession.get(Submission, resp.json["submission"])
    assert sub.interactive and sub.resources["geometry"] == "3840x480"  # clamped
    # no geometry: the default
    sub2 = dbsession.get(Submission, submit(dapp, bob).json["submission"])
    assert sub2.resources["geometry"] == "1280x800"
    # a batch job has no desktop
    date = dapp.post_json(API + "/submissions", {"job_type": "Date"}, headers=bob, status=201).json["jobs"][0]
    assert date["interactive"] is None and dbsession.get(Desktop, date["id"]) is None


@pytest.mark.parametrize("bad", ["big", "1280 x 800", "12800000x1", 1280, ["1", "2"], "1280x800; rm"])
def test_a_malformed_geometry_is_refused_naming_the_field(dapp, dbsession, bad):
    bob = token(dapp, "bob")
    before = job_count(dbsession)
    resp = submit(dapp, bob, status=400, geometry=bad)
    assert "geometry" in resp.json["fields"] and resp.json["code"] in ("bad_request", "bad_parameter")
    assert job_count(dbsession) == before


def test_more_sessions_than_max_per_user_are_refused_on_every_face(dapp, dbsession):
    bob = token(dapp, "bob")
    submit(dapp, bob)
    submit(dapp, bob)
    before = job_count(dbsession)
    refused = submit(dapp, bob, status=409).json
    assert refused["code"] == "too_many_desktops"
    assert "You have 2 desktop sessions running" in refused["message"]
    assert "ijp.desktop.max_per_user" in refused["message"]
    # the web form
    web_login(dapp, "bob")
    page = dapp.post(
        "/submit", {"jobtype": "Desktop test", "csrf_token": dapp.get_csrf_token(), "geometry": "800x600"},
        status=409,
    )  # fmt: skip
    assert "ijp.desktop.max_per_user" in page.text
    # the original API
    sid = dapp.post(
        "/icat/session",
        {"json": '{"plugin": "db", "credentials": [{"username": "bob"}, {"password": "bob-demo"}]}'},
    ).json["sessionId"]
    jm = dapp.post("/ijp/rest/jm/submit", {"jobName": "Desktop test", "sessionId": sid}, status=403).json
    assert jm["code"] == "ForbiddenException" and "ijp.desktop.max_per_user" in jm["message"]
    assert job_count(dbsession) == before
    # an ended session frees its place
    first = dbsession.scalars(
        sa.select(Job).where(Job.owner == "db/bob", Job.job_type == "Desktop test").order_by(Job.id)
    ).first()
    first.status = JobStatus.COMPLETED
    dbsession.flush()
    harvest_desktops(dbsession, {}, utcnow())
    submit(dapp, bob)


def test_the_backends_max_interactive_is_refused_naming_it(app_settings, dbengine, tmp_path, tm, dbsession):
    portal = desktop_portal(
        app_settings, dbengine, tmp_path,
        **{"ijp.desktop.max_per_user": "0", "ijp.batch.local.max_interactive": "1"},
    )  # fmt: skip
    app = make_testapp(portal, tm, dbsession)
    submit(app, token(app, "bob"))
    before = job_count(dbsession)
    refused = submit(app, token(app, "alice"), status=409).json
    assert refused["code"] == "too_many_desktops"
    assert "ijp.batch.local.max_interactive" in refused["message"] and "local backend" in refused["message"]
    assert job_count(dbsession) == before


def test_the_original_api_answers_an_interactive_submission_with_its_url(dapp, dbsession):
    sid = dapp.post(
        "/icat/session",
        {"json": '{"plugin": "db", "credentials": [{"username": "alice"}, {"password": "alice-demo"}]}'},
    ).json["sessionId"]
    reply = dapp.post("/ijp/rest/jm/submit", {"jobName": "Desktop test", "sessionId": sid}).json
    assert list(reply) == ["jobId", "url"]
    assert reply["url"] == f"http://example.com/jobs/{reply['jobId']}/desktop"
    assert dbsession.get(Desktop, reply["jobId"]).state == "starting"
    # a batch type's answer is the original's
    assert list(dapp.post("/ijp/rest/jm/submit", {"jobName": "Date", "sessionId": sid}).json) == ["jobId"]


# --- the harvest --------------------------------------------------------------------------------------


def test_the_harvest_makes_a_desktop_ready_then_ended_and_forgets_its_tokens(dapp, dbsession):
    bob = token(dapp, "bob")
    job_id = submit(dapp, bob).json["jobs"][0]["id"]
    job = dbsession.get(Job, job_id)
    job.status, job.backend_job_id = JobStatus.RUNNING, "b1"
    dbsession.flush()
    # running, no desktop yet: still starting
    assert harvest_desktops(dbsession, {("local", "b1"): BatchState(JobStatus.RUNNING)}, utcnow()) == 0
    assert dbsession.get(Desktop, job_id).state == "starting"
    now = utcnow()
    info = DesktopInfo("10.0.0.7", 5903, now, now + timedelta(hours=2))
    assert (
        harvest_desktops(dbsession, {("local", "b1"): BatchState(JobStatus.RUNNING, desktop=info)}, now) == 1
    )
    d = dbsession.get(Desktop, job_id)
    assert (d.state, d.host, d.port) == ("ready", "10.0.0.7", 5903)
    # the same again: nothing to write
    assert (
        harvest_desktops(dbsession, {("local", "b1"): BatchState(JobStatus.RUNNING, desktop=info)}, now) == 0
    )
    assert dapp.get(API + f"/jobs/{job_id}", headers=bob).json["interactive"]["state"] == "ready"
    web_login(dapp, "bob")
    dapp.get(f"/jobs/{job_id}/desktop")
    assert (
        dbsession.scalar(
            sa.select(sa.func.count()).select_from(DesktopToken).where(DesktopToken.job_id == job_id)
        )
        == 1
    )
    # a steady cycle reads no ready desktop, and changes nothing
    assert harvest_desktops(dbsession, {}, utcnow()) == 0
    assert dbsession.get(Desktop, job_id).state == "ready"
    # the job ends (the harvest writes its status): the desktop ends with its reason
    assert write_state(
        dbsession, job, BatchState(JobStatus.COMPLETED, reason="the program exited (exit code 0)")
    )
    dbsession.expire_all()
    d = dbsession.get(Desktop, job_id)
    assert (d.state, d.ended_reason, d.host, d.port) == (
        "ended",
        "the program exited (exit code 0)",
        None,
        None,
    )
    assert (
        dbsession.scalar(
            sa.select(sa.func.count()).select_from(DesktopToken).where(DesktopToken.job_id == job_id)
        )
        == 0
    )
    assert dapp.get(API + f"/jobs/{job_id}", headers=bob).json["interactive"]["state"] == "ended"


# --- the job page and the viewer ----------------------------------------------------------------


def test_the_job_page_shows_the_desktop_as_it_goes(dapp, dbsession):
    bob = token(dapp, "bob")
    job_id = submit(dapp, bob).json["jobs"][0]["id"]
    web_login(dapp, "bob")
    page = dapp.get(f"/jobs/{job_id}")
    assert "Starting…" in page.text and "Open desktop" not in page.text
    make_ready(dbsession, job_id)
    page = dapp.get(f"/jobs/{job_id}")
    assert "Open desktop" in page.text and f'href="http://example.com/jobs/{job_id}/desktop"' in page.text
    assert (
        f'action="http://example.com/jobs/{job_id}/end"' in page.text and "time limit ends it at" in page.text
    )
    assert "No one has viewed" not in page.text
    # the list and the dashboard say so too
    assert "desktop ready" in dapp.get("/jobs").text
    assert "desktop ready" in dapp.get("/").text
    # the fragment that refreshes the status has it as well
    assert "Open desktop" in dapp.htmx("GET", f"/jobs/{job_id}").text
    # nothing of where the VNC server listens is shown
    assert "5901" not in page.text and "127.0.0.1:59" not in page.text


def test_the_idle_warning_comes_idle_warning_minutes_before(dapp, dbsession):
    bob = token(dapp, "bob")
    job_id = submit(dapp, bob).json["jobs"][0]["id"]
    ready = utcnow() - timedelta(minutes=27, seconds=10)
    make_ready(dbsession, job_id, ready_at=ready)
    web_login(dapp, "bob")
    page = dapp.get(f"/jobs/{job_id}")
    ends = (ready + timedelta(minutes=30)).strftime("%H:%M")
    assert (
        f"No one has viewed this desktop for 27 minutes: it ends at {ends} UTC unless you open it"
        in page.text
    )
    # a viewer connected: no warning
    d = dbsession.get(Desktop, job_id)
    d.viewers = 1
    dbsession.flush()
    assert "No one has viewed" not in dapp.get(f"/jobs/{job_id}").text
    # viewed 10 minutes ago and left: no warning yet
    d.viewers, d.viewer_seen_at = 0, utcnow() - timedelta(minutes=10)
    dbsession.flush()
    assert "No one has viewed" not in dapp.get(f"/jobs/{job_id}").text


def test_opening_a_ready_desktop_mints_a_cookie_only_token(dapp, dbsession, caplog):
    bob = token(dapp, "bob")
    job_id = submit(dapp, bob).json["jobs"][0]["id"]
    make_ready(dbsession, job_id)
    web_login(dapp, "bob")
    with caplog.at_level(logging.DEBUG):
        resp = dapp.get(f"/jobs/{job_id}/desktop")
    morsel, header = cookie_of(resp)
    value = morsel.value
    assert len(value) >= 40
    assert morsel["path"] == f"/desktop/ws/{job_id}"
    assert morsel["httponly"] and morsel["samesite"] == "Strict" and not morsel["secure"]
    assert 0 < int(morsel["max-age"]) <= 12 * 3600
    # stored only as its hash, for this job, this login and its owner
    row = dbsession.get(DesktopToken, hashlib.sha256(value.encode()).hexdigest())
    login = dbsession.get(WebSession, row.web_session_id)
    assert row.job_id == job_id and row.owner == "db/bob"
    assert (login.user_name, login.kind) == ("db/bob", "web")
    assert row.expires_at <= login.expires_at
    # never in the page, a URL or a log line
    assert value not in resp.text and value not in caplog.text
    assert row.token_hash not in resp.text
    # the viewer: noVNC from the portal itself, the websocket's path, a CSP for it
    assert "static/desktop.js" in resp.text and f'data-ws-path="/desktop/ws/{job_id}"' in resp.text
    csp = resp.headers["Content-Security-Policy"]
    assert "connect-src 'self'" in csp and "script-src 'self'" in csp and "'unsafe" not in csp
    assert resp.headers["Cache-Control"] == "no-store"
    assert dapp.get("/static/novnc/core/rfb.js").status_int == 200
    # each page load its own token; the job page and list never carry one
    again = cookie_of(dapp.get(f"/jobs/{job_id}/desktop"))[0].value
    assert again != value
    for page in (
        dapp.get(f"/jobs/{job_id}"),
        dapp.get("/jobs"),
        dapp.get(API + f"/jobs/{job_id}", headers=bob),
    ):
        assert value not in page.text and again not in page.text
        assert cookie_of(page)[0] is None


def test_the_cookie_is_secure_over_https(dapp, dbsession):
    bob = token(dapp, "bob")
    job_id = submit(dapp, bob).json["jobs"][0]["id"]
    make_ready(dbsession, job_id)
    dapp.extra_environ = {**dapp.extra_environ, "wsgi.url_scheme": "https"}
    dapp.post(
        "/login", {"username": "bob", "password": "bob-demo", "csrf_token": dapp.get_csrf_token()},
        headers={"Referer": "https://example.com/login"}, status=303,
    )  # fmt: skip
    morsel, _ = cookie_of(dapp.get(f"/jobs/{job_id}/desktop"))
    assert morsel["secure"] and morsel["httponly"] and morsel["samesite"] == "Strict"


def test_public_port_points_the_websocket_at_the_proxys_port(app_settings, dbengine, tmp_path, tm, dbsession):
    portal = desktop_portal(app_settings, dbengine, tmp_path, **{"ijp.desktop.public_port": "6544"})
    app = make_testapp(portal, tm, dbsession)
    job_id = submit(app, token(app, "bob")).json["jobs"][0]["id"]
    make_ready(dbsession, job_id)
    app.login("bob")
    resp = app.get(f"/jobs/{job_id}/desktop")
    assert 'data-ws-origin="ws://example.com:6544"' in resp.text
    assert "connect-src 'self' ws://example.com:6544;" in resp.headers["Content-Security-Policy"]


def test_refusals_batch_ended_starting_and_another_users_job(dapp, dbsession):
    bob = token(dapp, "bob")
    web_login(dapp, "bob")
    tokens = sa.select(sa.func.count()).select_from(DesktopToken)
    # a batch job
    date = dapp.post_json(API + "/submissions", {"job_type": "Date"}, headers=bob, status=201).json["jobs"][
        0
    ]["id"]
    page = dapp.get(f"/jobs/{date}/desktop", status=404)
    assert f"job {date} is a batch job: it has no desktop" in page.text
    # starting: a page that looks again, and no token
    job_id = submit(dapp, bob).json["jobs"][0]["id"]
    wait = dapp.get(f"/jobs/{job_id}/desktop")
    assert wait.headers["Refresh"] == "3" and "is starting" in wait.text and cookie_of(wait)[0] is None
    assert dbsession.scalar(tokens) == 0
    # carol, on bob's ready desktop: the 404 of any job she cannot see, and no token
    make_ready(dbsession, job_id)
    carol = make_testapp(dapp.app, dapp.extra_environ["tm.manager"], dapp.extra_environ["app.dbsession"])
    carol.login("carol")
    refused = carol.get(f"/jobs/{job_id}/desktop", status=404)
    assert cookie_of(refused)[0] is None and dbsession.scalar(tokens) == 0
    assert carol.get(f"/jobs/{date + 10_000_000}/desktop", status=404).text.count(
        "Not found"
    ) == refused.text.count("Not found")
    carol_token = token(carol, "carol")
    carol.get(API + f"/jobs/{job_id}", headers=carol_token, status=404)
    carol.post(f"/jobs/{job_id}/end", {"csrf_token": carol.get_csrf_token()}, status=404)
    carol.post_json(API + f"/jobs/{job_id}/end", {}, headers=carol_token, status=404)
    assert dbsession.get(Desktop, job_id).ended_reason is None
    # ended
    job = dbsession.get(Job, job_id)
    write_state(dbsession, job, BatchState(JobStatus.COMPLETED, reason="the program exited (exit code 0)"))
    gone = dapp.get(f"/jobs/{job_id}/desktop", status=410)
    assert "has ended (the program exited (exit code 0))" in gone.text and cookie_of(gone)[0] is None
    assert gone.html.h1.get_text() == "No longer available"
    assert "Ended" in dapp.get(f"/jobs/{job_id}").text
    # ending the batch job's session, or the ended one's
    assert (
        dapp.post_json(API + f"/jobs/{date}/end", {}, headers=bob, status=404).json["code"]
        == "not_interactive"
    )
    assert dapp.post_json(API + f"/jobs/{job_id}/end", {}, headers=bob, status=409).json["code"] == "ended"


def test_an_api_token_cannot_open_the_viewer(dapp, dbsession):
    bob = token(dapp, "bob")
    job_id = submit(dapp, bob).json["jobs"][0]["id"]
    make_ready(dbsession, job_id)
    resp = dapp.get(f"/jobs/{job_id}/desktop", headers=bob, status=403)
    assert cookie_of(resp)[0] is None
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(DesktopToken)) == 0


def test_logout_forgets_the_logins_desktop_tokens(dapp, dbsession):
    bob = token(dapp, "bob")
    job_id = submit(dapp, bob).json["jobs"][0]["id"]
    make_ready(dbsession, job_id)
    web_login(dapp, "bob")
    dapp.get(f"/jobs/{job_id}/desktop")
    dapp.get(f"/jobs/{job_id}/desktop")
    count = sa.select(sa.func.count()).select_from(DesktopToken).where(DesktopToken.job_id == job_id)
    assert dbsession.scalar(count) == 2
    dapp.post("/logout", {"csrf_token": dapp.get_csrf_token()}, status=303)
    assert dbsession.scalar(count) == 0


def test_end_session_of_a_job_not_yet_handed_over_cancels_it(dapp, dbsession):
    bob = token(dapp, "bob")
    job_id = submit(dapp, bob).json["jobs"][0]["id"]
    web_login(dapp, "bob")
    dapp.post(f"/jobs/{job_id}/end", {"csrf_token": "wrong"}, status=400)  # CSRF
    assert dbsession.get(Job, job_id).status == JobStatus.SUBMITTING
    resp = dapp.post(f"/jobs/{job_id}/end", {"csrf_token": dapp.get_csrf_token()}, status=303)
    assert resp.location == f"http://example.com/jobs/{job_id}"
    dbsession.expire_all()
    assert dbsession.get(Job, job_id).status == JobStatus.CANCELLED
    d = dbsession.get(Desktop, job_id)
    assert (d.state, d.ended_reason) == ("ended", "ended by the user")
    assert "ended by the user" in dapp.get(f"/jobs/{job_id}").text


def test_behind_a_prefix_the_cookie_and_the_websocket_carry_it(
    app_settings, dbengine, tmp_path, tm, dbsession
):
    portal = desktop_portal(app_settings, dbengine, tmp_path, **{"ijp.prefix": "/ijp"})
    app = make_testapp(portal, tm, dbsession)
    bob = app.post_json("/ijp" + API + "/session", {"username": "bob", "password": "bob-demo"}, status=201)
    headers = {"Authorization": f"Bearer {bob.json['token']}"}
    got = app.post_json(
        "/ijp" + API + "/submissions", {"job_type": "Desktop test"}, headers=headers, status=201
    )
    job = got.json["jobs"][0]
    assert job["interactive"]["url"] == f"http://example.com/ijp/jobs/{job['id']}/desktop"
    make_ready(dbsession, job["id"])
    app.get("/ijp/login")
    login = {"username": "bob", "password": "bob-demo", "csrf_token": app.cookies["csrf_token"]}
    app.post("/ijp/login", login, status=303)
    resp = app.get(f"/ijp/jobs/{job['id']}/desktop")
    morsel, _ = cookie_of(resp)
    assert morsel["path"] == f"/ijp/desktop/ws/{job['id']}"
    assert f'data-ws-path="/ijp/desktop/ws/{job["id"]}"' in resp.text

    # carol behind the prefix: bob's desktop is the 404 of a job that does not exist
    carol = make_testapp(portal, tm, dbsession)
    carol.get("/ijp/login")
    login = {"username": "carol", "password": "carol-demo", "csrf_token": carol.cookies["csrf_token"]}
    carol.post("/ijp/login", login, status=303)
    for job_id in (job["id"], 10**9):
        refused = carol.get(f"/ijp/jobs/{job_id}/desktop", status=404)
        assert cookie_of(refused)[0] is None and "ws-path" not in refused.text
        carol.post(f"/ijp/jobs/{job_id}/end", {"csrf_token": carol.cookies["csrf_token"]}, status=404)
    carol_api = {"Authorization": "Bearer " + carol.post_json(
        "/ijp" + API + "/session", {"username": "carol", "password": "carol-demo"}, status=201).json["token"]}  # fmt: skip
    assert carol.post_json(f"/ijp{API}/jobs/{job['id']}/end", {}, headers=carol_api, status=404).json[
        "code"
    ] == ("not_found")
    dbsession.expire_all()
    desktop = dbsession.get(Desktop, job["id"])
    assert (desktop.state, desktop.ended_reason) == ("ready", None)


def test_a_session_being_ended_says_ending_and_opens_no_more(dapp, dbsession):
    bob = token(dapp, "bob")
    job_id = submit(dapp, bob).json["jobs"][0]["id"]
    d = make_ready(dbsession, job_id)
    d.ended_reason = "ended by the user"  # as End session leaves it until the harvest sees the job end
    dbsession.flush()
    web_login(dapp, "bob")
    page = dapp.get(f"/jobs/{job_id}")
    assert "Ending…" in page.text and "Open desktop" not in page.text
    refused = dapp.get(f"/jobs/{job_id}/desktop", status=409)
    assert "is ending (ended by the user)" in refused.text and cookie_of(refused)[0] is None
    assert dapp.get(API + f"/jobs/{job_id}", headers=bob).json["interactive"]["state"] == "ready"
    # a second End session is no error, and asks nothing more
    assert dapp.post_json(API + f"/jobs/{job_id}/end", {}, headers=bob).json["id"] == job_id


def test_a_ready_desktop_whose_job_ended_another_way_is_ended_by_the_purges_sweep(dapp, dbsession):
    bob = token(dapp, "bob")
    job_id = submit(dapp, bob).json["jobs"][0]["id"]
    make_ready(dbsession, job_id)
    web_login(dapp, "bob")
    dapp.get(f"/jobs/{job_id}/desktop")
    job = dbsession.get(Job, job_id)
    job.status, job.reason = JobStatus.FAILED, "node failure"  # written by no harvest
    dbsession.flush()
    # pages and the API already say it ended (they read the job too)
    assert dapp.get(API + f"/jobs/{job_id}", headers=bob).json["interactive"]["state"] == "ended"
    dapp.get(f"/jobs/{job_id}/desktop", status=410)
    purge_expired_sessions(dbsession)
    dbsession.expire_all()
    d = dbsession.get(Desktop, job_id)
    assert (d.state, d.ended_reason) == ("ended", "node failure")
    assert (
        dbsession.scalar(
            sa.select(sa.func.count()).select_from(DesktopToken).where(DesktopToken.job_id == job_id)
        )
        == 0
    )


def test_cancelling_an_interactive_job_ends_its_desktop(dapp, dbsession, backends):
    """A real cancel (the job page's Cancel, the console) writes the job's state through
    write_states: its desktop ends with it, and its tokens go."""
    bob = token(dapp, "bob")
    job_id = submit(dapp, bob).json["jobs"][0]["id"]
    job = dbsession.get(Job, job_id)
    from ijpweb.batch.submitter import submit_pending

    submit_pending(dbsession, backends)
    dbsession.expire_all()
    dapp.post_json(API + f"/jobs/{job_id}/cancel", {}, headers=bob)
    dbsession.expire_all()
    job = dbsession.get(Job, job_id)
    assert job.status == JobStatus.CANCELLED
    assert dbsession.get(Desktop, job_id).state == "ended"


def test_a_reason_the_jobs_own_records_gave_is_shown_as_text(dapp, dbsession):
    """ended.json is written inside the sandbox, by the job's user: its reason is text."""
    bob = token(dapp, "bob")
    job_id = submit(dapp, bob).json["jobs"][0]["id"]
    job = dbsession.get(Job, job_id)
    make_ready(dbsession, job_id)
    evil = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    write_state(dbsession, job, BatchState(JobStatus.COMPLETED, reason=evil))
    web_login(dapp, "bob")
    for page in (dapp.get(f"/jobs/{job_id}"), dapp.get(f"/jobs/{job_id}/desktop", status=410)):
        assert evil not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text

"""Who may see and do what: logins, CSRF, another user's jobs, htmx and expired logins."""

import pytest
import sqlalchemy as sa

from ijpweb.catalog import SessionError
from ijpweb.jobs.sessions import keep_sessions_alive, logout_pending
from ijpweb.models import Job, PendingLogout, Submission, WebSession
from ijpweb.states import JobStatus

from .test_flow import dataset_ids, select


def make_job(dbsession, owner, status=JobStatus.COMPLETED):
    sub = Submission(owner=owner, job_type="Date", mode="single")
    job = Job(submission=sub, owner=owner, job_type="Date", argv=[], backend="local", status=status)
    dbsession.add(job)
    dbsession.flush()
    return job


def test_pages_need_a_login(testapp):
    for url in ("/datasets", "/jobs", "/submit", "/jobs/1", "/datasets/1", "/staff/jobtypes"):
        res = testapp.get(url, status=303)
        assert "/login?next=" in res.location


def test_login_next_cannot_leave_the_site(testapp):
    token = testapp.get_csrf_token()
    for evil in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        res = testapp.post(
            "/login",
            {"username": "bob", "password": "bob-demo", "csrf_token": token, "next": evil},
            status=303,
        )
        assert res.location.startswith("http://example.com/")


def test_forged_form_without_csrf_token_changes_nothing(alice, dbsession):
    before = dbsession.scalar(sa.select(sa.func.count(Job.id)))
    res = alice.post("/submit", {"jobtype": "Date"}, status=400)
    assert "nothing was changed" in res.text
    res = alice.post("/submit", {"jobtype": "Date", "csrf_token": "forged"}, status=400)
    assert dbsession.scalar(sa.select(sa.func.count(Job.id))) == before
    alice.post("/logout", status=400)  # logout is a state change too


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/jobs/{id}"),
        ("GET", "/jobs/{id}/output/stdout"),
        ("GET", "/jobs/{id}/cancel"),
        ("POST", "/jobs/{id}/cancel"),
        ("POST", "/jobs/{id}/delete"),
    ],
)
def test_another_users_job_is_not_found_and_untouched(alice, dbsession, method, path):
    job = make_job(dbsession, "db/bob", JobStatus.RUNNING)
    url = path.format(id=job.id)
    if method == "GET":
        alice.get(url, status=404)
    else:
        alice.post(url, {"csrf_token": alice.get_csrf_token()}, status=404)
    dbsession.refresh(job)
    assert job.status == JobStatus.RUNNING
    assert str(job.id) not in alice.get("/jobs").text.split("<tbody>")[1]


def test_nonsense_job_ids_are_not_found(alice):
    alice.get("/jobs/abc", status=404)
    alice.get("/jobs/99999999", status=404)


def test_expired_login_during_htmx_redirects_the_browser(alice, dbsession):
    ws = dbsession.scalars(sa.select(WebSession)).one()
    dbsession.delete(ws)
    dbsession.flush()
    res = alice.get(
        "/jobs",
        headers={"HX-Request": "true", "HX-Current-URL": "http://example.com/jobs?status=Running"},
        status=401,
    )
    assert res.headers["HX-Redirect"].startswith("http://example.com/login?next=")
    assert "status%3DRunning" in res.headers["HX-Redirect"]
    assert "<html" not in res.text  # no login page to swap into the table


def test_datasets_of_other_investigations_cannot_be_selected_or_used(alice, dbsession):
    bobs = dataset_ids(dbsession, investigation="LMF-2026-003")[:1]
    alice.get(f"/datasets/{bobs[0]}", status=404)
    select(alice, "dataset", bobs)
    res = alice.post(
        "/submit",
        {"jobtype": "Test args - single dataset or datafile", "csrf_token": alice.get_csrf_token()},
        status=400,
    )
    assert f"dataset {bobs[0]}" in res.text and "not visible" in res.text
    assert dbsession.scalar(sa.select(sa.func.count(Job.id))) == 0


def test_staff_page_is_for_staff(testapp):
    testapp.login("bob")
    testapp.get("/staff/jobtypes", status=403)


def test_logout_ends_the_login(alice, dbsession, app):
    ws = dbsession.scalars(sa.select(WebSession)).one()
    cookie = alice.cookies["ijp_auth"]
    alice.post("/logout", {"csrf_token": alice.get_csrf_token()}, status=303)
    assert dbsession.scalar(sa.select(sa.func.count(WebSession.id))) == 0
    alice.get("/jobs", status=303)
    # no job uses its catalog session: logged out of the catalog at once
    catalog = app.registry["ijp.catalog_for"](dbsession)
    with pytest.raises(SessionError):
        catalog.user_name(ws.catalog_session)
    # the old cookie, replayed (carol found it), is no login
    alice.set_cookie("ijp_auth", cookie)
    alice.get("/jobs", status=303)


def submit_two(app, dbsession):
    select(app, "dataset", dataset_ids(dbsession, "confocal", "LMF-2026-001")[:2])
    form = app.get("/submit", {"jobtype": "Test args - multiple datasets or datafiles"}).forms["job-form"]
    form["mode"] = "each"
    form.submit(status=303)
    return dbsession.scalars(sa.select(Job).order_by(Job.id)).all()


def test_logging_out_keeps_the_catalog_session_of_live_jobs_until_the_last_ends(alice, dbsession, app):
    """The report: logging out killed the jobs just submitted (their catalog session was
    the login's, and was logged out with it)."""
    catalog = app.registry["ijp.catalog_for"](dbsession)
    first, second = submit_two(alice, dbsession)
    sid = first.submission.catalog_session
    alice.post("/logout", {"csrf_token": alice.get_csrf_token()}, status=303)
    assert dbsession.scalar(sa.select(sa.func.count(WebSession.id))) == 0  # the login: gone at once
    alice.get("/jobs", status=303)
    assert catalog.user_name(sid) == "db/alice"  # the jobs' session: still there
    assert dbsession.get(PendingLogout, sid) is not None
    assert keep_sessions_alive(dbsession, catalog) == 0 and catalog.user_name(sid) == "db/alice"
    first.status = JobStatus.COMPLETED
    dbsession.flush()
    assert logout_pending(dbsession, catalog) == 0 and catalog.user_name(sid) == "db/alice"  # one runs
    second.status = JobStatus.FAILED
    dbsession.flush()
    assert logout_pending(dbsession, catalog) == 1
    with pytest.raises(SessionError):
        catalog.user_name(sid)
    assert dbsession.get(PendingLogout, sid) is None and first.submission.catalog_session is None


def test_a_session_the_user_did_not_log_out_stays_when_the_jobs_end(alice, dbsession, app):
    """Only a logout ends a catalog session: the jobs of a user still logged in (or of a
    client of the original API, which brings its own ICAT session) end without it."""
    catalog = app.registry["ijp.catalog_for"](dbsession)
    jobs = submit_two(alice, dbsession)
    sid = jobs[0].submission.catalog_session
    for job in jobs:
        job.status = JobStatus.COMPLETED
    dbsession.flush()
    keep_sessions_alive(dbsession, catalog)
    assert logout_pending(dbsession, catalog) == 0 and catalog.user_name(sid) == "db/alice"
    alice.get("/jobs", status=200)


def test_revoking_a_token_keeps_the_catalog_session_of_its_live_jobs(testapp, dbsession, app):
    from .test_api import API, token

    catalog = app.registry["ijp.catalog_for"](dbsession)
    auth = token(testapp, "bob")
    bobs = dataset_ids(dbsession, "confocal", "LMF-2026-002")[:1]
    body = {"job_type": "Test args - single dataset or datafile", "datasets": bobs}
    testapp.post_json(API + "/submissions", body, headers=auth, status=201)
    job = dbsession.scalars(sa.select(Job)).one()
    sid = job.submission.catalog_session
    testapp.delete(API + "/session", headers=auth, status=204)
    testapp.get(API + "/jobs", headers=auth, status=401)
    assert catalog.user_name(sid) == "db/bob"
    job.status = JobStatus.CANCELLED
    dbsession.flush()
    assert logout_pending(dbsession, catalog) == 1
    with pytest.raises(SessionError):
        catalog.user_name(sid)
    # a token with no live jobs: its catalog session goes with it
    auth = token(testapp, "bob")
    sid = dbsession.scalars(sa.select(WebSession.catalog_session).where(WebSession.kind == "api")).one()
    testapp.delete(API + "/session", headers=auth, status=204)
    with pytest.raises(SessionError):
        catalog.user_name(sid)


def test_no_session_id_in_pages(alice, dbsession, backends):
    from .test_flow import wait_for

    ws = dbsession.scalars(sa.select(WebSession)).one()
    ids = dataset_ids(dbsession, "confocal", "LMF-2026-001")[:1]
    select(alice, "dataset", ids)
    form = alice.get("/submit", {"jobtype": "Test args - single dataset or datafile"}).forms["job-form"]
    form.submit(status=303)
    job = dbsession.scalars(sa.select(Job)).one()
    wait_for(dbsession, backends, [job.id])
    for page in (f"/jobs/{job.id}", "/jobs", f"/jobs/{job.id}/output/stdout", "/datasets"):
        assert ws.catalog_session not in alice.get(page).text
    assert ws.catalog_session not in " ".join(job.argv)


def test_an_unreachable_icat_gives_a_clear_login_message(app_settings, dbengine):
    import webtest

    from ijpweb import main

    settings = {
        **app_settings,
        "ijp.catalog": "icat",
        "ijp.icat_url": "https://127.0.0.1:1",
        "ijp.catalog.timeout": "2",
    }
    app = webtest.TestApp(main({}, dbengine=dbengine, **settings))  # (logins read the throttle's counts)
    app.get("/icat/version", status=404)  # the embedded faces are not served for a real ICAT
    page = app.get("/login")
    form = page.forms["login-form"]
    form["username"], form["password"] = "jdoe", "secret"
    res = form.submit(status=400)
    assert "cannot be reached" in res.text and "Traceback" not in res.text


def test_the_login_page_offers_the_catalogs_authenticators(app_settings, dbengine, tm, dbsession):
    from ijpweb import main

    from ..conftest import make_testapp

    app = main({}, dbengine=dbengine, **{**app_settings, "ijp.catalog.anon": "true"})
    web = make_testapp(app, tm, dbsession)
    form = web.get("/login").forms["login-form"]
    assert [o[0] for o in form["authenticator"].options] == ["db", "anon"]
    form["authenticator"] = "anon"
    form.submit(status=303)
    page = web.get("/datasets")
    assert "anon/anon" in page.text and "0 dataset(s)" in page.text

"""Who may see and do what: logins, CSRF, another user's jobs, htmx and expired logins."""

import pytest
import sqlalchemy as sa

from ijpweb.models import Job, JobStatus, Submission, WebSession

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


def test_logout_ends_the_login(alice, dbsession):
    alice.post("/logout", {"csrf_token": alice.get_csrf_token()}, status=303)
    assert dbsession.scalar(sa.select(sa.func.count(WebSession.id))) == 0
    alice.get("/jobs", status=303)


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


def test_an_unreachable_icat_gives_a_clear_login_message(app_settings):
    import webtest

    from ijpweb import main

    settings = {
        **app_settings,
        "ijp.catalog": "icat",
        "ijp.icat_url": "https://127.0.0.1:1",
        "ijp.catalog.timeout": "2",
    }
    app = webtest.TestApp(main({}, **settings))
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

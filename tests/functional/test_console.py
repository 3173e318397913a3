"""Issue 11, point 4: the operator's console (pages under /console, JSON under
/api/v1/admin): every user's jobs with cancel and delete, logins and API tokens and
their revocation, job type problems, and the audit of every staff action. Staff only:
every route named under the console's prefixes is checked, from the app's own route
table, to refuse everyone else whatever the method."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from ijpweb import console
from ijpweb.batch.submitter import submit_pending
from ijpweb.catalog import SessionError
from ijpweb.models import AuditEntry, Job, PendingLogout, Submission, WebSession
from ijpweb.paging import COUNT_CAP, MAX_PER_PAGE
from ijpweb.security import token_key
from ijpweb.states import JobStatus
from ijpweb.views.console import STAFF_ROUTES

from ..conftest import make_testapp
from .test_api import API, check, token
from .test_job_lists import ROW, _tampered, add_jobs, rows_and_links
from .test_prefix import P, prefixed  # noqa: F401  (the portal mounted at /ijp, a fixture)
from .test_prefix import make as make_prefixed

ADMIN = API + "/admin"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def make_job(db, owner, status=JobStatus.COMPLETED, job_type="Date", backend="local", at=T0, session=None):
    sub = Submission(owner=owner, job_type=job_type, mode="single", catalog_session=session)
    job = Job(submission=sub, owner=owner, job_type=job_type, argv=[], backend=backend, status=status,
              submitted_at=at)  # fmt: skip
    db.add(job)
    db.flush()
    return job


def audit_rows(db):
    return db.scalars(sa.select(AuditEntry).order_by(AuditEntry.id)).all()


def user_app(app, tm, dbsession, user):
    other = make_testapp(app, tm, dbsession)
    other.login(user)
    return other


@pytest.fixture
def bob(app, tm, dbsession):
    return user_app(app, tm, dbsession, "bob")


@pytest.fixture
def only_bob(app, tm, dbsession):
    """Bob logged in on the web, and no other login of his (another test's may be
    committed; gone only within this test's transaction)."""
    dbsession.execute(sa.delete(WebSession).where(WebSession.user_name == "db/bob"))
    return user_app(app, tm, dbsession, "bob")


def console_routes(app) -> dict[str, str]:
    """Every route of the console, by name, with its pattern: from Pyramid's introspector,
    so that a route added later is checked without being named here."""
    routes = (item["introspectable"] for item in app.registry.introspector.get_category("routes"))
    return {r["name"]: r["pattern"] for r in routes if r["name"].startswith(STAFF_ROUTES)}


# --- who may: staff alone, on every route, whatever the method ------------------------------


def test_every_console_route_refuses_everyone_but_staff(app, testapp, tm, dbsession, bob):
    routes = console_routes(app)
    names = set(routes)
    # the enumeration is the app's route table: it finds the console (and finds new routes)
    assert {"console.home", "console.jobs", "console.logins.revoke", "api.admin.jobs",
            "api.admin.job.cancel", "api.admin.logins.revoke", "api.admin.audit", "staff.jobtypes"} <= names  # fmt: skip
    carols = make_job(dbsession, "db/carol", JobStatus.SUBMITTING)  # a cancel would succeed at once
    ended = make_job(dbsession, "db/carol", JobStatus.COMPLETED)
    bob_token = token(testapp, "bob")
    sessions_before = dbsession.scalar(sa.select(sa.func.count()).select_from(WebSession))
    anonymous = make_testapp(app, tm, dbsession)
    csrf = bob.get_csrf_token()
    seen = []
    for name, pattern in routes.items():
        for job in (carols, ended):
            url = pattern.replace("{job_id}", str(job.id))
            api = name.startswith("api.")
            body = {"user": "db/carol"}
            # bob, logged in: 403 for every method, with his cookie (and CSRF token) or his token
            assert bob.get(url, status=403).status_int == 403
            bob.get(url, headers={"HX-Request": "true"}, status=403)
            if api:
                resp = bob.post_json(url, body, headers={"X-CSRF-Token": csrf}, status=403)
                assert resp.json["code"] == "forbidden"
                bob.get(url, headers=bob_token, status=403)
                bob.post_json(url, body, headers=bob_token, status=403)
                bob.delete(url, headers=bob_token, status=403)
            else:
                bob.post(url, {"csrf_token": csrf, "user": "db/carol", "next": "/"}, status=403)
                bob.put(url, {"csrf_token": csrf}, status=403)
            # nobody logged in: the login page for pages, 401 for the API
            for method in ("GET", "POST", "DELETE"):
                resp = anonymous.request(url, method=method, expect_errors=True)
                if api:
                    assert resp.status_int == 401 and resp.json["code"] == "unauthenticated", (url, method)
                else:
                    assert resp.status_int == 303 and "/login?next=" in resp.location, (url, method)
            seen.append(name)
    assert set(seen) == names
    dbsession.expire_all()
    assert dbsession.get(Job, carols.id).status == JobStatus.SUBMITTING
    assert dbsession.get(Job, ended.id) is not None
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(WebSession)) == sessions_before
    assert audit_rows(dbsession) == []


def test_a_staff_action_without_a_csrf_token_changes_nothing(alice, dbsession, bob):
    job = make_job(dbsession, "db/carol", JobStatus.SUBMITTING)
    ended = make_job(dbsession, "db/carol")
    for url in (f"/console/jobs/{job.id}/cancel", f"/console/jobs/{ended.id}/delete"):
        assert "nothing was changed" in alice.post(url, status=400).text
        alice.post(url, {"csrf_token": "forged"}, status=400)
    alice.post("/console/logins/revoke", {"user": "db/bob"}, status=400)
    # the JSON face with the login cookie needs the token as well (a bearer token does not)
    for url in (f"{ADMIN}/jobs/{job.id}/cancel", f"{ADMIN}/jobs/{ended.id}/delete"):
        assert alice.post(url, status=400).json["code"] == "bad_csrf_token"
    alice.post_json(f"{ADMIN}/logins/revoke", {"user": "db/bob"}, status=400)
    dbsession.expire_all()
    assert dbsession.get(Job, job.id).status == JobStatus.SUBMITTING
    assert dbsession.get(Job, ended.id) is not None
    assert bob.get("/jobs").status_int == 200  # still logged in
    assert audit_rows(dbsession) == []


def test_bob_cannot_cancel_carols_job_through_the_admin_api_and_alice_can(testapp, doc, dbsession, backends):
    """A real job of carol's, running on the local backend."""
    carol = token(testapp, "carol")
    body = {"job_type": "Sleepcount", "options": {"Sleep Time": "60"}}
    job_id = testapp.post_json(API + "/submissions", body, headers=carol, status=201).json["jobs"][0]["id"]
    submit_pending(dbsession, backends)
    job = dbsession.get(Job, job_id)
    assert job.status in (JobStatus.QUEUED, JobStatus.RUNNING) and job.backend_job_id
    try:
        bob = token(testapp, "bob")
        resp = testapp.post(f"{ADMIN}/jobs/{job_id}/cancel", headers=bob, status=403)
        assert resp.json["code"] == "forbidden"
        testapp.post(f"{API}/jobs/{job_id}/cancel", headers=bob, status=404)  # nor as his own
        dbsession.refresh(job)
        assert job.live and audit_rows(dbsession) == []

        alice = token(testapp, "alice")
        resp = testapp.post(f"{ADMIN}/jobs/{job_id}/cancel", headers=alice, status=200)
        got = check(doc, resp, "/api/v1/admin/jobs/{job_id}/cancel", "post").json
        assert got["id"] == job_id and got["owner"] == "db/carol" and got["status"] == "Cancelled"
        dbsession.refresh(job)
        assert job.status == JobStatus.CANCELLED
        assert (
            backends["local"].states([job.backend_job_id])[job.backend_job_id].status == JobStatus.CANCELLED
        )
        (entry,) = audit_rows(dbsession)
        assert (entry.actor, entry.action, entry.target) == ("db/alice", "job.cancel", f"job {job_id}")
        assert "db/carol" in entry.detail and "Cancelled" in entry.detail
        listed = check(doc, testapp.get(f"{ADMIN}/audit", headers=alice), "/api/v1/admin/audit", "get").json
        assert listed["entries"][0]["action"] == "job.cancel" and listed["entries"][0]["id"] == entry.id
        # carol sees her job cancelled; a second cancel is a conflict, not audited
        assert testapp.get(f"{API}/jobs/{job_id}", headers=carol).json["status"] == "Cancelled"
        resp = testapp.post(f"{ADMIN}/jobs/{job_id}/cancel", headers=alice, status=409)
        assert check(doc, resp, "/api/v1/admin/jobs/{job_id}/cancel", "post").json["code"] == "conflict"
        assert len(audit_rows(dbsession)) == 1
    finally:
        if job.live:
            backends["local"].cancel(job.backend_job_id)


def test_staff_delete_any_ended_job_from_the_list_and_not_a_live_one(alice, dbsession):
    ended = make_job(dbsession, "db/bob", JobStatus.FAILED, job_type="Sleepcount")
    live = make_job(dbsession, "db/carol", JobStatus.RUNNING)
    page = alice.get("/console/jobs", {"user": "db/bob"})
    assert f'id="job-{ended.id}"' in page.text and f'id="job-{live.id}"' not in page.text
    form = next(f for f in page.forms.values() if f.action.endswith(f"/console/jobs/{ended.id}/delete"))
    done = form.submit(status=303)
    assert done.location.endswith("/console/jobs?user=db%2Fbob")  # back to the list it came from
    assert dbsession.get(Job, ended.id) is None
    (entry,) = audit_rows(dbsession)
    assert (entry.action, entry.target) == ("job.delete", f"job {ended.id}")
    assert entry.detail == "Sleepcount of db/bob, Failed"
    assert "job.delete" in alice.get("/console/audit").text
    # a live job is cancelled first: refused, named, nothing changed or audited
    confirm = alice.get(f"/console/jobs/{live.id}/delete")
    assert f"Delete job {live.id} of db/carol?" in confirm.text
    refused = confirm.forms[1].submit(status=409)
    assert "cancel it before deleting it" in refused.text
    refused = alice.htmx("POST", f"/console/jobs/{live.id}/delete", {}, status=409)
    assert refused.text.startswith('<p class="error"') and "cancel it before" in refused.text
    assert dbsession.get(Job, live.id).status == JobStatus.RUNNING
    assert len(audit_rows(dbsession)) == 1
    alice.get("/console/jobs/999999999/delete", status=404)
    alice.post(f"{ADMIN}/jobs/999999999/delete", headers={"X-CSRF-Token": alice.get_csrf_token()}, status=404)


def test_the_list_refreshes_itself_while_a_job_shown_is_live(alice, dbsession):
    live = make_job(dbsession, "db/bob", JobStatus.QUEUED)
    make_job(dbsession, "db/carol")
    rows = alice.htmx("GET", "/console/jobs", {"user": "db/bob"}).text
    assert rows.startswith(
        '<div id="console-jobs" hx-get="http://example.com/console/jobs?user=db%2Fbob" hx-trigger="every 5s"'
    )
    assert f'id="job-{live.id}"' in rows and "<html" not in rows  # the rows alone
    assert "hx-trigger" not in alice.htmx("GET", "/console/jobs", {"user": "db/carol"}).text.split(">")[0]


def test_cancel_from_the_list_with_htmx_redirects_back(alice, dbsession):
    job = make_job(dbsession, "db/carol", JobStatus.SUBMITTING)
    resp = alice.htmx(
        "POST", f"/console/jobs/{job.id}/cancel", {"next": "/console/jobs?status=live"}, status=204
    )
    assert resp.headers["HX-Redirect"] == "/console/jobs?status=live"
    # a next that leaves the site goes to the list instead
    other = make_job(dbsession, "db/carol", JobStatus.SUBMITTING)
    resp = alice.post(f"/console/jobs/{other.id}/cancel",
                      {"next": "https://evil.example/", "csrf_token": alice.get_csrf_token()}, status=303)  # fmt: skip
    assert resp.location == "http://example.com/console/jobs"
    assert [e.action for e in audit_rows(dbsession)] == ["job.cancel", "job.cancel"]


def test_behind_a_prefix_the_console_returns_only_within_it(prefixed, tm, dbsession):  # noqa: F811
    """Mounted at /ijp: back to the list the action came from, and never to another
    application's page on the same host (a next outside the prefix goes to the list)."""
    web = make_prefixed(prefixed, tm, dbsession)
    web.login("alice")
    csrf = web.get_csrf_token()
    first, second = (make_job(dbsession, "db/carol", JobStatus.SUBMITTING) for _ in range(2))
    resp = web.post(
        f"{P}/console/jobs/{first.id}/cancel", {"csrf_token": csrf, "next": f"{P}/console/jobs?status=live"}
    )
    assert resp.status_int == 303 and resp.location == f"http://example.com{P}/console/jobs?status=live"
    resp = web.post(f"{P}/console/jobs/{second.id}/cancel", {"csrf_token": csrf, "next": "/other-app/x"})
    assert resp.status_int == 303 and resp.location == f"http://example.com{P}/console/jobs"
    assert f'action="http://example.com{P}/console/jobs' in web.get(f"{P}/console/jobs").text


# --- every user's jobs: filters and pages ----------------------------------------------------------


@pytest.fixture
def many(dbsession):
    """Jobs of three users, statuses, job types, backends and days."""
    rows = []
    for i in range(12):
        rows.append(make_job(
            dbsession, ("db/alice", "db/bob", "db/carol")[i % 3],
            (JobStatus.COMPLETED, JobStatus.RUNNING, JobStatus.FAILED, JobStatus.QUEUED)[i % 4],
            ("Date", "Sleepcount")[i % 2], ("local", "slurm")[i // 6], at=T0 + timedelta(days=i),
        ))  # fmt: skip
    return rows


def admin_ids(app, auth, doc=None, **params):
    resp = app.get(ADMIN + "/jobs", params, headers=auth)
    if doc:
        check(doc, resp, "/api/v1/admin/jobs", "get")
    return [j["id"] for j in resp.json["jobs"]]


def test_every_users_jobs_filtered(testapp, doc, many):
    auth = token(testapp, "alice")
    ids = {j.id: j for j in many}
    newest_first = sorted(ids, reverse=True)
    assert admin_ids(testapp, auth, doc)[: len(ids)] == newest_first
    want = {
        "user": lambda j: j.owner == "db/bob",
        "status": lambda j: j.status == JobStatus.RUNNING,
        "jobtype": lambda j: j.job_type == "Sleepcount",
        "backend": lambda j: j.backend == "slurm",
    }
    values = {"user": "db/bob", "status": "Running", "jobtype": "Sleepcount", "backend": "slurm"}
    for key, keep in want.items():
        got = admin_ids(testapp, auth, doc, **{key: values[key]})
        assert got == [i for i in newest_first if keep(ids[i])], key
    both = admin_ids(testapp, auth, user="db/bob", backend="slurm")
    assert both == [i for i in newest_first if ids[i].owner == "db/bob" and ids[i].backend == "slurm"]
    live = admin_ids(testapp, auth, status="live")
    assert live == [i for i in newest_first if ids[i].live]
    # dates: since included, until excluded; a date alone as until includes that day
    got = admin_ids(testapp, auth, since="2026-11-03", until="2026-11-05")
    assert got == [
        i for i in newest_first if T0 + timedelta(days=2) <= ids[i].submitted_at <= T0 + timedelta(days=4)
    ]
    got = admin_ids(testapp, auth, since="2026-11-03T12:00:00Z", until="2026-11-05T12:00:00+00:00")
    assert got == [
        i for i in newest_first if T0 + timedelta(days=2) <= ids[i].submitted_at < T0 + timedelta(days=4)
    ]
    assert admin_ids(testapp, auth, user="db/nobody") == []
    # the page shows them with their owners
    page = testapp.get("/console/jobs", {"user": "db/carol", "jobtype": "Date"}, headers=auth)
    shown = [j for j in many if j.owner == "db/carol" and j.job_type == "Date"]
    assert all(f'id="job-{j.id}"' in page.text for j in shown)
    assert page.text.count('<tr id="job-') == len(shown)


def test_bad_filters_are_named(testapp, doc):
    auth = token(testapp, "alice")
    for params, field in (({"status": "Sleeping"}, "status"), ({"since": "yesterday"}, "since"),
                          ({"until": "2026-13-01"}, "until"), ({"until": "9999-12-31"}, "until"),
                          ({"per_page": "0"}, "per_page"), ({"cursor": "x"}, "cursor"),
                          ({"cursor": "12"}, "cursor")):  # fmt: skip
        resp = testapp.get(ADMIN + "/jobs", params, headers=auth, status=400)
        body = check(doc, resp, "/api/v1/admin/jobs", "get").json
        assert field in body["fields"], body
    testapp.get(ADMIN + "/jobs", {"usr": "db/bob"}, headers=auth, status=400)  # a misspelt filter
    # the unsigned ids of old are refused by name, not ignored (one way to page: cursor)
    for old in ("before", "after", "limit"):
        resp = testapp.get(ADMIN + "/jobs", {old: "3"}, headers=auth, status=400)
        assert resp.json["code"] == "unknown_parameter" and old in resp.json["fields"]
    alice = testapp
    alice.login("alice")
    assert "since" in alice.get("/console/jobs", {"since": "soon"}, status=400).text


def walk(app, url, headers=None):
    """Follow next_url from ``url`` to the end: the pages' JSON, in order."""
    pages = []
    while url:
        pages.append(app.get(url, headers=headers).json)
        url = pages[-1]["next_url"]
    return pages


def test_pages_of_jobs_walk_older_and_newer_by_cursor(testapp, doc, many, dbsession):
    auth = token(testapp, "alice")
    newest_first = sorted((j.id for j in many), reverse=True)
    first = testapp.get(ADMIN + "/jobs", {"per_page": 5}, headers=auth)
    first = check(doc, first, "/api/v1/admin/jobs", "get").json
    assert first["total"] == 12 and first["total_exact"] and first["previous"] is None
    pages = walk(testapp, ADMIN + "/jobs?per_page=5", auth)
    seen = [j["id"] for p in pages for j in p["jobs"]]
    assert seen == newest_first and [len(p["jobs"]) for p in pages] == [5, 5, 2]  # every job once, in order
    assert pages[-1]["next"] is None and all(p["per_page"] == 5 and not p["per_page_capped"] for p in pages)
    # back by previous: the same pages, newer first, to the first (which has no previous)
    back, url = [], pages[-1]["previous_url"]
    while url:
        back.append(testapp.get(url, headers=auth).json)
        url = back[-1]["previous_url"]
    assert [[j["id"] for j in p["jobs"]] for p in back] == [
        [j["id"] for j in p["jobs"]] for p in pages[1::-1]
    ]
    # with filters: they stay in next_url, and every page holds only what they select
    bobs = [j.id for j in sorted(many, key=lambda j: -j.id) if j.owner == "db/bob"]
    pages = walk(testapp, ADMIN + "/jobs?user=db%2Fbob&per_page=3", auth)
    assert [j["id"] for p in pages for j in p["jobs"]] == bobs and len(pages) == 2
    assert all(j["owner"] == "db/bob" for p in pages for j in p["jobs"])

    # the page walks the same way by its Older and Newer links, with no link per page
    alice = testapp
    alice.login("alice")
    seen, url, links_seen = [], "/console/jobs?per_page=5", []
    while url:
        rows, links = rows_and_links(alice.get(url).text)
        seen += rows
        links_seen.append(links)
        url = links.get("next")
    assert seen == newest_first and all(len(links) <= 3 for links in links_seen)
    assert "first" not in links_seen[0] and "prev" in links_seen[-1] and "first" in links_seen[-1]
    rows, _ = rows_and_links(alice.get(links_seen[-1]["prev"]).text)
    assert rows == newest_first[5:10]
    # and the htmx rows of a later page are that page's, refreshed with its cursor (a job shown is live)
    frag = alice.htmx("GET", links_seen[1]["next"]).text
    assert ROW.findall(frag) == [str(i) for i in newest_first[10:]] and "<html" not in frag
    assert frag.startswith('<div id="console-jobs" hx-get=') and "cursor=" in frag.split(">")[0]


def test_a_changed_cursor_or_one_of_another_list_is_refused_on_every_face(testapp, doc, many, dbsession):
    """Staff's cursors are signed as a user's are: one changed, one of other filters, one
    of another list (alice's own /api/v1/jobs, the audit) is a 400 naming cursor on the
    admin API, the page and its htmx rows, and shows no row."""
    auth = token(testapp, "alice")
    bobs = testapp.get(ADMIN + "/jobs", {"user": "db/bob", "per_page": 2}, headers=auth).json
    cursor = bobs["next"]
    assert (
        cursor
        and testapp.get(ADMIN + "/jobs", {"user": "db/bob", "cursor": cursor}, headers=auth).json["jobs"]
    )
    console.record(dbsession, "db/alice", "job.cancel", "job 1")
    console.record(dbsession, "db/alice", "job.cancel", "job 2")
    audit_cursor = testapp.get(ADMIN + "/audit", {"per_page": 1}, headers=auth).json["next"]
    own = testapp.get(API + "/jobs", {"per_page": 1}, headers=auth).json["next"]
    assert audit_cursor and own
    refused = [
        {"user": "db/bob", "cursor": _tampered(cursor)},  # another position under the same signature
        {"user": "db/bob", "cursor": cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")},  # signature
        {"user": "db/carol", "cursor": cursor},  # another user's jobs
        {"cursor": cursor},  # every user's
        {"user": "db/bob", "status": "Failed", "cursor": cursor},
        {"user": "db/bob", "backend": "slurm", "cursor": cursor},
        {"user": "db/bob", "since": "2026-11-02", "cursor": cursor},
        {"user": "db/bob", "cursor": audit_cursor},  # the audit's
        {"cursor": own},  # alice's own job list's
    ]
    alice = testapp
    alice.login("alice")
    for params in refused:
        resp = testapp.get(ADMIN + "/jobs", params, headers=auth, status=400)
        assert list(check(doc, resp, "/api/v1/admin/jobs", "get").json["fields"]) == ["cursor"], params
        assert "jobs" not in resp.json
        for resp in (alice.get("/console/jobs", params, status=400), alice.htmx("GET", "/console/jobs", params,
                                                                                   status=400)):  # fmt: skip
            assert "cursor" in resp.text and not ROW.findall(resp.text), params
    # the audit takes none of the jobs' cursors
    for bad in (cursor, _tampered(audit_cursor)):
        resp = testapp.get(ADMIN + "/audit", {"cursor": bad}, headers=auth, status=400)
        assert "cursor" in check(doc, resp, "/api/v1/admin/audit", "get").json["fields"]
        assert "audit-" not in alice.get("/console/audit", {"cursor": bad}, status=400).text


def test_a_page_size_above_the_most_is_capped_and_says_so(testapp, doc, many):
    auth = token(testapp, "alice")
    resp = testapp.get(ADMIN + "/jobs", {"per_page": 5000}, headers=auth)
    got = check(doc, resp, "/api/v1/admin/jobs", "get").json
    assert got["per_page"] == MAX_PER_PAGE and got["per_page_capped"] is True and len(got["jobs"]) == 12
    assert resp.headers["X-Per-Page-Capped"] == str(MAX_PER_PAGE)
    resp = testapp.get(ADMIN + "/audit", {"per_page": 201}, headers=auth)
    assert check(doc, resp, "/api/v1/admin/audit", "get").json["per_page_capped"] is True
    assert "X-Per-Page-Capped" not in testapp.get(ADMIN + "/jobs", {"per_page": 200}, headers=auth).headers
    alice = testapp
    alice.login("alice")
    assert (
        f"At most {MAX_PER_PAGE} jobs are shown per page"
        in alice.get("/console/jobs", {"per_page": 999}).text
    )
    assert "At most" not in alice.get("/console/jobs").text
    assert f"At most {MAX_PER_PAGE} entries" in alice.get("/console/audit", {"per_page": 999}).text


def test_the_count_stops_at_ten_thousand_and_says_so(testapp, dbsession):
    add_jobs(dbsession, "db/carol", COUNT_CAP + 1)
    got = testapp.get(ADMIN + "/jobs", headers=token(testapp, "alice")).json
    assert got["total"] == COUNT_CAP and got["total_exact"] is False and len(got["jobs"]) == 50
    alice = testapp
    alice.login("alice")
    assert "more than 10,000 job(s)" in alice.get("/console/jobs", {"user": "db/carol"}).text
    # (the last two of carol's 10,001 jobs, one minute apart: the older one Failed)
    assert ">1 job(s)." in alice.get("/console/jobs", {"user": "db/carol", "status": "Failed",
                                                       "since": "2026-06-07T22:39:00Z"}).text  # fmt: skip


# --- logins and API tokens ---------------------------------------------------------------


def test_logins_are_listed_by_handle_and_revoked(app, testapp, tm, doc, dbsession, only_bob):
    bob = only_bob
    bobs_token = token(testapp, "bob")
    alice = token(testapp, "alice")
    resp = testapp.get(ADMIN + "/logins", {"user": "db/bob"}, headers=alice)
    listed = check(doc, resp, "/api/v1/admin/logins", "get").json
    assert listed["total"] == 2 and {x["kind"] for x in listed["logins"]} == {"web", "api"}
    rows = dbsession.scalars(sa.select(WebSession).where(WebSession.user_name == "db/bob")).all()
    secrets = [ws.id for ws in rows] + [ws.catalog_session for ws in rows] + [bobs_token["Authorization"][7:]]
    page = testapp.get("/console/logins", headers=alice).text
    for secret in secrets:  # no token, login id or catalog session, nor the start of one
        assert secret[:8] not in resp.text and secret[:8] not in page
    api_handle = next(x["handle"] for x in listed["logins"] if x["kind"] == "api")
    assert api_handle == console.handle(token_key(bobs_token["Authorization"][7:]))
    assert api_handle in page

    # one token: it ends at once, the web login stays
    resp = testapp.post_json(
        ADMIN + "/logins/revoke", {"user": "db/bob", "handle": api_handle}, headers=alice
    )
    assert check(doc, resp, "/api/v1/admin/logins/revoke", "post").json == {"revoked": 1, "waiting": 0}
    testapp.get(API + "/session", headers=bobs_token, status=401)
    assert bob.get("/jobs").status_int == 200
    # an unknown handle, or a user with none: 404, nothing changes
    resp = testapp.post_json(ADMIN + "/logins/revoke", {"user": "db/bob", "handle": api_handle}, headers=alice,
                             status=404)  # fmt: skip
    assert check(doc, resp, "/api/v1/admin/logins/revoke", "post").json["code"] == "not_found"
    testapp.post_json(ADMIN + "/logins/revoke", {"usr": "db/bob"}, headers=alice, status=400)

    # all of a user's, from the page: logged out, and the catalog session too (no job used it)
    web_sid = next(ws.catalog_session for ws in rows if ws.kind == "web")
    staff = user_app(app, tm, dbsession, "alice")
    page = staff.get("/console/logins", {"user": "db/bob"})
    form = next(f for f in page.forms.values() if "Revoke every login and token of db/bob" in f.text)
    done = form.submit(status=303).follow()
    assert "1 login(s) or token(s) revoked" in done.text
    assert bob.get("/jobs", status=303).location.startswith("http://example.com/login")
    with pytest.raises(SessionError):
        app.registry["ijp.catalog_for"](dbsession).user_name(web_sid)
    assert [(e.action, e.target) for e in audit_rows(dbsession)] == [
        ("login.revoke", f"db/bob {api_handle}"),
        ("login.revoke_all", "db/bob"),
    ]


def test_the_logins_pager_links_a_window_of_pages_not_every_page(testapp, dbsession):
    """3,000 live logins are 30 pages: page 15 links the first and last page and the
    pages around it, never a link per page."""
    from ijpweb.views.console import LOGINS_PER_PAGE

    soon = datetime.now(UTC) + timedelta(hours=1)
    dbsession.execute(sa.insert(WebSession), [
        {"id": f"pager-{i:05d}", "user_name": f"db/pager{i % 7}", "catalog_session": "x",
         "expires_at": soon, "selection": {}, "kind": "web"}
        for i in range(LOGINS_PER_PAGE * 30)
    ])  # fmt: skip
    testapp.login("alice")
    page = testapp.get("/console/logins", {"page": 15})
    pager = page.html.find("nav", {"aria-label": "Login pages"})
    linked = [int(a.text) for a in pager.find_all("a")]
    current = int(pager.find(attrs={"aria-current": "page"}).text)
    last = max(linked)
    assert current == 15 and last >= 30
    assert linked == [1, 12, 13, 14, 16, 17, 18, last]
    assert (
        len(
            testapp.get("/console/logins", {"page": 1})
            .html.find("nav", {"aria-label": "Login pages"})
            .find_all("a")
        )
        == 4
    )


def test_revoking_a_login_keeps_its_catalog_session_for_live_jobs(app, testapp, dbsession, only_bob):
    """The logout rules of issue 10: the login ends at once, the jobs keep running with
    the catalog session, which is logged out once the last of them ends."""
    bob = only_bob
    ws = dbsession.scalars(sa.select(WebSession).where(WebSession.user_name == "db/bob")).one()
    job = make_job(dbsession, "db/bob", JobStatus.RUNNING, session=ws.catalog_session)
    alice = token(testapp, "alice")
    got = testapp.post_json(ADMIN + "/logins/revoke", {"user": "db/bob"}, headers=alice).json
    assert got == {"revoked": 1, "waiting": 1}
    bob.get("/jobs", status=303)
    catalog = app.registry["ijp.catalog_for"](dbsession)
    assert catalog.user_name(ws.catalog_session) == "db/bob"  # still there for the job
    assert dbsession.get(PendingLogout, ws.catalog_session) is not None
    assert dbsession.get(Job, job.id).status == JobStatus.RUNNING
    assert "kept until their live jobs end" in audit_rows(dbsession)[0].detail


# --- the rest of the console ---------------------------------------------------------------


def test_staff_see_a_console_link_and_others_do_not(alice, bob):
    assert 'href="http://example.com/console">Console</a>' in alice.get("/jobs").text
    assert ">Console<" not in bob.get("/jobs").text


def test_the_overview_and_the_old_job_types_address(alice, dbsession):
    make_job(dbsession, "db/bob", JobStatus.RUNNING)
    page = alice.get("/console").text
    assert "1 Running" in page and "No problems in the job type" in page and "No staff action yet" in page
    assert alice.get("/staff/jobtypes", status=303).location == "http://example.com/console/jobtypes"
    assert "Test Options" in alice.get("/console/jobtypes").text


def test_job_type_problems_in_json(testapp, doc, app, tmp_path, monkeypatch):
    from ijpweb.jobtypes import JobTypes

    (tmp_path / "broken.xml").write_text("<jobType>\n  <name>Broken</name>\n  <type>batch</jobType>\n")
    monkeypatch.setitem(app.registry, "ijp.jobtypes", JobTypes(tmp_path, interval=0))
    resp = testapp.get(ADMIN + "/jobtypes", headers=token(testapp, "alice"))
    (problem,) = check(doc, resp, "/api/v1/admin/jobtypes", "get").json["problems"]
    assert problem["kind"] == "job type" and problem["file"].endswith("broken.xml") and problem["line"] == 3


def test_the_audit_is_paged_newest_first(testapp, doc, dbsession):
    for i in range(5):
        console.record(dbsession, "db/alice", "job.cancel", f"job {i}")
    auth = token(testapp, "alice")
    first = testapp.get(ADMIN + "/audit", {"per_page": 2}, headers=auth).json
    assert [e["target"] for e in first["entries"]] == ["job 4", "job 3"] and first["previous"] is None
    assert first["total"] == 5 and first["total_exact"]
    second = testapp.get(first["next_url"], headers=auth)
    second = check(doc, second, "/api/v1/admin/audit", "get").json
    assert [e["target"] for e in second["entries"]] == ["job 2", "job 1"]
    pages = walk(testapp, ADMIN + "/audit?per_page=2", auth)
    assert [e["target"] for p in pages for e in p["entries"]] == [f"job {i}" for i in range(4, -1, -1)]
    back = testapp.get(pages[-1]["previous_url"], headers=auth).json
    assert [e["target"] for e in back["entries"]] == ["job 2", "job 1"]
    page = testapp.get("/console/audit", {"cursor": first["next"], "per_page": 2}, headers=auth).text
    assert page.index("job 2") < page.index("job 1") and "job 3" not in page and "job 0" not in page
    assert 'rel="next"' in page and 'rel="prev"' in page and 'rel="first"' in page


def test_what_users_and_backends_wrote_is_shown_as_text(alice, dbsession):
    """Carol's job fails with a reason her program chose: staff see it as text, not markup."""
    job = make_job(dbsession, "db/carol", JobStatus.FAILED)
    job.reason = '<script>alert("carol")</script>'
    dbsession.flush()
    page = alice.get("/console/jobs").text
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#34;carol&#34;)&lt;/script&gt;" in page

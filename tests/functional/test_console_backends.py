"""Issue 11, point 4: the console's backends. Each backend's health as the harvester last
saw it (kept in the database: every portal process shows the same), its jobs, the
submitter's backlog, and pause/resume (POST, CSRF, audited). A paused backend gets no new
submission; with every backend paused a submission is refused (503 no_backend, saying
so); jobs recorded for a paused backend wait, Submitting, until it is resumed."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from ijpweb import health, main
from ijpweb.batch.harvest import harvest
from ijpweb.batch.submitter import submit_pending
from ijpweb.models import AuditEntry, Job, utcnow
from ijpweb.states import JobStatus

from ..conftest import NO_SANDBOX, ROOT, make_testapp, portal_settings
from .test_api import API, check, token
from .test_console import audit_rows, make_job

ADMIN = API + "/admin"
DATE = {"job_type": "Date"}  # a job type that needs no input


def backend(doc_or_none, app, name="local", headers=None):
    resp = app.get(f"{ADMIN}/backends", headers=headers or {})
    if doc_or_none is not None:
        check(doc_or_none, resp, "/api/v1/admin/backends", "get")
    return next(b for b in resp.json["backends"] if b["name"] == name)


def job_count(db) -> int:
    return db.scalar(sa.select(sa.func.count()).select_from(Job))


# --- what the section shows -----------------------------------------------------------------


def test_each_backend_with_its_health_jobs_failures_and_backlog(alice, doc, dbsession):
    before = backend(doc, alice)
    assert before["kind"] == "local" and before["nodes"] is None
    for status in (JobStatus.SUBMITTING, JobStatus.SUBMITTING, JobStatus.QUEUED, JobStatus.RUNNING):
        make_job(dbsession, "db/bob", status)
    recent = make_job(dbsession, "db/carol", JobStatus.FAILED)
    recent.finished_at = utcnow() - timedelta(minutes=10)
    old = make_job(dbsession, "db/carol", JobStatus.FAILED)
    old.finished_at = utcnow() - timedelta(hours=2)
    make_job(dbsession, "db/bob", JobStatus.QUEUED, backend="elsewhere")  # another backend's
    then = utcnow() - timedelta(minutes=3)
    health.record(dbsession, {"local": health.Check(1.5, "the job directory /x is missing")}, now=then)
    health.record(dbsession, {"local": health.Check(0.125)})
    dbsession.flush()
    now = backend(doc, alice)
    grew = {k: now["jobs"].get(k, 0) - before["jobs"].get(k, 0) for k in ("Submitting", "Queued", "Running")}
    assert grew == {"Submitting": 2, "Queued": 1, "Running": 1}
    assert now["backlog"] - before["backlog"] == 2
    assert now["failed_last_hour"] - before["failed_last_hour"] == 1
    assert now["reachable"] is True and now["duration"] == 0.125 and now["error_since"] is None
    assert now["last_error"] == "the job directory /x is missing" and now["errors"] == before["errors"] + 1
    page = alice.get("/console/backends")
    section = page.html.find(id="backend-local")
    text = " ".join(section.get_text().split())
    assert (
        f"{now['jobs']['Queued']} queued, {now['jobs']['Running']} running, {now['failed_last_hour']} failed"
        in text
    )
    assert f"{now['backlog']} job(s) waiting to be handed over" in text
    assert "took 0.125 s" in text and "the job directory /x is missing" in text
    assert section.find(class_="reachable").get_text(strip=True) == "yes"
    # the overview has a line for it, and the navigation a section
    home = alice.get("/console")
    assert "local: reachable" in " ".join(home.html.get_text().split())
    assert home.html.find("a", string="Backends") is not None


def test_an_unreachable_backend_says_since_when(alice, dbsession):
    since = utcnow() - timedelta(minutes=5)
    health.record(dbsession, {"local": health.Check(3.0, "squeue failed: timeout")}, now=since)
    health.record(dbsession, {"local": health.Check(3.0, "squeue failed: timeout")})
    dbsession.flush()
    section = alice.get("/console/backends").html.find(id="backend-local")
    reachable = " ".join(section.find(class_="reachable").get_text().split())
    assert reachable.startswith("no, since ") and since.strftime("%Y-%m-%d %H:%M") in reachable


# --- pause and resume ---------------------------------------------------------------------------


def test_pause_refuses_new_submissions_keeps_waiting_jobs_and_resume_hands_them_over(
    testapp, alice, doc, dbsession, backends
):
    bob = token(testapp, "bob")
    waiting = testapp.post_json(API + "/submissions", DATE, headers=bob, status=201).json["jobs"][0]["id"]
    page = alice.get("/console/backends")
    form = next(f for f in page.forms.values() if f.action.endswith("/console/backends/local/pause"))
    done = form.submit(status=303)
    assert done.location.endswith("/console/backends?done=pause")
    page = done.follow()
    assert "Paused: no new submission goes to it" in page.text
    assert "by db/alice" in " ".join(page.html.find(id="backend-local").get_text().split())
    (entry,) = audit_rows(dbsession)
    assert (entry.actor, entry.action, entry.target) == ("db/alice", "backend.pause", "backend local")
    assert entry.detail.startswith(f"{backend(None, alice)['backlog']} job(s) recorded for it wait")
    assert health.paused(dbsession) == {"local"}

    # the only backend paused: a submission is refused, saying why, with nothing recorded
    jobs = job_count(dbsession)
    resp = testapp.post_json(API + "/submissions", DATE, headers=bob, status=503)
    assert resp.json["code"] == "no_backend" and "every batch backend is paused" in resp.json["message"]
    check(doc, resp, "/api/v1/submissions", "post")
    # the form too (alice's own submission: staff are refused like anyone)
    page = alice.post("/submit", {"jobtype": "Date", "csrf_token": alice.get_csrf_token()}, status=503)
    assert "every batch backend is paused" in page.text
    assert job_count(dbsession) == jobs
    # the job recorded before the pause waits (the submitter leaves it), and is not failed
    # as one whose backend is gone
    submit_pending(dbsession, backends)
    dbsession.expire_all()
    assert dbsession.get(Job, waiting).status == JobStatus.SUBMITTING

    # harvesting goes on while it is paused, and writing what it saw keeps the pause
    asked = {}
    harvest(dbsession, backends, asked)
    health.record(dbsession, health.observe(backends, asked))
    dbsession.flush()
    paused = backend(doc, alice)
    assert paused["paused"] is True and paused["paused_by"] == "db/alice" and paused["reachable"] is True

    # resume through the JSON face (the login cookie wants the CSRF token)
    url = f"{ADMIN}/backends/local/resume"
    alice.post(url, status=400)
    resp = alice.post(url, headers={"X-CSRF-Token": alice.get_csrf_token()}, status=200)
    assert check(doc, resp, "/api/v1/admin/backends/{name}/resume", "post").json["paused"] is False
    assert [e.action for e in audit_rows(dbsession)] == ["backend.pause", "backend.resume"]
    submit_pending(dbsession, backends)
    dbsession.expire_all()
    job = dbsession.get(Job, waiting)
    assert job.status != JobStatus.SUBMITTING and job.backend_job_id
    testapp.post_json(API + "/submissions", DATE, headers=bob, status=201)


def test_pause_twice_resume_unpaused_and_no_such_backend(alice, doc, dbsession):
    csrf = {"X-CSRF-Token": alice.get_csrf_token()}
    path = "/api/v1/admin/backends/{name}/pause"
    check(doc, alice.post(f"{ADMIN}/backends/local/pause", headers=csrf, status=200), path, "post")
    resp = alice.post(f"{ADMIN}/backends/local/pause", headers=csrf, status=409)
    assert check(doc, resp, path, "post").json == {
        "code": "conflict",
        "message": "backend local is paused already",
    }
    resp = alice.post(f"{ADMIN}/backends/nosuch/pause", headers=csrf, status=404)
    assert check(doc, resp, path, "post").json["message"] == "there is no backend 'nosuch'"
    alice.post(f"{ADMIN}/backends/local/resume", headers=csrf, status=200)
    resp = alice.post(f"{ADMIN}/backends/local/resume", headers=csrf, status=409)
    assert resp.json["message"] == "backend local is not paused"
    # the page says the same, in place
    page = alice.post("/console/backends/nosuch/resume", {"csrf_token": alice.get_csrf_token()}, status=404)
    assert "there is no backend" in page.html.find(role="alert").get_text()
    assert [e.action for e in audit_rows(dbsession)] == ["backend.pause", "backend.resume"]


def test_bob_cannot_pause_and_alice_not_without_csrf(testapp, alice, dbsession):
    """Carol's attack on everyone else: a non-staff user pausing every backend."""
    from .test_console import user_app

    bob = user_app(testapp.app, alice.extra_environ["tm.manager"], dbsession, "bob")
    csrf = bob.get_csrf_token()
    bob.post("/console/backends/local/pause", {"csrf_token": csrf}, status=403)
    bob.post(f"{ADMIN}/backends/local/pause", headers={"X-CSRF-Token": csrf}, status=403)
    bob.post(f"{ADMIN}/backends/local/pause", headers=token(testapp, "bob"), status=403)
    bob.post(
        f"{ADMIN}/backends/local/nodes/n1/drain", {"reason": "x"}, headers=token(testapp, "bob"), status=403
    )
    alice.post("/console/backends/local/pause", status=400)
    alice.post("/console/backends/local/pause", {"csrf_token": "forged"}, status=400)
    alice.post(f"{ADMIN}/backends/local/pause", status=400)
    assert health.paused(dbsession) == set() and audit_rows(dbsession) == []


def test_nodes_only_for_slurm_and_a_drain_wants_a_reason(alice, doc, dbsession):
    csrf = {"X-CSRF-Token": alice.get_csrf_token()}
    path = "/api/v1/admin/backends/{name}/nodes/{node}/drain"
    resp = alice.post_json(
        f"{ADMIN}/backends/local/nodes/n1/drain", {"reason": "disk"}, headers=csrf, status=404
    )
    assert (
        check(doc, resp, path, "post").json["message"] == "backend local has no nodes to manage (not SLURM)"
    )
    resp = alice.post_json(f"{ADMIN}/backends/local/nodes/n1/drain", {}, headers=csrf, status=400)
    assert resp.json["fields"] == {"reason": "required"}
    resp = alice.post_json(f"{ADMIN}/backends/local/nodes/n1/drain", {"reason": "x", "force": True}, headers=csrf,
                           status=400)  # fmt: skip
    assert resp.json["code"] == "unknown_field"
    assert audit_rows(dbsession) == []


# --- several backends: the paused one is skipped ------------------------------------------------


@pytest.fixture(scope="module")
def two(app_settings, dbengine, tmp_path_factory):
    """A portal with two local backends, local and spare, on the test database."""
    tmp = tmp_path_factory.mktemp("two")
    settings = portal_settings(str(ROOT / "testing.ini"), tmp, app_settings["sqlalchemy.url"], **{
        "ijp.batch.backends": "local spare",
        "ijp.batch.spare.type": "local",
        "ijp.batch.spare.dir": str(tmp / "spare"),
        "ijp.batch.spare.path": app_settings["ijp.batch.local.path"],
        **({"ijp.batch.spare.sandbox": "none"} if NO_SANDBOX else {}),
    })  # fmt: skip
    settings["ijp.batch.local.dir"] = app_settings["ijp.batch.local.dir"]
    app = main({}, dbengine=dbengine, **settings)
    yield app
    app.registry["ijp.scheduler"].shutdown(wait=False)


def test_a_paused_backend_is_never_chosen_and_all_paused_is_a_clear_refusal(two, tm, dbsession):
    web = make_testapp(two, tm, dbsession)
    bob = token(web, "bob")
    web.login("alice")
    csrf = {"X-CSRF-Token": web.get_csrf_token()}
    web.post(f"{ADMIN}/backends/local/pause", headers=csrf, status=200)
    for _ in range(3):
        job = web.post_json(API + "/submissions", DATE, headers=bob, status=201).json["jobs"][0]
        assert dbsession.get(Job, job["id"]).backend == "spare"
    web.post(f"{ADMIN}/backends/spare/pause", headers=csrf, status=200)
    jobs = job_count(dbsession)
    resp = web.post_json(API + "/submissions", DATE, headers=bob, status=503)
    assert resp.json["code"] == "no_backend" and "every batch backend is paused" in resp.json["message"]
    assert job_count(dbsession) == jobs
    listed = {b["name"]: b["paused"] for b in web.get(f"{ADMIN}/backends").json["backends"]}
    assert listed == {"local": True, "spare": True}
    assert dbsession.scalars(sa.select(AuditEntry.target).order_by(AuditEntry.id)).all() == [
        "backend local",
        "backend spare",
    ]

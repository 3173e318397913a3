"""Issue 14, carol's second pass: made-up job ids on every desktop route and carol's pages
never showing bob's desktop (the fixtures of test_desktop_pages.py)."""

import pytest

from ijpweb.models import Job, Submission
from ijpweb.models.desktops import Desktop
from ijpweb.states import JobStatus

from ..conftest import make_testapp
from . import test_desktop_pages as pages
from .test_desktop_pages import API, make_ready, submit, token
from .test_harvest import observed
from .test_jm import session as jm_session

dportal = pages.dportal
dapp = pages.dapp

BAD_IDS = ["0", "-1", "99999999999999999999", "abc"]


def _bob_ready(app, db):
    bob = token(app, "bob")
    job_id = submit(app, bob).json["jobs"][0]["id"]
    make_ready(db, job_id, host="10.9.8.7", port=5977)
    return bob, job_id


def _carol(app):
    carol = make_testapp(app.app, app.extra_environ["tm.manager"], app.extra_environ["app.dbsession"])
    carol.login("carol")
    return carol, token(carol, "carol")


@pytest.mark.parametrize("n", ["bob", *BAD_IDS])
def test_carols_made_up_ids_on_every_desktop_route(dapp, dbsession, n):
    _, job_id = _bob_ready(dapp, dbsession)
    carol, ctok = _carol(dapp)
    jid = str(job_id) if n == "bob" else n
    ok = (400, 404)
    assert carol.get(f"/jobs/{jid}/desktop", expect_errors=True).status_int in ok
    csrf = carol.get_csrf_token()
    assert carol.post(f"/jobs/{jid}/end", {"csrf_token": csrf}, expect_errors=True).status_int in ok
    hx = {"HX-Request": "true"}
    assert (
        carol.post(f"/jobs/{jid}/end", {"csrf_token": csrf}, headers=hx, expect_errors=True).status_int in ok
    )
    assert carol.post_json(API + f"/jobs/{jid}/end", {}, headers=ctok, expect_errors=True).status_int in ok
    resp = carol.get(API + f"/jobs/{jid}", headers=ctok, expect_errors=True)
    assert resp.status_int in ok and "interactive" not in resp.text
    dbsession.expire_all()
    desk = dbsession.get(Desktop, job_id)
    assert desk.state == "ready" and desk.ended_reason is None


def test_carols_lists_and_api_never_show_bobs_desktop(dapp, dbsession):
    _, job_id = _bob_ready(dapp, dbsession)
    carol, ctok = _carol(dapp)
    seen = [carol.get("/jobs"), carol.get("/"), carol.get(API + "/jobs", headers=ctok)]
    seen += [carol.get("/jobs/export?format=csv"), carol.get(API + "/jobs/export?format=json", headers=ctok)]
    for page in seen:
        assert page.status_int == 200
        for secret in ("10.9.8.7", "5977", f"/jobs/{job_id}/desktop"):
            assert secret not in page.text


def test_bobs_own_lists_and_exports_never_show_host_port_or_token(dapp, dbsession):
    bob, job_id = _bob_ready(dapp, dbsession)
    dapp.login("bob")
    viewer = dapp.get(f"/jobs/{job_id}/desktop")
    cookie, _ = pages.cookie_of(viewer)
    assert cookie is not None
    seen = [dapp.get("/jobs"), dapp.get(API + "/jobs", headers=bob)]
    seen += [dapp.get("/jobs/export?format=csv"), dapp.get(API + "/jobs/export?format=json", headers=bob)]
    assert f"{job_id}" in seen[-1].text  # his own job is in his export
    for page in seen:
        assert page.status_int == 200
        for secret in ("10.9.8.7", "5977", cookie.value):
            assert secret not in page.text


def test_carol_through_the_original_api_cannot_see_or_end_bobs_desktop(dapp, dbsession):
    _, job_id = _bob_ready(dapp, dbsession)
    sid = jm_session(dapp, "carol")
    jm = "/ijp/rest/jm/"
    forbidden = {"code": "ForbiddenException", "message": "Job does not belong to you"}
    for method, path in (("get", f"status/{job_id}"), ("get", f"output/{job_id}"), ("get", f"error/{job_id}"),
                         ("post", f"cancel/{job_id}"), ("delete", f"delete/{job_id}"),
                         ("post", f"job/provenance/{job_id}")):  # fmt: skip
        if method == "post":
            resp = dapp.post(jm + path, {"sessionId": sid, "provenanceId": "1"}, status=403)
        else:
            resp = getattr(dapp, method)(jm + path + f"?sessionId={sid}", status=403)
        assert resp.json == forbidden, path
    listed = dapp.get(jm + "status", {"sessionId": sid})
    assert job_id not in [j["jobId"] for j in listed.json]
    for secret in ("10.9.8.7", "5977", f"/jobs/{job_id}/desktop"):
        assert secret not in listed.text
    # her own interactive submission's answer names her own job's desktop, not bob's
    mine = dapp.post(jm + "submit", {"jobName": "Desktop test", "sessionId": sid}).json
    assert mine["jobId"] != job_id and mine["url"].endswith(f"/jobs/{mine['jobId']}/desktop")
    dbsession.expire_all()
    desk = dbsession.get(Desktop, job_id)
    assert desk.state == "ready" and desk.ended_reason is None and desk.host == "10.9.8.7"
    assert dbsession.get(Job, job_id).status == JobStatus.RUNNING


def _live_desktops(db, owner, n):
    for _ in range(n):
        sub = Submission(owner=owner, job_type="Desktop test", mode="single")
        job = Job(submission=sub, owner=owner, job_type="Desktop test", argv=[], backend="local",
                  status=JobStatus.RUNNING)  # fmt: skip
        db.add(job)
        db.flush()
        db.add(Desktop(job_id=job.id, state="ready", host="127.0.0.1", port=5901))
    db.flush()


def _statements(app, engine, url, **kw):
    with observed(engine) as (sent, _):
        assert app.get(url, **kw).status_int == 200
    return sent


def test_lists_read_the_desktops_of_a_page_in_one_query_however_many(dapp, dbsession, dbengine):
    """No query per desktop: bob's job list, dashboard and API list send as many statements
    with 2 live desktops as with 40."""
    bob = token(dapp, "bob")
    dapp.login("bob")
    faces = [("/jobs", {}), ("/", {}), (API + "/jobs", {"headers": bob})]
    _live_desktops(dbsession, "db/bob", 2)
    few = [_statements(dapp, dbengine, url, **kw) for url, kw in faces]
    _live_desktops(dbsession, "db/bob", 38)
    many = [_statements(dapp, dbengine, url, **kw) for url, kw in faces]
    for (url, _), a, b in zip(faces, few, many, strict=True):
        assert len(a) == len(b), url
    page = dapp.get("/jobs")
    assert page.text.count("Desktop test") >= 20  # the page did show the many desktops' jobs

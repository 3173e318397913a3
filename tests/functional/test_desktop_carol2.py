"""Issue 14, carol's second pass: made-up job ids on every desktop route and carol's pages
never showing bob's desktop (the fixtures of test_desktop_pages.py)."""

import pytest

from ijpweb.models.desktops import Desktop

from ..conftest import make_testapp
from . import test_desktop_pages as pages
from .test_desktop_pages import API, make_ready, submit, token

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

"""Issue 14, point 7: the desktop proxy's token check and viewer counts
(ijpweb.desktop.tokens) against the database under test (SQLite, and PostgreSQL in CI's
second pass): the token the viewer page puts in the cookie opens its job's desktop for its
owner's live browser login, and nothing else does. The real websockets are in
test_desktop_proxy.py (its own database, the SQLite pass)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from ijpweb.desktop.tokens import (
    CROSS_SITE,
    ENDED,
    NO_DESKTOP,
    NOT_READY,
    NOT_YOURS,
    Refused,
    check,
    cookie_tokens,
    count_viewer,
    origin_of,
    same_site,
    still_viewed,
    token_hash,
)
from ijpweb.models import Job, WebSession, utcnow
from ijpweb.models.desktops import Desktop, DesktopToken
from ijpweb.states import JobStatus

from ..conftest import make_testapp
from .test_desktop_pages import cookie_of, desktop_portal, make_ready, submit, token

# the viewer page's origin in these tests (make_testapp's requests: Host example.com, http)
PAGE = "http://example.com"


@pytest.fixture(scope="module")
def portal(app_settings, dbengine, tmp_path_factory):
    return desktop_portal(app_settings, dbengine, tmp_path_factory.mktemp("desktop-tokens"),
                          **{"ijp.desktop.max_per_user": "0"})  # fmt: skip


def ready_job(portal, tm, dbsession, user: str, port: int = 5901) -> int:
    app = make_testapp(portal, tm, dbsession)
    job_id = submit(app, token(app, user)).json["jobs"][0]["id"]
    make_ready(dbsession, job_id, port=port)
    return job_id


def open_page(portal, tm, dbsession, user: str, job_id: int) -> tuple[str, object]:
    """``user`` logs in with a browser and opens the viewer page: (the cookie's token, the app)."""
    app = make_testapp(portal, tm, dbsession)
    app.login(user)
    morsel, _ = cookie_of(app.get(f"/jobs/{job_id}/desktop"))
    assert morsel is not None
    return morsel.value, app


def refusal(dbsession, cookie, job_id, origin=PAGE) -> tuple[int, str]:
    with pytest.raises(Refused) as e:
        check(dbsession, cookie, job_id, origin)
    return e.value.status, str(e.value)


def test_the_owners_token_opens_the_desktop(portal, tm, dbsession):
    job_id = ready_job(portal, tm, dbsession, "bob", port=5907)
    tok, _ = open_page(portal, tm, dbsession, "bob", job_id)
    grant = check(dbsession, f"csrf_token=abc; ijp_desktop={tok}; other=1", job_id, PAGE)
    job = dbsession.get(Job, job_id)
    assert (grant.job_id, grant.owner, grant.host, grant.port) == (job_id, "db/bob", "127.0.0.1", 5907)
    assert (grant.backend, grant.backend_job_id) == (job.backend, job.backend_job_id)
    assert grant.token_hash == token_hash(tok) and grant.expires_at > utcnow()
    # a stale cookie of the same name first (a browser sends the most specific path's first)
    assert check(dbsession, f"ijp_desktop={'z' * 43}; ijp_desktop={tok}", job_id, PAGE).job_id == job_id


def test_carol_and_stale_or_misplaced_tokens_are_refused(portal, tm, dbsession):
    bobs = ready_job(portal, tm, dbsession, "bob")
    bobs_other = ready_job(portal, tm, dbsession, "bob")
    carols = ready_job(portal, tm, dbsession, "carol")
    tok, bob_app = open_page(portal, tm, dbsession, "bob", bobs)
    carol_tok, _ = open_page(portal, tm, dbsession, "carol", carols)
    cookie = f"ijp_desktop={tok}"
    assert refusal(dbsession, f"ijp_desktop={carol_tok}", bobs) == (403, NOT_YOURS)  # carol's, on bob's job
    assert refusal(dbsession, cookie, bobs_other) == (403, NOT_YOURS)  # job 7's token on job 8
    assert refusal(dbsession, cookie, carols) == (403, NOT_YOURS)
    assert refusal(dbsession, cookie, 987_654_321) == (403, NOT_YOURS)
    assert refusal(dbsession, None, bobs) == (403, NOT_YOURS)
    assert refusal(dbsession, f"ijp_desktop={tok[:-1]}", bobs) == (403, NOT_YOURS)
    assert refusal(dbsession, f"ijp_desktop_x={tok}", bobs) == (403, NOT_YOURS)

    row = dbsession.get(DesktopToken, token_hash(tok))
    login = dbsession.get(WebSession, row.web_session_id)
    # expired
    kept, row.expires_at = row.expires_at, utcnow() - timedelta(seconds=1)
    dbsession.flush()
    assert refusal(dbsession, cookie, bobs) == (403, NOT_YOURS)
    row.expires_at = kept
    # its login expired, or is an API login, or is not the job owner's any more
    for column, value in (("expires_at", utcnow() - timedelta(seconds=1)), ("kind", "api"),
                          ("user_name", "db/carol")):  # fmt: skip
        kept = getattr(login, column)
        setattr(login, column, value)
        dbsession.flush()
        assert refusal(dbsession, cookie, bobs) == (403, NOT_YOURS), column
        setattr(login, column, kept)
    dbsession.flush()
    assert check(dbsession, cookie, bobs, PAGE).job_id == bobs
    # the login logs out: W deletes its tokens
    bob_app.post("/logout", {"csrf_token": bob_app.get_csrf_token()}, status=303)
    dbsession.expire_all()
    assert dbsession.get(DesktopToken, token_hash(tok)) is None
    assert refusal(dbsession, cookie, bobs) == (403, NOT_YOURS)


def test_bobs_token_opens_nothing_from_another_origin(portal, tm, dbsession):
    """carol's F2: bob's cookie goes with a websocket opened by a page on ANY port of the
    portal's host (cookies are not scoped by port; SameSite counts every port as the same
    site): only the origin of the page that minted the token opens the desktop."""
    job_id = ready_job(portal, tm, dbsession, "bob")
    tok, _ = open_page(portal, tm, dbsession, "bob", job_id)
    assert dbsession.get(DesktopToken, token_hash(tok)).origin == PAGE
    cookie = f"ijp_desktop={tok}"
    for origin in ("http://example.com:8765", "http://example.com:6544", "https://example.com", "http://127.0.0.1",
                   "http://example.com.evil.example", "null", None, "http://example.com/x"):  # fmt: skip
        assert refusal(dbsession, cookie, job_id, origin) == (403, CROSS_SITE), origin
    for same in ("http://example.com", "http://EXAMPLE.com:80", "http://example.com/"):
        assert check(dbsession, cookie, job_id, same).job_id == job_id
    # a made-up token is refused as not this user's first, whatever the origin
    made_up = f"ijp_desktop={'q' * 43}"
    assert refusal(dbsession, made_up, job_id, "http://example.com:8765") == (403, NOT_YOURS)


def test_the_page_behind_a_proxy_or_on_another_port_mints_its_own_origin(portal, tm, dbsession):
    """The token's origin is the page's as the portal saw it: the Host header's port kept
    (``make run``'s portal on :6543, the proxy on :6544), a default port dropped as browsers
    do (https behind Apache: tests/integration/test_apache.py)."""
    job_id = ready_job(portal, tm, dbsession, "bob")
    for environ, origin in (({"HTTP_HOST": "portal.example.org:6543"}, "http://portal.example.org:6543"),
                            ({"HTTP_HOST": "portal.example.org:80"}, "http://portal.example.org")):  # fmt: skip
        app = make_testapp(portal, tm, dbsession)
        app.extra_environ.update(environ)
        app.login("bob")
        morsel, _ = cookie_of(app.get(f"/jobs/{job_id}/desktop"))
        assert dbsession.get(DesktopToken, token_hash(morsel.value)).origin == origin
        assert check(dbsession, f"ijp_desktop={morsel.value}", job_id, origin).job_id == job_id
        assert refusal(dbsession, f"ijp_desktop={morsel.value}", job_id, PAGE) == (403, CROSS_SITE)


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://127.0.0.1:6543", "http://127.0.0.1:6543"),
        ("HTTPS://IJP.Example.org:443", "https://ijp.example.org"),
        ("http://ijp.example.org:80/", "http://ijp.example.org"),
        ("https://ijp.example.org:80", "https://ijp.example.org:80"),
        ("http://[::1]:6543", "http://[::1]:6543"),
        ("null", None),
        ("file://ijp.example.org", None),
        ("http://bob@ijp.example.org", None),
        ("http://ijp.example.org/path", None),
        ("http://ijp.example.org:99999", None),
        ("http://", None),
        (None, None),
    ],
)
def test_origin_of(url, origin):
    assert origin_of(url) == origin


@given(st.text(max_size=120))
def test_origin_of_never_raises_and_is_its_own_origin(url):
    got = origin_of(url)
    assert got is None or origin_of(got) == got


def test_a_desktop_not_ready_ending_ended_or_absent_is_refused(portal, tm, dbsession):
    job_id = ready_job(portal, tm, dbsession, "alice")
    tok, _ = open_page(portal, tm, dbsession, "alice", job_id)
    cookie = f"ijp_desktop={tok}"
    desktop, job = dbsession.get(Desktop, job_id), dbsession.get(Job, job_id)
    desktop.state = "starting"
    dbsession.flush()
    assert refusal(dbsession, cookie, job_id) == (403, NOT_READY)
    desktop.state, desktop.ended_reason = "ready", "ended by the user"  # ending
    dbsession.flush()
    assert refusal(dbsession, cookie, job_id) == (403, ENDED)
    desktop.ended_reason, job.status = None, JobStatus.COMPLETED
    dbsession.flush()
    assert refusal(dbsession, cookie, job_id) == (403, ENDED)
    job.status = JobStatus.RUNNING
    dbsession.delete(desktop)  # (a batch job: no Desktop row)
    dbsession.flush()
    assert refusal(dbsession, cookie, job_id) == (404, NO_DESKTOP)


def test_viewers_are_counted_by_updates_and_never_below_zero(portal, tm, dbsession):
    job_id = ready_job(portal, tm, dbsession, "alice")
    before = utcnow()
    assert [count_viewer(dbsession, job_id, +1) for _ in range(2)] == [1, 2]
    assert [count_viewer(dbsession, job_id, -1) for _ in range(3)] == [1, 0, 0]
    dbsession.expire_all()
    seen = dbsession.get(Desktop, job_id).viewer_seen_at
    assert seen is not None and seen.replace(tzinfo=before.tzinfo) >= before
    # the re-check while connected: seen now, and refused once the token is gone
    tok, _ = open_page(portal, tm, dbsession, "alice", job_id)
    grant = check(dbsession, f"ijp_desktop={tok}", job_id, PAGE)
    later = utcnow() + timedelta(minutes=5)
    assert still_viewed(dbsession, grant, later) == grant
    dbsession.expire_all()
    assert dbsession.get(Desktop, job_id).viewer_seen_at.replace(tzinfo=later.tzinfo) == later
    dbsession.execute(sa.delete(DesktopToken).where(DesktopToken.job_id == job_id))
    with pytest.raises(Refused):
        still_viewed(dbsession, grant)


@given(st.text(max_size=300))
def test_cookie_headers_of_any_shape(header):
    found = cookie_tokens(header)
    assert len(found) <= 4
    for value in found:
        assert 20 <= len(value) <= 100 and f"ijp_desktop={value}" in header.replace('"', "")


@given(st.text(max_size=100), st.text(max_size=100))
def test_same_site_never_raises(origin, host):
    assert same_site(origin, host) in (True, False)


@pytest.mark.parametrize(
    ("origin", "host", "same"),
    [
        ("http://127.0.0.1:6543", "127.0.0.1:6544", True),  # the proxy on a port of its own
        ("https://ijp.example.org", "ijp.example.org", True),
        ("https://IJP.example.org", "ijp.example.org:443", True),
        ("http://[::1]:6543", "[::1]:6544", True),
        ("https://evil.example", "ijp.example.org", False),
        ("https://ijp.example.org.evil.example", "ijp.example.org", False),
        ("null", "ijp.example.org", False),
        ("file://ijp.example.org", "ijp.example.org", False),
        (None, "ijp.example.org", False),
        ("https://ijp.example.org", None, False),
    ],
)
def test_same_site(origin, host, same):
    assert same_site(origin, host) is same

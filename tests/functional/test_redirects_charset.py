"""Issue 11, the attack's findings 1, 2, 5 and 6 (notes/i11/X-findings.md): where a
client's next=/back= may send a browser (never out of the portal's prefix, by dot segments
plain or encoded; always a header waitress can send), forms declared in another charset
than UTF-8 (read in it, or refused naming it: never a 500), and answers that no cache may
keep."""

from __future__ import annotations

import http.client
import string
from urllib.parse import quote, urljoin, urlsplit

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from ijpweb.models import CatalogSession, WebSession
from ijpweb.states import JobStatus
from ijpweb.views import MAX_REDIRECT, local_path

from ..conftest import serving
from .test_console import make_job
from .test_prefix import P, prefixed  # noqa: F401  (the portal mounted at /ijp, a fixture)
from .test_prefix import make as make_prefixed


@pytest.fixture
def web(prefixed, tm, dbsession):  # noqa: F811
    """A browser talking to the portal mounted at /ijp."""
    return make_prefixed(prefixed, tm, dbsession)


def browser_target(location: str) -> str:
    """Where a browser goes for a Location: the URL standard's resolution, in which
    ``.``/``..`` segments, also written ``%2e``/``%2E``, are removed."""
    parts = urlsplit(location)
    segments: list[str] = []
    for seg in parts.path.split("/"):
        seg_l = seg.lower()
        if seg_l in ("..", ".%2e", "%2e.", "%2e%2e"):
            if len(segments) > 1:
                segments.pop()
        elif seg_l not in (".", "%2e"):
            segments.append(seg)
    path = "/".join(segments) or "/"
    return urljoin(location, path if path.startswith("/") else "/" + path)


def header_safe(value: str) -> bool:
    return all(" " < c <= "~" for c in value)


# --- 1. next= / back= never leave the prefix by dot segments ----------------------------------------

ESCAPES = ["/ijp/../other-app/", "/ijp/./../other-app/", "/ijp/%2e%2e/other-app/", "/ijp/%2E%2E/other-app/",
           "/ijp/.%2e/other-app/", "/ijp/jobs/../../other-app/", "/ijp/..%2fother-app/", "/ijp/%5c../x",
           "/ijp//other-app/", "/ijp/\\../x"]  # fmt: skip


def redirect_of(web, dbsession, face: str, target: str):
    """The redirect a logged-in client gets from ``face`` given ``target`` as its next/back."""
    token = web.get_csrf_token()
    if face == "login":
        return web.post(P + "/login", {"username": "alice", "password": "alice-demo", "csrf_token": token,
                                       "next": target}, status=303)  # fmt: skip
    web.login("alice")
    token = web.get_csrf_token()
    if face == "selection":
        return web.post(
            P + "/selection", {"action": "clear", "back": target, "csrf_token": token}, status=303
        )
    job = make_job(dbsession, "db/carol", JobStatus.COMPLETED)
    if face == "console":
        return web.post(
            P + f"/console/jobs/{job.id}/delete", {"next": target, "csrf_token": token}, status=303
        )
    res = web.post(P + f"/console/jobs/{job.id}/delete", {"next": target, "csrf_token": token},
                   headers={"HX-Request": "true"}, status=204)  # fmt: skip
    res.location = urljoin("http://example.com/", res.headers["HX-Redirect"])
    return res


FACES = ["login", "selection", "console", "console-htmx"]
DEFAULT = {"login": P + "/", "selection": P + "/submit", "console": P + "/console/jobs",
           "console-htmx": P + "/console/jobs"}  # fmt: skip


@pytest.mark.parametrize("target", ESCAPES)
@pytest.mark.parametrize("face", FACES)
def test_next_and_back_cannot_leave_the_prefix(web, dbsession, face, target):
    """carol sends alice https://host/ijp/login?next=/ijp/../other-app/ (or the same as
    back= of the selection, next= of the console's delete): after it alice's browser is
    on the portal's default page, not on another application of the host."""
    res = redirect_of(web, dbsession, face, target)
    went = urlsplit(browser_target(res.location)).path
    assert went == DEFAULT[face], (target, res.location, went)


@pytest.mark.parametrize("face", FACES)
def test_dot_segments_within_the_prefix_are_resolved(web, dbsession, face):
    res = redirect_of(web, dbsession, face, "/ijp/jobs/%2E/../datasets?q=a%20b#top")
    assert res.location == "http://example.com/ijp/datasets?q=a%20b#top"


def test_the_console_confirm_page_links_back_only_within_the_prefix(web, dbsession):
    job = make_job(dbsession, "db/carol", JobStatus.COMPLETED)
    web.login("alice")
    for target in ESCAPES:
        page = web.get(P + f"/console/jobs/{job.id}/delete", {"next": target})
        assert 'href="http://example.com/ijp/console/jobs"' in page.text, target
        assert "other-app" not in page.text and "\\" not in page.text, target


@given(st.text(alphabet=string.printable + "\x85\x9b\u2024é%./\\", max_size=60))
def test_local_path_gives_a_header_safe_path_below_the_prefix(text):
    """Whatever a client sends: None, or printable ASCII that a browser resolves to a
    path below the prefix (and local_path's answer is a fixed point)."""
    for target in (text, "/ijp/" + text, "/ijp/" + quote(text, safe="/%.?#")):
        found = local_path(target, P)
        if found is not None:
            assert header_safe(found) and len(found) <= MAX_REDIRECT, (target, found)
            went = urlsplit(browser_target("http://h" + found)).path
            assert went == P or went.startswith(P + "/"), (target, found)
            assert local_path(found, P) == found


def test_local_path_keeps_what_the_portal_links_to():
    for path in (
        "/ijp",
        "/ijp/",
        "/ijp/jobs?tag=%C3%A9&before=3",
        "/ijp/datasets/1#files",
        "/ijp/console/jobs",
    ):
        assert local_path(path, "/ijp") == path
    assert local_path("/jobs", "") == "/jobs"
    assert local_path("/ijpx/jobs", "/ijp") is None
    assert local_path("/ijp/" + "a" * MAX_REDIRECT, "/ijp") is None


# --- 2. redirect targets are header-safe: no 500 from waitress, no C1 controls -------------------

ODD = ["/ijp/\u2024\u2024/x", "/ijp/jobs?tag=\u00e9\u4e2d", "/ijp/\x85x", "/ijp/\x9bx", "/ijp/a b",
       "/ijp/" + "x" * 20_000]  # fmt: skip


@pytest.mark.parametrize("target", ODD)
@pytest.mark.parametrize("face", FACES)
def test_redirect_targets_are_header_safe(web, dbsession, face, target):
    """Every Location/HX-Redirect made from a client's next/back is printable ASCII of a
    bounded length (a header waitress and Apache pass; no NEL or CSI): the default page."""
    res = redirect_of(web, dbsession, face, target)
    assert header_safe(res.headers.get("Location") or res.headers["HX-Redirect"])
    assert urlsplit(res.location).path == DEFAULT[face]


@pytest.fixture
def forget_carols_logins(dbengine):
    """Logins through a real server are committed (every other test's are rolled back)."""
    yield
    with dbengine.begin() as conn:
        conn.execute(sa.delete(WebSession.__table__).where(WebSession.user_name == "db/carol"))
        conn.execute(sa.delete(CatalogSession.__table__).where(CatalogSession.user_name == "db/carol"))


def test_a_login_with_a_non_latin1_next_is_not_a_500_under_waitress(app, forget_carols_logins):
    """Through a real server: carol's link https://host/login?next=/%E2%80%A4 made every
    login through it a 500 (waitress cannot encode such a Location)."""
    with serving(app) as url:
        conn = http.client.HTTPConnection(urlsplit(url).hostname, urlsplit(url).port, timeout=30)
        conn.request("GET", "/login")
        res = conn.getresponse()
        res.read()
        token = next(c.split(";")[0].split("=", 1)[1] for c in res.headers.get_all("Set-Cookie")
                     if c.startswith("csrf_token="))  # fmt: skip
        for nxt in ("/%E2%80%A4", "/%C2%85x"):
            body = f"username=carol&password=carol-demo&csrf_token={token}&next={nxt}"
            conn.request("POST", "/login", body=body, headers={
                "Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrf_token={token}"})  # fmt: skip
            res = conn.getresponse()
            res.read()
            assert res.status == 303, (nxt, res.status)
            assert urlsplit(res.headers["Location"]).path == "/"
            assert any(c.startswith("ijp_auth=") for c in res.headers.get_all("Set-Cookie"))
        conn.close()


# --- 5. a form in another charset: read in it, or refused naming it; never a 500 ---------------

CHARSETS = ["application/x-www-form-urlencoded; charset=iso-8859-1", "application/x-www-form-urlencoded; charset=utf-7",
            "multipart/form-data; boundary=x; charset=latin1", "application/x-www-form-urlencoded; charset=nonesuch",
            'application/x-www-form-urlencoded; charset="windows-1252"']  # fmt: skip
FORM_FACES = [("GET", "/login"), ("POST", "/login"), ("POST", "/ijp/rest/jm/submit"), ("POST", "/icat/session"),
              ("POST", "/ids/prepareData"), ("GET", "/ids/getData"), ("POST", "/api/v1/session")]  # fmt: skip


@pytest.mark.parametrize("content_type", CHARSETS)
@pytest.mark.parametrize(("method", "path"), FORM_FACES)
def test_a_form_in_another_charset_is_never_a_500(testapp, method, path, content_type):
    """Anyone (no login) sends a body whose Content-Type names a charset other than UTF-8:
    WebOb refuses to read such a form (DeprecationWarning), and the error view failed on
    it again: waitress's bare 500 with a traceback per request."""
    res = testapp.request(path, method=method, body=b"a=b&sessionId=x", headers={"Content-Type": content_type},
                          expect_errors=True)  # fmt: skip
    assert res.status_int < 500, (method, path, content_type, res.status)


FACE_CODES = [("/ijp/rest/jm/submit", "ParameterException"), ("/icat/session", "BAD_PARAMETER"),
              ("/ids/prepareData", "BadRequestException")]  # fmt: skip


@pytest.mark.parametrize(("path", "code"), FACE_CODES)
@pytest.mark.parametrize("charset", ["utf-7", "utf-16", "nonesuch", "cp500"])
def test_a_charset_a_form_cannot_be_in_is_refused_naming_it(testapp, path, code, charset):
    res = testapp.post(path, b"a=b", headers={"Content-Type": f"application/x-www-form-urlencoded; charset={charset}"},
                       status="4*")  # fmt: skip
    assert res.json["code"] == code
    assert "Content-Type" in res.json["message"] and charset in res.json["message"]


def test_a_charset_refusal_on_the_pages_names_it(testapp):
    res = testapp.post("/login", b"username=x", headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-7"},
                       status=415)  # fmt: skip
    assert "utf-7" in res.text and "UTF-8" in res.text


@pytest.mark.parametrize("charset", ["iso-8859-1", "ISO_8859-1", "latin1", "windows-1252"])
def test_a_latin1_form_is_read_in_latin1(testapp, charset):
    """The original Java clients may label forms ISO-8859-1: the form is read as it was
    written (josé, not jos\ufffd), CSRF token and all."""
    token = testapp.get_csrf_token()
    body = f"username=jos%E9+%E0&password=wrong&csrf_token={token}&next=/jobs".encode()
    res = testapp.post("/login", body, headers={"Content-Type": f"application/x-www-form-urlencoded; charset={charset}"},
                       status=400)  # fmt: skip
    assert 'value="josé à"' in res.text


def test_a_multipart_form_with_a_charset_is_refused_naming_it(testapp):
    """RFC 7578: multipart/form-data has no charset parameter (each part may say its own);
    no browser sends one. Refused plainly rather than read wrongly."""
    token = testapp.get_csrf_token()
    body = (f'--x\r\nContent-Disposition: form-data; name="username"\r\n\r\nren\xe9\r\n'
            f'--x\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}\r\n--x--\r\n').encode("latin-1")  # fmt: skip
    res = testapp.post("/api/v1/session", body, headers={"Content-Type": "multipart/form-data; boundary=x; charset=iso-8859-1"},
                       status=415)  # fmt: skip
    assert res.json["code"] == "bad_parameter" and "iso-8859-1" in res.json["message"]
    assert res.json["fields"] == {"Content-Type": res.json["message"].removeprefix("Content-Type ")}
    # the same form as a browser sends it (no charset) is read as ever
    res = testapp.post("/login", body.replace(b"\xe9", "é".encode()), status=400,
                       headers={"Content-Type": "multipart/form-data; boundary=x"})  # fmt: skip
    assert 'value="rené"' in res.text


def test_a_form_not_in_the_charset_it_names_is_refused(testapp):
    """0x81 is no character of windows-1252."""
    res = testapp.post("/ijp/rest/jm/submit", b"a=%81", status=400,
                       headers={"Content-Type": "application/x-www-form-urlencoded; charset=windows-1252"})  # fmt: skip
    assert res.json["code"] == "ParameterException" and "windows-1252" in res.json["message"]


def test_a_large_form_in_another_charset_is_refused(testapp):
    res = testapp.post("/ijp/rest/jm/submit", b"a=" + b"x" * (1 << 20), status=413,
                       headers={"Content-Type": "application/x-www-form-urlencoded; charset=latin1"})  # fmt: skip
    assert res.json["code"] == "ParameterException"


# --- 6. answers that no cache keeps --------------------------------------------------------------


@pytest.mark.parametrize("path", ["/console/logins", "/console/jobs", "/console/audit", "/api/v1/admin/logins",
                                  "/api/v1/admin/jobs", "/jobs", "/api/v1/session", "/", "/staff/jobtypes"])  # fmt: skip
def test_logged_in_answers_are_not_stored_by_caches(alice, path):
    """alice looks at the console on a shared machine and logs out: Back (or the disk
    cache) must not show every user's logins and jobs again, nor a cache keep them."""
    assert alice.get(path).headers.get("Cache-Control") == "no-store", path


def test_errors_and_anonymous_answers_are_not_stored_either(testapp):
    for path, status in (("/login", 200), ("/api/v1/jobs", 401), ("/nothing-here", 404), ("/ids/ping", 200)):
        assert testapp.get(path, status=status).headers.get("Cache-Control") == "no-store", path


def test_static_files_keep_their_caching(testapp):
    res = testapp.get("/static/ijp.css")
    assert "max-age=3600" in res.headers["Cache-Control"] and "no-store" not in res.headers["Cache-Control"]

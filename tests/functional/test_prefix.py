"""Issue 11, points 1 and 6: the portal mounted at /ijp (ijp.prefix), behind a proxy it
trusts (ijp.trusted_proxies = 127.0.0.1): every link, redirect, static file, htmx URL,
HX-Redirect, cookie and the OpenAPI servers carry the prefix; headers a proxy may send
are believed from it alone; the API's JSON errors and the original API's path do not
depend on the prefix; a malformed prefix stops the start."""

import json
import re
from urllib.parse import urlsplit

import pytest

from ijpweb import main
from ijpweb.models import Job
from ijpweb.states import JobStatus

from ..conftest import ROOT, TestApp, portal_settings
from .test_flow import dataset_ids
from .test_security import make_job

P = "/ijp"
INI = str(ROOT / "testing.ini")
PROXY = {"REMOTE_ADDR": "127.0.0.1"}
HTTPS = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "portal.example.org"}
URL_ATTRS = re.compile(r'\s(?:href|src|action|hx-get|hx-post|hx-put|hx-delete)="([^"]*)"')


@pytest.fixture(scope="module")
def prefixed(app_settings, dbengine, tmp_path_factory):
    """A second portal on the test database, mounted at /ijp, trusting 127.0.0.1."""
    settings = portal_settings(
        INI,
        tmp_path_factory.mktemp("prefixed"),
        app_settings["sqlalchemy.url"],
        **{
            "ijp.prefix": P,
            "ijp.trusted_proxies": "127.0.0.1 ::1",
            "ijp.url": "https://portal.example.org",
        },
    )
    settings["ijp.batch.local.dir"] = app_settings["ijp.batch.local.dir"]
    settings["ijp.filestore"] = app_settings["ijp.filestore"]
    return main({}, dbengine=dbengine, **settings)


class PrefixedApp(TestApp):
    def get_csrf_token(self):
        if "csrf_token" not in self.cookies:
            self.get(P + "/login")
        return self.cookies["csrf_token"]

    def login(self, user="alice", password=None, status=303, **kw):
        return self.post(
            P + "/login",
            {
                "username": user,
                "password": password or f"{user}-demo",
                "csrf_token": self.get_csrf_token(),
            },
            status=status,
            **kw,
        )


def make(prefixed, tm, dbsession, **environ):
    return PrefixedApp(prefixed, extra_environ={"HTTP_HOST": "example.com", "tm.active": True, "tm.manager": tm,
                                                "app.dbsession": dbsession, **environ})  # fmt: skip


@pytest.fixture
def web(prefixed, tm, dbsession):
    """A browser talking to the portal directly (not through the proxy)."""
    return make(prefixed, tm, dbsession)


@pytest.fixture
def proxied(prefixed, tm, dbsession):
    """A browser whose requests come through the trusted proxy, over https."""
    app = make(prefixed, tm, dbsession, **PROXY)
    app.extra_environ["HTTP_X_FORWARDED_PROTO"] = "https"
    app.extra_environ["HTTP_X_FORWARDED_HOST"] = "portal.example.org"
    app.extra_environ["HTTP_HOST"] = "portal.example.org"  # (ProxyPreserveHost; WebTest keys cookies by it)
    app.extra_environ["HTTP_ORIGIN"] = "https://portal.example.org"  # (Pyramid checks it over https)
    app.extra_environ["wsgi.url_scheme"] = "https"  # (WebTest's cookie jar sends Secure ones to https)
    return app


def urls_in(html: str) -> list[str]:
    return [u.replace("&amp;", "&") for u in URL_ATTRS.findall(html)]


def assert_all_under(html: str, base: str, page: str) -> int:
    """Every URL in the page is under ``base`` (a path, or scheme://host/path)."""
    found = urls_in(html)
    for url in found:
        if url.startswith("#"):
            continue
        parts = urlsplit(url)
        if parts.netloc:
            assert f"{parts.scheme}://{parts.netloc}{parts.path}".startswith(base + "/"), (page, url)
        else:  # a path on this host (e.g. the console's return links)
            assert parts.path.startswith(urlsplit(base).path + "/"), (page, url)
    return len(found)


def set_cookies(res) -> dict[str, str]:
    return {h.split("=", 1)[0]: h for h in res.headers.getall("Set-Cookie")}


def test_every_page_link_form_static_and_htmx_url_carries_the_prefix(proxied, dbsession):
    base = "https://portal.example.org/ijp"
    assert_all_under(proxied.get(P + "/login").text, base, "login")
    proxied.login("alice")
    ds = dataset_ids(dbsession, "confocal", "LMF-2026-001")
    job = make_job(dbsession, "db/alice", JobStatus.RUNNING)
    ended = make_job(dbsession, "db/alice", JobStatus.COMPLETED)
    ended.tags = ["t1"]
    proxied.htmx(
        "POST",
        P + "/selection",
        {"action": "set", "kind": "dataset", "id": str(ds[0]), "checked": "1"},
    )
    pages = ["/datasets", f"/datasets/{ds[0]}", "/submit", "/submit?jobtype=Test+Options", "/jobs",
             f"/jobs/{job.id}", f"/jobs/{ended.id}", f"/jobs/{job.id}/cancel", f"/jobs/{ended.id}/delete",
             "/console", "/console/jobs", "/console/logins", "/console/jobtypes", "/console/audit",
             "/nowhere"]  # fmt: skip
    counted = 0
    for page in pages:
        res = proxied.get(P + page, status=404 if page == "/nowhere" else 200)
        counted += assert_all_under(res.text, base, page)
        assert "/static/" in res.text  # the stylesheet and htmx, under the prefix (checked above)
    res = proxied.get(P + "/staff/jobtypes", status=303)  # (the old staff page leads to the console)
    assert res.location == base + "/console/jobtypes"
    # the fragments htmx fetches
    for frag in [
        "/jobs",
        f"/jobs/{job.id}",
        f"/datasets/{ds[0]}",
        f"/jobs/{job.id}/output/stdout?offset=0",
    ]:
        counted += assert_all_under(proxied.htmx("GET", P + frag).text, base, frag)
    assert counted > 100
    # and the static files are there
    css = re.search(
        r'href="https://portal\.example\.org(/ijp/static/[^"]+\.css)"',
        proxied.get(P + "/jobs").text,
    )
    assert "body" in proxied.get(css.group(1)).text


def test_redirects_carry_the_prefix(web, dbsession):
    assert web.get(P, status=301).headers["Location"] == P + "/"
    res = web.get(P + "/", status=303)
    assert res.location == "http://example.com/ijp/login?next=%2Fijp%2F"
    page = res.follow()
    assert 'action="http://example.com/ijp/login"' in page.text and 'value="/ijp/"' in page.text
    token = web.get_csrf_token()
    res = web.post(P + "/login", {"username": "bob", "password": "bob-demo", "csrf_token": token, "next": "/ijp/jobs"},
                   status=303)  # fmt: skip
    assert res.location == "http://example.com/ijp/jobs"
    # next may not leave the portal's prefix (another application on the same host)
    for other in ("/elsewhere/steal", "/ijpx/jobs", "/", "https://evil.example/ijp/"):
        res = web.post(P + "/login", {"username": "bob", "password": "bob-demo", "csrf_token": token, "next": other},
                       status=303)  # fmt: skip
        assert res.location == "http://example.com/ijp/", other
    job = make_job(dbsession, "db/bob", JobStatus.COMPLETED)
    res = web.post(P + f"/jobs/{job.id}/delete", {"csrf_token": token}, status=303)
    assert res.location == f"http://example.com/ijp/jobs?deleted={job.id}"
    res = web.post(P + "/logout", {"csrf_token": token}, status=303)
    assert res.location == "http://example.com/ijp/login"
    # outside the prefix there is no portal
    web.get("/login", status=404)
    web.get("/jobs", status=404)


def test_htmx_redirects_carry_the_prefix(web, dbsession):
    web.login("bob")
    live = make_job(dbsession, "db/bob", JobStatus.RUNNING)
    live.backend_job_id = None
    ended = make_job(dbsession, "db/bob", JobStatus.COMPLETED)
    res = web.htmx("POST", P + f"/jobs/{ended.id}/delete", {}, status=204)
    assert res.headers["HX-Redirect"] == f"http://example.com/ijp/jobs?deleted={ended.id}"
    # a login that ended during an htmx request sends the browser to the login page
    web.post(P + "/logout", {"csrf_token": web.get_csrf_token()}, status=303)
    res = web.htmx(
        "GET",
        P + "/jobs",
        headers={"HX-Current-URL": "http://example.com/ijp/jobs?tag=x"},
        status=401,
    )
    assert res.headers["HX-Redirect"] == "http://example.com/ijp/login?next=%2Fijp%2Fjobs%3Ftag%3Dx"


def attrs_of(header: str) -> set[str]:
    return {a.strip().lower() for a in header.split(";")[1:]}


def test_cookies_are_scoped_to_the_prefix_and_secure_behind_https(prefixed, tm, dbsession):
    web = make(prefixed, tm, dbsession)
    first = set_cookies(web.get(P + "/login"))
    login = set_cookies(web.login("bob"))
    assert set(first) == {"csrf_token"} and set(login) == {"ijp_auth"}
    for header in [*first.values(), *login.values()]:
        attrs = attrs_of(header)
        assert {"path=/ijp", "httponly", "samesite=lax"} <= attrs, header
        assert "secure" not in attrs and not any(a.startswith("domain=") for a in attrs), header
    https = {
        "HTTP_X_FORWARDED_PROTO": "https",
        "HTTP_ORIGIN": "https://example.com",
        "wsgi.url_scheme": "https",
    }
    proxied = make(prefixed, tm, dbsession, **PROXY, **https)
    first = set_cookies(proxied.get(P + "/login"))
    login = set_cookies(proxied.login("bob"))
    for header in [*first.values(), *login.values()]:
        assert {"path=/ijp", "httponly", "samesite=lax", "secure"} <= attrs_of(header), header
    # logging out clears the cookie at the same path
    out = set_cookies(proxied.post(P + "/logout", {"csrf_token": proxied.get_csrf_token()}, status=303))
    assert {"path=/ijp", "max-age=0"} <= attrs_of(out["ijp_auth"])


def test_every_response_has_the_security_headers(web, dbsession):
    for res in (web.get(P + "/login"), web.get(P + "/static/ijp.css"), web.get(P + "/nowhere", status=404),
                web.get("/elsewhere", status=404), web.get(P + "/api/v1/jobs", status=401)):  # fmt: skip
        assert res.headers["X-Content-Type-Options"] == "nosniff"
        assert res.headers["Referrer-Policy"] == "same-origin"
        assert res.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in res.headers["Content-Security-Policy"]


def test_a_forged_proxy_header_from_an_untrusted_address_is_ignored(prefixed, tm, dbsession):
    carol = make(prefixed, tm, dbsession, REMOTE_ADDR="192.0.2.66")
    forged = {**HTTPS, "X-Forwarded-Prefix": "/evil", "X-Forwarded-For": "127.0.0.1"}
    res = carol.get(P + "/login", headers=forged)
    assert 'action="http://example.com/ijp/login"' in res.text and "/evil" not in res.text
    cookie = res.headers["Set-Cookie"]
    assert "Path=/ijp" in cookie and "secure" not in cookie.lower()
    doc = carol.get(P + "/api/v1/openapi.json", headers=forged).json
    assert doc["servers"] == [{"url": "http://example.com/ijp/"}]
    # the same headers from the proxy are believed
    proxy = make(prefixed, tm, dbsession, **PROXY)
    doc = proxy.get(
        P + "/api/v1/openapi.json",
        headers={**HTTPS, "X-Forwarded-Prefix": "/facility/ijp"},
    ).json
    assert doc["servers"] == [{"url": "https://portal.example.org/facility/ijp/"}]
    res = proxy.get(P + "/login", headers={**HTTPS, "X-Forwarded-Prefix": "/facility/ijp"})
    assert 'action="https://portal.example.org/facility/ijp/login"' in res.text
    assert "Path=/facility/ijp" in res.headers["Set-Cookie"]


def test_openapi_servers_and_api_errors_under_the_prefix(web, proxied, dbsession):
    assert web.get(P + "/api/v1/openapi.json").json["servers"] == [{"url": "http://example.com/ijp/"}]
    assert proxied.get(P + "/api/v1/openapi.json").json["servers"] == [
        {"url": "https://portal.example.org/ijp/"}
    ]
    # /api/ errors are JSON by the route (or, with none, the path inside the prefix)
    res = web.post_json(P + "/api/v1/session", {"username": "bob", "password": "bob-demo"}, status=201)
    auth = {"Authorization": f"Bearer {res.json['token']}"}
    assert web.get(P + "/api/v1/jobs/999999999", headers=auth, status=404).json["code"] == "not_found"
    assert web.get(P + "/api/v1/nothing-here", status=404).json["code"] == "not_found"
    assert web.get(P + "/api/v1/jobs", status=401).json["code"] == "unauthenticated"
    assert web.get(P + "/api/v1/jobs", {"page": "x"}, headers=auth, status=400).json["fields"]
    # with the login cookie and no CSRF token a state change is refused, in JSON
    web.login("bob")
    job = make_job(dbsession, "db/bob", JobStatus.RUNNING)
    res = web.post(P + f"/api/v1/jobs/{job.id}/cancel", status=400)
    assert res.json["code"] == "bad_csrf_token" and job.status == JobStatus.RUNNING


def test_the_original_api_stays_at_ijp_rest_jm(web, prefixed, dbsession):
    creds = {
        "plugin": "db",
        "credentials": [{"username": "alice"}, {"password": "alice-demo"}],
    }
    sid = web.post(P + "/icat/session", {"json": json.dumps(creds)}).json["sessionId"]
    assert "Date" in web.get("/ijp/rest/jm/jobtype").json
    web.get("/ijp/ijp/rest/jm/jobtype", status=404)
    ds = dataset_ids(dbsession, "confocal", "LMF-2026-001")[:1]
    job_id = web.post("/ijp/rest/jm/submit", {"jobName": "Test Options", "sessionId": sid,
                                              "parameter": [f"--datasetIds={ds[0]}"]}).json["jobId"]  # fmt: skip
    job = dbsession.get(Job, job_id)
    # the job is given the portal's public URLs, with the prefix (ijp.url had none)
    assert "--icatUrl=https://portal.example.org/ijp" in job.argv
    assert "--idsUrl=https://portal.example.org/ijp" in job.argv
    assert web.get(f"/ijp/rest/jm/status/{job_id}", {"sessionId": sid}).json["jobId"] == job_id
    # its errors are its own JSON, with or without a matching route
    assert web.get("/ijp/rest/jm/jobtype/Nope", status=400).json["code"] == "ParameterException"
    assert web.get("/ijp/rest/jm/nothing", status=404).json["code"] == "NotFoundException"
    assert prefixed.registry.settings["ijp"].url == "https://portal.example.org/ijp"


def test_at_another_prefix_the_original_api_is_below_it(app_settings, dbengine, tmp_path):
    settings = portal_settings(INI, tmp_path, app_settings["sqlalchemy.url"],
                               **{"ijp.prefix": "/facility/portal"})  # fmt: skip
    app = main({}, dbengine=dbengine, **settings)
    web = TestApp(app, extra_environ={"HTTP_HOST": "example.com"})
    assert "Date" in web.get("/facility/portal/ijp/rest/jm/jobtype").json
    web.get("/facility/portal/rest/jm/jobtype", status=404)
    assert app.registry.settings["ijp"].url == "http://127.0.0.1:6543/facility/portal"
    # and at a deeper /ijp, where the original's context root is
    settings["ijp.prefix"] = "/facility/ijp"
    deep = TestApp(
        main({}, dbengine=dbengine, **settings),
        extra_environ={"HTTP_HOST": "example.com"},
    )
    assert "Date" in deep.get("/facility/ijp/rest/jm/jobtype").json


@pytest.mark.parametrize("value", ["ijp", "/ijp/", "/ij p", "/ijp;Path=/", "/../x", "//evil.example"])
def test_a_malformed_prefix_stops_the_start(app_settings, dbengine, tmp_path, value):
    settings = portal_settings(INI, tmp_path, app_settings["sqlalchemy.url"], **{"ijp.prefix": value})
    with pytest.raises(ValueError, match=r"^ijp\.prefix must be empty \(the root\) or a path like /ijp"):
        main({}, dbengine=dbengine, **settings)


@pytest.mark.parametrize(
    "key, value, message",
    [("ijp.trusted_proxies", "127.0.0.1 proxy.example.org", r"^ijp\.trusted_proxies: 'proxy\.example\.org'"),
     ("ijp.url", "portal.example.org/ijp", r"^ijp\.url must be an http\(s\) URL"),
     ("ijp.url", "https://portal.example.org/?x=1", r"^ijp\.url must be an http\(s\) URL")],
)  # fmt: skip
def test_other_bad_settings_stop_the_start(app_settings, dbengine, tmp_path, key, value, message):
    settings = portal_settings(INI, tmp_path, app_settings["sqlalchemy.url"], **{key: value})
    with pytest.raises(ValueError, match=message):
        main({}, dbengine=dbengine, **settings)


def test_keyset_pages_and_their_cursors_work_behind_the_prefix(proxied, dbsession):
    """Older/Newer and Next links, next_url and the cursors in them carry the prefix and
    lead to the next page through the proxy (the job list, /api/v1/jobs, the search)."""
    from .test_job_lists import add_jobs

    base = "https://portal.example.org/ijp"
    ids = add_jobs(dbsession, "db/alice", 60)
    proxied.login("alice")
    first = proxied.get(P + "/jobs", {"per_page": 25})
    older = [u for u in urls_in(first.text) if "cursor=" in u and "/jobs?" in u]
    assert older and all(u.startswith(base + "/jobs?") for u in older)
    second = proxied.get(older[0])
    assert f'id="job-{ids[-26]}"' in second.text and f'id="job-{ids[-1]}"' not in second.text
    api = proxied.get(P + "/api/v1/jobs", {"per_page": 25}).json
    assert api["next_url"].startswith(base + "/api/v1/jobs?")
    assert proxied.get(api["next_url"]).json["jobs"][0]["id"] == ids[-26]
    search = proxied.get(P + "/datasets")
    nxt = [u for u in urls_in(search.text) if "cursor=" in u]
    assert nxt and all(u.startswith(base + "/datasets?") for u in nxt)
    assert proxied.get(nxt[0]).status_int == 200


def test_issue_13s_pages_links_and_api_urls_carry_the_prefix(proxied, dbsession):
    """The dashboard, the grouped list and its export, a job's comments, the dataset page's
    downloads, previews and uploads, the new-dataset form: every URL they show, and the
    URLs /api/v1 gives for a job's outputs and comments, are under the prefix."""
    base = "https://portal.example.org/ijp"
    proxied.login("bob")
    ds = dataset_ids(dbsession, "confocal", "LMF-2026-002")
    ended = make_job(dbsession, "db/bob", JobStatus.COMPLETED)
    comment = proxied.post(P + f"/jobs/{ended.id}/comments", {"text": "behind the proxy",
                                                                "csrf_token": proxied.get_csrf_token()})  # fmt: skip
    assert comment.location.startswith(base + f"/jobs/{ended.id}")
    pages = ["/", "/jobs", "/jobs?grouped=0", f"/jobs/{ended.id}", f"/datasets/{ds[0]}", "/datasets/new"]
    for page in pages:
        res = proxied.get(P + page)
        assert assert_all_under(res.text, base, page) > 0
    urls = urls_in(proxied.get(P + f"/datasets/{ds[0]}").text)
    assert any("/zip" in u or "download" in u for u in urls)  # (the page's downloads are among them)
    assert any(u.startswith(base + "/jobs/export?") for u in urls_in(proxied.get(P + "/jobs").text))
    job = proxied.get(P + f"/api/v1/jobs/{ended.id}").json
    assert job["outputs_zip_url"].startswith(base + f"/api/v1/jobs/{ended.id}/")
    assert job["comments_url"].startswith(base + f"/api/v1/jobs/{ended.id}/comments")
    assert proxied.get(job["comments_url"]).json  # and it answers through the proxy

"""Issue 11, points 1 and 6: the portal behind a real Apache (Debian's apache2) at /ijp,
with the shipped deploy/apache/ijpweb.conf, driven the whole way through Apache: the
pages (login with its CSRF token, search, select, submit, watch, output, cancel,
delete), /api/v1, the original API at /ijp/rest/jm, /icat, /ids and the ``ijp`` command.

Apache runs as a private instance (its own ServerRoot, PidFile and ErrorLog in a
temporary directory, on a free loopback port); the configuration it is given defines
where the portal listens and includes the shipped file unchanged. The portal (waitress
on a thread, its scheduler on) listens as production.ini has it, on a Unix socket (0660,
in a set-group-ID directory of Apache's group, as deploy/systemd/ijpweb-tmpfiles.conf
makes /run/ijpweb) and on no TCP port, is mounted at ``ijp.prefix = /ijp`` and trusts
what production.ini trusts (``unix``: that socket alone), and its ijp.url is Apache's, so
jobs reach the catalog through Apache too."""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import sqlalchemy as sa

from ijpweb import main
from ijpweb.batch import BatchError
from ijpweb.models import Job, LoginFailure, get_engine
from ijpweb.states import JobStatus

from ..conftest import ROOT, free_port, load_demo, migrate, portal_settings, serving
from ..functional.test_demo_jobs import datasets_of
from ..vnc import Viewer

APACHE = shutil.which("apache2") or shutil.which("apache2", path="/usr/sbin:/usr/local/sbin")
MODULES = Path("/usr/lib/apache2/modules")
NEEDED = ("mpm_event", "authz_core", "proxy", "proxy_http", "proxy_balancer", "lbmethod_byrequests",
          "slotmem_shm", "headers", "proxy_wstunnel")  # fmt: skip
TLS_MODULES = ("socache_shmcb", "ssl")
OPENSSL = shutil.which("openssl")
SHIPPED = ROOT / "deploy" / "apache" / "ijpweb.conf"
IJP = shutil.which("ijp", path=str(Path(sys.executable).parent))
P = "/ijp"


def _why_not() -> str | None:
    if APACHE is None:
        return "apache2 is not installed (apt-get install apache2)"
    missing = [m for m in NEEDED if not (MODULES / f"mod_{m}.so").exists()]
    if missing:
        return f"apache2's modules {', '.join(missing)} are not in {MODULES}"
    return None


WHY_NOT = _why_not()
pytestmark = [
    pytest.mark.once,  # the portal under test has its own SQLite database
    pytest.mark.skipif(WHY_NOT is not None, reason=f"no Apache to test with: {WHY_NOT}"),
]


def production(section: str) -> dict[str, str]:
    cp = configparser.ConfigParser(interpolation=None)
    cp.read(ROOT / "production.ini")
    return dict(cp[section])


def production_server() -> dict[str, str]:
    """production.ini's [server:main] settings for waitress (a Unix socket, 0660), but
    where the socket is."""
    server = production("server:main")
    assert server["unix_socket"].startswith("/run/ijpweb/")
    return {k: v for k, v in server.items() if k not in ("use", "unix_socket")}


def apache_group() -> str | None:
    """The group Apache's workers run as here: nogroup (or nobody) as root, else ours."""
    if os.geteuid() != 0:
        return None
    return "nogroup" if _group_exists("nogroup") else "nobody"


def socket_dir() -> Path:
    """/run/ijpweb as deploy/systemd/ijpweb-tmpfiles.conf makes it: the portal's, of
    Apache's group, 2750 (outside pytest's temporary directories: only their owner may
    enter those)."""
    import grp

    d = Path(tempfile.mkdtemp(prefix="ijpweb-run-"))
    if group := apache_group():
        os.chown(d, -1, grp.getgrnam(group).gr_gid)
    d.chmod(0o2750)
    return d


def apache_conf(
    tmp: Path, port: int, portal: str, tls_port: int | None = None, desktops: int | None = None
) -> str:
    """A private Apache: the modules the shipped file needs, then the shipped file; with
    ``tls_port`` also an https VirtualHost (the shape the shipped file describes) that
    inherits it."""
    lines = [
        f'ServerRoot "{tmp}"', f'PidFile "{tmp}/httpd.pid"', f'ErrorLog "{tmp}/error.log"',
        f'DefaultRuntimeDir "{tmp}"', "LogLevel warn", f"Listen 127.0.0.1:{port}", "ServerName 127.0.0.1",
        *(f"LoadModule {m}_module {MODULES}/mod_{m}.so" for m in NEEDED),
    ]  # fmt: skip
    if os.geteuid() == 0:  # Apache will not serve as root: its workers run as nobody
        lines += ["User nobody", f"Group {apache_group()}"]
    lines += [
        f"Define IJP_PREFIX {P}",
        f"Define IJP_PORTAL {portal}",
        *([f"Define IJP_DESKTOP_PROXY ws://127.0.0.1:{desktops}"] if desktops else []),
        f'Include "{SHIPPED}"',
    ]
    if tls_port:
        lines += [
            *(f"LoadModule {m}_module {MODULES}/mod_{m}.so" for m in TLS_MODULES),
            f"Listen 127.0.0.1:{tls_port}",
            f"<VirtualHost 127.0.0.1:{tls_port}>",
            "    SSLEngine on",
            f'    SSLCertificateFile "{tmp}/cert.pem"',
            f'    SSLCertificateKeyFile "{tmp}/key.pem"',
            '    Header always set Strict-Transport-Security "max-age=63072000"',
            "</VirtualHost>",
        ]
    return "\n".join(lines) + "\n"


def _group_exists(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def wait_for_port(port: int, proc, log: Path, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"apache2 exited ({proc.returncode}): {log.read_text() if log.exists() else ''}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"apache2 did not listen on {port}: {log.read_text() if log.exists() else ''}")


@dataclass
class Site:
    url: str  # the portal through Apache over http: http://127.0.0.1:PORT/ijp
    engine: object
    https: str | None  # the same over https (None: no mod_ssl or openssl here)
    ca: str  # the certificate https is served with
    socket: str  # the portal's Unix socket, Apache's way in
    app: object = None  # the portal (its registry: backends, the desktop proxy)


def self_signed(tmp: Path) -> bool:
    if OPENSSL is None or not all((MODULES / f"mod_{m}.so").exists() for m in TLS_MODULES):
        return False
    made = subprocess.run(
        [OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(tmp / "key.pem"), "-out", str(tmp / "cert.pem")],
        capture_output=True, timeout=60,
    )  # fmt: skip
    return made.returncode == 0


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Apache on free ports (http, and https where it can) in front of the portal
    mounted at /ijp."""
    tmp = tmp_path_factory.mktemp("apache")
    port = free_port()
    run = socket_dir()
    sock = run / "main.sock"
    tls_port = free_port() if self_signed(tmp) else None
    desktops = free_port()  # the desktop proxy, embedded in the portal (production: ijp-desktop-proxy)
    public = f"http://127.0.0.1:{port}"
    settings = portal_settings(
        str(ROOT / "testing.ini"), tmp, f"sqlite:///{tmp / 'portal.sqlite'}",
        **{"ijp.scheduler.enabled": "true", "ijp.harvest.seconds": "0.3", "ijp.prefix": P,
           "ijp.trusted_proxies": production("app:main")["ijp.trusted_proxies"], "ijp.url": public,
           "ijp.login.max_address_failures": production("app:main")["ijp.login.max_address_failures"],
           "ijp.desktop.proxy": "embedded", "ijp.desktop.listen": f"127.0.0.1:{desktops}",
           "ijp.desktop.public_port": production("app:main")["ijp.desktop.public_port"]},
    )  # fmt: skip
    engine = get_engine(settings)
    migrate(engine)
    load_demo(engine, settings["ijp.filestore"])
    app = main({}, dbengine=engine, **settings)
    conf = tmp / "httpd.conf"
    conf.write_text(apache_conf(tmp, port, f"unix:{sock}|http://main", tls_port, desktops))
    check = subprocess.run([APACHE, "-f", str(conf), "-t"], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    # waitress with production.ini's settings (a Unix socket, 0660; it must pass X-Forwarded-*
    # on: the portal judges them)
    served = serving(app, unix_socket=str(sock), **production_server())
    with served, open(tmp / "apache.stderr", "w") as stderr:
        proc = subprocess.Popen([APACHE, "-f", str(conf), "-DFOREGROUND"], stdout=subprocess.DEVNULL,
                                stderr=stderr, start_new_session=True)  # fmt: skip
        try:
            wait_for_port(port, proc, tmp / "error.log")
            if tls_port:
                wait_for_port(tls_port, proc, tmp / "error.log")
            https = f"https://127.0.0.1:{tls_port}{P}" if tls_port else None
            yield Site(public + P, engine, https, str(tmp / "cert.pem"), str(sock), app)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            app.registry["ijp.scheduler"].shutdown(wait=False)
            end_sessions(app, engine)
            shutil.rmtree(run, ignore_errors=True)
    engine.dispose()


def end_sessions(app, engine) -> None:
    """The desktop sessions the tests left running end (their sandboxes kill all they
    started), and the portal's desktop proxy stops."""
    backends = app.registry["ijp.backends"]
    with engine.connect() as conn:
        live = conn.execute(
            sa.select(Job.backend, Job.backend_job_id).where(
                Job.status.in_([JobStatus.RUNNING, JobStatus.QUEUED]), Job.backend_job_id.is_not(None)
            )
        ).all()
    for name, backend_job_id in live:
        with contextlib.suppress(BatchError):
            backends[name].cancel(backend_job_id)
    if app.registry["ijp.desktop.proxy"] is not None:
        app.registry["ijp.desktop.proxy"].stop()


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', html).group(1)


def urls_in(html: str) -> list[str]:
    return re.findall(r'\s(?:href|src|action|hx-get|hx-post)="([^"#][^"]*)"', html)


def assert_under(html: str, base: str) -> None:
    for url in urls_in(html):
        assert url.replace("&amp;", "&").startswith(base + "/"), url


def browser_login(url: str, user: str) -> tuple[requests.Session, str]:
    web = requests.Session()
    page = web.get(f"{url}/login", timeout=10)
    assert page.status_code == 200
    token = csrf_of(page.text)
    res = web.post(f"{url}/login", data={"username": user, "password": f"{user}-demo", "csrf_token": token,
                                         "next": f"{P}/datasets"}, allow_redirects=False, timeout=10)  # fmt: skip
    assert res.status_code == 303 and res.headers["Location"] == f"{url}/datasets", res.text
    return web, token


def htmx(web, method, url, token, **kw):
    headers = {
        "HX-Request": "true",
        "X-CSRF-Token": token,
        "HX-Current-URL": url,
    } | kw.pop("headers", {})
    return web.request(method, url, headers=headers, allow_redirects=False, timeout=30, **kw)


def wait_status(web, url, job_id, want, seconds=90) -> str:
    deadline = time.monotonic() + seconds
    while True:
        text = web.get(f"{url}/jobs/{job_id}", headers={"HX-Request": "true"}, timeout=10).text
        status = re.search(r'class="status s-\w+">(\w+)<', text).group(1)
        if status in want:
            return status
        assert time.monotonic() < deadline, f"job {job_id} is still {status}"
        time.sleep(0.3)


def test_the_pages_through_apache(site):
    url = site.url
    root = url[: -len(P)]
    anon = requests.Session()
    # /ijp goes to /ijp/, which (not logged in) goes to the login page, all under /ijp
    res = anon.get(root + P, allow_redirects=False, timeout=10)
    assert res.status_code == 301 and res.headers["Location"] == P + "/"
    res = anon.get(url + "/", allow_redirects=False, timeout=10)
    assert res.status_code == 303 and res.headers["Location"] == f"{url}/login?next=%2Fijp%2F"
    login = anon.get(f"{url}/login", timeout=10)
    assert_under(login.text, url)
    cookie = login.headers["Set-Cookie"]
    assert "Path=/ijp" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "secure" not in cookie.lower()  # plain http here (the https case: tests/functional/test_prefix.py)
    for name, value in (("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"),
                        ("Referrer-Policy", "same-origin")):  # fmt: skip
        assert login.headers[name] == value
    css = re.search(r'href="([^"]+\.css)"', login.text).group(1)
    assert anon.get(css, timeout=10).status_code == 200
    js = re.search(r'src="([^"]+htmx[^"]+\.js)"', login.text).group(1)
    assert anon.get(js, timeout=10).status_code == 200

    # log in with the form and its CSRF token; search, select, submit
    web, token = browser_login(url, "alice")
    assert {c.path for c in web.cookies} == {P}
    found = web.get(f"{url}/datasets", params={"name": "", "type": "confocal"}, timeout=10)
    assert found.status_code == 200
    assert_under(found.text, url)
    ids = [int(i) for i in re.findall(r'id="ds-(\d+)"', found.text)][:2]
    assert len(ids) == 2
    # as htmx searches while one types: the results fragment, its links under /ijp
    typed = htmx(web, "GET", f"{url}/datasets", token, params={"name": "", "type": "confocal"})
    assert typed.status_code == 200 and "<html" not in typed.text and 'id="ds-' in typed.text
    assert_under(typed.text, url)
    for ds in ids:
        res = htmx(web, "POST", f"{url}/selection", token,
                   data={"action": "set", "kind": "dataset", "id": str(ds), "checked": "1"})  # fmt: skip
        assert res.status_code == 200 and 'id="run-panel"' in res.text
        assert_under(res.text, url)
    form = web.get(f"{url}/submit", params={"jobtype": "Dataset lister"}, timeout=10)
    assert_under(form.text, url)
    res = web.post(f"{url}/submit", data={"csrf_token": token, "jobtype": "Dataset lister", "mode": "each"},
                   allow_redirects=False, timeout=30)  # fmt: skip
    assert res.status_code == 303 and res.headers["Location"].startswith(f"{url}/jobs?submission="), res.text
    rows = web.get(res.headers["Location"], timeout=10).text
    assert_under(rows, url)
    job_ids = sorted(int(i) for i in re.findall(r'id="job-(\d+)"', rows))
    assert len(job_ids) == 2

    # watch them to Completed: the jobs read the catalog through Apache at /ijp/icat and /ijp/ids
    for job_id in job_ids:
        assert wait_status(web, url, job_id, ("Completed", "Failed")) == "Completed", web.get(
            f"{url}/jobs/{job_id}/output/stderr", timeout=10).text  # fmt: skip
        page = web.get(f"{url}/jobs/{job_id}", timeout=10)
        assert_under(page.text, url)
        out = web.get(f"{url}/jobs/{job_id}/output/stdout", timeout=10)
        assert out.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert "all datafiles agree with the catalog" in out.text
    # the job was given the portal's public URLs, through Apache
    argv = web.get(
        f"{url}/api/v1/jobs/{job_ids[0]}",
        headers={"Accept": "application/json"},
        timeout=10,
    )
    assert f"--icatUrl={url}" in argv.json()["command"]

    # cancel a running job (htmx: HX-Redirect under /ijp); Sleepcount takes no inputs
    res = htmx(web, "POST", f"{url}/selection", token, data={"action": "clear"})
    assert res.status_code == 200
    sleepers = []
    for _ in range(2):  # one cancelled with htmx, one with the plain form
        res = web.post(f"{url}/submit", data={"csrf_token": token, "jobtype": "Sleepcount", "opt:Count": "10",
                                              "opt:Sleep Time": "60"}, allow_redirects=False, timeout=30)  # fmt: skip
        assert res.status_code == 303, res.text
        rows = web.get(res.headers["Location"], timeout=10).text
        sleepers.append(max(int(i) for i in re.findall(r'id="job-(\d+)"', rows)))
    sleeper, plain = sleepers
    assert wait_status(web, url, sleeper, ("Running",)) == "Running"
    # (the job's page with a notice saying so, which takes the focus: part F's cancelled=1)
    res = htmx(web, "POST", f"{url}/jobs/{sleeper}/cancel", token, data={})
    assert res.status_code == 204 and res.headers["HX-Redirect"] == f"{url}/jobs/{sleeper}?cancelled=1"
    notice = web.get(res.headers["HX-Redirect"], timeout=10)
    assert notice.status_code == 200 and f"You cancelled job {sleeper}" in notice.text
    assert 'id="action-notice"' in notice.text and "autofocus" in notice.text
    assert_under(notice.text, url)
    assert wait_status(web, url, sleeper, ("Cancelled",)) == "Cancelled"
    # without JavaScript: the confirmation page's form, then a 303 to the same notice under /ijp
    res = web.get(f"{url}/jobs/{plain}/cancel", timeout=10)
    assert res.status_code == 200 and f'action="{url}/jobs/{plain}/cancel"' in res.text
    res = web.post(
        f"{url}/jobs/{plain}/cancel", data={"csrf_token": token}, allow_redirects=False, timeout=30
    )
    assert res.status_code == 303 and res.headers["Location"] == f"{url}/jobs/{plain}?cancelled=1"
    assert f"You cancelled job {plain}" in web.get(res.headers["Location"], timeout=10).text
    assert wait_status(web, url, plain, ("Cancelled",)) == "Cancelled"
    # cancelled already: the confirmation page again, saying so (409), under /ijp
    res = web.post(
        f"{url}/jobs/{plain}/cancel", data={"csrf_token": token}, allow_redirects=False, timeout=30
    )
    assert res.status_code == 409 and "has already ended" in res.text
    assert_under(res.text, url)

    # delete (the form, then htmx): back to the list under /ijp, saying which job went
    res = web.post(f"{url}/jobs/{job_ids[0]}/delete", data={"csrf_token": token}, allow_redirects=False,
                   timeout=30)  # fmt: skip
    assert res.status_code == 303 and res.headers["Location"] == f"{url}/jobs?deleted={job_ids[0]}"
    notice = web.get(res.headers["Location"], timeout=10)
    assert f"You deleted job {job_ids[0]}." in notice.text
    assert_under(notice.text, url)
    res = htmx(web, "POST", f"{url}/jobs/{sleeper}/delete", token, data={})
    assert res.status_code == 204 and res.headers["HX-Redirect"] == f"{url}/jobs?deleted={sleeper}"
    assert web.get(f"{url}/jobs/{job_ids[0]}", timeout=10).status_code == 404

    # a forged proxy header from the browser is replaced by Apache's own
    forged = web.get(f"{url}/jobs", headers={"X-Forwarded-Prefix": "/evil", "X-Forwarded-Host": "evil.example",
                                             "X-Forwarded-Proto": "https", "X-Forwarded-Port": "1"}, timeout=10)  # fmt: skip
    assert_under(forged.text, url)
    assert "evil" not in forged.text

    # logging out: back to the login page under /ijp, the cookie cleared at /ijp
    res = web.post(f"{url}/logout", data={"csrf_token": token}, allow_redirects=False, timeout=10)
    assert res.status_code == 303 and res.headers["Location"] == f"{url}/login"
    assert "Path=/ijp" in res.headers["Set-Cookie"]
    res = htmx(web, "GET", f"{url}/jobs", token)
    assert res.status_code == 401 and res.headers["HX-Redirect"].startswith(f"{url}/login?next=%2Fijp%2F")


def test_the_apis_through_apache(site):
    url = site.url
    root = url[: -len(P)]
    doc = requests.get(f"{url}/api/v1/openapi.json", timeout=10).json()
    assert doc["servers"] == [{"url": url + "/"}]
    api = requests.Session()
    res = api.post(
        f"{url}/api/v1/session",
        json={"username": "bob", "password": "bob-demo"},
        timeout=10,
    )
    assert res.status_code == 201
    api.headers["Authorization"] = f"Bearer {res.json()['token']}"
    res = api.post(f"{url}/api/v1/submissions", json={"job_type": "Date"}, timeout=30)
    assert res.status_code == 201, res.text
    job_id = res.json()["jobs"][0]["id"]
    deadline = time.monotonic() + 60
    while (job := api.get(f"{url}/api/v1/jobs/{job_id}", timeout=10).json())["status"] != "Completed":
        assert time.monotonic() < deadline and job["status"] not in (
            "Failed",
            "Cancelled",
        ), job
        time.sleep(0.3)
    assert api.get(f"{url}/api/v1/jobs/{job_id}/output/stdout", timeout=10).json()["text"].strip()
    # its errors are its JSON, whatever the prefix
    missing = api.get(f"{url}/api/v1/jobs/999999999", timeout=10)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert api.get(f"{url}/api/v1/no-such-thing", timeout=10).json()["code"] == "not_found"

    # an operator's monitor asks through Apache too, under the prefix
    health = requests.get(f"{url}/healthz", timeout=30)
    assert health.status_code in (200, 503) and health.headers["Content-Type"].startswith("application/json")
    assert requests.get(f"{root}/healthz", timeout=10).status_code == 404  # (not the portal's)

    # /icat and /ids
    creds = {
        "plugin": "db",
        "credentials": [{"username": "bob"}, {"password": "bob-demo"}],
    }
    sid = requests.post(f"{url}/icat/session", data={"json": json.dumps(creds)}, timeout=10).json()[
        "sessionId"
    ]
    assert requests.get(f"{url}/icat/session/{sid}", timeout=10).json()["userName"] == "db/bob"
    assert "version" in requests.get(f"{url}/icat/version", timeout=10).json()
    assert requests.get(f"{url}/ids/ping", timeout=10).text == "IdsOK"
    query = "SELECT df.id FROM Datafile df WHERE df.dataset.investigation.name = 'LMF-2026-002'"
    df = requests.get(
        f"{url}/icat/entityManager",
        params={"sessionId": sid, "query": query},
        timeout=10,
    ).json()[0]
    data = requests.get(f"{url}/ids/getData", params={"sessionId": sid, "datafileIds": df}, timeout=30)
    assert (
        data.status_code == 200
        and data.content
        and data.headers["Content-Type"] == "application/octet-stream"
    )

    # the original IJP's API, where its clients look for it: /ijp/rest/jm
    jm = url + "/rest/jm"
    assert url.endswith("/ijp") and "Date" in requests.get(f"{jm}/jobtype", timeout=10).json()
    reply = requests.post(f"{jm}/submit", data={"jobName": "Date", "sessionId": sid}, timeout=30)
    assert reply.status_code == 200, reply.text
    jm_id = reply.json()["jobId"]
    deadline = time.monotonic() + 60
    while (one := requests.get(f"{jm}/status/{jm_id}", params={"sessionId": sid}, timeout=10).json())[
        "status"
    ] != "Completed":
        assert time.monotonic() < deadline, one
        time.sleep(0.3)
    assert requests.get(f"{jm}/output/{jm_id}", params={"sessionId": sid}, timeout=10).json()["output"]
    bad = requests.get(f"{jm}/jobtype/Nope", timeout=10)
    assert bad.status_code == 400 and bad.json()["code"] == "ParameterException"
    assert requests.get(f"{url}/ijp/rest/jm/jobtype", timeout=10).status_code == 404  # not doubled


@pytest.mark.skipif(IJP is None, reason="the ijp console script is not installed (pip install -e .)")
def test_the_command_line_through_apache(site, tmp_path):
    url, engine = site.url, site.engine
    env = {k: v for k, v in os.environ.items() if not k.startswith("IJP_")} | {
        "IJP_CONFIG_DIR": str(tmp_path)
    }

    def ijp(*args, stdin=""):
        proc = subprocess.run(
            [IJP, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc

    # a base URL with a path: the command calls <url>/api/v1/...
    out = ijp(
        "login",
        "--url",
        url + "/",
        "db",
        "username",
        "carol",
        "password",
        "-",
        stdin="carol-demo\n",
    )
    assert out.stdout.startswith(f"Logged in to {url} as db/carol until ")
    ds = [str(d) for d in datasets_of(engine, "LMF-2026-003")[:1]]
    sub = ijp("submit", "Test args - multiple datasets or datafiles", "--dataset", ds[0],
              "--option", "Option one=<b>through apache</b>")  # fmt: skip
    job_id = sub.stdout.split(":")[1].split()[0]
    assert "Completed" in ijp("status", job_id, "--watch", "--interval", "0.3").stdout
    assert "'<b>through apache</b>'" in ijp("output", job_id).stdout
    assert json.loads(ijp("session", "--json").stdout)["url"] == url
    ijp("delete", job_id)
    ijp("logout")


def test_https_through_apache_makes_the_cookies_secure(site):
    """Apache over https says so (X-Forwarded-Proto from REQUEST_SCHEME): the portal's
    URLs are https and its cookies Secure; Apache adds HSTS."""
    if site.https is None:
        pytest.skip("no https here: mod_ssl or openssl is missing")
    url = site.https
    web = requests.Session()
    web.verify = site.ca
    web.trust_env = False  # (else REQUESTS_CA_BUNDLE would replace the verify above)
    page = web.get(f"{url}/login", timeout=10)
    assert page.headers["Strict-Transport-Security"] == "max-age=63072000"
    assert_under(page.text, url)
    cookie = page.headers["Set-Cookie"]
    assert "Path=/ijp" in cookie and "secure" in cookie.lower() and "HttpOnly" in cookie
    # a browser sends its Origin with a form; over https the portal checks it
    login = {"username": "bob", "password": "bob-demo", "csrf_token": csrf_of(page.text)}
    res = web.post(f"{url}/login", data=login, headers={"Origin": url[: -len(P)]}, allow_redirects=False,
                   timeout=10)  # fmt: skip
    assert res.status_code == 303 and res.headers["Location"] == f"{url}/"
    assert {c.name: c.secure for c in web.cookies} == {"csrf_token": True, "ijp_auth": True}
    assert_under(web.get(f"{url}/jobs", timeout=10).text, url)
    # a form from another site is refused
    forged = web.post(f"{url}/logout", data={"csrf_token": csrf_of(page.text)},
                      headers={"Origin": "https://evil.example"}, allow_redirects=False, timeout=10)  # fmt: skip
    assert forged.status_code == 400
    assert requests.get(f"{url}/api/v1/openapi.json", verify=site.ca, timeout=10).json()["servers"] == [
        {"url": url + "/"}
    ]


def test_the_shipped_file_is_what_apache_was_given(site):
    """The test configuration includes deploy/apache/ijpweb.conf itself, not a copy."""
    url = site.url
    assert urlsplit(url).path == P
    text = SHIPPED.read_text()
    for directive in ("ProxyPreserveHost On", "Define IJP_PORTAL unix:/run/ijpweb/main.sock|http://main", 'RequestHeader set X-Forwarded-Proto "expr=%{REQUEST_SCHEME}"',
                      'RequestHeader set X-Forwarded-Prefix "${IJP_PREFIX}"', "RequestHeader unset X-Forwarded-Host",
                      "balancer://ijpweb", "mod_proxy_wstunnel", "<VirtualHost *:443>", "Strict-Transport-Security",
                      '<Location "${IJP_PREFIX}/desktop/ws/">', "Define IJP_DESKTOP_PROXY ws://127.0.0.1:6544",
                      'ProxyPass "${IJP_DESKTOP_PROXY}${IJP_PREFIX}/desktop/ws/"'):  # fmt: skip
        assert directive in text


def test_apache_reaches_the_portal_on_its_unix_socket_and_is_trusted_there(site):
    """The portal listens on its Unix socket alone (0660, of Apache's group), trusts what
    comes on it (production.ini: ijp.trusted_proxies = unix), and so counts a failed login
    by the client's address as Apache appends it, not by anything the client wrote in
    X-Forwarded-For and not as one address for every client."""
    import grp

    mode = os.stat(site.socket)
    assert mode.st_mode & 0o777 == 0o660
    if group := apache_group():
        assert grp.getgrgid(mode.st_gid).gr_name == group
    with site.engine.begin() as conn:
        conn.execute(LoginFailure.__table__.delete())
    try:
        res = requests.post(f"{site.url}/api/v1/session", json={"username": "nobody", "password": "guess"},
                            headers={"X-Forwarded-For": "198.51.100.9"}, timeout=10)  # fmt: skip
        assert res.status_code == 401, res.text
        with site.engine.connect() as conn:
            keys = {k for (k,) in conn.execute(sa.select(LoginFailure.key))}
        assert "addr:127.0.0.1" in keys and not {"addr:198.51.100.9", "addr:localhost"} & keys, keys
    finally:
        with site.engine.begin() as conn:
            conn.execute(LoginFailure.__table__.delete())


DESKTOP_MISSING = [p for p in ("Xvfb", "x11vnc", "xterm") if shutil.which(p) is None]


def rfb_opens(conn) -> tuple[int, int]:
    """The desktop's size, once RFB opened with no password and a first update came."""
    viewer = Viewer(conn)
    size = viewer.open()
    assert viewer.frame(*size) >= 1
    return size


def terminal(site: Site, user: str) -> int:
    """``user``'s Terminal job through Apache, its desktop ready (800x600)."""
    from ..functional.test_demo_jobs import datasets_of

    url = site.url
    api = requests.Session()
    res = api.post(f"{url}/api/v1/session", json={"username": user, "password": f"{user}-demo"}, timeout=10)
    api.headers["Authorization"] = f"Bearer {res.json()['token']}"
    body = {
        "job_type": "Terminal",
        "geometry": "800x600",
        "datasets": datasets_of(site.engine, "LMF-2026-003")[:1],
    }
    res = api.post(f"{url}/api/v1/submissions", json=body, timeout=30)
    assert res.status_code == 201, res.text
    job_id = res.json()["jobs"][0]["id"]
    deadline = time.monotonic() + 90
    while (job := api.get(f"{url}/api/v1/jobs/{job_id}", timeout=10).json())["interactive"][
        "state"
    ] != "ready":
        assert job["status"] not in ("Failed", "Completed", "Cancelled"), job
        assert time.monotonic() < deadline, job
        time.sleep(0.3)
    assert job["interactive"]["url"] == f"{url}/jobs/{job_id}/desktop"
    return job_id


@pytest.fixture(scope="module")
def desktops(site):
    """bob's and carol's Terminal jobs, running behind Apache, their desktops ready."""
    if DESKTOP_MISSING:
        pytest.skip(
            f"{', '.join(DESKTOP_MISSING)} not installed (apt-get install xvfb x11vnc xterm xfonts-base)"
        )
    return terminal(site, "bob"), terminal(site, "carol")


@pytest.mark.skipif(bool(DESKTOP_MISSING), reason=f"{', '.join(DESKTOP_MISSING)} not installed (apt-get install "
                    "xvfb x11vnc xterm xfonts-base)")  # fmt: skip
def test_a_desktop_through_apache(site, desktops):
    """Issue 14, point 2: bob's Terminal job's desktop opened through Apache
    (mod_proxy_wstunnel at /ijp/desktop/ws/, the shipped file) to the portal's desktop
    proxy: his cookie from the viewer page gets the RFB opening with no password and a
    framebuffer update of the real session; no cookie, carol's, and a foreign Origin are
    refused through Apache too."""
    import logging

    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    quiet = logging.getLogger("tests.apache.ws")  # (the client would log its Cookie header at DEBUG)
    quiet.disabled = True
    url = site.url
    origin = url[: -len(P)]
    ws_base = "ws://" + origin.split("://", 1)[1] + P

    def ws(job_id, token, origin=origin):
        headers = {"Cookie": f"ijp_desktop={token}"} if token else {}
        return connect(f"{ws_base}/desktop/ws/{job_id}", origin=origin, additional_headers=headers,
                       open_timeout=15, close_timeout=5, logger=quiet)  # fmt: skip

    def refused(job_id, token, origin=origin) -> tuple[int, str]:
        with pytest.raises(InvalidStatus) as e:
            ws(job_id, token, origin).close()
        return e.value.response.status_code, e.value.response.body.decode()

    bobs, carols = desktops
    web, _ = browser_login(url, "bob")
    page = web.get(f"{url}/jobs/{bobs}/desktop", timeout=10)
    assert page.status_code == 200
    cookie = next(c for c in web.cookies if c.name == "ijp_desktop")
    assert cookie.path == f"{P}/desktop/ws/{bobs}" and cookie.value not in page.text
    assert "HttpOnly" in page.headers["Set-Cookie"] and "SameSite=Strict" in page.headers["Set-Cookie"]
    with ws(bobs, cookie.value) as conn:
        assert rfb_opens(conn) == (800, 600)

    carol, _ = browser_login(url, "carol")
    carol.get(f"{url}/jobs/{carols}/desktop", timeout=10)
    carol_token = next(c for c in carol.cookies if c.name == "ijp_desktop").value
    for status, text in (refused(bobs, None), refused(bobs, carol_token),
                         refused(bobs, cookie.value, "http://evil.example")):  # fmt: skip
        assert status == 403 and cookie.value not in text and carol_token not in text
    assert "another site" in refused(bobs, cookie.value, "http://evil.example")[1]
    # carol's F2 behind Apache: a page on another port of the portal's host gets bob's cookie
    # sent with its websocket (cookies ignore ports); only the viewer page's origin opens it
    host = urlsplit(origin).hostname
    for elsewhere in (f"http://{host}:{free_port()}", origin.replace("http:", "https:")):
        status, text = refused(bobs, cookie.value, elsewhere)
        assert status == 403 and "another site" in text and cookie.value not in text, elsewhere
    # the rest of /ijp still goes to the portal (the desktop Location is only the websocket's)
    assert web.get(f"{url}/jobs/{bobs}", timeout=10).status_code == 200

    # over https (the VirtualHost *:443 shape inherits the Location): wss, a Secure cookie
    if site.https:
        import ssl

        tls = requests.Session()
        tls.verify, tls.trust_env = site.ca, False
        page = tls.get(f"{site.https}/login", timeout=10)
        res = tls.post(f"{site.https}/login", data={"username": "bob", "password": "bob-demo",
                                                     "csrf_token": csrf_of(page.text)},
                       headers={"Origin": site.https[: -len(P)]}, allow_redirects=False, timeout=10)  # fmt: skip
        assert res.status_code == 303, res.text
        page = tls.get(f"{site.https}/jobs/{bobs}/desktop", timeout=10)
        assert page.status_code == 200 and "secure" in page.headers["Set-Cookie"].lower()
        secure = next(c for c in tls.cookies if c.name == "ijp_desktop")
        context = ssl.create_default_context(cafile=site.ca)
        wss = "wss://" + site.https.split("://", 1)[1] + f"/desktop/ws/{bobs}"
        with connect(wss, origin=site.https[: -len(P)], additional_headers={"Cookie": f"ijp_desktop={secure.value}"},
                     ssl=context, open_timeout=15, close_timeout=5, logger=quiet) as conn:  # fmt: skip
            assert rfb_opens(conn) == (800, 600)
        # the https page's token from the http origin (or another port): refused
        for elsewhere in (origin, f"https://{host}:{free_port()}"):
            with pytest.raises(InvalidStatus) as e:
                connect(wss, origin=elsewhere, additional_headers={"Cookie": f"ijp_desktop={secure.value}"},
                        ssl=context, open_timeout=15, close_timeout=5, logger=quiet).close()  # fmt: skip
            assert e.value.response.status_code == 403, elsewhere


@pytest.mark.browser
def test_a_desktop_in_chromium_through_apache(site, desktops):
    """The same in headless Chromium: bob logs in through Apache, opens his desktop's viewer
    page, and noVNC connects through Apache's websocket to the proxy: Connected, and the
    canvas shows the xterm (mostly its white page)."""
    import io

    from ..browser.test_browser import ARGS, CHROMIUM

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    from PIL import Image

    bobs, _ = desktops
    url = site.url
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = chromium.new_page()
            page.set_default_timeout(20_000)
            page.goto(f"{url}/login")
            page.get_by_label("User name").fill("bob")
            page.get_by_label("Password").fill("bob-demo")
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(re.compile(re.escape(url) + r"/$"))
            refused_sockets, opened = [], []

            def watch(ws):
                opened.append(ws.url)
                ws.on("socketerror", lambda error: refused_sockets.append(error))

            page.on("websocket", watch)
            page.goto(f"{url}/jobs/{bobs}/desktop")
            sync_api.expect(page.locator("#desktop-status")).to_have_text("Connected")
            canvas = page.locator("#desktop-screen canvas")
            deadline = time.monotonic() + 30
            while True:
                image = Image.open(io.BytesIO(canvas.screenshot())).convert("RGB")
                pixels = image.get_flattened_data()
                white = sum(1 for px in pixels if px == (255, 255, 255)) / len(pixels)
                if white > 0.5:
                    break
                assert time.monotonic() < deadline, f"the canvas does not show the xterm ({white:.0%} white)"
                time.sleep(0.3)
            assert not refused_sockets
            # the websocket went to Apache, at the prefix (not to the proxy's own port)
            assert opened == ["ws://" + url.split("://", 1)[1] + f"/desktop/ws/{bobs}"]
            # the token is in no page and no script-readable cookie
            assert "ijp_desktop" not in page.content()
            assert "ijp_desktop" not in page.evaluate("document.cookie")
        finally:
            chromium.close()

"""Issue 14, points 2, 3 and 7: the desktop proxy (ijpweb.desktop) with real sessions.

A portal of its own (SQLite, committed, its scheduler on) runs bob's and carol's Terminal
jobs on the real local backend (Xvfb, x11vnc, xterm in the job's sandbox); the proxy runs
embedded in it (``ijp.desktop.proxy = embedded`` on a free port, the page's host with that
port), as ``make run`` has it, and on its own (``ijp-desktop-proxy INI``). A websocket
client speaks RFB as noVNC does: the owner's cookie from the viewer page opens the desktop
with no password (the proxy answers the VNC server's), and gets the display's size and a
framebuffer update; carol's cookie, no cookie, another job's, an expired one, a logged-out
login's, a foreign Origin, a batch job and an ended job are refused before the upgrade.
Viewers are counted in the Desktop row; the token is checked again while a viewer is
connected; and no token, password or VNC port is ever in the log, at DEBUG either."""

from __future__ import annotations

import configparser
import logging
import os
import re
import signal
import struct
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy.orm import Session
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from ijpweb import main
from ijpweb.desktop.proxy import from_settings, run_in_thread
from ijpweb.desktop.tokens import CROSS_SITE, ENDED, NOT_YOURS, token_hash
from ijpweb.models import Job, WebSession, get_engine, utcnow
from ijpweb.models.desktops import Desktop, DesktopToken
from ijpweb.states import JobStatus

from ..conftest import NO_SANDBOX, ROOT, free_port, load_demo, migrate, portal_settings, serving
from ..vnc import WHY_NO_VNC, Viewer
from .test_demo_jobs import datasets_of

MISSING = [p for p in ("Xvfb", "x11vnc", "xterm") if __import__("shutil").which(p) is None]
PROXY = Path(sys.executable).parent / "ijp-desktop-proxy"
pytestmark = [
    pytest.mark.once,  # a portal and database of its own
    pytest.mark.skipif(
        bool(MISSING) or WHY_NO_VNC is not None,
        reason=f"{', '.join(MISSING)} not installed (apt-get install xvfb x11vnc xterm xfonts-base)",
    ),
]


class Recorded(logging.Handler):
    """Every log record of the process, at every level, as text."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(f"{record.name} {record.levelname} {record.getMessage()}")

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class Site:
    def __init__(self, url, engine, app, proxy_port, log, settings):
        self.url, self.engine, self.app, self.proxy_port, self.log = url, engine, app, proxy_port, log
        self.settings = settings
        self.secrets: set[str] = set()  # tokens and passwords the log must never show

    def ws(self, job_id: int) -> str:
        return f"ws://127.0.0.1:{self.proxy_port}/desktop/ws/{job_id}"

    def db(self) -> Session:
        return Session(self.engine, expire_on_commit=False)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("desktop-proxy")
    port = free_port()
    settings = portal_settings(
        str(ROOT / "testing.ini"), tmp, f"sqlite:///{tmp / 'portal.sqlite'}",
        **{"ijp.scheduler.enabled": "true", "ijp.harvest.seconds": "0.3", "ijp.desktop.proxy": "embedded",
           "ijp.desktop.listen": f"127.0.0.1:{port}", "ijp.desktop.public_port": str(port),
           "ijp.desktop.max_per_user": "2"},
    )  # fmt: skip
    engine = get_engine(settings)
    migrate(engine)
    load_demo(engine, settings["ijp.filestore"])
    recorded = Recorded()
    root = logging.getLogger()
    level = root.level
    root.addHandler(recorded)
    root.setLevel(logging.DEBUG)
    try:
        app = main({}, dbengine=engine, **settings)
        proxy = app.registry["ijp.desktop.proxy"]
        assert proxy is not None and proxy.port == port
        with serving(app) as url:
            yield Site(url, engine, app, port, recorded, settings)
            app.registry["ijp.scheduler"].shutdown(wait=False)
            # the sessions end with the tests (the sandbox kills everything each started)
            backend = app.registry["ijp.backends"]["local"]
            with Session(engine) as db:
                live = db.scalars(sa.select(Job.backend_job_id).where(Job.status == JobStatus.RUNNING)).all()
            for backend_job_id in live:
                if backend_job_id:
                    backend.cancel(backend_job_id)
            proxy.stop()
    finally:
        root.removeHandler(recorded)
        root.setLevel(level)
        engine.dispose()


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', html).group(1)


def browser(site: Site, user: str) -> tuple[requests.Session, str]:
    """A browser's login (the form, its CSRF token)."""
    web = requests.Session()
    token = csrf_of(web.get(f"{site.url}/login", timeout=10).text)
    res = web.post(f"{site.url}/login", data={"username": user, "password": f"{user}-demo", "csrf_token": token},
                   allow_redirects=False, timeout=10)  # fmt: skip
    assert res.status_code == 303, res.text
    return web, token


def api(site: Site, user: str) -> requests.Session:
    s = requests.Session()
    res = s.post(
        f"{site.url}/api/v1/session", json={"username": user, "password": f"{user}-demo"}, timeout=10
    )
    assert res.status_code == 201, res.text
    s.headers["Authorization"] = f"Bearer {res.json()['token']}"
    return s


def wait_for(what, seconds: float = 90, every: float = 0.2):
    deadline = time.monotonic() + seconds
    while True:
        got = what()
        if got:
            return got
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(every)


def terminal(site: Site, user: str) -> int:
    """``user``'s Terminal job, its desktop ready (800x600)."""
    s = api(site, user)
    datasets = datasets_of(site.engine, "LMF-2026-003")[:1]  # (bob's and carol's)
    body = {"job_type": "Terminal", "geometry": "800x600", "datasets": datasets}
    res = s.post(f"{site.url}/api/v1/submissions", json=body, timeout=30)
    assert res.status_code == 201, res.text
    job_id = res.json()["jobs"][0]["id"]

    def ready():
        job = s.get(f"{site.url}/api/v1/jobs/{job_id}", timeout=10).json()
        assert job["status"] not in ("Failed", "Cancelled", "Completed"), job
        return job["interactive"]["state"] == "ready"

    wait_for(ready)
    return job_id


@pytest.fixture(scope="module")
def bobs(site):
    return terminal(site, "bob")


@pytest.fixture(scope="module")
def carols(site):
    return terminal(site, "carol")


def open_desktop(site: Site, web: requests.Session, job_id: int) -> str:
    """The viewer page, as the browser loads it: the token is in its cookie (only)."""
    page = web.get(f"{site.url}/jobs/{job_id}/desktop", timeout=10)
    assert page.status_code == 200, page.text
    token = web.cookies.get("ijp_desktop", path=f"/desktop/ws/{job_id}")
    assert token and token not in page.text
    site.secrets.add(token)
    return token


# the test's websocket client logs its request's headers at DEBUG (the cookie among them):
# not into the log under test, which must hold no token of the portal's or proxy's making
CLIENT_LOG = logging.getLogger("tests.desktop.client")
CLIENT_LOG.disabled = True


def ws_connect(site: Site, job_id: int, token: str | None, origin: str | None = None, url: str | None = None):
    headers = {"Cookie": f"ijp_desktop={token}"} if token else {}
    return connect(url or site.ws(job_id), origin=origin or site.url, additional_headers=headers,
                   open_timeout=15, close_timeout=5, logger=CLIENT_LOG)  # fmt: skip


def refused(site: Site, job_id: int, token: str | None, status: int = 403, **kw) -> str:
    with pytest.raises(InvalidStatus) as e:
        ws_connect(site, job_id, token, **kw).close()
    assert e.value.response.status_code == status
    body = e.value.response.body.decode()
    assert not token or token not in body
    return body


def desktop_row(site: Site, job_id: int) -> Desktop:
    with site.db() as db:
        return db.get(Desktop, job_id)


def test_the_owner_opens_the_desktop_with_no_password(site, bobs):
    web, _ = browser(site, "bob")
    token = open_desktop(site, web, bobs)
    before = utcnow()
    with ws_connect(site, bobs, token) as ws:
        viewer = Viewer(ws)
        assert viewer.open() == (800, 600)
        assert viewer.frame(800, 600) >= 1
        # counted while connected
        row = wait_for(lambda: (d := desktop_row(site, bobs)).viewers == 1 and d)
        assert row.viewer_seen_at is not None and row.viewer_seen_at.replace(tzinfo=before.tzinfo) >= before
        # a second viewer of the same login (another tab) is counted too
        with ws_connect(site, bobs, token) as second:
            Viewer(second).open()
            wait_for(lambda: desktop_row(site, bobs).viewers == 2)
        wait_for(lambda: desktop_row(site, bobs).viewers == 1)
    wait_for(lambda: desktop_row(site, bobs).viewers == 0)
    log = site.log.text
    assert f"desktop of job {bobs} opened by db/bob (1 viewer now)" in log
    assert f"desktop of job {bobs} closed by db/bob after" in log


def test_who_may_not_open_a_desktop(site, bobs, carols):
    """Carol's attacks on bob's desktop, and bob's own stale or misplaced tokens: all
    refused before the upgrade, in the same words whether or not the job exists."""
    web, csrf = browser(site, "bob")
    token = open_desktop(site, web, bobs)
    carol, _ = browser(site, "carol")
    carol_token = open_desktop(site, carol, carols)
    # carol cannot get a token for bob's job: his viewer page is the 404 of any job she cannot see
    assert carol.get(f"{site.url}/jobs/{bobs}/desktop", timeout=10).status_code == 404
    # her own (valid) token on bob's job's path; no cookie; a made-up one; a job that does not exist
    assert refused(site, bobs, carol_token) == NOT_YOURS + "\n"
    assert refused(site, bobs, None) == NOT_YOURS + "\n"
    assert refused(site, bobs, "x" * 43) == NOT_YOURS + "\n"
    assert refused(site, 999_999, token) == NOT_YOURS + "\n"
    # bob's token for his job, used on carol's: the same
    assert refused(site, carols, token) == NOT_YOURS + "\n"
    # a page of another site opening bob's desktop with his cookie (the browser sends it):
    # its Origin is not the portal's host
    assert refused(site, bobs, token, origin="http://evil.example") == CROSS_SITE + "\n"
    assert refused(site, bobs, token, origin="null") == CROSS_SITE + "\n"
    # carol's F2: a page on ANOTHER PORT of the portal's host (another web application there,
    # or her Terminal job's `python3 -m http.server`: its sandbox keeps the host network);
    # the browser sends bob's cookie with it (cookies are not scoped by port), and only the
    # origin of the page that minted the token may use it: the portal's, port included
    for elsewhere in (f"http://127.0.0.1:{free_port()}", site.ws(bobs).split("/desktop/")[0].replace("ws:", "http:"),
                      site.url.replace("http:", "https:")):  # fmt: skip
        assert elsewhere != site.url
        assert refused(site, bobs, token, origin=elsewhere) == CROSS_SITE + "\n", elsewhere
    # two Origin headers, the portal's and another: refused, not a 500
    with pytest.raises(InvalidStatus) as e:
        connect(site.ws(bobs), additional_headers=[("Cookie", f"ijp_desktop={token}"), ("Origin", site.url),
                                                   ("Origin", "http://evil.example")],
                open_timeout=15, logger=CLIENT_LOG).close()  # fmt: skip
    assert e.value.response.status_code == 403
    # not the websocket's path
    refused(site, bobs, token, status=404, url=f"ws://127.0.0.1:{site.proxy_port}/desktop/ws/{bobs}x")
    refused(site, bobs, token, status=404, url=f"ws://127.0.0.1:{site.proxy_port}/ijp/desktop/ws/{bobs}")

    # an expired token
    digest = token_hash(token)
    with site.db() as db, db.begin():
        row = db.get(DesktopToken, digest)
        kept = row.expires_at
        row.expires_at = utcnow() - timedelta(seconds=1)
    assert refused(site, bobs, token) == NOT_YOURS + "\n"
    with site.db() as db, db.begin():
        db.get(DesktopToken, digest).expires_at = kept
    with ws_connect(site, bobs, token) as ws:
        Viewer(ws).open()
    # a login that has expired (its token row still there)
    with site.db() as db, db.begin():
        login = db.get(WebSession, db.get(DesktopToken, digest).web_session_id)
        kept, login.expires_at = login.expires_at, utcnow() - timedelta(seconds=1)
    assert refused(site, bobs, token) == NOT_YOURS + "\n"
    with site.db() as db, db.begin():
        db.get(WebSession, db.get(DesktopToken, digest).web_session_id).expires_at = kept
    # a login that logged out
    res = web.post(f"{site.url}/logout", data={"csrf_token": csrf}, allow_redirects=False, timeout=10)
    assert res.status_code == 303
    assert refused(site, bobs, token) == NOT_YOURS + "\n"

    # a batch job of bob's, with a token row for it (the page never makes one): no desktop
    bob = api(site, "bob")
    date = bob.post(f"{site.url}/api/v1/submissions", json={"job_type": "Date"}, timeout=30).json()["jobs"][
        0
    ]["id"]
    web, _ = browser(site, "bob")
    with site.db() as db, db.begin():
        login = db.scalars(
            sa.select(WebSession).where(WebSession.user_name == "db/bob", WebSession.kind == "web")
            .order_by(WebSession.created_at.desc())
        ).first()  # fmt: skip
        forged = "b" * 43
        db.add(DesktopToken(token_hash=token_hash(forged), job_id=date, web_session_id=login.id, owner="db/bob",
                            origin=site.url, expires_at=utcnow() + timedelta(hours=1)))  # fmt: skip
    assert refused(site, date, forged, status=404) == "this job has no desktop\n"
    assert forged not in site.log.text


def test_an_open_desktop_closes_when_its_login_ends(site, bobs):
    """The proxy checks the token again while a viewer is connected (here every 0.3 s):
    the login ending (logout) closes the websocket; a proxy of its own on another port."""
    running = run_in_thread(
        from_settings(site.app.registry.settings["ijp"], site.engine, site.app.registry["ijp.backends"],
                      check_seconds=0.3),
        "127.0.0.1", 0,
    )  # fmt: skip
    try:
        web, csrf = browser(site, "bob")
        token = open_desktop(site, web, bobs)
        url = f"ws://127.0.0.1:{running.port}/desktop/ws/{bobs}"
        with ws_connect(site, bobs, token, url=url) as ws:
            viewer = Viewer(ws)
            viewer.open()
            viewer.frame(800, 600)
            seen = desktop_row(site, bobs).viewer_seen_at
            # still valid: it stays open, and viewer_seen_at moves on
            wait_for(lambda: desktop_row(site, bobs).viewer_seen_at > seen)
            web.post(f"{site.url}/logout", data={"csrf_token": csrf}, allow_redirects=False, timeout=10)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    ws.recv(timeout=20)
            assert closed.value.rcvd.code == 1008 and closed.value.rcvd.reason == NOT_YOURS[:120]
        wait_for(lambda: desktop_row(site, bobs).viewers == 0)
        assert f"closed by the proxy: {NOT_YOURS}" in site.log.text
    finally:
        running.stop()


def test_limits_and_a_vnc_server_that_refuses(site, bobs):
    """At most max_per_desktop viewers of one desktop (429 past it); a VNC server that
    refuses the proxy (here: the wrong password) is said to the browser in RFB terms."""
    settings, engine, backends = (
        site.app.registry.settings["ijp"],
        site.engine,
        site.app.registry["ijp.backends"],
    )
    one = run_in_thread(from_settings(settings, engine, backends, max_per_desktop=1, handshake_seconds=2),
                        "127.0.0.1", 0)  # fmt: skip
    per_user = run_in_thread(from_settings(settings, engine, backends, max_per_user=1), "127.0.0.1", 0)
    wrong = from_settings(settings, engine, backends, handshake_seconds=5)
    wrong.password_of = lambda backend, backend_job_id: "Wr0ngPwd"
    bad = run_in_thread(wrong, "127.0.0.1", 0)
    try:
        web, _ = browser(site, "bob")
        token = open_desktop(site, web, bobs)
        url = f"ws://127.0.0.1:{one.port}/desktop/ws/{bobs}"
        with ws_connect(site, bobs, token, url=url) as ws:
            Viewer(ws).open()
            assert "1 viewers already" in refused(site, bobs, token, status=429, url=url)

        def again():  # its place is free again once the proxy has seen the first one go
            try:
                return ws_connect(site, bobs, token, url=url)
            except InvalidStatus as e:
                assert e.response.status_code == 429
                return None

        with wait_for(again, 20) as ws:
            Viewer(ws).open()
        # a browser that opens the websocket and then says nothing is dropped (the RFB
        # opening is bounded: 2 s here, 10 s by default)
        with wait_for(again, 20) as ws:
            assert Viewer(ws).read(12) == b"RFB 003.008\n"
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=30)
        assert "the browser's opening failed" in site.log.text
        # at most max_per_user websockets of one user (here 1), whichever desktops
        url = f"ws://127.0.0.1:{per_user.port}/desktop/ws/{bobs}"
        with ws_connect(site, bobs, token, url=url) as ws:
            Viewer(ws).open()
            assert "you have 1 desktop viewers open already" in refused(
                site, bobs, token, status=429, url=url
            )

        with ws_connect(site, bobs, token, url=f"ws://127.0.0.1:{bad.port}/desktop/ws/{bobs}") as ws:
            viewer = Viewer(ws)
            assert viewer.read(12) == b"RFB 003.008\n"
            ws.send(b"RFB 003.008\n")
            assert viewer.read(1) == b"\0"  # no security type: a reason instead
            (length,) = struct.unpack(">I", viewer.read(4))
            assert viewer.read(length).decode().startswith("the desktop did not answer")
        assert "its VNC server could not be reached: the VNC server refused the password" in site.log.text
    finally:
        one.stop()
        bad.stop()
        per_user.stop()


def test_a_browser_leaving_during_the_opening_frees_its_place_at_once(site, bobs):
    """A websocket closed while the proxy is still opening the VNC connection (a reload;
    here the backend takes 5 s to give the password) does not hold its viewer's place until
    that opening ends: with max_per_desktop = 1 the next one is let in at once."""
    import threading

    settings, engine, backends = (
        site.app.registry.settings["ijp"],
        site.engine,
        site.app.registry["ijp.backends"],
    )
    slow = from_settings(settings, engine, backends, max_per_desktop=1)
    asked = threading.Event()
    password_of = slow.password_of

    def slow_password(backend, backend_job_id):
        if not asked.is_set():  # (the first only)
            asked.set()
            time.sleep(5)
        return password_of(backend, backend_job_id)

    slow.password_of = slow_password
    running = run_in_thread(slow, "127.0.0.1", 0)
    try:
        web, _ = browser(site, "bob")
        token = open_desktop(site, web, bobs)
        url = f"ws://127.0.0.1:{running.port}/desktop/ws/{bobs}"
        with ws_connect(site, bobs, token, url=url):
            assert asked.wait(10)
        wait_for(lambda: f"desktop of job {bobs}: the browser left before its VNC server answered" in site.log.text,
                 20)  # fmt: skip
        with ws_connect(site, bobs, token, url=url) as ws:  # not a 429
            assert Viewer(ws).open() == (800, 600)
    finally:
        running.stop()


class FakeServer:
    """A TCP server on loopback that each client gets ``opening`` from (then what it does
    with the client's bytes, ``then``): what carol's job could point her desktop at."""

    def __init__(self, opening: bytes, then=None):
        import socket
        import threading

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.opening, self.then, self.heard = opening, then, bytearray()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                try:
                    conn.sendall(self.opening)
                    if self.then:
                        self.then(conn, self.heard)
                    while chunk := conn.recv(4096):
                        self.heard += chunk
                except OSError:
                    pass

    def close(self):
        self.sock.close()


def unprotected_vnc(conn, heard):
    """An RFB 3.8 server that asks no password (security type None) and shows its name."""
    heard += conn.recv(12)
    conn.sendall(b"\x01\x01")  # one security type: None
    chosen = conn.recv(1)
    heard += chosen
    if chosen == b"\x01":
        name = b"someone-elses-desktop"
        conn.sendall(b"\0\0\0\0" + struct.pack(">HHBBBBHHHBBBxxxI", 640, 480, 32, 24, 0, 1, 255, 255, 255,
                                                      16, 8, 0, len(name)) + name)  # fmt: skip


def test_a_desktop_pointed_elsewhere_gives_carol_nothing_of_it(site, carols):
    """carol's job decides the port its state.json names (the portal takes any port of the
    bind's address): pointed at another service of the host (a banner with a secret, a VNC
    server that asks no password, the portal's own HTTP port), her browser is told only
    that the desktop did not answer: no byte of the service reaches her, none of it is
    logged, and the proxy never opens a desktop without VNC authentication."""
    settings, engine, backends = (
        site.app.registry.settings["ijp"],
        site.engine,
        site.app.registry["ijp.backends"],
    )
    proxy = run_in_thread(from_settings(settings, engine, backends, handshake_seconds=2), "127.0.0.1", 0)
    banner = FakeServer(b"SSH-2.0-OpenSSH_9.2 host-secret-4242\r\n")
    open_vnc = FakeServer(b"RFB 003.008\n", unprotected_vnc)
    portal_port = int(site.url.rsplit(":", 1)[1].split("/")[0])
    real_port = desktop_row(site, carols).port
    carol, _ = browser(site, "carol")
    token = open_desktop(site, carol, carols)
    try:
        for port in (banner.port, open_vnc.port, portal_port):
            with site.db() as db, db.begin():
                db.execute(sa.update(Desktop).where(Desktop.job_id == carols).values(port=port))
            url = f"ws://127.0.0.1:{proxy.port}/desktop/ws/{carols}"
            received = bytearray()
            with ws_connect(site, carols, token, url=url) as ws:
                viewer = Viewer(ws)
                assert viewer.read(12) == b"RFB 003.008\n"
                ws.send(b"RFB 003.008\n")
                assert viewer.read(1) == b"\0", port  # no security type: a reason instead
                (length,) = struct.unpack(">I", viewer.read(4))
                assert viewer.read(length).decode().startswith("the desktop did not answer"), port
                with pytest.raises(ConnectionClosed):
                    while True:
                        received += ws.recv(timeout=10)
            assert b"host-secret" not in received and b"someone-elses" not in received
        assert (
            open_vnc.heard[:12] == b"RFB 003.008\n" and open_vnc.heard[12:13] != b"\x01"
        )  # never chose None
        assert "host-secret" not in site.log.text and "someone-elses" not in site.log.text
        assert "offers no VNC authentication" in site.log.text
    finally:
        with site.db() as db, db.begin():
            db.execute(sa.update(Desktop).where(Desktop.job_id == carols).values(port=real_port))
        proxy.stop()
        banner.close()
        open_vnc.close()


def test_an_ended_desktop_is_refused_and_the_log_holds_no_secret(site, carols):
    carol, csrf = browser(site, "carol")
    token = open_desktop(site, carol, carols)
    with ws_connect(site, carols, token) as ws:
        Viewer(ws).open()
        end = carol.post(f"{site.url}/jobs/{carols}/end", data={"csrf_token": csrf}, allow_redirects=False,
                         timeout=30)  # fmt: skip
        assert end.status_code == 303
        # the session ends: its VNC server goes, and the websocket with it
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(timeout=30)
    wait_for(lambda: desktop_row(site, carols).state == "ended")
    # the job's tokens went with it: the same words as any stale token
    assert refused(site, carols, token) in (NOT_YOURS + "\n", ENDED + "\n")

    # no token, password or VNC port in anything logged, at any level
    log = site.log.text
    with site.db() as db:
        ports = {str(p) for p in db.scalars(sa.select(Desktop.port).where(Desktop.port.is_not(None)))}
    backend = site.app.registry["ijp.backends"]["local"]
    for secret in site.secrets:
        assert secret not in log
    assert "ijp_desktop=" not in log and "Cookie" not in log
    with site.db() as db:
        for job in db.scalars(sa.select(Job).where(Job.job_type == "Terminal")):
            secret = Path(backend.root / job.backend_job_id / "desktop.secret")
            if secret.exists():
                password = secret.read_text()
                assert re.search(r'"password": "([A-Za-z0-9]{8})"', password)
                assert re.search(r'"password": "([A-Za-z0-9]{8})"', password).group(1) not in log
    proxy_lines = [line for line in site.log.lines if line.startswith("ijpweb.desktop")]
    assert proxy_lines
    for line in proxy_lines:
        assert not any(re.search(rf"\b{p}\b", line) for p in ports), line


def test_embedded_mode_warns_when_its_port_is_taken(site, caplog):
    settings = dict(site.settings)
    with caplog.at_level(logging.WARNING, logger="ijpweb.desktop"):
        app = main({}, dbengine=site.engine, **settings)
    assert app.registry["ijp.desktop.proxy"] is None
    assert f"cannot listen on 127.0.0.1:{site.proxy_port} (ijp.desktop.listen)" in caplog.text


def test_the_external_proxy_serves_from_an_ini(site, bobs, tmp_path):
    """``ijp-desktop-proxy INI`` (external mode): the portal's settings from the ini, the
    desktop opened through it with the backend's password, and SIGTERM stops it."""
    if not PROXY.exists():
        pytest.skip("the ijp-desktop-proxy console script is not installed (pip install -e .)")
    port = free_port()
    cp = configparser.ConfigParser(interpolation=None)
    cp.read(ROOT / "testing.ini")
    app = cp["app:main"]
    for key in ("sqlalchemy.url", "ijp.batch.local.dir", "ijp.filestore", "ijp.jobtypes_dir",
                "ijp.datasettypes_dir", "ijp.batch.local.path", "auth.secret", "ijp.ids.key"):  # fmt: skip
        app[key] = site.settings[key]
    if NO_SANDBOX:
        app["ijp.batch.local.sandbox"] = "none"
    app["ijp.desktop.listen"] = f"127.0.0.1:{port}"
    for section in [s for s in cp.sections() if s.startswith(("logger", "handler", "formatter"))] + ["loggers",
                                                                                                     "handlers",
                                                                                                     "formatters"]:  # fmt: skip
        cp.remove_section(section)
    cp["loggers"] = {"keys": "root"}
    cp["handlers"] = {"keys": "stderr"}
    cp["formatters"] = {"keys": "plain"}
    cp["logger_root"] = {"level": "DEBUG", "handlers": "stderr"}
    cp["handler_stderr"] = {"class": "StreamHandler", "args": "(sys.stderr,)", "level": "DEBUG",
                            "formatter": "plain"}  # fmt: skip
    cp["formatter_plain"] = {"format": "%(levelname)s %(name)s %(message)s"}
    ini = tmp_path / "proxy.ini"
    with open(ini, "w") as f:
        cp.write(f)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IJP_")}
    with open(tmp_path / "stderr", "w") as err:
        proc = subprocess.Popen([str(PROXY), str(ini)], stdout=subprocess.DEVNULL, stderr=err, env=env,
                                start_new_session=True)  # fmt: skip
    try:
        url = f"ws://127.0.0.1:{port}/desktop/ws/{bobs}"
        web, _ = browser(site, "bob")
        token = open_desktop(site, web, bobs)

        def up():
            assert proc.poll() is None, (tmp_path / "stderr").read_text()
            return "listens on" in (tmp_path / "stderr").read_text()

        wait_for(up, 60)
        with ws_connect(site, bobs, token, url=url) as ws:
            viewer = Viewer(ws)
            assert viewer.open() == (800, 600)
            assert viewer.frame(800, 600) >= 1
        assert "Not Found" in refused(site, bobs, token, status=404, url=url + "/more")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = (tmp_path / "stderr").read_text()
    assert f"desktop of job {bobs} opened by db/bob" in out and "the desktop proxy stopped" in out
    assert token not in out and "ijp_desktop" not in out

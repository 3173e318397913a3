"""Issue 14, points 3 and 7 in headless Chromium, end to end: bob submits the Terminal job
type from the datasets page, its page says the desktop is ready, Open desktop shows noVNC's
canvas through the portal's websocket proxy, and its pixels are the xterm (a white page,
black text); what he types into the canvas reaches the xterm's shell (the file appears in
the job's work directory, the canvas changes). carol runs the Image viewer: her canvas
shows the viewer's dark window and the demo TIFF's noise. The hostile second user: carol
opening bob's desktop URL gets the 404 of a job she cannot see and no cookie; her own,
valid token on bob's websocket is refused, as are bob's token from another site's page and
her token once expired. The token and the VNC password appear in no page, no line the
portal logged and no process's command line. End session ends the job (Completed, "ended
by the user") and no process of its sandbox (Xvfb, x11vnc, xterm) remains.

Screenshots go to test-results/desktop/. Skips, saying which, where Xvfb, x11vnc or xterm
are absent (.ci/run installs them)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from ijpweb import main
from ijpweb.batch.runner import kill_sandbox
from ijpweb.models import Job, get_engine, utcnow
from ijpweb.models.desktops import DesktopToken

from ..conftest import IDS_KEY, NO_SANDBOX, ROOT, free_port, load_demo, migrate, portal_settings, serving
from .test_browser import browser, settled  # noqa: F401 - the fixture

pytestmark = [pytest.mark.browser, pytest.mark.once]
SHOTS = ROOT / "test-results" / "desktop"
MISSING = [tool for tool in ("Xvfb", "x11vnc", "xterm") if not shutil.which(tool)]
if MISSING:
    pytestmark.append(pytest.mark.skip(reason=f"{', '.join(MISSING)} not installed (apt-get install xvfb x11vnc "
                                               "xterm xfonts-base): no desktop can start"))  # fmt: skip
VIEWER_BACKGROUND = (0x2B, 0x2B, 0x2B)
READY_SECONDS = 120  # the sandbox, Xvfb, the program and x11vnc start, then a harvest sees it


class Captured(logging.Handler):
    """Every line the portal logs while the module runs (messages with their arguments)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.lines.append(f"{record.name}: {text}")

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    """The portal as `make run` starts it (harvester on, the desktop proxy embedded on a port
    of its own that the pages name), with its own database, demo catalog and job
    directories; every log line captured. Yields a namespace."""
    tmp = tmp_path_factory.mktemp("desktop-portal")
    port, web = free_port(), free_port()
    settings = portal_settings(
        str(ROOT / "testing.ini"), tmp, f"sqlite:///{tmp / 'portal.sqlite'}",
        **{"ijp.scheduler.enabled": "true", "ijp.harvest.seconds": "0.5", "ijp.desktop.proxy": "embedded",
           "ijp.desktop.listen": f"127.0.0.1:{port}", "ijp.desktop.public_port": str(port),
           "ijp.url": f"http://127.0.0.1:{web}"},  # (what jobs get as --icatUrl and --idsUrl)
    )  # fmt: skip
    engine = get_engine(settings)
    migrate(engine)
    load_demo(engine, settings["ijp.filestore"])
    captured = Captured()
    root = logging.getLogger()
    levels = (root.level, logging.getLogger("sqlalchemy").level)
    root.addHandler(captured)
    root.setLevel(logging.INFO)
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    app = main({}, **settings)
    try:
        with serving(app, threads=6, port=web) as url:
            yield type("Portal", (), {"url": url, "engine": engine, "jobs": Path(settings["ijp.batch.local.dir"]),
                                      "ws": f"ws://127.0.0.1:{port}", "log": captured})  # fmt: skip
            app.registry["ijp.scheduler"].shutdown(wait=False)
            proxy = app.registry.get("ijp.desktop.proxy")
            if proxy is not None:
                proxy.stop()
    finally:
        end_leftovers(Path(settings["ijp.batch.local.dir"]))
        root.removeHandler(captured)
        root.setLevel(levels[0])
        logging.getLogger("sqlalchemy").setLevel(levels[1])
        engine.dispose()


def end_leftovers(jobs: Path) -> None:
    """Whatever session a failed test left running: its sandbox killed (kill_sandbox)."""
    if jobs.is_dir():
        for d in jobs.iterdir():
            if d.name.isdigit():
                kill_sandbox(d)


def login(page, url, user):
    page.goto(url + "/login")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(f"{user}-demo")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"^(?!.*/login)"))


def submit_from_datasets(page, portal, user: str, job_type: str) -> int:
    """The first dataset the user sees, ticked on the datasets page, run as ``job_type``;
    returns the job's id."""
    from playwright.sync_api import expect

    page.goto(portal.url + "/datasets")
    settled(page)
    first = page.locator("#results tbody tr").first
    name = first.locator("td:nth-child(2)").inner_text().strip()
    page.get_by_label(f"Select dataset {name}").check()
    expect(page.locator("#run-panel")).to_contain_text(name)
    settled(page)
    page.get_by_label("Job type").select_option(job_type)
    expect(page.locator("#job-form")).to_be_visible()
    settled(page)
    geometry = page.locator("input[name=geometry]")
    expect(geometry).to_have_count(1)
    page.get_by_role("button", name="Submit").click()
    expect(page).to_have_url(re.compile(r"/jobs\?submission=\d+"))
    with Session(portal.engine) as db:
        return db.scalars(
            sa.select(Job.id)
            .where(Job.owner == f"db/{user}", Job.job_type == job_type)
            .order_by(Job.id.desc())
        ).first()


def open_desktop(page, portal, job_id: int, shot: str):
    """From the job page (ready): Open desktop, in its own tab; returns the viewer page once
    noVNC says it is connected."""
    from playwright.sync_api import expect

    page.goto(f"{portal.url}/jobs/{job_id}")
    panel = page.locator("#desktop-panel")
    expect(panel).to_contain_text("Ready", timeout=READY_SECONDS * 1000)
    page.screenshot(path=str(SHOTS / f"{shot}-job-ready.png"), full_page=True)
    with page.context.expect_page() as opened:
        panel.get_by_role("link", name="Open desktop").click()
    viewer = opened.value
    viewer.set_default_timeout(30_000)
    expect(viewer).to_have_url(f"{portal.url}/jobs/{job_id}/desktop")
    expect(viewer.locator("#desktop-status")).to_have_text("Connected")
    return viewer


def canvas_image(viewer, shot: str | None = None):
    from PIL import Image

    png = viewer.locator("#desktop-screen canvas").screenshot(**({"path": str(SHOTS / shot)} if shot else {}))
    return Image.open(io.BytesIO(png)).convert("RGB")


def wait_canvas(viewer, check, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        image = canvas_image(viewer)
        if check(image):
            return image
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def share(image, colour) -> float:
    pixels = image.get_flattened_data()
    return sum(1 for p in pixels if p == colour) / len(pixels)


def jobdir(portal, job_id: int) -> Path:
    found = [p.parent for p in portal.jobs.rglob("spec.json") if p.parent.name == str(job_id)]
    assert len(found) == 1, found
    return found[0]


def cookie(context, name="ijp_desktop") -> dict:
    (got,) = [c for c in context.cookies() if c["name"] == name]
    return got


def sandbox_processes(work: Path) -> dict[int, str]:
    """The processes of the session whose program runs in ``work``: those in the program's
    PID namespace (the sandbox's), or without a sandbox those working in ``work``."""

    def procs():
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    yield (
                        int(pid),
                        Path(f"/proc/{pid}/comm").read_text().strip(),
                        os.readlink(f"/proc/{pid}/ns/pid"),
                    )
                except OSError:
                    continue

    def cwd(pid):
        try:
            return os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            return None

    ours = os.readlink("/proc/self/ns/pid")
    program = [
        (pid, ns)
        for pid, comm, ns in procs()
        if comm in ("xterm", "python3", "python") and cwd(pid) == str(work)
    ]
    namespaces = {ns for _, ns in program} - {ours}
    if namespaces:
        return {pid: comm for pid, comm, ns in procs() if ns in namespaces}
    return {pid: comm for pid, comm, _ in procs() if cwd(pid) and cwd(pid).startswith(str(work.parent))}


def in_cmdlines(secret: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if secret.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(int(pid))
            except OSError:
                continue
    return found


def ws_refused(portal, job_id: int, token: str | None, origin: str) -> int | None:
    """Open the job's websocket as a script would (not a browser): the HTTP status it is
    refused with, or None when it was accepted (then closed at once)."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    headers = {"Origin": origin, **({"Cookie": f"ijp_desktop={token}"} if token else {})}
    try:
        with connect(f"{portal.ws}/desktop/ws/{job_id}", additional_headers=headers, open_timeout=15):
            return None
    except InvalidStatus as e:
        return e.response.status_code


def test_terminal_and_image_viewer_in_the_browser(portal, browser):  # noqa: F811
    from playwright.sync_api import expect

    SHOTS.mkdir(parents=True, exist_ok=True)
    bob_ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    page = bob_ctx.new_page()
    page.set_default_timeout(30_000)
    login(page, portal.url, "bob")
    job_id = submit_from_datasets(page, portal, "bob", "Terminal")
    viewer = open_desktop(page, portal, job_id, "terminal")

    # the canvas shows the xterm: mostly its white page, with black text (the prompt)
    shown = wait_canvas(viewer, lambda im: share(im, (255, 255, 255)) > 0.5 and share(im, (0, 0, 0)) > 0.001,
                        "the canvas does not show the xterm's white page with black text")  # fmt: skip
    canvas_image(viewer, "terminal-canvas.png")
    assert len(shown.getcolors(1 << 20)) >= 2

    # typing into the canvas reaches the xterm's shell, in the job's work directory
    work = jobdir(portal, job_id) / "work"
    before = canvas_image(viewer)
    viewer.locator("#desktop-screen canvas").click(position={"x": 200, "y": 120})
    viewer.keyboard.type("echo ijp-typed > typed.txt", delay=30)
    viewer.keyboard.press("Enter")
    deadline = time.monotonic() + 30
    while not (work / "typed.txt").exists():
        assert time.monotonic() < deadline, "what was typed in the browser did not reach the xterm"
        time.sleep(0.2)
    assert (work / "typed.txt").read_text() == "ijp-typed\n"
    wait_canvas(viewer, lambda im: im.tobytes() != before.tobytes(), "the canvas did not change")
    canvas_image(viewer, "terminal-typed.png")
    viewer.screenshot(path=str(SHOTS / "terminal-viewer.png"))

    # the session's processes, all in the job's sandbox
    members = sandbox_processes(work)
    assert {"Xvfb", "x11vnc", "xterm"} <= set(members.values()), members

    # what must stay secret: bob's token (an HttpOnly cookie for the websocket's path only)
    # and the VNC password (the job directory's, which only the proxy uses)
    token = cookie(bob_ctx)
    assert token["httpOnly"] and token["sameSite"] == "Strict" and token["path"] == f"/desktop/ws/{job_id}"
    password = json.loads((jobdir(portal, job_id) / "desktop.secret").read_text())["password"]
    for secret in (token["value"], password):
        for where in (f"/jobs/{job_id}", "/jobs", f"/jobs/{job_id}/desktop", "/"):
            page.goto(portal.url + where)
            assert secret not in page.content(), where
        assert secret not in viewer.content()
        assert not in_cmdlines(secret), "a command line holds a desktop secret"
    assert f"desktop of job {job_id} opened by db/bob" in portal.log.text
    assert re.search(r"Set-Cookie|ijp_desktop=", portal.log.text) is None

    # carol: bob's desktop is a job she cannot see, and she gets no cookie for it
    carol_ctx = browser.new_context(viewport={"width": 1100, "height": 760})
    carol = carol_ctx.new_page()
    carol.set_default_timeout(30_000)
    login(carol, portal.url, "carol")
    refused = carol.goto(f"{portal.url}/jobs/{job_id}/desktop")
    assert refused.status == 404
    said = carol.locator("main").inner_text()
    assert carol.goto(f"{portal.url}/jobs/999999/desktop").status == 404  # (no job at all: the same page)
    assert carol.locator("main").inner_text() == said and "Terminal" not in said
    assert not [c for c in carol_ctx.cookies() if c["name"] == "ijp_desktop"]
    carol.screenshot(path=str(SHOTS / "carol-refused.png"), full_page=True)
    # her own desktop: the image viewer, on her first dataset's TIFFs
    carols_job = submit_from_datasets(carol, portal, "carol", "Image viewer")
    carols_viewer = open_desktop(carol, portal, carols_job, "image-viewer")
    image = wait_canvas(
        carols_viewer,
        lambda im: share(im, VIEWER_BACKGROUND) > 0.2 and len(im.getcolors(1 << 20) or ()) >= 20,
        "the canvas does not show the image viewer's window with an image in it",
    )
    canvas_image(carols_viewer, "image-viewer-canvas.png")
    assert share(image, VIEWER_BACKGROUND) < 0.95
    # the arrow key, typed in the browser, pages to the next image
    carols_viewer.locator("#desktop-screen canvas").click(position={"x": 500, "y": 300})
    carols_viewer.keyboard.press("ArrowRight")
    wait_canvas(carols_viewer, lambda im: share(im, VIEWER_BACKGROUND) < 0.95 and im.tobytes() != image.tobytes(),
                "the arrow key did not page to the next image")  # fmt: skip
    canvas_image(carols_viewer, "image-viewer-next.png")
    carols_token = cookie(carol_ctx)["value"]
    assert carols_token != token["value"]
    page_origin = portal.url
    # her valid token opens her own desktop (the refusals below are not a broken client) ...
    assert ws_refused(portal, carols_job, carols_token, page_origin) is None
    # ... and not bob's; nor does bob's token from another site's page, nor no token at all
    assert ws_refused(portal, job_id, carols_token, page_origin) == 403
    assert ws_refused(portal, job_id, token["value"], "http://evil.example") == 403
    assert ws_refused(portal, job_id, None, page_origin) == 403
    assert ws_refused(portal, job_id, token["value"], page_origin) is None  # (bob's own: accepted)
    # an expired token is refused
    with Session(portal.engine) as db, db.begin():
        db.execute(sa.update(DesktopToken).where(DesktopToken.job_id == carols_job)
                   .values(expires_at=utcnow() - timedelta(minutes=1)))  # fmt: skip
    assert ws_refused(portal, carols_job, carols_token, page_origin) == 403
    assert carols_token not in portal.log.text and token["value"] not in portal.log.text
    assert password not in portal.log.text

    # End session, from the viewer: the job page says it ended; nothing of it remains
    viewer.get_by_role("button", name="End session").click()
    expect(viewer).to_have_url(f"{portal.url}/jobs/{job_id}")
    expect(viewer.locator("#job-status")).to_contain_text("Completed", timeout=60_000)
    expect(viewer.locator("#desktop-panel")).to_contain_text("ended by the user")
    viewer.screenshot(path=str(SHOTS / "terminal-ended.png"), full_page=True)
    deadline = time.monotonic() + 30
    while alive := [pid for pid in members if Path(f"/proc/{pid}").exists()]:
        assert time.monotonic() < deadline, f"processes of the ended session remain: {alive}"
        time.sleep(0.2)
    with Session(portal.engine) as db:
        assert not db.scalars(sa.select(DesktopToken).where(DesktopToken.job_id == job_id)).all()
    # the ended desktop's page says so (and sets no cookie); its websocket is refused
    again = page.goto(f"{portal.url}/jobs/{job_id}/desktop")
    assert again.status == 410 and "has ended (ended by the user)" in page.locator("main").inner_text()
    assert ws_refused(portal, job_id, token["value"], page_origin) == 403
    carols_viewer.get_by_role("button", name="End session").click()
    expect(carols_viewer.locator("#job-status")).to_contain_text("Completed", timeout=60_000)
    for ctx in (bob_ctx, carol_ctx):
        ctx.close()


# --- a portal restart ------------------------------------------------------------------------

SECRET = "desktop-restart-test-secret-0123456789abcdef"


def ini_for(tmp: Path, web: int, ws: int) -> Path:
    """testing.ini for a portal process of its own: the scheduler on, this port, the proxy
    embedded on ``ws``, everything it writes under ``tmp``."""
    text = (ROOT / "testing.ini").read_text().replace("%(here)s", str(ROOT))
    keys = {
        "sqlalchemy.url": f"sqlite:///{tmp / 'portal.sqlite'}",
        "ijp.url": f"http://127.0.0.1:{web}",
        "ijp.scheduler.enabled": "true",
        "ijp.harvest.seconds": "0.5",
        "ijp.filestore": str(tmp / "files"),
        "ijp.ids.key_file": "",
        "ijp.batch.local.dir": str(tmp / "jobs"),
        "ijp.batch.local.path": f"{ROOT / 'jobtypes' / 'scripts'} {Path(sys.executable).parent}",
        "ijp.desktop.proxy": "embedded",
        "ijp.desktop.listen": f"127.0.0.1:{ws}",
        "ijp.desktop.public_port": str(ws),
        "listen": f"127.0.0.1:{web}",
    }
    if NO_SANDBOX:
        keys["ijp.batch.local.sandbox"] = "none"
    for key, value in keys.items():
        text, n = re.subn(rf"(?m)^{re.escape(key)} *=.*$", lambda _m, k=key, v=value: f"{k} = {v}", text)
        assert n == 1, key
    ini = tmp / "portal.ini"
    ini.write_text(text)
    return ini


class PortalProcess:
    """``pserve INI`` in a process group of its own, as `make run` starts the portal."""

    def __init__(self, ini: Path, url: str, log: Path):
        env = {**os.environ, "IJP_AUTH_SECRET": SECRET, "IJP_IDS_KEY": IDS_KEY}
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([str(Path(sys.executable).parent / "pserve"), str(ini)], stdout=out,
                                         stderr=subprocess.STDOUT, env=env, start_new_session=True)  # fmt: skip
        self.log = log
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/login", timeout=5) as resp:  # noqa: S310 - the test's portal
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert self.proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM to its process group (Ctrl-C, a service stop), and wait for it."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=30)


def test_a_portal_restart_keeps_the_session_and_exit_ends_it(browser, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    SHOTS.mkdir(parents=True, exist_ok=True)
    web, ws = free_port(), free_port()
    ini = ini_for(tmp_path, web, ws)
    engine = get_engine({"sqlalchemy.url": f"sqlite:///{tmp_path / 'portal.sqlite'}"})
    migrate(engine)
    load_demo(engine, str(tmp_path / "files"))
    url, log = f"http://127.0.0.1:{web}", tmp_path / "portal.log"
    site = type("Site", (), {"url": url, "engine": engine, "jobs": tmp_path / "jobs"})
    portal = PortalProcess(ini, url, log)
    members: dict[int, str] = {}
    try:
        ctx = browser.new_context(viewport={"width": 1200, "height": 800})
        page = ctx.new_page()
        page.set_default_timeout(30_000)
        login(page, url, "bob")
        job_id = submit_from_datasets(page, site, "bob", "Terminal")
        viewer = open_desktop(page, site, job_id, "restart")
        work = jobdir(site, job_id) / "work"
        wait_canvas(viewer, lambda im: share(im, (255, 255, 255)) > 0.5, "no xterm on the canvas")
        members = sandbox_processes(work)
        assert {"Xvfb", "x11vnc", "xterm"} <= set(members.values()), members

        # the portal stops: the session goes on (the viewer loses its websocket only)
        portal.stop()
        expect(viewer.locator("#desktop-status")).to_contain_text("Disconnected")
        assert all(Path(f"/proc/{pid}").exists() for pid in members), "the portal's stop ended the session"

        # it starts again: the job is still running, and its desktop opens again
        portal = PortalProcess(ini, url, log)
        viewer.get_by_role("button", name="Reconnect").click()  # (a fresh page load: a fresh token)
        expect(viewer.locator("#desktop-status")).to_have_text("Connected")
        wait_canvas(
            viewer, lambda im: share(im, (255, 255, 255)) > 0.5, "no xterm on the canvas after the restart"
        )
        viewer.locator("#desktop-screen canvas").click(position={"x": 200, "y": 120})
        viewer.keyboard.type("echo after-restart > after.txt", delay=30)
        viewer.keyboard.press("Enter")
        deadline = time.monotonic() + 30
        while not (work / "after.txt").exists():
            assert time.monotonic() < deadline, "typing after the restart did not reach the xterm"
            time.sleep(0.2)
        canvas_image(viewer, "restart-reopened.png")

        # the program's end is the session's end: exit in the xterm
        viewer.keyboard.type("exit", delay=30)
        viewer.keyboard.press("Enter")
        page.goto(f"{url}/jobs/{job_id}")
        expect(page.locator("#job-status")).to_contain_text("Completed", timeout=60_000)
        expect(page.locator("#desktop-panel")).to_contain_text("the program exited (exit code 0)")
        page.screenshot(path=str(SHOTS / "restart-program-exited.png"), full_page=True)
        deadline = time.monotonic() + 30
        while alive := [pid for pid in members if Path(f"/proc/{pid}").exists()]:
            assert time.monotonic() < deadline, f"processes of the ended session remain: {alive}"
            time.sleep(0.2)
        token = cookie(ctx)["value"]
        assert token not in log.read_text() and not in_cmdlines(token)
        ctx.close()
    finally:
        portal.stop()
        end_leftovers(tmp_path / "jobs")  # (a failed test leaves no session behind)
        engine.dispose()

"""Issue 13, point 10: axe-core (npm's axe-core, vendored under tests/browser/vendor/ for
the tests only) on every page of the portal in headless Chromium, as the user who sees it
and in the states that matter; any violation of impact serious or critical fails, named
by page, rule, target and help. A full-page screenshot of each page goes to
test-results/pages/<name>.png.

axe is put into each page with Playwright's evaluate (DevTools' Runtime.evaluate), which
the page's Content-Security-Policy (script-src 'self') does not apply to: the CSP stays as
the portal sends it, and the test checks that no violation of it was reported.

The pages come from ijpweb/routes.py: every route is visited here or listed in
NOT_VISITED with why, so a new HTML page without a visit fails the test."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from ijpweb.batch import JobSpec
from ijpweb.batch.local import LocalBackend
from ijpweb.catalog.icatdb import TABLES as T
from ijpweb.models import DbCredential, Job, Submission
from ijpweb.passwords import hash_password
from ijpweb.states import JobStatus

from .test_browser import ROOT, browser, settled  # noqa: F401 - the fixture

pytestmark = [pytest.mark.browser, pytest.mark.once]
AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"
SHOTS = ROOT / "test-results" / "pages"
# (IJP_AXE_IMPACTS=minor,moderate,serious,critical lists the lesser ones too)
IMPACTS = tuple(os.environ.get("IJP_AXE_IMPACTS", "serious,critical").split(","))
WATCH_CSP = (
    "window.__csp = [];"
    "document.addEventListener('securitypolicyviolation',"
    " e => window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || e.sourceFile || '')));"
)
RUN_AXE = """async () => {
  const r = await axe.run(document, {resultTypes: ['violations']});
  return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
}"""

# Routes that are no page of their own, each with why.
NOT_VISITED = {
    "__static/": "static files (CSS, scripts, images)",
    "brand.css": "CSS",
    "brand.logo": "an image",
    "auth.logout": "POST only (a redirect to the login page)",
    "data.dataset_zip": "a download (zip)",
    "data.selection_zip": "a download (zip)",
    "data.download": "a download",
    "data.thumbnail": "an image",
    "data.image": "an image",
    "data.upload": "POST only (JSON for upload.js, or a redirect to the dataset page)",
    "selection": "POST only (the run panel fragment or a redirect back)",
    "jobs.export": "a download (CSV or JSON)",
    "jobs.output": "stdout/stderr as text/plain (the HTMX fragment is part of the job page)",
    "jobs.outputs": "a redirect to the job page's files (the HTMX fragment is part of it)",
    "jobs.file": "a download",
    "jobs.image": "an image",
    "jobs.zip": "a download (zip)",
    "jobs.tags": "POST only (a fragment of the job page)",
    "jobs.resubmit": "POST only (a redirect to the new submission)",
    "jobs.end": "POST only (End session: a redirect to the job page, visited ending and ended)",
    "jobs.comment": "POST only (edits a comment; its errors are the comments page, visited)",
    "jobs.comment.delete": "POST only (a redirect to the job page)",
    "staff.jobtypes": "a redirect to console.jobtypes (the old address)",
    "console.logins.revoke": "POST only (answers with the logins page, visited)",
    "console.backend.pause": "POST only (answers with the backends page, visited)",
    "console.backend.resume": "POST only (answers with the backends page, visited)",
    "console.node.drain": "POST only (answers with the backends page, visited)",
    "console.node.resume": "POST only (answers with the backends page, visited)",
    "healthz": "JSON for monitoring",
    "metrics": "Prometheus text for monitoring",
}
NOT_VISITED_PREFIXES = {"api.": "the JSON API", "jm.": "the original IJP's REST API (JSON/XML)"}


def _routes():
    """(name, pattern) of every route, in the order the portal matches them."""
    from pyramid.urldispatch import Route

    from ijpweb import routes

    found = []

    class Config:
        registry = SimpleNamespace(settings={"ijp": SimpleNamespace(prefix="")})

        def add_static_view(self, name, path, **kw):
            found.append(("__static/", Route("__static/", f"/{name}/*subpath")))

        def add_route(self, name, pattern, **kw):
            found.append((name, Route(name, pattern)))

    routes.includeme(Config())
    return found


def _route_of(path, routes):
    for name, route in routes:
        if route.match(path) is not None:
            return name
    return None


def _api(url, path, body=None, token=None):
    req = urllib.request.Request(url + "/api/v1" + path, data=json.dumps(body).encode() if body else None,
                                 method="POST" if body is not None else "GET")  # fmt: skip
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (the test's own server)
        return json.loads(resp.read() or b"null")


NEWLINE_NAME = "two\nlines.txt"
HTML_NAME = "<img src=x onerror=alert(1)>.txt"
SCRIPT = r"""
echo "started"
printf 'step,energy\n' > "$JOB_OUTPUT_DIR/curve.csv"
i=0
while [ $i -lt 20 ]; do echo "$i,$((i*i))" >> "$JOB_OUTPUT_DIR/curve.csv"; i=$((i+1)); done
printf 'line one\nline two\n' > "$JOB_OUTPUT_DIR/notes.txt"
printf 'newline in my name' > "$JOB_OUTPUT_DIR/$1"
printf 'html in my name' > "$JOB_OUTPUT_DIR/$2"
echo "OUT_ENERGY=12.4 keV" > "$JOB_OUTPUT_VARS"
echo "done"
"""


def _job_with_outputs(engine, owner):
    """A finished job of ``owner`` on the live portal's local backend that leaves a CSV, a
    text file and two files with hostile names (a newline, HTML)."""
    with Session(engine) as db, db.begin():
        job = Job(submission=Submission(owner=owner, job_type="Date", mode="single"), owner=owner,
                  job_type="Date", argv=[], backend="local", status=JobStatus.QUEUED)  # fmt: skip
        db.add(job)
        db.flush()
        job_id = job.id
    local = LocalBackend(
        "local", Path(engine.url.database).parent / "jobs", path=[str(Path(sys.executable).parent)]
    )
    backend_id = local.submit(
        JobSpec(job_id, owner, "/bin/sh", ("-c", SCRIPT, "job", NEWLINE_NAME, HTML_NAME))
    )
    with Session(engine) as db, db.begin():
        db.get(Job, job_id).backend_job_id = backend_id
    return job_id


def _lightsheet(engine):
    """bob's first lightsheet dataset of LMF-2026-002 (a CSV, an HDF5 file, TIFFs) and its CSV."""
    ds, inv, dt, df = T["Dataset"], T["Investigation"], T["DatasetType"], T["Datafile"]
    with engine.connect() as conn:
        dataset = conn.execute(
            sa.select(ds.c.id).join(inv, ds.c.investigation_id == inv.c.id).join(dt, ds.c.type_id == dt.c.id)
            .where(inv.c.name == "LMF-2026-002", dt.c.name == "lightsheet").order_by(ds.c.id)
        ).scalars().first()  # fmt: skip
        csv = conn.execute(
            sa.select(df.c.id).where(df.c.dataset_id == dataset, df.c.name == "intensities.csv")
        ).scalar_one()
    return dataset, csv


def _datafiles(engine, dataset):
    df = T["Datafile"]
    with engine.connect() as conn:
        return conn.execute(
            sa.select(df.c.id, df.c.name, df.c.fileSize).where(df.c.dataset_id == dataset).order_by(df.c.id)
        ).all()


def _new_user(engine, name):
    """A user the catalog has never seen a job of (a User row and a db password)."""
    with engine.begin() as conn:
        if conn.execute(sa.select(T["User"].c.id).where(T["User"].c.name == f"db/{name}")).first() is None:
            conn.execute(T["User"].insert().values(name=f"db/{name}", fullName="New User"))
    with Session(engine) as db, db.begin():
        if db.get(DbCredential, name) is None:
            db.add(DbCredential(username=name, password_hash=hash_password(f"{name}-demo")))


class Auditor:
    def __init__(self, url):
        self.url = url
        self.problems = []
        self.seen = {}  # name -> the paths it was audited at
        self.source = AXE.read_text()
        SHOTS.mkdir(parents=True, exist_ok=True)

    def page(self, browser, user=None):  # noqa: F811
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.add_init_script(WATCH_CSP)
        page = context.new_page()
        page.set_default_timeout(30_000)
        if user:
            self.login(page, user)
        return page

    def login(self, page, user, password=None):
        page.goto(self.url + "/login")
        page.get_by_label("User name").fill(user)
        page.get_by_label("Password").fill(password or f"{user}-demo")
        page.get_by_role("button", name="Log in").click()
        if password is None:
            page.wait_for_url(self.url + "/")

    def audit(self, page, name, *also):
        """Run axe on the page as it is now; record its serious and critical violations."""
        page.wait_for_load_state("load")
        settled(page)
        if not page.evaluate("() => typeof window.axe === 'object'"):
            page.evaluate(self.source)
        for v in page.evaluate(RUN_AXE):
            if v["impact"] in IMPACTS:
                self.problems.append(
                    f"{name} ({page.url}): {v['impact']} {v['id']} at {v['targets']}: {v['help']}"
                )
        csp = page.evaluate("() => window.__csp || []")
        if csp:
            self.problems.append(f"{name}: CSP violations {csp}")
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
        for u in (page.url, *also):
            self.seen.setdefault(name, []).append(urlsplit(u).path)

    def visit(self, page, path, name):
        page.goto(self.url + path)
        self.audit(page, name, self.url + path)

    def post_form(self, page, selector, fields=None, button=None):
        """Submit a form as a browser without JavaScript would (native submit(): htmx and
        the page's scripts do not see it), with ``fields`` set first."""
        with page.expect_navigation():
            page.evaluate(
                """([sel, fields, button]) => {
                  const f = document.querySelector(sel);
                  for (const [k, v] of Object.entries(fields || {})) {
                    let el = f.querySelector(`[name="${k}"]`);
                    if (!el) { el = document.createElement('input'); el.type = 'hidden'; el.name = k; f.append(el); }
                    el.value = v;
                  }
                  if (button) { const b = document.createElement('input'); b.type = 'hidden';
                                b.name = button[0]; b.value = button[1]; f.append(b); }
                  f.noValidate = true; f.submit();
                }""",
                [selector, fields, button],
            )


def test_every_page_has_no_serious_or_critical_violation(live_server, browser):  # noqa: F811
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect

    url, engine = live_server
    a = Auditor(url)

    # the login page, and its error
    page = a.page(browser)
    a.visit(page, "/login", "login")
    # the check can fail: an image without a text alternative, put in for a moment, is found
    page.evaluate(
        "() => document.querySelector('main').insertAdjacentHTML('beforeend', '<img id=probe src=x>')"
    )
    assert "image-alt" in {v["id"] for v in page.evaluate(RUN_AXE) if v["impact"] in IMPACTS}
    page.evaluate("() => document.getElementById('probe').remove()")
    # the page's CSP stands: an inline script is refused (hence evaluate, which it does not govern)
    with contextlib.suppress(PlaywrightError):  # (whether Playwright says so varies)
        page.add_script_tag(content="window.__inline = 1")
    assert page.evaluate("() => window.__inline") is None
    assert any("script-src" in v for v in page.evaluate("() => window.__csp")), (
        "the inline script was not refused"
    )
    page.evaluate("() => { window.__csp = []; }")
    a.login(page, "bob", password="wrong-password")
    expect(page.locator(".error, [role=alert]").first).to_be_visible()
    a.audit(page, "login-error")
    page.context.close()

    # a new user: the empty dashboard and the empty job list
    _new_user(engine, "newcomer")
    page = a.page(browser, "newcomer")
    a.visit(page, "/", "dashboard-empty")
    a.visit(page, "/jobs", "jobs-empty")
    page.context.close()

    # bob's jobs: one with outputs that has ended, a submission of three, one live
    done = _job_with_outputs(engine, "db/bob")
    token = _api(url, "/session", {"username": "bob", "password": "bob-demo"})["token"]
    datasets = [d["id"] for d in _api(url, "/datasets", token=token)["datasets"]][:3]
    with engine.begin() as c:
        sub = c.execute(sa.insert(Submission).values(owner="db/bob", job_type="Date", mode="each"))
        sub = sub.inserted_primary_key[0]
        c.execute(sa.insert(Job), [
            {"submission_id": sub, "owner": "db/bob", "job_type": "Date", "backend": "local", "status": status,
             "dataset_ids": [ds], "datafile_ids": [], "options": {}, "argv": [], "reason": reason,
             "input_names": {"datasets": [[ds, f"<b>scan-{ds}</b>"]], "datafiles": []}}
            for ds, (status, reason) in zip(datasets, [(JobStatus.COMPLETED, None), (JobStatus.FAILED, "exit 1"),
                                                       (JobStatus.COMPLETED, None)], strict=True)
        ])  # fmt: skip
        failed = c.execute(
            sa.select(Job.id).where(Job.submission_id == sub, Job.status == JobStatus.FAILED)
        ).scalar_one()
    live = _api(url, "/submissions", {"job_type": "Sleepcount", "options": {"Sleep Time": "60"}}, token)
    live = live["jobs"][0]["id"]
    doomed = _api(url, "/submissions", {"job_type": "Sleepcount", "options": {"Sleep Time": "60"}}, token)
    doomed = doomed["jobs"][0]["id"]
    _api(url, f"/jobs/{done}/comments", {"text": '<script>alert("x")</script> a <b>comment</b>'}, token)
    desk = None
    try:
        page = a.page(browser, "bob")
        a.visit(page, "/", "dashboard")

        # datasets: results, none, a dataset with a preview open, a datafile's preview page
        a.visit(page, "/datasets", "datasets")
        a.visit(page, "/datasets?name=no-such-dataset-anywhere", "datasets-none")
        ds, csv = _lightsheet(engine)
        a.visit(page, f"/datasets/{ds}", "dataset")
        page.locator("details.df-preview summary", has_text="intensities.csv").click()
        expect(page.locator("details.df-preview[open] svg")).to_be_visible()
        page.locator("details.df-preview summary", has_text="stack.h5").click()
        expect(page.locator("details.df-preview[open] pre.output", has_text="entry/")).to_be_visible()
        a.audit(page, "dataset-previews-open")
        a.visit(page, f"/datafiles/{csv}/preview", "datafile-preview")
        # an upload refused without JavaScript (a name the dataset has): the page with the error
        a.visit(page, f"/datasets/{ds}", "dataset-upload")
        before = _datafiles(engine, ds)
        page.set_input_files(
            "#upload-file", [{"name": "intensities.csv", "mimeType": "text/csv", "buffer": b"x,y\n"}]
        )
        a.post_form(page, "#upload-form")
        expect(page.locator("#upload-file-error")).to_contain_text("intensities.csv")
        expect(page.locator("#upload-file")).to_have_attribute("aria-invalid", "true")
        a.audit(page, "dataset-upload-refused")
        assert _datafiles(engine, ds) == before  # nothing stored

        # a new dataset, and its errors
        a.visit(page, "/datasets/new", "dataset-new")
        a.post_form(page, "form.card", {"name": ""})
        a.audit(page, "dataset-new-errors")

        # the run panel: a job type chosen, then its errors
        page.goto(url + "/datasets")
        page.get_by_label(
            f"Select dataset {page.locator('#results tbody tr td:nth-child(2)').first.inner_text()}"
        ).check()
        settled(page)
        a.visit(page, "/submit?jobtype=Sleepcount", "run-does-not-fit")
        a.visit(page, "/submit?jobtype=Test%20Options", "run-chosen")
        a.post_form(page, "#job-form", {"opt:Index": "eleven", "opt:Origin": "9"})
        expect(page.locator(".field-error").first).to_be_visible()
        a.audit(page, "run-errors")

        # the job list: grouped, a group expanded, every job on its own
        a.visit(page, "/jobs", "jobs")
        page.locator(f"#submission-{sub} summary").click()
        a.audit(page, "jobs-group-open")
        a.visit(page, "/jobs?grouped=0", "jobs-ungrouped")
        # the bulk confirmation page (the no-JS path)
        page.get_by_label(f"Select job {live}", exact=True).check()
        a.post_form(page, "#bulk-form", button=["action", "delete"])
        expect(page.get_by_role("heading", name="Delete")).to_be_visible()
        a.audit(page, "jobs-bulk-confirm")

        # a live job and one that ended with outputs, previews and comments
        a.visit(page, f"/jobs/{live}", "job-live")
        for _ in range(60):
            page.goto(f"{url}/jobs/{done}")
            if "Completed" in page.locator("#job-status").inner_text():
                break
            page.wait_for_timeout(500)
        files = page.locator("table.outputs")
        expect(files).to_contain_text("curve.csv")
        a.audit(page, "job-ended")
        page.locator("#comments details summary", has_text="Edit").first.click()
        expect(page.locator("#comments details[open] textarea")).to_be_visible()
        a.audit(page, "job-comment-edit-open")
        page.goto(f"{url}/jobs/{done}")
        settled(page)
        files.get_by_role("link", name="curve.csv", exact=True).click()
        expect(page.locator("#output-preview figure.plot svg")).to_be_visible()
        a.audit(page, "job-preview-open")
        a.visit(page, f"/jobs/{done}/preview?name=notes.txt", "job-preview-page")
        a.visit(page, f"/jobs/{done}/comments", "job-comments")
        a.post_form(page, "form.comment-form", {"text": "   "})
        a.audit(page, "job-comments-error")
        # the confirmation pages
        a.visit(page, f"/jobs/{live}/cancel", "job-cancel-confirm")
        a.visit(page, f"/jobs/{done}/delete", "job-delete-confirm")
        # what the user sees after saying yes: the job page's notice, the list's
        a.visit(page, f"/jobs/{doomed}/cancel", "job-cancel-confirm-2")
        page.get_by_role("button", name="Yes, cancel it").click()
        expect(page.locator("#job-status")).to_contain_text("Cancel")
        a.audit(page, "job-cancelled")
        page.goto(f"{url}/jobs/{doomed}/delete")
        page.get_by_role("button", name="Yes, delete it").click()
        page.wait_for_url(re.compile(r".*/jobs\?deleted="))
        a.audit(page, "jobs-deleted")
        a.visit(page, f"/jobs/{failed}", "job-failed")

        # an interactive job (the Terminal demo type, a real session): the viewer's waiting page
        # if it is still starting, the job page's desktop panel ready, the viewer (its proxy runs
        # in no test portal: it says it cannot connect), the panel once ended, the ended
        # desktop's refusal
        desk = _api(url, "/submissions", {"job_type": "Terminal", "datasets": datasets[:1]}, token)
        desk = desk["jobs"][0]["id"]
        page.goto(f"{url}/jobs/{desk}/desktop")
        if "is starting" in page.locator("h1").first.inner_text():
            a.audit(page, "desktop-wait")
        page.goto(f"{url}/jobs/{desk}")
        expect(page.locator("#desktop-panel")).to_contain_text("Ready", timeout=120_000)
        a.audit(page, "job-desktop-ready")
        a.visit(page, f"/jobs/{desk}/desktop", "desktop-viewer")
        expect(page.locator("#desktop-status")).to_contain_text("Disconnected")
        a.audit(page, "desktop-viewer-disconnected")
        page.goto(f"{url}/jobs/{desk}")
        page.locator("#desktop-panel").get_by_role("button", name="End session").click()
        expect(page.locator("#desktop-panel")).to_contain_text("Ended", timeout=60_000)
        a.audit(page, "job-desktop-ended")
        a.visit(page, f"/jobs/{desk}/desktop", "desktop-ended")

        # half a laptop's screen: the same pages, laid out narrow
        page.set_viewport_size({"width": 680, "height": 900})
        for path, name in (("/", "dashboard"), ("/datasets", "datasets"), (f"/datasets/{ds}", "dataset"),
                           ("/submit?jobtype=Test%20Options", "run-chosen"), ("/jobs", "jobs"),
                           (f"/jobs/{done}", "job-ended")):  # fmt: skip
            a.visit(page, path, f"{name}-680")
        page.set_viewport_size({"width": 1280, "height": 900})

        # error pages
        a.visit(page, "/jobs/999999999", "error-404")
        a.visit(page, "/console", "error-403")
        page.context.close()

        # the console, as alice (staff)
        page = a.page(browser, "alice")
        for path, name in (("/console", "console"), ("/console/jobs", "console-jobs"),
                           (f"/console/jobs/{live}/cancel", "console-job-cancel"),
                           (f"/console/jobs/{done}/delete", "console-job-delete"),
                           ("/console/logins", "console-logins"), ("/console/jobtypes", "console-jobtypes"),
                           ("/console/audit", "console-audit"), ("/console/backends", "console-backends")):  # fmt: skip
            a.visit(page, path, name)
        page.context.close()
    finally:
        _api(url, "/jobs/cancel", {"ids": [live, *([desk] if desk else [])]}, token)

    # every route is visited or said why not
    routes = _routes()
    reached = {_route_of(p, routes) for paths in a.seen.values() for p in paths} - {None}
    unseen = [
        n for n, _ in routes
        if n not in reached and n not in NOT_VISITED and not n.startswith(tuple(NOT_VISITED_PREFIXES))
    ]  # fmt: skip
    assert not unseen, f"routes with no page visited and no reason in NOT_VISITED: {unseen}"
    stale = [n for n in NOT_VISITED if n not in {r for r, _ in routes}]
    assert not stale, f"NOT_VISITED names routes that no longer exist: {stale}"
    assert not a.problems, f"axe found violations of impact {', '.join(IMPACTS)}:\n" + "\n".join(a.problems)

"""The job list in real headless Chromium (issue 13, point 3): a submission of several jobs
is one group that expands to its jobs with their inputs named; several jobs ticked and
cancelled at once (htmx's confirmation dialog), the result announced and focused; the
same without JavaScript through the confirmation page. Screenshots under test-results/."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from ijpweb.models import Job, Submission
from ijpweb.states import JobStatus

from .test_browser import ROOT, browser, settled  # noqa: F401 - the fixture

pytestmark = [pytest.mark.browser, pytest.mark.once]
SHOTS = ROOT / "test-results"


def _api(url, path, body=None, token=None):
    req = urllib.request.Request(url + "/api/v1" + path, data=json.dumps(body).encode() if body else None,
                                 method="POST" if body is not None else "GET")  # fmt: skip
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (the test's own server)
        return json.loads(resp.read() or b"null")


@pytest.fixture
def carols_jobs(live_server):
    """For carol: a finished submission of three jobs (one per named dataset), and two live
    Sleepcount jobs submitted through the API (they sleep a minute between counts)."""
    url, engine = live_server
    t0 = datetime.now(UTC) - timedelta(hours=2)
    with engine.begin() as c:
        sub = c.execute(sa.insert(Submission).values(owner="db/carol", job_type="Date", mode="each"))
        sub = sub.inserted_primary_key[0]
        c.execute(sa.insert(Job), [
            {"submission_id": sub, "owner": "db/carol", "job_type": "Date", "backend": "local", "status": status,
             "dataset_ids": [100 + k], "datafile_ids": [], "options": {}, "argv": [],
             "input_names": {"datasets": [[100 + k, f"<b>scan-{k}</b>"]], "datafiles": []},
             "submitted_at": t0 + timedelta(minutes=k), "started_at": t0 + timedelta(minutes=k, seconds=2),
             "finished_at": t0 + timedelta(minutes=k, seconds=40)}
            for k, status in enumerate([JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.COMPLETED])
        ])  # fmt: skip
        group = list(c.scalars(sa.select(Job.id).where(Job.submission_id == sub).order_by(Job.id)))
    token = _api(url, "/session", {"username": "carol", "password": "carol-demo"})["token"]
    live = [_api(url, "/submissions", {"job_type": "Sleepcount", "options": {"Sleep Time": "60"}}, token)["jobs"][0]["id"]
            for _ in range(2)]  # fmt: skip
    yield sub, group, live, token
    _api(url, "/jobs/cancel", {"ids": live}, token)
    with engine.begin() as c:
        c.execute(sa.delete(Job).where(Job.owner == "db/carol", Job.id.in_(group)))


def _login(page, url):
    from playwright.sync_api import expect

    page.goto(url + "/login")
    page.get_by_label("User name").fill("carol")
    page.get_by_label("Password").fill("carol-demo")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def test_expand_a_group_tick_jobs_and_cancel_them_at_once(live_server, browser, carols_jobs):  # noqa: F811
    from playwright.sync_api import expect

    url, _ = live_server
    sub, group, live, _token = carols_jobs
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(20_000)
    _login(page, url)
    page.goto(url + "/jobs")
    row = page.locator(f"#submission-{sub}")
    expect(row).to_contain_text("3 jobs")
    expect(row).to_contain_text("2 done")
    expect(row).to_contain_text("1 failed")
    inner = page.locator(f"#job-{group[0]}")
    expect(inner).to_be_hidden()  # folded until opened
    row.locator("summary").click()
    expect(inner).to_be_visible()
    expect(inner).to_contain_text("<b>scan-0</b>")  # the name, as text
    page.screenshot(path=str(SHOTS / "joblist-grouped.png"), full_page=True)

    settled(page)
    for i in [*live, group[0]]:
        page.get_by_label(f"Select job {i}", exact=True).check()
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Cancel selected").click()
    result = page.locator("#bulk-result")
    expect(result).to_contain_text("Cancelled 2; 1 had already ended")
    expect(result).to_be_focused()
    for i in live:
        expect(page.locator(f"#job-{i}")).to_contain_text("Cancelled")
    page.screenshot(path=str(SHOTS / "joblist-bulk-cancelled.png"), full_page=True)
    page.close()


def test_without_javascript_select_all_and_delete_through_the_confirmation_page(
    live_server,
    browser,  # noqa: F811
    carols_jobs,
):
    from playwright.sync_api import expect

    url, _ = live_server
    sub, group, live, token = carols_jobs
    _api(url, "/jobs/cancel", {"ids": live}, token)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(20_000)
    _login(page, url)
    page.goto(url + f"/jobs?submission={sub}")
    page.get_by_role("link", name="Select all on this page").click()
    for i in group:
        expect(page.get_by_label(f"Select job {i}", exact=True)).to_be_checked()
    page.get_by_role("button", name="Delete selected").click()
    expect(page.get_by_role("heading", name="Delete 3 jobs?")).to_be_visible()
    page.screenshot(path=str(SHOTS / "joblist-bulk-confirm.png"), full_page=True)
    page.get_by_role("button", name="Yes, delete them").click()
    expect(page.locator("#bulk-result")).to_contain_text("Deleted 3")
    expect(page.locator("#bulk-result")).to_be_focused()
    context.close()

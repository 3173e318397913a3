"""Issue 13, point 4 in headless Chromium: a live job's stdout follows its end until the
reader scrolls up, and again once they scroll back down; its output files appear when
they are written, a CSV previews as a table and a plot in the page, an image shows; and
without JavaScript the output is text in the page and a preview is a page of its own.
Screenshots go to test-results/."""

import sys
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from ijpweb.batch import JobSpec
from ijpweb.batch.local import LocalBackend
from ijpweb.models import Job, Submission
from ijpweb.states import JobStatus

from .test_browser import browser, settled  # noqa: F401 - the fixture

pytestmark = [pytest.mark.browser, pytest.mark.once]
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-results"

SCRIPT = r"""
i=0
while [ $i -lt 600 ]; do echo "line $i of the log"; i=$((i+1)); sleep 0.03; done
printf 'step,energy,loss\n' > "$JOB_OUTPUT_DIR/curve.csv"
i=0
while [ $i -lt 40 ]; do echo "$i,$((i*i)),$((400-i*10))" >> "$JOB_OUTPUT_DIR/curve.csv"; i=$((i+1)); done
printf '%s' "$1" | base64 -d > "$JOB_OUTPUT_DIR/dot.png"
echo "OUT_FINAL_LOSS=10" > "$JOB_OUTPUT_VARS"
"""
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAGCAIAAABxZ0isAAAAFElEQVR4nGM8ISfHgA0wYRWlkwQAmxQBECiKgAAAAAAASUVORK5CYII="
)


def start_job(engine, owner: str) -> int:
    """A job of ``owner`` on the live portal's local backend (its job directories, next
    to its database), as the submitter hands one over; the portal harvests it."""
    with Session(engine) as db, db.begin():
        sub = Submission(owner=owner, job_type="Sleepcount", mode="single")
        job = Job(submission=sub, owner=owner, job_type="Sleepcount", argv=[], backend="local",
                  status=JobStatus.QUEUED)  # fmt: skip
        db.add(job)
        db.flush()
        job_id = job.id
    local = LocalBackend(
        "local", Path(engine.url.database).parent / "jobs", path=[str(Path(sys.executable).parent)]
    )
    backend_id = local.submit(JobSpec(job_id, owner, "/bin/sh", ("-c", SCRIPT, "job", PNG)))
    with Session(engine) as db, db.begin():
        db.get(Job, job_id).backend_job_id = backend_id
    return job_id


def login(page, url, user):
    page.goto(url + "/login")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(f"{user}-demo")
    page.get_by_role("button", name="Log in").click()


AT_BOTTOM = "el => el.scrollHeight - el.scrollTop - el.clientHeight <= 24"


def test_follow_stops_on_scroll_up_and_outputs_preview(live_server, browser):  # noqa: F811
    from playwright.sync_api import expect

    url, engine = live_server
    job_id = start_job(engine, "db/bob")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(30_000)
    login(page, url, "bob")
    page.goto(f"{url}/jobs/{job_id}")
    out = page.locator("pre#stdout")
    expect(out).to_contain_text("line 60 of the log")
    page.wait_for_function(
        "() => { const el = document.getElementById('stdout'); return el.scrollHeight > el.clientHeight * 1.5 }"
    )
    assert out.evaluate(AT_BOTTOM)  # following the end
    expect(page.locator('.follow-state[data-for="stdout"]')).to_have_text("following the end")

    # the reader scrolls up to read: it stays where they are while lines keep coming
    out.evaluate("el => { el.scrollTop = 0 }")
    expect(page.locator('.follow-state[data-for="stdout"]')).to_contain_text("paused")
    grown = out.evaluate("el => el.scrollHeight")
    page.wait_for_function(f"() => document.getElementById('stdout').scrollHeight > {grown} + 200")
    assert out.evaluate("el => el.scrollTop") == 0
    page.screenshot(path=str(SHOTS / "outputs-follow-paused.png"), full_page=True)

    # back at the bottom: it follows again
    out.evaluate("el => { el.scrollTop = el.scrollHeight }")
    expect(page.locator('.follow-state[data-for="stdout"]')).to_have_text("following the end")
    grown = out.evaluate("el => el.scrollHeight")
    page.wait_for_function(f"() => document.getElementById('stdout').scrollHeight > {grown} + 200")
    assert out.evaluate(AT_BOTTOM)

    # the job ends: its files and variables appear (the outputs refresh while it runs)
    expect(page.locator("#job-status")).to_contain_text("Completed", timeout=60_000)
    expect(page.locator('.follow-state[data-for="stdout"]')).to_have_text("complete")
    expect(out).to_contain_text("line 599 of the log")
    files = page.locator("table.outputs")
    expect(files).to_contain_text("curve.csv", timeout=30_000)
    expect(page.locator("table.vars")).to_contain_text("OUT_FINAL_LOSS")
    settled(page)
    files.get_by_role("link", name="curve.csv", exact=True).click()
    preview = page.locator("#output-preview")
    expect(preview.get_by_role("heading", name="Preview of curve.csv")).to_be_visible()
    expect(preview.get_by_role("heading", name="Preview of curve.csv")).to_be_focused()
    expect(preview.locator("figure.plot svg polyline")).to_have_count(2)
    expect(preview.locator("table.grid tbody tr")).to_have_count(40)
    page.screenshot(path=str(SHOTS / "outputs-csv-preview.png"), full_page=True)
    settled(page)
    files.get_by_role("link", name="dot.png", exact=True).click()
    image = preview.locator("img.preview-image")
    expect(image).to_be_visible()
    # (visible before its bytes have come: wait until it has loaded, then read its width)
    image.evaluate("img => img.complete || new Promise(done => { img.onload = img.onerror = done; })")
    assert image.evaluate("img => img.naturalWidth") == 8
    page.close()


def test_without_javascript_output_is_text_and_previews_are_pages(live_server, browser):  # noqa: F811
    from playwright.sync_api import expect

    url, engine = live_server
    job_id = start_job(engine, "db/bob")
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(30_000)
    login(page, url, "bob")
    for _ in range(60):  # (no refresh without JavaScript: the reader reloads)
        page.goto(f"{url}/jobs/{job_id}")
        if "Completed" in page.locator("#job-status").inner_text():
            break
        page.wait_for_timeout(1000)
    expect(page.locator("pre#stdout")).to_contain_text("line 0 of the log")
    expect(page.locator("pre#stdout")).to_contain_text("line 599 of the log")
    page.screenshot(path=str(SHOTS / "outputs-nojs-job.png"), full_page=True)
    page.locator("table.outputs").get_by_role("link", name="curve.csv", exact=True).click()
    expect(page).to_have_url(f"{url}/jobs/{job_id}/preview?name=curve.csv")
    expect(page.get_by_role("heading", name="Preview of curve.csv")).to_be_visible()
    expect(page.locator("table.grid tbody tr")).to_have_count(40)
    page.screenshot(path=str(SHOTS / "outputs-nojs-preview.png"), full_page=True)
    context.close()

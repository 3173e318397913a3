"""Part F of issue 13 in real headless Chromium: with JavaScript, the focus moves to the
first error, Back/Forward keeps the search field and the results in agreement, the run
panel stays in view (sticky) and comes before the results in the tab order; without
JavaScript, the whole flow from ticking datasets to a submitted job, its output as
preformatted text, and cancelling and deleting with a confirmation. Screenshots under
test-results/."""

from __future__ import annotations

import re
import time

import pytest

from .test_browser import ROOT, browser, settled  # noqa: F401 - the fixture

pytestmark = [pytest.mark.browser, pytest.mark.once]
SHOTS = ROOT / "test-results"


def login(context, url, user="bob"):
    from playwright.sync_api import expect

    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(url + "/login")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(f"{user}-demo")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    return page


def shot(page, name):
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"forms-{name}.png"), full_page=True)


def test_focus_history_sticky_and_tab_order_with_javascript(live_server, browser):  # noqa: F811
    from playwright.sync_api import expect

    url, _ = live_server
    context = browser.new_context(viewport={"width": 1280, "height": 640})
    page = login(context, url)
    page.goto(url + "/datasets")
    settled(page)

    # the run panel comes before the results in the tab order
    page.locator("#main").focus()
    seen = []
    for _ in range(60):
        page.keyboard.press("Tab")
        where = page.evaluate(
            "() => { const a = document.activeElement; return a.closest('#run-panel') ? 'panel'"
            " : a.closest('#results') ? 'results' : a.closest('#search') ? 'search' : 'other'; }"
        )
        if where in ("panel", "results") and where not in seen:
            seen.append(where)
        if "results" in seen:
            break
    assert seen[:2] == ["panel", "results"], seen

    # two searches typed, then Back: the field shows the first search and the results match it
    name = page.get_by_label("Name contains")
    name.fill("confocal-002")
    expect(page).to_have_url(re.compile(r"name=confocal-002"))
    expect(page.locator("#results tbody")).to_contain_text("confocal-002-")
    settled(page)
    name.fill("confocal-003")
    expect(page).to_have_url(re.compile(r"name=confocal-003"))
    expect(page.locator("#results tbody")).to_contain_text("confocal-003-")
    settled(page)
    page.go_back()
    expect(page).to_have_url(re.compile(r"name=confocal-002"))
    expect(page.get_by_label("Name contains")).to_have_value("confocal-002")
    expect(page.locator("#results tbody")).to_contain_text("confocal-002-")
    expect(page.locator("#results tbody")).not_to_contain_text("confocal-003-")
    page.go_forward()
    expect(page.get_by_label("Name contains")).to_have_value("confocal-003")
    expect(page.locator("#results tbody")).to_contain_text("confocal-003-")
    expect(page.locator("#results tbody")).not_to_contain_text("confocal-002-")
    settled(page)

    # the results' name opens the dataset's own page; its back link returns to the search
    first = page.locator("#results tbody tr td:nth-child(2) a").first
    ds_name = first.inner_text()
    first.click()
    expect(page.get_by_role("heading", name=ds_name, exact=True)).to_be_visible()
    # the run panel is beside it: a datafile ticked there is in the selection at once
    settled(page)
    page.get_by_label(re.compile(r"^Select datafile ")).first.check()
    expect(page.locator("#run-panel")).to_contain_text("Selected (1)")
    settled(page)
    page.get_by_label(re.compile(r"^Select datafile ")).first.uncheck()
    expect(page.locator("#run-panel")).to_contain_text("Selected (0)")
    settled(page)
    page.get_by_role("link", name="← Back to the search").click()
    expect(page).to_have_url(re.compile(r"/datasets\?name=confocal-003"))
    expect(page.get_by_label("Name contains")).to_have_value("confocal-003")

    # the panel stays in view while the list scrolls (sticky)
    page.goto(url + "/datasets")
    settled(page)
    page.locator("#results tbody tr").nth(14).scroll_into_view_if_needed()
    page.wait_for_function("() => window.scrollY > 300")
    box = page.locator("#run-panel h2").bounding_box()
    assert box is not None and 0 <= box["y"] < 640, box
    shot(page, "sticky-panel")

    # an error: the focus moves to the first invalid field after the htmx swap
    page.get_by_label(re.compile(r"^Select dataset ")).first.check()
    expect(page.locator("#run-panel")).to_contain_text("Selected (1)")
    settled(page)
    page.get_by_label("Job type", exact=True).select_option("Test Options")
    expect(page.locator("#job-form")).to_be_visible()
    settled(page)
    page.get_by_label("Index").fill("eleven")
    page.get_by_label("Title").focus()
    page.get_by_role("button", name="Submit").click()
    expect(page.locator("#error-summary")).to_be_visible()
    settled(page)
    expect(page.get_by_label("Index")).to_be_focused()
    expect(page.get_by_label("Index")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#error-summary a")).to_contain_text("Index")
    shot(page, "field-error")
    # a job type with an <inputs> rule: its description, Submit disabled with the reason
    page.get_by_label(re.compile(r"^Select dataset ")).nth(1).check()
    expect(page.locator("#run-panel")).to_contain_text("Selected (2)")
    settled(page)
    page.get_by_label("Job type", exact=True).select_option("Copy datafile")
    expect(page.locator("#jobtype-desc")).to_contain_text("Copies one datafile into one dataset")
    expect(page.locator("#submit-why")).to_contain_text("you selected 2 datasets and 0 datafiles")
    expect(page.get_by_role("button", name="Submit")).to_be_disabled()
    shot(page, "inputs-rule")
    context.close()


def open_job(page):
    """From the list of one submission's jobs, the job's own page."""
    page.locator("#job-rows a[href*='/jobs/']").filter(has_text=re.compile(r"^\d+$")).first.click()
    page.wait_for_url(re.compile(r"/jobs/\d+$"))


def _reload_until(page, text, seconds=30):
    from playwright.sync_api import expect

    deadline = time.monotonic() + seconds
    while text not in page.content() and time.monotonic() < deadline:
        time.sleep(0.5)
        page.reload()
    expect(page.locator("body")).to_contain_text(text)


def test_the_whole_flow_without_javascript(live_server, browser):  # noqa: F811
    from playwright.sync_api import expect

    url, _ = live_server
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
    page = login(context, url, "bob")
    page.goto(url + "/datasets?name=confocal-002")
    # tick two datasets and press Update selection: a plain form post and back to this search
    boxes = page.get_by_label(re.compile(r"^Select dataset "))
    names = [
        n.removeprefix("Select dataset ") for n in (boxes.nth(i).get_attribute("aria-label") for i in (0, 1))
    ]
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.get_by_role("button", name="Update selection").click()
    expect(page).to_have_url(re.compile(r"/datasets\?name=confocal-002$"))
    expect(page.locator("#run-panel")).to_contain_text("Selected (2)")
    for n in names:
        expect(page.locator("#run-panel")).to_contain_text(n)
    # a datafile on a dataset's page, the same way (its table uses the same form contract)
    page.get_by_role("link", name=names[0], exact=True).first.click()
    page.get_by_label(re.compile(r"^Select datafile ")).first.check()
    page.get_by_role("button", name="Update the selection").click()
    expect(page.locator("#run-panel")).to_contain_text("Selected (3)")
    page.get_by_role("link", name="← Back to the search").click()
    expect(page).to_have_url(re.compile(r"/datasets\?name=confocal-002$"))
    page.get_by_role("button", name="Clear the selection").click()
    expect(page.locator("#run-panel")).to_contain_text("Selected (0)")
    for n in names:
        page.get_by_label(f"Select dataset {n}").check()
    page.get_by_role("button", name="Update selection").click()
    expect(page.locator("#run-panel")).to_contain_text("Selected (2)")
    # untick one the same way
    page.get_by_label(f"Select dataset {names[1]}").uncheck()
    page.get_by_role("button", name="Update selection").click()
    expect(page.locator("#run-panel")).to_contain_text("Selected (1)")
    shot(page, "nojs-selection")

    # a job type with an <inputs> rule the selection breaks: Submit disabled, the reason shown
    page.get_by_label("Job type", exact=True).select_option("Copy datafile")
    page.get_by_role("button", name="Choose", exact=True).click()
    expect(page.locator("#jobtype-desc")).to_contain_text("Copies one datafile into one dataset")
    expect(page.locator("#submit-why")).to_contain_text(
        "Copy datafile needs exactly 1 dataset and 1 datafile; you selected 1 dataset and 0 datafiles"
    )
    expect(page.get_by_role("button", name="Submit")).to_be_disabled()

    # choose a job type without JS: the list of job types with their descriptions
    page.locator("details.jobtypes summary").click()
    page.get_by_role("link", name="Choose Test args - multiple datasets or datafiles").click()
    expect(page.locator("#job-form")).to_be_visible()
    page.get_by_label("Option one").fill("no javascript")
    page.get_by_role("button", name="Submit").click()
    expect(page).to_have_url(re.compile(r"/jobs\?submission=\d+"))
    open_job(page)
    _reload_until(page, "Completed")
    expect(page.locator("pre#stdout")).to_contain_text("no javascript")  # stdout as preformatted text
    shot(page, "nojs-job")

    # delete it: the link leads to a confirmation page first
    page.get_by_role("link", name="Delete job").click()
    expect(page.get_by_role("heading", name=re.compile(r"Delete job \d+\?"))).to_be_visible()
    page.get_by_role("button", name="Yes, delete it").click()
    expect(page.locator("#action-notice")).to_contain_text("You deleted job")
    expect(page.locator("#action-notice")).to_be_focused()

    # a live job cancelled with a confirmation: clear the selection, run Sleepcount
    page.goto(url + "/submit")
    page.get_by_role("button", name="Clear the selection").click()
    page.goto(url + "/submit?jobtype=Sleepcount")
    page.get_by_label("Sleep Time").select_option("60")
    page.get_by_role("button", name="Submit").click()
    expect(page).to_have_url(re.compile(r"/jobs\?submission=\d+"))
    open_job(page)
    _reload_until(page, "Running")
    page.get_by_role("link", name="Cancel job").click()
    expect(page.get_by_role("heading", name=re.compile(r"Cancel job \d+\?"))).to_be_visible()
    shot(page, "nojs-confirm")
    page.get_by_role("button", name="Yes, cancel it").click()
    expect(page.locator("#action-notice")).to_contain_text("You cancelled job")
    expect(page.locator("#action-notice")).to_be_focused()
    _reload_until(page, "Cancelled")
    context.close()

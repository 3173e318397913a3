"""In real headless Chromium (Debian's, driven by Playwright): log in, select two
datasets, submit one job per dataset, and watch both finish with their output."""

import os
import re
import shutil
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.once]
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def settled(page):
    """htmx wires up swapped-in content after its settle delay: wait for it."""
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')"
    )


def test_select_two_datasets_run_one_job_each_and_read_the_output(live_server, browser):
    live_server, _ = live_server
    from playwright.sync_api import expect

    page = browser.new_page()
    page.set_default_timeout(20_000)
    page.goto(live_server + "/")
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill("alice-demo")
    page.get_by_role("button", name="Log in").click()
    # the login lands on the dashboard; the datasets are one click away
    expect(page.get_by_role("heading", name="Your jobs at a glance")).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Datasets").click()
    expect(page.get_by_role("heading", name="Datasets")).to_be_visible()

    # narrow the search in place, then tick two datasets
    page.get_by_label("Dataset type").select_option("confocal")
    expect(page.locator("#results")).to_contain_text("12 dataset(s)")
    settled(page)
    names = page.locator("#results tbody tr td:nth-child(2)").all_inner_texts()[:2]
    for name in names:
        page.get_by_label(f"Select dataset {name}").check()
        expect(page.locator("#run-panel")).to_contain_text(name)
        settled(page)
    expect(page.locator("#run-panel")).to_contain_text("Selected (2)")

    page.get_by_label("Job type").select_option("Test args - multiple datasets or datafiles")
    expect(page.locator("#job-form")).to_be_visible()
    settled(page)
    page.get_by_label("Option one").fill("hello 'world' $HOME")
    page.get_by_label("2 jobs, one per input").check()
    page.get_by_role("button", name="Submit").click()

    expect(page).to_have_url(re.compile(r"/jobs\?submission=\d+"))
    rows = page.locator("#job-rows tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="Completed")).to_have_count(2)  # the list refreshes itself

    rows.first.get_by_role("link").click()
    expect(page.locator("#job-status")).to_contain_text("Completed")
    output = page.locator("pre#stdout")
    expect(output).to_contain_text("--datasetIds=")
    expect(output).to_contain_text("\"hello 'world' $HOME\"")
    page.close()

"""Data in and out in real headless Chromium (issue 13, point 5): a dataset page's
thumbnails load, a preview opens inline, a datafile downloads with IDS's bytes, an upload
of two files fills the progress bar to 100% and the files appear in the list; the upload
also works without JavaScript. Screenshots go to test-results/."""

import hashlib

import pytest
import sqlalchemy as sa

from ijpweb.catalog.icatdb import TABLES as T

from .test_browser import ROOT, browser, settled  # noqa: F401 - the fixture

pytestmark = [pytest.mark.browser, pytest.mark.once]
SHOTS = ROOT / "test-results"


def _dataset(engine, investigation: str, type_name: str) -> int:
    ds, inv, dt = T["Dataset"], T["Investigation"], T["DatasetType"]
    with engine.connect() as conn:
        return (
            conn.execute(
                sa.select(ds.c.id)
                .join(inv, ds.c.investigation_id == inv.c.id)
                .join(dt, ds.c.type_id == dt.c.id)
                .where(inv.c.name == investigation, dt.c.name == type_name)
                .order_by(ds.c.id)
            )
            .scalars()
            .first()
        )


def _login(page, url, user):
    page.goto(url + "/login")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(f"{user}-demo")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(url + "/")


def test_thumbnails_previews_download_and_upload_with_progress(live_server, browser, tmp_path):  # noqa: F811
    url, engine = live_server
    from playwright.sync_api import expect

    SHOTS.mkdir(exist_ok=True)
    ds = _dataset(engine, "LMF-2026-002", "lightsheet")
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    _login(page, url, "bob")
    page.goto(f"{url}/datasets/{ds}")
    expect(page.get_by_role("heading", name="Upload files into")).to_be_visible()
    settled(page)

    # a thumbnail loads (a PNG made from the TIFF through IDS)
    thumb = page.locator("img.thumb").first
    thumb.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => { const i = document.querySelector('img.thumb'); return i && i.complete && i.naturalWidth > 0; }"
    )

    # a CSV's preview opens inline with its plot; HDF5's tree too
    page.locator("details.df-preview summary", has_text="intensities.csv").click()
    expect(page.locator("details.df-preview[open] svg")).to_be_visible()
    page.locator("details.df-preview summary", has_text="stack.h5").click()
    expect(page.locator("details.df-preview[open] pre.output", has_text="entry/")).to_be_visible()
    page.screenshot(path=str(SHOTS / "data-dataset-page.png"), full_page=True)

    # a download has IDS's bytes
    df = T["Datafile"]
    with engine.connect() as conn:
        csv_id = conn.execute(
            sa.select(df.c.id).where(df.c.dataset_id == ds, df.c.name == "intensities.csv")
        ).scalar()
    with page.expect_download() as got:
        page.get_by_label("Download intensities.csv").click()
    downloaded = got.value.path().read_bytes()
    direct = page.request.get(f"{url}/api/v1/datafiles/{csv_id}/content").body()
    assert downloaded == direct and downloaded.startswith(b"frame,channel")

    # an upload of two files: the progress bar reaches 100% and the files are listed
    a, b = tmp_path / "upload-a.txt", tmp_path / "upload-b.bin"
    a.write_text("hello from the browser\n")
    b.write_bytes(bytes(range(256)) * 4096)  # 1 MiB: progress events on the way
    page.set_input_files("#upload-file", [str(a), str(b)])
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-status")).to_contain_text("Uploaded 2 files")
    assert page.eval_on_selector("#upload-progress", "p => p.value") == 100
    expect(page.locator("section.detail")).to_contain_text("upload-a.txt")
    expect(page.locator("section.detail")).to_contain_text("upload-b.bin")
    page.screenshot(path=str(SHOTS / "data-upload-done.png"), full_page=True)
    with engine.connect() as conn:
        b_id = conn.execute(
            sa.select(df.c.id).where(df.c.dataset_id == ds, df.c.name == "upload-b.bin")
        ).scalar()
    back = page.request.get(f"{url}/api/v1/datafiles/{b_id}/content").body()
    assert hashlib.sha256(back).digest() == hashlib.sha256(b.read_bytes()).digest()

    # the same name again: the refusal is shown at the field, focus on it
    page.set_input_files("#upload-file", [str(a)])
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-file-error")).to_contain_text("already has a datafile named")
    expect(page.locator("#upload-file")).to_be_focused()
    context.close()


def test_upload_without_javascript(live_server, browser, tmp_path):  # noqa: F811
    url, engine = live_server
    from playwright.sync_api import expect

    ds = _dataset(engine, "LMF-2026-003", "widefield")
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(url + "/login")
    page.get_by_label("User name").fill("carol")
    page.get_by_label("Password").fill("carol-demo")
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{url}/datasets/{ds}")
    f = tmp_path / "nojs.txt"
    f.write_text("no script needed\n")
    page.set_input_files("#upload-file", [str(f)])
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("status").first).to_contain_text("Uploaded 1 file")
    expect(page.locator("section.detail")).to_contain_text("nojs.txt")
    # the file's name opens its <details>; the preview is a page of its own
    page.locator("details.df-preview summary", has_text="nojs.txt").click()
    page.get_by_role("link", name="Open the preview of nojs.txt").click()
    expect(page.locator("pre.output")).to_contain_text("no script needed")
    page.screenshot(path=str(SHOTS / "data-preview-nojs.png"), full_page=True)
    context.close()


def test_the_data_pages_keep_to_the_csp_and_fit_a_half_screen(live_server, browser):  # noqa: F811
    """The new-dataset page and the preview pages (CSV with its plot, HDF5's tree, an
    image, text), at a laptop's full and half width: no CSP violation, no script error, no
    sideways scroll."""
    from .test_design import WATCH_CSP

    url, engine = live_server
    ds = _dataset(engine, "LMF-2026-002", "lightsheet")
    df = T["Datafile"]
    with engine.connect() as conn:
        files = dict(conn.execute(sa.select(df.c.name, df.c.id).where(df.c.dataset_id == ds)).all())
    paths = ["/datasets/new", f"/datasets/{ds}"] + [
        f"/datafiles/{files[n]}/preview" for n in ("intensities.csv", "stack.h5", "c1_t001.tif", "notes.txt")
    ]
    problems = []
    for width in (1280, 680):
        context = browser.new_context(viewport={"width": width, "height": 900})
        context.add_init_script(WATCH_CSP)
        page = context.new_page()
        page.set_default_timeout(20_000)
        errors = []
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))  # noqa: B023
        page.on("pageerror", lambda e: errors.append(str(e)))  # noqa: B023
        _login(page, url, "bob")
        for path in paths:
            errors.clear()
            page.goto(url + path)
            page.wait_for_load_state("networkidle")
            if path == f"/datasets/{ds}":  # with two previews open in place
                for name in ("intensities.csv", "stack.h5"):
                    page.locator("details.df-preview summary", has_text=name).click()
                page.wait_for_load_state("networkidle")
            violations = page.evaluate("window.__csp")
            if violations or errors:
                problems.append(f"{width} {path}: {violations} {errors}")
            wide, inner = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
            if wide > inner:
                problems.append(f"{width} {path}: the page scrolls sideways ({wide} > {inner})")
            page.screenshot(path=str(SHOTS / f"data{path.replace('/', '_')}-{width}.png"), full_page=True)
        context.close()
    assert not problems, "\n".join(problems)

"""Issue 13, points 7 and 8: errors at their field with a summary and autofocus, a
dataset's own page whose back link returns to the search (and nowhere else), the
confirmation before cancel and delete without JavaScript and where the focus lands after."""

import re

from ijpweb.states import JobStatus

from .test_flow import dataset_ids, select
from .test_security import make_job


def control(html: str, name: str) -> str:
    """The opening tag of the first control named ``name``."""
    return re.search(rf'<(?:input|select)[^>]*name="{re.escape(name)}"[^>]*>', html).group(0)


def attr(tag: str, name: str) -> str | None:
    m = re.search(rf'\s{name}(?:="([^"]*)")?', tag)
    return None if m is None else (m.group(1) or "")


def test_an_option_error_is_at_its_field_in_the_summary_and_focused(alice, dbsession):
    select(alice, "dataset", dataset_ids(dbsession, "confocal", "LMF-2026-001")[:1])
    page = alice.get("/submit", {"jobtype": "Test Options"})
    assert "aria-invalid" not in page.text and "autofocus" not in page.text
    form = page.forms["job-form"]
    form["opt:Index"] = "eleven"
    res = form.submit(status=400)
    tag = control(res.text, "opt:Index")
    fid = attr(tag, "id")
    assert attr(tag, "aria-invalid") == "true" and attr(tag, "autofocus") == ""
    assert f"{fid}-error" in attr(tag, "aria-describedby").split()
    assert re.search(rf'<p class="field-error" id="{fid}-error">Index: .*eleven', res.text)
    summary = res.text.split('id="error-summary"')[1].split("</div>")[0]
    assert f'href="#{fid}"' in summary and "eleven" in summary
    assert res.text.count("autofocus") == 1
    assert res.forms["job-form"]["opt:Index"].value == "eleven"  # what was typed is kept
    # the htmx answer is the panel alone, with the same markup
    frag = alice.htmx("POST", "/submit", {"jobtype": "Test Options", "opt:Index": "eleven"}, status=400)
    assert "<html" not in frag.text and attr(control(frag.text, "opt:Index"), "aria-invalid") == "true"


def test_the_job_count_choice_has_its_error_at_it(alice, dbsession):
    select(alice, "dataset", dataset_ids(dbsession, "confocal", "LMF-2026-001")[:2])
    res = alice.post("/submit", {"jobtype": "Test args - multiple datasets or datafiles",
                                 "csrf_token": alice.get_csrf_token()}, status=400)  # fmt: skip
    tag = re.search(r'<input type="radio" id="mode-single"[^>]*>', res.text).group(0)
    assert attr(tag, "aria-invalid") == "true" and "mode-error" in attr(tag, "aria-describedby")
    assert attr(tag, "autofocus") == ""
    assert re.search(r'<p class="field-error" id="mode-error">choose whether to submit one job', res.text)
    assert 'href="#mode-single"' in res.text
    # the confirmation of one job per input, the same way
    res = alice.post("/submit", {"jobtype": "Test args - single dataset or datafile",
                                 "csrf_token": alice.get_csrf_token()}, status=400)  # fmt: skip
    tag = re.search(r'<input type="checkbox" id="confirm"[^>]*>', res.text).group(0)
    assert attr(tag, "aria-invalid") == "true" and attr(tag, "aria-describedby") == "confirm-error"
    assert 'id="confirm-error">confirm that you intend to run 2' in res.text and 'href="#confirm"' in res.text


def test_a_message_without_a_field_focuses_the_summary(alice, dbsession):
    bobs = dataset_ids(dbsession, investigation="LMF-2026-003")[:1]
    select(alice, "dataset", bobs)
    res = alice.post("/submit", {"jobtype": "Date", "csrf_token": alice.get_csrf_token()}, status=400)
    assert re.search(
        r'<div class="error-summary" id="error-summary" role="alert" tabindex="-1"[^>]*autofocus', res.text
    )


def test_a_description_with_html_is_text(alice, app, tmp_path, monkeypatch):
    from ijpweb.jobtypes import JobTypes

    (tmp_path / "x.xml").write_text(
        "<jobType><name>Evil</name><executable>date</executable><type>batch</type>"
        "<description>&lt;script&gt;alert(1)&lt;/script&gt; &lt;b onmouseover=x&gt;hi</description></jobType>"
    )
    monkeypatch.setitem(app.registry, "ijp.jobtypes", JobTypes(tmp_path, interval=0))
    for res in (alice.get("/submit"), alice.get("/submit", {"jobtype": "Evil"})):
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &lt;b onmouseover=x&gt;hi" in res.text
        assert "<script>alert" not in res.text and "<b onmouseover" not in res.text


def test_results_link_to_the_dataset_page_with_back_to_the_same_search(alice, dbsession):
    page = alice.get("/datasets", {"name": "confocal-001", "type": "confocal"})
    (ds,) = dataset_ids(dbsession, "confocal", "LMF-2026-001")[:1]
    link = re.search(rf'href="(http://example.com/datasets/{ds}\?back=[^"]+)"', page.text).group(1)
    detail = alice.get(link.replace("&amp;", "&"))
    back = re.search(r'<a href="([^"]*)" id="back-link">← Back to the search', detail.text).group(1)
    assert back.replace("&amp;", "&") == "/datasets?name=confocal-001&type=confocal"
    # the Select button comes back to this page, back link and all
    form = detail.forms["select-dataset"]
    res = form.submit(status=303)
    assert res.location.startswith(f"http://example.com/datasets/{ds}?back=")
    assert "This dataset is selected." in res.follow().text


def test_carol_cannot_make_the_back_link_leave_the_portal(alice, dbsession):
    (ds,) = dataset_ids(dbsession, "confocal", "LMF-2026-001")[:1]
    for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "/%5cevil", "javascript:alert(1)",
                 "/datasets\r\nSet-Cookie: x=1", "x" * 5000):  # fmt: skip
        page = alice.get(f"/datasets/{ds}", {"back": evil})
        back = re.search(r'<a href="([^"]*)" id="back-link">', page.text).group(1)
        assert back == "/datasets", evil
        assert "evil" not in page.text.split('id="back-link"')[0].rsplit("<a", 1)[1]


def test_cancel_and_delete_ask_first_without_javascript(alice, dbsession):
    live = make_job(dbsession, "db/alice", JobStatus.SUBMITTING)
    live.backend_job_id = None
    page = alice.get(f"/jobs/{live.id}")
    # the button is a link to the confirmation page (with JS: a dialog, then a post)
    link = re.search(
        r'<a class="button danger" href="([^"]+)"\s+hx-post="[^"]+" hx-confirm="Cancel job', page.text
    )
    assert link and link.group(1) == f"http://example.com/jobs/{live.id}/cancel"
    confirm = alice.get(link.group(1))
    assert re.search(r'<h1 id="confirm-h" tabindex="-1" autofocus>Cancel job \d+\?</h1>', confirm.text)
    assert live.status == JobStatus.SUBMITTING  # asking changed nothing
    res = confirm.forms[1].submit(status=303)
    assert res.location == f"http://example.com/jobs/{live.id}?cancelled=1"
    assert live.status == JobStatus.CANCELLED
    after = res.follow()
    assert re.search(
        r'<p class="notice" role="status" id="action-notice" tabindex="-1" autofocus>You cancelled job',
        after.text,
    )
    link = re.search(
        r'<a class="button danger" href="([^"]+)"\s+hx-post="[^"]+" hx-confirm="Delete job', after.text
    )
    confirm = alice.get(link.group(1))
    res = confirm.forms[1].submit(status=303)
    assert res.location == f"http://example.com/jobs?deleted={live.id}"
    assert f"autofocus>You deleted job {live.id}.</p>" in res.follow().text
    assert "autofocus" not in alice.get("/jobs", {"deleted": "<b>1</b>"}).text

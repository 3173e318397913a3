"""Issue 5, points 1 and 5 in the web pages: tags given in the form, edited on a job's
page and used to filter the list; Resubmit fills the form from a job, to change and submit."""

import sqlalchemy as sa

from ijpweb.models import Job

from .test_flow import dataset_ids, select

JT = "Test args - single dataset or datafile"


def _switch_to_bob(app):
    app.post("/logout", {"csrf_token": app.get_csrf_token()}, status=303)
    app.login("bob")


def _jobs(dbsession):
    return dbsession.scalars(sa.select(Job).order_by(Job.id)).all()


def test_tags_in_the_form_on_the_page_and_in_the_list(alice, dbsession):
    ds = dataset_ids(dbsession, "confocal", "LMF-2026-001")[:1]
    select(alice, "dataset", ds)
    token = alice.get_csrf_token()
    bad = alice.post("/submit", {"jobtype": JT, "tags": "ok, no!pe", "csrf_token": token}, status=400)
    assert "tag &#39;no!pe&#39; is not" in bad.text and 'value="ok, no!pe"' in bad.text
    assert _jobs(dbsession) == []
    # a bad option value and a bad tag are reported together
    both = alice.post("/submit", {"jobtype": "Test Options", "opt:Index": "42", "tags": "no!pe", "csrf_token": token},
                      status=400)  # fmt: skip
    assert "Index: must be at most 10" in both.text and "tag &#39;no!pe&#39; is not" in both.text
    assert _jobs(dbsession) == []
    alice.post("/submit", {"jobtype": JT, "tags": "calib, run-7", "csrf_token": token}, status=303)
    alice.post("/submit", {"jobtype": JT, "csrf_token": token}, status=303)
    tagged, plain = _jobs(dbsession)
    assert tagged.tags == ["calib", "run-7"] and plain.tags == []
    listed = alice.get("/jobs", {"tag": "calib"})
    assert f'id="job-{tagged.id}"' in listed.text and f'id="job-{plain.id}"' not in listed.text
    assert "<option selected>calib</option>" in listed.text  # the filter offers the user's tags
    page = alice.get(f"/jobs/{tagged.id}")
    assert 'href="http://example.com/jobs?tag=run-7"' in page.text
    frag = alice.htmx("POST", f"/jobs/{tagged.id}/tags", {"tags": "final"})
    assert frag.text.startswith('<section id="job-tags"') and ">final</a>" in frag.text
    refused = alice.htmx("POST", f"/jobs/{tagged.id}/tags", {"tags": "x" * 65}, status=422)
    assert "is not 1 to 64 letters" in refused.text and tagged.tags == ["final"]
    alice.post(f"/jobs/{tagged.id}/tags", {"tags": "final"}, status=400)  # no CSRF token: refused
    # bob can neither change alice's tags nor see them in his filter
    _switch_to_bob(alice)
    alice.post(f"/jobs/{tagged.id}/tags", {"tags": "bobs", "csrf_token": alice.get_csrf_token()}, status=404)
    assert tagged.tags == ["final"] and "final" not in alice.get("/jobs").text


def test_resubmit_fills_the_form_from_the_job(alice, dbsession):
    ds = dataset_ids(dbsession, "confocal", "LMF-2026-001")[:2]
    select(alice, "dataset", ds)
    token = alice.get_csrf_token()
    form = {"jobtype": "Test Options", "opt:Index": "7", "opt:Title": "first try", "mode": "single",
            "tags": "v1", "csrf_token": token}  # fmt: skip
    alice.post("/submit", form, status=303)
    (job,) = _jobs(dbsession)
    alice.post("/selection", {"action": "clear", "csrf_token": token}, status=303)
    # the job's page offers Resubmit; it makes the job's inputs the selection and prefills
    assert f'action="http://example.com/jobs/{job.id}/resubmit"' in alice.get(f"/jobs/{job.id}").text
    page = alice.post(f"/jobs/{job.id}/resubmit", {"csrf_token": token}, status=303).follow()
    assert f"Resubmitting job {job.id}" in page.text
    assert 'value="7"' in page.text and 'value="first try"' in page.text and 'value="v1"' in page.text
    assert 'id="mode-single" name="mode" value="single" checked' in page.text
    assert page.text.count('aria-label="Remove dataset') == len(ds)  # the job's inputs are selected
    # change one value and submit: a new job, the same inputs, the changed value
    alice.post("/submit", {**form, "opt:Index": "8", "tags": "v2"}, status=303)
    again = _jobs(dbsession)[-1]
    assert again.id != job.id and again.dataset_ids == job.dataset_ids and again.job_type == job.job_type
    assert again.options == job.options | {"Index": "8"} and again.tags == ["v2"]
    # not someone else's job
    _switch_to_bob(alice)
    alice.post(f"/jobs/{job.id}/resubmit", {"csrf_token": alice.get_csrf_token()}, status=404)
    res = alice.get("/submit", {"like": job.id}, status=404)
    assert f"there is no job {job.id} of yours" in res.text and "first try" not in res.text

"""Search, selection, the run panel and its form, submission and its refusals."""

import json

import sqlalchemy as sa

from ijpweb.catalog.icatdb import TABLES as T
from ijpweb.models import Job
from ijpweb.states import JobStatus

from .test_flow import dataset_ids, select, wait_for


def test_search_filters_and_pages_in_place(alice):
    page = alice.get("/datasets")
    assert "30 dataset(s), page 1." in page.text  # in alice's investigations, 20 a page
    assert 'rel="next"' in page.text and 'rel="prev"' not in page.text
    frag = alice.htmx("GET", "/datasets", {"type": "lightsheet"})
    assert "<html" not in frag.text and "10 dataset(s)" in frag.text
    assert frag.headers["Vary"] == "HX-Request"
    frag = alice.htmx("GET", "/datasets", {"name": "confocal-001-00", "investigation": "LMF-2026-001"})
    assert "8 dataset(s)" in frag.text
    assert "widefield" not in frag.text.split("<tbody>")[1]
    assert "0 dataset(s)" in alice.htmx("GET", "/datasets", {"name": "%_"}).text  # wildcards are literal


def test_dataset_detail_shows_parameters_datafiles_and_job_parameters(alice, dbsession):
    (ds,) = dataset_ids(dbsession, "lightsheet")[:1]
    res = alice.htmx("GET", f"/datasets/{ds}")
    assert "nchannels" in res.text and "objective" in res.text
    assert "numHdfFiles" in res.text and "stack.h5" in res.text
    assert "<html" not in res.text
    assert "<html" in alice.get(f"/datasets/{ds}").text


def test_selection_updates_the_panel_and_lists_compatible_job_types(alice, dbsession):
    ids = dataset_ids(dbsession, "confocal", "LMF-2026-001")[:2]
    res = alice.htmx(
        "POST", "/selection", {"action": "set", "kind": "dataset", "id": str(ids[0]), "checked": "1"}
    )
    assert 'id="run-panel"' in res.text and "Selected (1)" in res.text
    assert ">Test Options<" in res.text and ">Date<" not in res.text  # Date takes no inputs
    res = alice.htmx("POST", "/selection", {"action": "set", "kind": "dataset", "id": str(ids[0])})
    assert "Selected (0)" in res.text and ">Date<" in res.text


def test_conditional_option_follows_the_selection(alice, dbsession):
    p, pt = T["DatasetParameter"], T["ParameterType"]
    rows = (
        dbsession.connection()
        .execute(
            sa.select(p.c.dataset_id, p.c.numericValue)
            .join(pt, p.c.type_id == pt.c.id)
            .where(
                pt.c.name == "nchannels",
                p.c.dataset_id.in_(dataset_ids(dbsession, investigation="LMF-2026-001")),
            )
        )
        .all()
    )
    multi = [i for i, n in rows if n > 1][:2]
    single = [i for i, n in rows if n == 1][:1]
    alice.get("/submit", {"jobtype": "Test Options"})
    select(alice, "dataset", multi)
    assert "Unmix channels" in alice.get("/submit").text
    select(alice, "dataset", single)
    assert "Unmix channels" not in alice.get("/submit").text


def test_form_is_generated_from_the_xml_with_defaults_and_tips(alice, dbsession):
    select(alice, "dataset", dataset_ids(dbsession, "confocal", "LMF-2026-001")[:1])
    res = alice.get("/submit", {"jobtype": "Test Options"})
    form = res.forms["job-form"]
    assert form["opt:Index"].value == "1" and form["opt:Origin"].value == "0.0"
    assert form["opt:Mode"].value == "plain"
    assert "Free text, passed as one argument" in res.text
    assert "This will submit <strong>1 job</strong>" in res.text
    for label_for in ("opt-1-1", "opt-4", "opt-5"):
        assert f'for="{label_for}"' in res.text


def test_bad_value_rerenders_with_the_field_message_and_submits_nothing(alice, dbsession):
    select(alice, "dataset", dataset_ids(dbsession, "confocal", "LMF-2026-001")[:1])
    form = alice.get("/submit", {"jobtype": "Test Options"}).forms["job-form"]
    form["opt:Index"] = "99"
    form["opt:Title"] = "keep me"
    res = form.submit(status=400)
    assert "Index: must be at most 10" in res.text
    assert res.forms["job-form"]["opt:Title"].value == "keep me"  # nothing the user typed is lost
    assert dbsession.scalar(sa.select(sa.func.count(Job.id))) == 0


def test_json_clients_get_field_errors(alice, dbsession):
    select(alice, "dataset", dataset_ids(dbsession, "confocal", "LMF-2026-001")[:1])
    res = alice.post(
        "/submit",
        {"jobtype": "Test Options", "opt:Origin": "abc", "csrf_token": alice.get_csrf_token()},
        headers={"Accept": "application/json"},
        status=400,
    )
    body = json.loads(res.text)
    assert body["code"] == "invalid_options" and "Origin" in body["fields"]


def test_unknown_job_type_is_refused(alice):
    res = alice.post(
        "/submit", {"jobtype": "No such thing", "csrf_token": alice.get_csrf_token()}, status=400
    )
    assert "no job type called" in res.text


def test_many_inputs_of_a_single_type_need_confirmation(alice, dbsession, backends):
    ids = dataset_ids(dbsession, "confocal", "LMF-2026-001")[:3]
    select(alice, "dataset", ids)
    form = alice.get("/submit", {"jobtype": "Test args - single dataset or datafile"}).forms["job-form"]
    res = form.submit(status=400)
    assert "confirm that you intend to run 3" in res.text
    form = res.forms["job-form"]
    form["confirm"] = "yes"
    form.submit(status=303)
    jobs = dbsession.scalars(sa.select(Job).order_by(Job.id)).all()
    assert [j.dataset_ids for j in jobs] == [[i] for i in ids]
    assert len({j.submission_id for j in jobs}) == 1


def test_multiple_type_needs_a_choice_and_force_single_does_not(alice, dbsession):
    ids = dataset_ids(dbsession, "confocal", "LMF-2026-001")[:2]
    select(alice, "dataset", ids)
    form = alice.get("/submit", {"jobtype": "Test args - multiple datasets or datafiles"}).forms["job-form"]
    assert "One job for all 2 inputs" in form.text and "2 jobs, one per input" in form.text
    assert "choose whether" in form.submit(status=400).text
    res = alice.get("/submit", {"jobtype": "Multiple datasets - Force single job"})
    assert "with all 2 inputs" in res.text
    res.forms["job-form"].submit(status=303)
    (job,) = dbsession.scalars(sa.select(Job)).all()
    assert job.dataset_ids == ids and job.argv[0] == f"--datasetIds={ids[0]},{ids[1]}"


def test_job_list_filters_and_polls_only_while_live(alice, dbsession, backends):
    alice.get("/submit", {"jobtype": "Date"}).forms["job-form"].submit(status=303)
    (job,) = dbsession.scalars(sa.select(Job)).all()
    rows = alice.htmx("GET", "/jobs")
    live = job.live
    assert ('hx-trigger="every 3s"' in rows.text) is live
    wait_for(dbsession, backends, [job.id])
    rows = alice.htmx("GET", "/jobs")
    assert 'hx-trigger="every 3s"' not in rows.text and "Completed" in rows.text
    assert "No jobs match" in alice.get("/jobs", {"status": "Failed"}).text
    assert f'id="job-{job.id}"' in alice.get("/jobs", {"job_type": "Date"}).text
    assert f'id="job-{job.id}"' not in alice.get("/jobs", {"job_type": "Sleepcount"}).text


def test_watch_output_grow_then_cancel_then_delete(alice, dbsession, backends):
    form = alice.get("/submit", {"jobtype": "Sleepcount"}).forms["job-form"]
    form["opt:Count"] = "10"
    form["opt:Sleep Time"] = "1"
    form.submit(status=303)
    (job,) = dbsession.scalars(sa.select(Job)).all()
    page = alice.get(f"/jobs/{job.id}")
    assert "Cancel job" in page.text and 'hx-trigger="every 2s"' in page.text
    import time

    from ijpweb.batch.harvest import harvest
    from ijpweb.batch.submitter import submit_pending

    deadline = time.monotonic() + 20
    chunk = ""
    while "Count 2" not in chunk and time.monotonic() < deadline:
        submit_pending(dbsession, backends)
        harvest(dbsession, backends)
        chunk = alice.htmx("GET", f"/jobs/{job.id}/output/stdout", {"offset": 0}).text
        time.sleep(0.2)
    assert "Count 1: sleeping" in chunk and 'hx-trigger="load delay:2s"' in chunk  # still following
    assert job.status == JobStatus.RUNNING
    res = alice.post(f"/jobs/{job.id}/delete", {"csrf_token": alice.get_csrf_token()}, status=409)
    assert "cancel it before deleting" in res.text
    alice.post(f"/jobs/{job.id}/cancel", {"csrf_token": alice.get_csrf_token()}, status=303)
    assert job.status == JobStatus.CANCELLED
    assert "Delete job" in alice.get(f"/jobs/{job.id}").text
    wait = time.monotonic() + 10
    while True:
        res = alice.post(f"/jobs/{job.id}/delete", {"csrf_token": alice.get_csrf_token()}, expect_errors=True)
        if res.status_int == 303 or time.monotonic() > wait:
            break
        time.sleep(0.2)
    assert res.status_int == 303
    alice.get(f"/jobs/{job.id}", status=404)


def test_confirmation_pages_without_javascript(alice, dbsession):
    from .test_security import make_job

    job = make_job(dbsession, "db/alice")
    res = alice.get(f"/jobs/{job.id}/delete")
    assert "Delete job" in res.text and "Yes, delete it" in res.text


def test_staff_see_job_type_problems(alice, app, tmp_path):
    res = alice.get("/console/jobtypes")
    assert "No problems." in res.text and "Test Options" in res.text


def test_a_one_megabyte_string_is_refused_with_the_field_named(alice, dbsession):
    select(alice, "dataset", dataset_ids(dbsession, "confocal", "LMF-2026-001")[:1])
    form = alice.get("/submit", {"jobtype": "Test Options"}).forms["job-form"]
    form["opt:Title"] = "x" * 1_000_000
    res = form.submit(status=400)
    assert "Title: is longer than 4096 characters" in res.text  # ijp.max_value_length
    assert dbsession.scalar(sa.select(sa.func.count(Job.id))) == 0


def test_a_broken_job_type_file_is_shown_to_staff_and_the_rest_still_load(alice, app, tmp_path, monkeypatch):
    from ijpweb.jobtypes import JobTypes

    good = "<jobType><name>Good</name><executable>true</executable><type>batch</type></jobType>"
    (tmp_path / "good.xml").write_text(good)
    (tmp_path / "broken.xml").write_text("<jobType>\n  <name>Broken</name>\n  <type>batch</jobType>\n")
    monkeypatch.setitem(app.registry, "ijp.jobtypes", JobTypes(tmp_path, interval=0))
    res = alice.get("/console/jobtypes")
    assert "broken.xml:3" in res.text and "not well-formed" in res.text
    assert ">Good<" in res.text
    assert ">Good<" in alice.get("/submit").text


def test_selection_changes_tell_the_results_list_to_refresh(alice, dbsession):
    (first,) = dataset_ids(dbsession, "confocal", "LMF-2026-001")[:1]
    res = alice.htmx(
        "POST", "/selection", {"action": "set", "kind": "dataset", "id": str(first), "checked": "1"}
    )
    assert "HX-Trigger" not in res.headers
    assert f'id="ds-{first}" name="checked" value="{first}" checked' in alice.get("/datasets").text
    res = alice.htmx("POST", "/selection", {"action": "clear"})
    assert res.headers["HX-Trigger"] == "selectionChanged"
    assert 'hx-trigger="selectionChanged from:body"' in alice.get("/datasets").text
    assert (
        f'id="ds-{first}" name="checked" value="{first}" checked' not in alice.htmx("GET", "/datasets").text
    )


def test_job_types_of_a_family_the_user_may_not_use(alice, app, monkeypatch):
    from ijpweb.families import parse
    from ijpweb.jobtypes import JobTypes

    fam = parse(
        b"<families default='batch'><family name='batch'/><family name='ingest'><allowed pattern='db/bob'/></family></families>",
        "f.xml",
    )
    monkeypatch.setitem(app.registry, "ijp.families", fam)
    jobtypes = JobTypes(app.registry["ijp.jobtypes"].directory, interval=0)
    monkeypatch.setitem(app.registry, "ijp.jobtypes", jobtypes)
    # Date joins the ingest family for this test
    date = jobtypes.current().by_name["Date"]
    import dataclasses

    jobtypes.current().by_name["Date"] = dataclasses.replace(date, family="ingest")
    assert ">Date<" not in alice.get("/submit").text
    res = alice.post("/submit", {"jobtype": "Date", "csrf_token": alice.get_csrf_token()}, status=403)
    assert "db/alice is not allowed to use family &#39;ingest&#39;" in res.text


def test_a_stale_link_to_an_unknown_job_type_says_so(alice):
    page = alice.get("/submit", {"jobtype": "No such job type"})
    assert "there is no job type called &#39;No such job type&#39;" in page.text

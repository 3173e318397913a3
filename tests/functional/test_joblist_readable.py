"""A job list people can read (issue 13, point 3): the inputs named (recorded at
submission, escaped, the owner's only), relative times and run times, groups by
submission, several jobs cancelled, deleted or tagged at once (a plain form with a
confirmation page, htmx, /api/v1), and the filtered list as a streamed CSV or JSON file.
carol's attacks on bob are tests here: his ids mixed into her bulk actions, his
submission or tags as her export's filters, his dataset in her submission."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from ijpweb.catalog.embedded import T
from ijpweb.models import Job, JobTag, Submission
from ijpweb.states import JobStatus

from .test_flow import dataset_ids, select

API = "/api/v1"
T0 = datetime(2026, 6, 1, tzinfo=UTC)


def add_submission(db, owner, statuses, *, names=True, job_type="Date", tags=(), start=0):
    """A submission of one job per status given (oldest first), each with one named dataset."""
    sub = Submission(owner=owner, job_type=job_type, mode="each" if len(statuses) > 1 else "single")
    db.add(sub)
    db.flush()
    jobs = []
    for k, status in enumerate(statuses):
        ds = 1000 + start + k
        ended = status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
        job = Job(submission=sub, owner=owner, job_type=job_type, backend="local", status=status,
                  dataset_ids=[ds], datafile_ids=[], options={}, argv=[],
                  input_names={"datasets": [[ds, f"{owner[3:]}-sample-{start + k}"]], "datafiles": []} if names else None,
                  submitted_at=T0 + timedelta(minutes=start + k),
                  started_at=T0 + timedelta(minutes=start + k, seconds=5) if status != JobStatus.SUBMITTING else None,
                  finished_at=T0 + timedelta(minutes=start + k, seconds=65) if ended else None)  # fmt: skip
        job.tags = list(tags)
        db.add(job)
        jobs.append(job)
    db.flush()
    return sub, jobs


def login(testapp, user):
    testapp.reset()
    testapp.login(user)
    return testapp


def token(testapp, user):
    res = testapp.post_json(API + "/session", {"username": user, "password": f"{user}-demo"}, status=201)
    return {"Authorization": f"Bearer {res.json['token']}"}


def bulk(app, action, ids, status=200, **extra):
    params = [("csrf_token", app.get_csrf_token()), ("action", action)] + [("id", str(i)) for i in ids]
    params += list(extra.items())
    return app.post("/jobs/bulk", params, status=status)


# --- inputs named ---------------------------------------------------------------------------------


def test_a_submission_records_the_inputs_names_and_the_rows_show_them(testapp, dbsession):
    alice = login(testapp, "alice")
    ids = dataset_ids(dbsession, "confocal", "LMF-2026-001")[:3]
    ds = T["Dataset"]
    names = dict(dbsession.connection().execute(sa.select(ds.c.id, ds.c.name).where(ds.c.id.in_(ids))).all())
    select(alice, "dataset", ids)
    form = alice.get("/submit", {"jobtype": "Test args - multiple datasets or datafiles"}).forms["job-form"]
    form["mode"] = "each"
    form.submit(status=303)
    jobs = dbsession.scalars(sa.select(Job).order_by(Job.id)).all()
    assert [j.input_names["datasets"] for j in jobs] == [[[i, names[i]]] for i in ids]
    html = alice.get("/jobs").text
    for job in jobs:  # each row names its own dataset: the jobs can be told apart
        row = re.search(rf'<tr id="job-{job.id}">.*?</tr>', html, re.S).group(0)
        assert names[job.dataset_ids[0]] in row
        assert all(names[i] not in row for i in ids if i != job.dataset_ids[0])
    page = alice.get(f"/jobs/{jobs[0].id}").text  # the job page: the name with its id
    assert names[ids[0]] in page and f"({ids[0]})" in page


def test_the_api_submission_records_names_in_one_lookup_and_shows_them(testapp, dbsession):
    auth = token(testapp, "alice")
    ids = dataset_ids(dbsession, "confocal", "LMF-2026-001")[:2]
    res = testapp.post_json(API + "/submissions", {"job_type": "Test args - multiple datasets or datafiles",
                                                  "datasets": ids, "mode": "single"}, headers=auth, status=201)  # fmt: skip
    inputs = res.json["jobs"][0]["inputs"]
    assert [d["id"] for d in inputs["datasets"]] == ids and all(d["name"] for d in inputs["datasets"])
    listed = testapp.get(API + "/jobs", headers=auth).json["jobs"][0]["inputs"]
    assert listed == inputs


def test_an_old_job_shows_its_ids_and_many_inputs_are_shortened(testapp, dbsession):
    _, (old,) = add_submission(dbsession, "db/alice", [JobStatus.COMPLETED], names=False)
    _, (many,) = add_submission(dbsession, "db/alice", [JobStatus.COMPLETED], start=5)
    many.dataset_ids = [1, 2, 3, 4]
    many.input_names = {"datasets": [[i, f"set-{i}"] for i in (1, 2, 3, 4)], "datafiles": []}
    dbsession.flush()
    html = login(testapp, "alice").get("/jobs").text
    old_row = re.search(rf'<tr id="job-{old.id}">.*?</tr>', html, re.S).group(0)
    assert "dataset 1000" in old_row
    row = re.search(rf'<tr id="job-{many.id}">.*?</tr>', html, re.S).group(0)
    assert "set-1, set-2" in row and "+ 2 more" in row and "set-4" in row  # (all of them on hover)
    page = testapp.get(f"/jobs/{many.id}").text
    assert all(f"set-{i}" in page for i in (1, 2, 3, 4))


def test_names_are_escaped_everywhere(testapp, dbsession):
    _, (job,) = add_submission(dbsession, "db/alice", [JobStatus.COMPLETED])
    job.input_names = {"datasets": [[1000, '<script>alert("x")</script>']],
                       "datafiles": []}  # fmt: skip
    dbsession.flush()
    alice = login(testapp, "alice")
    for url in ("/jobs", f"/jobs/{job.id}"):
        html = alice.get(url).text
        assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    exported = alice.get("/jobs/export", {"format": "json"})
    assert json.loads(exported.text)[0]["datasets"][0]["name"] == '<script>alert("x")</script>'


# --- times, badges, groups ---------------------------------------------------------------------------


def test_rows_have_badges_relative_times_and_run_times_and_groups_have_a_meter(testapp, dbsession):
    sub, jobs = add_submission(
        dbsession, "db/alice", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.RUNNING]
    )
    _, (single,) = add_submission(dbsession, "db/alice", [JobStatus.COMPLETED], start=10)
    html = login(testapp, "alice").get("/jobs").text
    assert '<span class="badge s-failed">Failed</span>' in html
    assert 'title="2026-06-01 00:00:00 UTC"' in html and "<time datetime=" in html
    assert "1m 00s" in html  # an ended job's run time
    assert "so far" in html  # a running job's
    group = re.search(rf'<tr class="group" id="submission-{sub.id}">.*?</details>', html, re.S).group(0)
    assert "1 done" in group and "1 failed" in group and "1 live" in group and "of 3" in group
    assert all(f'<tr id="job-{j.id}">' in group for j in jobs)
    assert f'<tr id="job-{single.id}">' not in group and f'id="submission-{single.submission_id}"' not in html
    flat = testapp.get("/jobs", {"grouped": "0"}).text
    assert 'class="group"' not in flat and all(f'<tr id="job-{j.id}">' in flat for j in jobs)
    only = testapp.get("/jobs", {"submission": sub.id}).text  # the dashboard's link: its jobs only
    assert all(f'<tr id="job-{j.id}">' in only for j in jobs) and f'<tr id="job-{single.id}">' not in only


def test_a_group_cut_by_the_page_end_shows_on_both_pages(testapp, dbsession):
    sub, jobs = add_submission(dbsession, "db/alice", [JobStatus.COMPLETED] * 4)
    alice = login(testapp, "alice")
    first = alice.get("/jobs", {"per_page": 3}).text
    assert f'id="submission-{sub.id}"' in first and "(3 on this page)" in first
    older = re.search(r'<a href="([^"]+)" rel="next">', first).group(1).replace("&amp;", "&")
    second = alice.get(older).text
    assert "(1 on this page)" in second and f'<tr id="job-{jobs[0].id}">' in second


# --- several jobs at once -------------------------------------------------------------------------------


def test_bulk_cancel_without_js_confirms_then_says_what_it_did_job_by_job(testapp, dbsession):
    _, live = add_submission(dbsession, "db/alice", [JobStatus.SUBMITTING, JobStatus.SUBMITTING])
    _, (ended,) = add_submission(dbsession, "db/alice", [JobStatus.COMPLETED], start=5)
    _, (bobs,) = add_submission(dbsession, "db/bob", [JobStatus.SUBMITTING], start=9)
    alice = login(testapp, "alice")
    ids = [live[0].id, live[1].id, ended.id, bobs.id]
    confirm = bulk(alice, "cancel", ids)  # no confirm: the confirmation page, nothing done
    assert "Cancel 3 jobs?" in confirm.text and f"{bobs.id}" in confirm.text.split("Not found")[1][:80]
    assert "bob-sample" not in confirm.text
    assert all(j.status == JobStatus.SUBMITTING for j in live)
    done = confirm.forms["bulk-confirm"].submit(status=200)
    assert "Cancelled 2; 1 had already ended; 1 not found" in done.text
    assert 'id="bulk-result"' in done.text and "autofocus" in done.text
    dbsession.expire_all()
    assert [dbsession.get(Job, j.id).status for j in live] == [JobStatus.CANCELLED] * 2
    assert dbsession.get(Job, bobs.id).status == JobStatus.SUBMITTING  # bob's: untouched


def test_bulk_delete_with_htmx_deletes_the_ended_ones_and_not_bobs(testapp, dbsession):
    _, ended = add_submission(dbsession, "db/alice", [JobStatus.COMPLETED, JobStatus.FAILED])
    _, (live,) = add_submission(dbsession, "db/alice", [JobStatus.RUNNING], start=5)
    _, (bobs,) = add_submission(dbsession, "db/bob", [JobStatus.COMPLETED], start=9)
    alice = login(testapp, "alice")
    params = [("action", "delete"), ("confirm", "1")] + [("id", str(j.id)) for j in [*ended, live, bobs]]
    res = alice.htmx("POST", "/jobs/bulk?status=", params)
    assert res.text.lstrip().startswith('<div id="job-list">')
    assert "Deleted 2; 1 was still live (cancel first); 1 not found" in res.text
    dbsession.expire_all()
    assert [dbsession.get(Job, j.id) for j in ended] == [None, None]
    assert dbsession.get(Job, live.id) is not None and dbsession.get(Job, bobs.id) is not None


def test_bulk_tags_add_and_remove_and_say_which_were_changed(testapp, dbsession):
    _, jobs = add_submission(dbsession, "db/alice", [JobStatus.COMPLETED] * 2, tags=["old"])
    _, (bobs,) = add_submission(dbsession, "db/bob", [JobStatus.COMPLETED], start=9, tags=["old"])
    alice = login(testapp, "alice")
    res = bulk(alice, "tag", [jobs[0].id, bobs.id], tags="good run-2")
    assert "Tagged 1; 1 not found" in res.text
    res = bulk(alice, "untag", [j.id for j in jobs] + [bobs.id], tags="old")
    assert "Tagged 2; 1 not found" in res.text
    dbsession.expire_all()
    assert (
        dbsession.get(Job, jobs[0].id).tags == ["good", "run-2"] and dbsession.get(Job, jobs[1].id).tags == []
    )
    assert dbsession.get(Job, bobs.id).tags == ["old"]
    bad = bulk(alice, "tag", [jobs[0].id], status=422, tags="no<html>")
    assert 'class="error"' in bad.text and "no&lt;html&gt;" in bad.text


def test_bulk_refuses_too_many_no_ids_and_unknown_actions(testapp, dbsession):
    alice = login(testapp, "alice")
    res = bulk(alice, "cancel", range(1, 202), status=400)
    assert "ids must name at most 200" in res.text
    assert "Tick one or more jobs first" in bulk(alice, "cancel", [], status=400).text
    assert "action must be one of" in bulk(alice, "explode", [1], status=400).text
    assert "id must be" in alice.post("/jobs/bulk", {"csrf_token": alice.get_csrf_token(), "action": "cancel",
                                                    "id": "x"}, status=400).text  # fmt: skip
    testapp.post("/jobs/bulk", {"action": "cancel", "id": "1"}, status=400)  # no CSRF token: refused


def test_the_api_does_several_jobs_at_once_and_reports_each(testapp, dbsession):
    _, (live,) = add_submission(dbsession, "db/carol", [JobStatus.SUBMITTING])
    _, (bobs,) = add_submission(dbsession, "db/bob", [JobStatus.SUBMITTING], start=9)
    auth = token(testapp, "carol")
    res = testapp.post_json(API + "/jobs/cancel", {"ids": [live.id, bobs.id]}, headers=auth)
    assert res.json["summary"] == "Cancelled 1; 1 not found"
    assert [r["result"] for r in res.json["results"]] == ["done", "not_found"]
    assert "bob" not in json.dumps(res.json)
    dbsession.expire_all()
    assert dbsession.get(Job, bobs.id).status == JobStatus.SUBMITTING
    res = testapp.post_json(API + "/jobs/tags", {"ids": [live.id, bobs.id], "add": ["x"]}, headers=auth)
    assert [r["result"] for r in res.json["results"]] == ["done", "not_found"]
    res = testapp.post_json(API + "/jobs/delete", {"ids": [live.id, bobs.id]}, headers=auth)
    assert res.json["summary"] == "Deleted 1; 1 not found"
    assert dbsession.get(Job, bobs.id) is not None
    too_many = testapp.post_json(API + "/jobs/cancel", {"ids": list(range(1, 202))}, headers=auth, status=400)
    assert too_many.json["code"] == "bad_request" and "ids" in too_many.json["fields"]
    assert testapp.post_json(API + "/jobs/cancel", {"ids": []}, headers=auth, status=400).json["fields"] == {
        "ids": "must name at least one job"
    }
    huge = testapp.post_json(API + "/jobs/cancel", {"ids": [2**31]}, headers=auth, status=400)
    assert huge.json["fields"] == {"ids": "must be job ids (whole numbers from 1 to 2147483647)"}
    null = testapp.post_json(
        API + "/jobs/tags", {"ids": [live.id], "add": [], "remove": None}, headers=auth, status=400
    )
    assert null.json["fields"] == {"remove": "a list of tags"}
    bad = testapp.post_json(API + "/jobs/tags", {"ids": [live.id], "add": ["=x y"]}, headers=auth, status=422)
    assert bad.json["code"] == "invalid_tags" and "add" in bad.json["fields"]


# --- export ---------------------------------------------------------------------------------------------


def test_export_csv_has_the_columns_and_filters_and_is_safe_in_a_spreadsheet(testapp, dbsession):
    _, jobs = add_submission(dbsession, "db/alice", [JobStatus.COMPLETED, JobStatus.FAILED], tags=["@SUM"])
    jobs[0].input_names = {"datasets": [[1000, '=HYPERLINK("http://evil","x")']], "datafiles": []}
    dbsession.flush()
    alice = login(testapp, "alice")
    res = alice.get("/jobs/export", {"format": "csv"})
    assert res.content_type == "text/csv" and re.match(r'attachment; filename="jobs-\d{8}-\d{6}\.csv"',
                                                       res.headers["Content-Disposition"])  # fmt: skip
    rows = list(csv.reader(io.StringIO(res.body.decode("utf-8-sig"))))
    assert rows[0] == ["id", "job_type", "status", "submitted", "started", "ended", "duration_seconds",
                       "inputs", "tags", "submission"]  # fmt: skip
    assert [r[0] for r in rows[1:]] == [str(jobs[1].id), str(jobs[0].id)]  # newest first
    first = dict(zip(rows[0], rows[2], strict=True))
    assert first["inputs"] == 'dataset =HYPERLINK("http://evil","x")'  # (a cell starting with a letter)
    assert first["tags"] == "'@SUM" and first["duration_seconds"] == "60" and first["status"] == "Completed"
    failed = alice.get("/jobs/export", {"format": "csv", "status": "Failed"}).body.decode("utf-8-sig")
    assert len(list(csv.reader(io.StringIO(failed)))) == 2
    assert alice.get("/jobs/export", {"format": "xml"}, status=400).text.count("format must be csv or json")


def test_a_formula_at_the_start_of_a_cell_is_quoted():
    from ijpweb.jobs.export import safe_cell

    assert [safe_cell(v) for v in ("=1+2", "+1", "-1", "@A1", "\t=x", "plain", None, 7)] == [
        "'=1+2", "'+1", "'-1", "'@A1", "'\t=x", "plain", "", "7"]  # fmt: skip


def test_export_json_streams_every_page_and_carol_never_gets_bobs_jobs(testapp, dbsession, monkeypatch):
    from ijpweb.jobs import actions

    monkeypatch.setattr(actions, "EXPORT_PAGE", 3)  # several keyset pages for 7 jobs
    sub_b, bobs = add_submission(dbsession, "db/bob", [JobStatus.COMPLETED] * 2, tags=["shared"])
    _, carols = add_submission(dbsession, "db/carol", [JobStatus.COMPLETED] * 7, tags=["shared"], start=20)
    carol = login(testapp, "carol")
    res = carol.get("/jobs/export", {"format": "json"})
    got = json.loads(res.text)
    assert [j["id"] for j in got] == [j.id for j in reversed(carols)]
    assert all(j["datasets"][0]["name"].startswith("carol-") for j in got)
    # bob's submission, his tag, any owner parameter: still carol's own jobs only
    assert json.loads(carol.get("/jobs/export", {"format": "json", "submission": sub_b.id}).text) == []
    assert (
        len(
            json.loads(carol.get("/jobs/export", {"format": "json", "tag": "shared", "owner": "db/bob"}).text)
        )
        == 7
    )
    api = testapp.get(
        API + "/jobs/export", {"format": "json", "submission": sub_b.id}, headers=token(testapp, "carol")
    )
    assert json.loads(api.text) == []
    assert testapp.get(API + "/jobs/export", {"cursor": "x"}, headers=token(testapp, "carol"),
                       status=400).json["code"] == "unknown_parameter"  # fmt: skip


def test_export_by_dates_and_the_page_links_carry_the_filters(testapp, dbsession):
    _, jobs = add_submission(dbsession, "db/alice", [JobStatus.COMPLETED] * 2)
    jobs[1].submitted_at = T0 + timedelta(days=2)
    dbsession.flush()
    alice = login(testapp, "alice")
    got = json.loads(alice.get("/jobs/export", {"format": "json", "since": "2026-06-02"}).text)
    assert [j["id"] for j in got] == [jobs[1].id]
    got = json.loads(alice.get("/jobs/export", {"format": "json", "until": "2026-06-01"}).text)
    assert [j["id"] for j in got] == [jobs[0].id]
    assert "since must be a date" in alice.get("/jobs", {"since": "yesterday"}, status=400).text
    html = alice.get("/jobs", {"status": "Completed", "since": "2026-06-01"}).text
    assert "/jobs/export?status=Completed&amp;since=2026-06-01&amp;format=csv" in html


def test_carols_submission_with_bobs_dataset_is_refused_without_its_name(testapp, dbsession):
    every = set(dataset_ids(dbsession))
    auth = token(testapp, "carol")
    visible = {
        d["id"] for d in testapp.get(API + "/datasets", {"per_page": 200}, headers=auth).json["datasets"]
    }
    hidden = sorted(every - visible)  # (others' datasets: carol may not read them)
    if not hidden:
        pytest.skip("the demo data gives carol every dataset")
    ds = T["Dataset"]
    name = dbsession.connection().execute(sa.select(ds.c.name).where(ds.c.id == hidden[0])).scalar_one()
    res = testapp.post_json(API + "/submissions", {"job_type": "Test args - multiple datasets or datafiles",
                                                  "datasets": [hidden[0]]}, headers=auth, status=404)  # fmt: skip
    assert name not in res.text and dbsession.scalar(sa.select(sa.func.count()).select_from(Job)) == 0


def test_job_tag_rows_follow_bulk_tags(testapp, dbsession):
    _, (job,) = add_submission(dbsession, "db/alice", [JobStatus.COMPLETED])
    bulk(login(testapp, "alice"), "tag", [job.id], tags="one")
    rows = dbsession.scalars(sa.select(JobTag.tag).where(JobTag.job_id == job.id)).all()
    assert rows == ["one"]


def test_staff_see_a_jobs_inputs_by_id_not_by_the_owners_names(testapp, dbsession, doc):
    from .test_api import check

    _, (job,) = add_submission(dbsession, "db/bob", [JobStatus.COMPLETED])
    res = check(doc, testapp.get(f"{API}/admin/jobs/{job.id}", headers=token(testapp, "alice")),
                "/api/v1/admin/jobs/{job_id}", "get")  # fmt: skip
    assert res.json["owner"] == "db/bob" and res.json["inputs"]["datasets"] == [{"id": 1000, "name": None}]
    assert "bob-sample" not in res.text
    console = login(testapp, "alice").get("/console/jobs").text
    assert f"{job.id}" in console and "bob-sample" not in console


def test_the_original_api_records_names_and_never_says_bobs(testapp, dbsession):
    from .test_jm import JM, datafile_ids, session, submit

    ds, df = T["Dataset"], T["Datafile"]
    bob = session(testapp, "bob")
    mine = dataset_ids(dbsession, investigation="LMF-2026-003")[0]
    file = datafile_ids(dbsession, "LMF-2026-003")[0]
    job_id = submit(testapp, bob, "Test args - multiple datasets or datafiles",
                    f"--datasetIds={mine}", f"--datafileIds={file}").json["jobId"]  # fmt: skip
    names = dbsession.connection().execute(sa.select(ds.c.name).where(ds.c.id == mine)).scalar_one()
    file_name = dbsession.connection().execute(sa.select(df.c.name).where(df.c.id == file)).scalar_one()
    job = dbsession.get(Job, job_id)
    assert job.named_datasets == [(mine, names)] and job.named_datafiles[0][:2] == (file, file_name)
    carol = session(testapp, "carol")
    alices = dataset_ids(dbsession, "confocal", "LMF-2026-001")[0]
    alices_name = dbsession.connection().execute(sa.select(ds.c.name).where(ds.c.id == alices)).scalar_one()
    err = testapp.post(JM + "submit", {"jobName": "Test args - multiple datasets or datafiles", "sessionId": carol,
                                       "parameter": [f"--datasetIds={alices}"]}, status=403)  # fmt: skip
    assert alices_name not in err.text

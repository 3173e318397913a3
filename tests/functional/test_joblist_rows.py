"""The job list's rows as they read (fix R: their values are worked out once in Python,
views/jobs.py's ListRow, not by macros for each row): each kind of run time, the exit
code, tags linking to their filter, the job's link, and names escaped in every cell."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.scripting import prepare

from ijpweb.models import Job, Submission
from ijpweb.states import JobStatus
from ijpweb.views.jobs import id_url

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def add_job(db, status=JobStatus.COMPLETED, *, owner="db/alice", started=None, finished=None, exit_code=None,
            tags=(), names=None, datasets=(1,)):  # fmt: skip
    sub = Submission(owner=owner, job_type="Date", mode="single")
    db.add(sub)
    db.flush()
    job = Job(submission=sub, owner=owner, job_type="Date", backend="local", status=status, exit_code=exit_code,
              dataset_ids=list(datasets), datafile_ids=[], options={}, argv=[], input_names=names,
              submitted_at=T0, started_at=started, finished_at=finished)  # fmt: skip
    job.tags = list(tags)
    db.add(job)
    db.flush()
    return job


def row(html: str, job: Job) -> str:
    return re.search(rf'<tr id="job-{job.id}">.*?</tr>', html, re.S).group(0)


def cells(html: str, job: Job) -> list[str]:
    return re.findall(r"<td[^>]*>(.*?)</td>", row(html, job), re.S)


def test_each_kind_of_run_time_and_the_exit_code(testapp, dbsession):
    ended = add_job(dbsession, JobStatus.FAILED, started=T0 + timedelta(seconds=5),
                    finished=T0 + timedelta(hours=1, minutes=2, seconds=8), exit_code=137)  # fmt: skip
    running = add_job(dbsession, JobStatus.RUNNING, started=T0)
    waiting = add_job(dbsession, JobStatus.QUEUED)
    cancelled = add_job(dbsession, JobStatus.CANCELLED)  # never started: no run time
    completed = add_job(
        dbsession, JobStatus.COMPLETED, started=T0, finished=T0 + timedelta(seconds=42), exit_code=0
    )
    testapp.login("alice")
    html = testapp.get("/jobs", {"grouped": "0"}).text

    status, run = cells(html, ended)[3], cells(html, ended)[6]
    assert status == '<span class="badge s-failed">Failed</span> <span class="muted">(exit 137)</span>'
    assert run == "1h 02m 03s"
    status, run = cells(html, completed)[3], cells(html, completed)[6]
    assert status == '<span class="badge s-completed">Completed</span>' and run == "42s"  # exit 0 not shown
    assert re.fullmatch(r'\d+h \d\dm \d\ds <span class="muted">so far</span>', cells(html, running)[6])
    assert re.fullmatch(r'<span class="muted">waiting \d+h \d\dm \d\ds</span>', cells(html, waiting)[6])
    assert cells(html, cancelled)[6] == ""
    # the htmx refresh (rows only) shows the same rows
    rows = testapp.get("/jobs", {"grouped": "0"}, headers={"HX-Request": "true"}).text
    assert row(rows, ended) == row(html, ended) and row(rows, completed) == row(html, completed)


def test_links_tags_and_names_are_escaped_in_the_row(testapp, dbsession):
    job = add_job(dbsession, tags=["good", "x<y"], datasets=(7, 8, 9),
                  names={"datasets": [[7, '<img src=x onerror="alert(1)">'], [8, "b & c"]]})  # fmt: skip
    testapp.login("alice")
    html = testapp.get("/jobs").text
    r = row(html, job)
    assert f'<a href="http://example.com/jobs/{job.id}">{job.id}</a>' in r
    assert (
        '<a class="tag" href="http://example.com/jobs?tag=good">good</a> '
        '<a class="tag" href="http://example.com/jobs?tag=x%3Cy">x&lt;y</a> '
    ) in r
    assert "<img" not in r and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;, b &amp; c" in r
    assert '<span class="muted">+ 1 more</span>' in r
    assert '<time datetime="2026-06-01T00:00:00Z" title="2026-06-01 00:00:00 UTC">2026-06-01</time>' in r
    # the tag's link is the list filtered by it
    assert f'<tr id="job-{job.id}">' in testapp.get("/jobs", {"tag": "x<y"}).text


def test_bobs_jobs_are_not_carols_rows(testapp, dbsession):
    bobs = add_job(dbsession, owner="db/bob", names={"datasets": [[1, "bob-secret-sample"]]})
    testapp.login("carol")
    html = testapp.get("/jobs").text
    assert f'id="job-{bobs.id}"' not in html and "bob-secret-sample" not in html


def test_id_url_is_route_url_for_any_id(app):
    with prepare(
        request=Request.blank("/", base_url="https://portal.example:8443/ijp"), registry=app.registry
    ) as env:
        request = env["request"]
        url = id_url(request, "jobs.detail", "job_id")
        for i in (1, 9, 10, 12345, 9081726354, 2**63 - 1):
            assert url(i) == request.route_url("jobs.detail", job_id=i)


def test_id_url_falls_back_to_route_url_when_the_id_is_not_in_the_url_as_given():
    config = Configurator()
    config.add_route(
        "hex", "/h/{job_id}", pregenerator=lambda req, el, kw: (el, {"job_id": f"{int(kw['job_id']):x}"})
    )
    config.add_route(
        "twice", "/t/{job_id}/{again}", pregenerator=lambda req, el, kw: (el, {**kw, "again": kw["job_id"]})
    )
    config.commit()
    with prepare(request=Request.blank("/", base_url="http://h"), registry=config.registry) as env:
        request = env["request"]
        assert id_url(request, "hex", "job_id")(255) == "http://h/h/ff"
        assert id_url(request, "twice", "job_id")(12) == "http://h/t/12/12"

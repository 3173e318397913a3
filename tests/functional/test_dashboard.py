"""Issue 13, point 2: the dashboard after login. Counts of my jobs by status, live jobs
with their progress, recent submissions with a meter and a link to their jobs, recent
failures with their reason and Resubmit; an empty state for a new user; the fragment polls
while anything is live and drops its trigger when nothing is. Every statement is read
through an index that starts with the owner: no full scan of job."""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from ijpweb import paging
from ijpweb.jobs import dashboard as dash
from ijpweb.models import Job, Submission
from ijpweb.states import JobStatus
from tests.queryplans import full_scans, plan_text, sqlite_plan

from .test_console import user_app
from .test_query_plans_jobs import conn, scratch  # noqa: F401  (fixtures: a grown job table on PostgreSQL)

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def submit(db, owner, statuses, job_type="Date", reason=None):
    sub = Submission(owner=owner, job_type=job_type, mode="each", created_at=T0)
    db.add(sub)
    jobs = []
    for s in statuses:
        job = Job(submission=sub, owner=owner, job_type=job_type, argv=[], backend="local", status=s,
                  submitted_at=T0, reason=reason if s == JobStatus.FAILED else None)  # fmt: skip
        if s in (JobStatus.RUNNING, JobStatus.COMPLETED, JobStatus.FAILED):
            job.started_at = T0 + timedelta(seconds=5)
        if s in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
            job.finished_at = T0 + timedelta(seconds=65)
        db.add(job)
        jobs.append(job)
    db.flush()
    return sub, jobs


def test_a_new_user_sees_what_to_do(app, tm, dbsession):
    dbsession.execute(sa.delete(Job).where(Job.owner == "db/carol"))
    carol = user_app(app, tm, dbsession, "carol")
    page = carol.get("/")
    assert "No jobs yet." in page.text and 'class="empty"' in page.text
    assert 'href="http://example.com/datasets"' in page.text
    assert "hx-trigger" not in page.text  # nothing to poll for
    assert 'aria-current="page">Dashboard' in page.text


def test_login_lands_on_the_dashboard_unless_next_says_otherwise(testapp):
    token = testapp.get_csrf_token()
    resp = testapp.post(
        "/login", {"username": "bob", "password": "bob-demo", "csrf_token": token}, status=303
    )
    assert resp.location == "http://example.com/"
    assert "Your jobs at a glance" in resp.follow().text
    testapp.post("/logout", {"csrf_token": testapp.get_csrf_token()}, status=303)
    resp = testapp.post("/login", {"username": "bob", "password": "bob-demo", "next": "/jobs",
                                   "csrf_token": testapp.get_csrf_token()}, status=303)  # fmt: skip
    assert resp.location == "http://example.com/jobs"


def test_counts_live_submissions_and_failures(app, tm, dbsession):
    dbsession.execute(sa.delete(Job).where(Job.owner.in_(["db/bob", "db/carol"])))
    S = JobStatus
    sub1, jobs1 = submit(dbsession, "db/bob", [S.COMPLETED, S.COMPLETED, S.FAILED, S.RUNNING, S.QUEUED],
                         reason="exit code 3: <b>bad</b> input")  # fmt: skip
    sub2, jobs2 = submit(dbsession, "db/bob", [S.CANCELLED], job_type="Copy datafile")
    submit(
        dbsession, "db/carol", [S.FAILED, S.RUNNING], job_type="Carol's secret type", reason="carol's reason"
    )
    bob = user_app(app, tm, dbsession, "bob")
    page = bob.get("/")
    text = page.text
    # counts by status, each a link to the list filtered by it, badge with colour and text
    assert '<span class="n">6</span><span>All jobs</span>' in text
    assert 'href="http://example.com/jobs?status=Completed"><span class="n">2</span>' in text
    assert '<span class="badge s-completed">Completed</span>' in text
    assert 'href="http://example.com/jobs?status=Held"' not in text  # none of them: not shown
    # live jobs with their status and how long (running for 1 min+ since started)
    running, queued = jobs1[3], jobs1[4]
    assert f'id="live-{running.id}"' in text and f'id="live-{queued.id}"' in text
    assert "waiting" in text.split(f'id="live-{queued.id}"')[1].split("</tr>")[0]
    # recent submissions, newest first, each with its meter and a link to its jobs
    assert text.index(f'id="submission-{sub2.id}"') < text.index(f'id="submission-{sub1.id}"')
    block = text.split(f'id="submission-{sub1.id}"')[1].split("</li>")[0]
    assert (
        '2 done</span> · <span class="k-failed">1 failed</span> · <span class="k-live">2 live</span> of 5'
        in block
    )
    assert f'href="http://example.com/jobs?submission={sub1.id}"' in block
    assert 'width="40.0"' in block  # 2 of 5 done: the bar's width an attribute, no style=
    # the failure, its reason escaped, and a Resubmit button
    failed = jobs1[2]
    block = text.split(f'id="failed-{failed.id}"')[1].split("</li>")[0]
    assert "exit code 3: &lt;b&gt;bad&lt;/b&gt; input" in block
    assert f'action="http://example.com/jobs/{failed.id}/resubmit"' in block and "Resubmit" in block
    # nothing of carol's
    assert "Carol" not in text and "carol&#39;s reason" not in text
    # live: the fragment polls; its htmx answer is the fragment alone
    assert 'hx-trigger="every 5s"' in text
    frag = bob.htmx("GET", "/")
    assert (
        frag.text.lstrip().startswith('<div id="dash" hx-get="http://example.com/"')
        and "<html" not in frag.text
    )
    # nothing live any more: the fragment comes back without a trigger, so polling stops
    for j in (running, queued):
        j.status = S.COMPLETED
    dbsession.flush()
    frag = bob.htmx("GET", "/")
    assert frag.text.lstrip().startswith('<div id="dash">') and "hx-trigger" not in frag.text
    assert "No job is running or waiting." in frag.text
    # Resubmit from the dashboard works without JS: the form, prefilled
    form = bob.post(f"/jobs/{failed.id}/resubmit", {"csrf_token": bob.get_csrf_token()}, status=303)
    assert form.location == f"http://example.com/submit?like={failed.id}"


def test_bounded_lists(app, tm, dbsession):
    dbsession.execute(sa.delete(Job).where(Job.owner == "db/bob"))
    many = [JobStatus.RUNNING] * (dash.LIVE_SHOWN + 3) + [JobStatus.FAILED] * (dash.FAILURES_SHOWN + 2)
    for _ in range(dash.SUBMISSIONS_SHOWN + 1):
        submit(dbsession, "db/bob", [JobStatus.COMPLETED])
    submit(dbsession, "db/bob", many, reason="oom")
    d = dash.dashboard(dbsession, "db/bob")
    assert len(d.live) == dash.LIVE_SHOWN and str(d.live_count) == str(dash.LIVE_SHOWN + 3)
    assert [j.id for j in d.live] == sorted((j.id for j in d.live), reverse=True)
    assert len(d.failures) == dash.FAILURES_SHOWN and len(d.submissions) == dash.SUBMISSIONS_SHOWN
    bob = user_app(app, tm, dbsession, "bob")
    assert f"All {dash.LIVE_SHOWN + 3} live jobs" in bob.get("/").text


def test_counts_are_bounded(dbsession):
    """Each status is counted up to the cap: past it the dashboard says "10,000+", having
    read no more than cap + 1 index entries of it."""
    assert set(dash.ORDER) == set(JobStatus) and len(dash.ORDER) == len(JobStatus)
    dbsession.execute(sa.delete(Job).where(Job.owner == "db/bob"))
    submit(dbsession, "db/bob", [JobStatus.COMPLETED] * 4 + [JobStatus.FAILED] * 2 + [JobStatus.QUEUED])
    counts = dict(zip(dash.ORDER, dbsession.execute(dash.counts_select("db/bob", cap=3)).one(), strict=True))
    assert (
        counts[JobStatus.COMPLETED] == 4 and counts[JobStatus.FAILED] == 2 and counts[JobStatus.QUEUED] == 1
    )
    assert counts[JobStatus.RUNNING] == 0  # (cap + 1 = 4: "more than 3")


def test_a_capped_count_reads_as_such(app, tm, dbsession, monkeypatch):
    dbsession.execute(sa.delete(Job).where(Job.owner == "db/bob"))
    submit(dbsession, "db/bob", [JobStatus.COMPLETED] * 4 + [JobStatus.QUEUED])
    monkeypatch.setattr(dash, "counted", lambda n, cap=3: paging.counted(n, 3))
    bob = user_app(app, tm, dbsession, "bob")
    text = bob.get("/").text
    assert '<span class="n">3+</span><span class="badge s-completed">' in text
    assert '<span class="n">4+</span><span>All jobs</span>' in text  # 3+ and 1: at least 4


def _not_by_owner(c, statement) -> list[str]:
    """The reads of job in the plan that read the whole table; on SQLite (which plans by
    the indexes alone) also those that do not seek by the owner: a range of another index
    (every user's jobs of a status) grows with other users' jobs. (PostgreSQL plans by its
    statistics: on the grown table every status but Completed is rare, and a seek of
    (status, finished_at) for one is as cheap as the owner's; it is held to no full scan.)"""
    found = full_scans(c, statement, tables=("job", "submission"))
    if c.dialect.name == "sqlite":
        lines = [line for line in sqlite_plan(c, statement) if line.split()[:2] == ["SEARCH", "job"]]
        found += [line for line in lines if "owner=?" not in line]
    return found


def test_the_dashboard_reads_job_by_its_owner_only(conn):  # noqa: F811
    for statement in dash.statements("db/bob"):
        found = _not_by_owner(conn, statement)
        assert not found, f"{statement}\n{found}\n{plan_text(conn, statement)}"


def test_a_dropped_index_is_seen(scratch):  # noqa: F811
    """The check can fail: without the indexes that hold the owner or the status (every
    one of them), the counts read the whole table."""
    statement = dash.counts_select("db/bob")
    assert not _not_by_owner(scratch, statement)
    leading = [
        i["name"]
        for i in sa.inspect(scratch).get_indexes("job")
        if {"owner", "status"} & set(i["column_names"])
    ]
    assert "ix_job_owner_status_id" in leading
    for name in leading:
        scratch.execute(sa.text(f"DROP INDEX {name}"))
    assert _not_by_owner(scratch, statement), plan_text(scratch, statement)

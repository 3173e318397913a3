"""Issue 11, point 6: a job's output is served so that no browser runs it. carol's job
prints a page with a script; whoever opens its output (she, or staff reading it for her)
gets text, never HTML."""

import sqlalchemy as sa

from ijpweb.models import Job
from ijpweb.states import JobStatus

from .test_flow import dataset_ids, select, wait_for

SCRIPT = "<html><body><script>fetch('/api/v1/session').then(r => r.text()).then(alert)</script></body></html>"


def test_a_job_that_prints_html_is_shown_as_text(testapp, dbsession, backends):
    testapp.login("carol")
    ds = dataset_ids(dbsession, investigation="LMF-2026-003")[:1]
    select(testapp, "dataset", ds)
    form = testapp.get("/submit", {"jobtype": "Test args - multiple datasets or datafiles"}).forms["job-form"]
    form["opt:Option one"] = SCRIPT
    form.submit(status=303)
    job = dbsession.scalars(sa.select(Job).where(Job.owner == "db/carol").order_by(Job.id.desc())).first()
    assert wait_for(dbsession, backends, [job.id])[0].status == JobStatus.COMPLETED

    # the output itself: plain UTF-8 text, not to be sniffed, in a sandbox that runs nothing
    res = testapp.get(f"/jobs/{job.id}/output/stdout")
    assert res.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert res.headers["X-Content-Type-Options"] == "nosniff"
    csp = res.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp and "frame-ancestors 'none'" in csp
    assert res.headers["Content-Disposition"] == f'inline; filename="job-{job.id}-stdout.txt"'
    assert "<script>fetch(" in res.text  # as the job wrote it: as text it runs nothing
    # from an offset, and as a download
    tail = testapp.get(f"/jobs/{job.id}/output/stdout", {"offset": 5, "download": "1"})
    assert tail.body == res.body[5:] and tail.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert tail.headers["Content-Disposition"] == f'attachment; filename="job-{job.id}-stdout.txt"'
    assert testapp.get(f"/jobs/{job.id}/output/stderr").headers["Content-Type"] == "text/plain; charset=utf-8"

    # in the job's page (the htmx fragment) it is escaped text inside <pre>
    frag = testapp.htmx("GET", f"/jobs/{job.id}/output/stdout", {"offset": 0})
    assert frag.headers["Content-Type"].startswith("text/html")
    assert "<script>" not in frag.text and "&lt;script&gt;fetch(" in frag.text
    page = testapp.get(f"/jobs/{job.id}")
    assert "<script>fetch" not in page.text and f"/jobs/{job.id}/output/stdout?download=1" in page.text
    # the API gives it as a JSON string; the original API too
    assert testapp.get(f"/api/v1/jobs/{job.id}/output/stdout").headers["Content-Type"] == "application/json"
    # carol's output is not bob's to read, in any form
    bob = testapp.__class__(testapp.app, extra_environ=dict(testapp.extra_environ))
    bob.login("bob")
    bob.get(f"/jobs/{job.id}/output/stdout", status=404)
    bob.get(f"/jobs/{job.id}/output/stdout", {"download": "1"}, status=404)


def test_every_page_forbids_framing_and_sniffing(alice):
    for res in (alice.get("/jobs"), alice.get("/datasets"), alice.get("/api/v1/openapi.json"),
                alice.get("/static/ijp.css"), alice.get("/jobs/999999999", status=404)):  # fmt: skip
        assert res.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in res.headers["Content-Security-Policy"]
        assert res.headers["X-Content-Type-Options"] == "nosniff"
        assert res.headers["Referrer-Policy"] == "same-origin"

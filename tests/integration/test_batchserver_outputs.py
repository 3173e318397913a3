"""Issue 13, point 4 on the remote backend: ijp-batchserver (a real process) offers a
job's output files and variables through its "outputs" extension; the portal lists,
previews and downloads them through it, and captures the variables when the job ends.
Against a server without the extension (an original one) the page says so."""

import io
import time
import zipfile

import pytest
import sqlalchemy as sa
import transaction
import webtest
from sqlalchemy.orm import Session

from ijpweb import outputs
from ijpweb.batch import BatchError, JobSpec
from ijpweb.states import JobStatus

from .test_batchserver import PORTAL_PASSWORD, batch_server, call, login, portal_backend  # noqa: F401

pytestmark = pytest.mark.once

_ids = iter(range(70_000, 80_000))


def _until_ended(remote, job, timeout=30):
    deadline = time.monotonic() + timeout
    while (state := remote.states([job])[job]).status.live:
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    return state


def test_the_remote_backend_reads_outputs_through_the_extension(batch_server):  # noqa: F811
    base, icat, engine = batch_server
    remote = portal_backend(base, icat)
    assert remote.outputs
    job = remote.submit(JobSpec(next(_ids), "db/bob", "scan_summary.py", ("--points", "50")))
    assert _until_ended(remote, job).status == JobStatus.COMPLETED
    found = remote.output_files(job)
    assert [f.name for f in found.files] == ["report.txt", "scan.csv", "summary.json", "images/scan.png"]
    assert found.total == 4 and found.total_size == sum(f.size for f in found.files)
    # read in pieces of a MB: the same bytes as the file's own size says
    with remote.open_output(job, "scan.csv") as fh:
        data = fh.read()
    assert data.startswith(b"angle,intensity,background\n") and len(data) == found.files[1].size
    assert dict(remote.output_vars(job).values)["OUT_POINTS"] == "50"
    names = []
    for name, opener in remote.output_zip_entries(job):
        with opener() as fh:
            names.append((name, len(fh.read())))
    assert names == [(f.name, f.size) for f in found.files]
    # a name that is not a file, or cannot be one, is refused on the server's side too
    with pytest.raises(outputs.OutputError):
        remote.open_output(job, "nothing.txt")
    with pytest.raises(outputs.BadName):
        remote.read_output_file(job, "../1/output/x", 0, 10)
    status, body = call(base, "GET", f"outputfile/{job}", login(engine, "bob"), icat, name="../../etc/passwd")
    assert status == 400 and body["code"] == "ParameterException"
    # bob's own session reads his job's files; alice's is refused as for any of his jobs
    status, body = call(base, "GET", f"outputs/{job}", login(engine, "bob"), icat)
    assert status == 200 and body["total"] == 4
    status, body = call(base, "GET", f"outputs/{job}", login(engine, "alice"), icat)
    assert status == 403 and body["code"] == "ForbiddenException"
    assert call(base, "GET", f"outputvars/{job}", login(engine, "alice"), icat)[0] == 403


def test_an_original_server_offers_no_outputs(batch_server):  # noqa: F811
    base, icat, _ = batch_server
    remote = portal_backend(base, icat)
    remote._extensions = frozenset({"owner", "states"})  # as a server without "outputs" says
    assert not remote.outputs
    with pytest.raises(outputs.NoOutput):
        remote.output_files("1")
    assert remote.output_vars("1") is None


def test_the_portal_shows_a_remote_jobs_outputs(batch_server, tmp_path, monkeypatch):  # noqa: F811
    """As a user checks it: the portal with only a remote backend; bob runs "Scan
    summary"; its files and variables show on its page, previewed and downloaded."""
    from ijpweb import main
    from ijpweb.models import Job

    from ..conftest import ROOT as TESTS_ROOT
    from ..conftest import portal_settings

    base, icat, engine = batch_server
    monkeypatch.setenv("IJP_BATCH_PASSWORD", PORTAL_PASSWORD)
    settings = portal_settings(
        str(TESTS_ROOT / "testing.ini"), tmp_path, str(engine.url),
        **{"ijp.batch.backends": "cluster", "ijp.batch.cluster.type": "remote", "ijp.batch.cluster.url": base,
           "ijp.batch.cluster.icat_url": icat, "ijp.batch.cluster.username": "ijp-portal"},
    )  # fmt: skip
    app = main({}, dbengine=engine, **settings)
    bob = webtest.TestApp(app, extra_environ={"HTTP_HOST": "example.com"})
    bob.get("/login")
    token = bob.cookies["csrf_token"]
    bob.post("/login", {"username": "bob", "password": "bob-demo", "csrf_token": token}, status=303)
    form = bob.get("/submit", {"jobtype": "Scan summary"}).forms["job-form"]
    form["opt:Points"] = "50"
    form.submit(status=303)
    with Session(engine) as db:
        job_id = db.scalars(sa.select(Job.id).where(Job.owner == "db/bob").order_by(Job.id.desc())).first()
    deadline = time.monotonic() + 30
    while True:
        app.registry["ijp.scheduler"].submit()
        app.registry["ijp.scheduler"].harvest()
        with Session(engine) as db:
            job = db.get(Job, job_id)
            if not job.live:
                break
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert job.status == JobStatus.COMPLETED and job.output_vars["values"][0] == ["OUT_POINTS", "50"]
    page = bob.get(f"/jobs/{job_id}")
    assert [a.get_text() for a in page.html.select("table.outputs tbody tr td:first-child a")] == [
        "report.txt", "scan.csv", "summary.json", "images/scan.png"]  # fmt: skip
    assert [th.get_text() for th in page.html.select("table.vars tbody th")][0] == "OUT_POINTS"
    csv = bob.get(f"/jobs/{job_id}/file", {"name": "scan.csv"}).body
    assert csv.count(b"\n") == 51
    preview = bob.get(f"/jobs/{job_id}/preview", {"name": "scan.csv"})
    assert len(preview.html.select("table.grid tbody tr")) == 50 and preview.html.select_one("polyline")
    assert (
        bob.get(f"/jobs/{job_id}/image", {"name": "images/scan.png"}).headers["Content-Type"] == "image/png"
    )
    with zipfile.ZipFile(io.BytesIO(bob.get(f"/jobs/{job_id}/outputs.zip").body)) as z:
        assert z.read("scan.csv") == csv
    bob.get(f"/jobs/{job_id}/file", {"name": "nothing"}, status=404)
    bob.get(f"/jobs/{job_id}/file", {"name": "../x"}, status=400)
    remote = app.registry["ijp.backends"]["cluster"]
    # as an original batch server: the page says it offers no files, the rest still works
    remote._extensions = frozenset({"owner", "states", "offset"})
    original = bob.get(f"/jobs/{job_id}")
    assert "does not offer output files (an original IJP batch server)" in original.text
    assert "Scanned 50 points" in original.html.select_one("pre#stdout").get_text()
    bob.get(f"/jobs/{job_id}/file", {"name": "scan.csv"}, status=404)
    assert bob.get(f"/api/v1/jobs/{job_id}").json["output_files"] == []
    assert "does not offer" in bob.get(f"/api/v1/jobs/{job_id}/files").json["unavailable"]
    # the batch server gone: the page says the files cannot be listed now, never a 500
    remote.url = "http://127.0.0.1:9/batch/"
    remote._extensions = None
    down = bob.get(f"/jobs/{job_id}")
    assert "does not answer now" in down.text or "cannot be listed now" in down.text
    assert bob.get(f"/jobs/{job_id}/file", {"name": "scan.csv"}, status=503)
    with pytest.raises(BatchError):
        remote.output_files(job.backend_job_id)
    transaction.manager.abort()

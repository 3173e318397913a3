"""Issue 13, point 4: a job's output files and output variables, on its page and in
/api/v1. A real job on the local backend (sandboxed where bubblewrap works) writes its
outputs; carol's program is hostile (links to /etc/passwd, to bob's outputs and to the
portal's database; a page with a script; an SVG with a script; HTML in a variable), and
carol tries bob's job by its id."""

from __future__ import annotations

import base64
import io
import json
import time
import zipfile

import pytest
from PIL import Image

from ijpweb.batch import JobSpec
from ijpweb.models import Job, Submission
from ijpweb.states import JobStatus

from ..conftest import make_testapp
from .test_api import check, token
from .test_flow import wait_for

API = "/api/v1"


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def _tiff() -> bytes:
    out = io.BytesIO()
    Image.new("I;16", (40, 30), 500).save(out, "TIFF")
    return out.getvalue()


CSV = "time,signal\n" + "".join(f"{i},{i * i}\n" for i in range(20))
HTML_NAME = "<img src=x onerror=alert(1)>.html"

SCRIPT = r"""
set -e
out="$JOB_OUTPUT_DIR"
printf '%s' "$1" > "$out/result.csv"
printf 'line one\nline two\n' > "$out/notes.txt"
mkdir -p "$out/sub/deep"
printf '{"energy": 12.4, "ok": true}' > "$out/sub/deep/summary.json"
printf '%s' "$2" | base64 -d > "$out/picture.png"
printf '%s' "$3" | base64 -d > "$out/frame.tif"
printf '<script>alert(document.cookie)</script>' > "$out/$4"
printf '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>' > "$out/plot.svg"
printf 'not a png at all' > "$out/fake.png"
ln -s /etc/passwd "$out/passwd"
ln -s "$5" "$out/bob"
ln -s "$6" "$out/database"
echo "printed on stdout"
{
  echo 'OUT_ENERGY=12.4 keV'
  echo 'OUT_HTML=<b onmouseover="x">bold</b>'
  echo 'this line is not a variable'
  echo 'OUT_EMPTY='
} > "$JOB_OUTPUT_VARS"
"""


def run_job(dbsession, backends, owner: str, script: str = SCRIPT, args: tuple[str, ...] = ()) -> Job:
    """A job of ``owner`` run for real on the local backend, harvested to its end."""
    sub = Submission(owner=owner, job_type="Date", mode="single")
    job = Job(submission=sub, owner=owner, job_type="Date", argv=[], backend="local", status=JobStatus.QUEUED)
    dbsession.add(job)
    dbsession.flush()
    local = backends["local"]
    job.backend_job_id = local.submit(JobSpec(job.id, owner, "/bin/sh", ("-c", script, "job", *args)))
    dbsession.flush()
    (job,) = wait_for(dbsession, backends, [job.id])
    return job


@pytest.fixture
def jobs(app, tm, dbsession, backends, app_settings):
    """bob's job (one output file), then carol's hostile one."""
    bob_job = run_job(dbsession, backends, "db/bob", 'printf "bob secret" > "$JOB_OUTPUT_DIR/secret.txt"')
    bob_dir = backends["local"].root / bob_job.backend_job_id / "output"
    database = app_settings["sqlalchemy.url"].removeprefix("sqlite:///")
    args = (CSV, base64.b64encode(_png()).decode(), base64.b64encode(_tiff()).decode(), HTML_NAME,
            str(bob_dir), database)  # fmt: skip
    carol_job = run_job(dbsession, backends, "db/carol", SCRIPT, args)
    assert carol_job.status == JobStatus.COMPLETED, carol_job.reason
    carol = make_testapp(app, tm, dbsession)
    carol.login("carol")
    bob = make_testapp(app, tm, dbsession)
    bob.login("bob")
    return carol, carol_job, bob, bob_job


LISTED = {"result.csv", "notes.txt", "sub/deep/summary.json", "picture.png", "frame.tif", HTML_NAME, "plot.svg",
          "fake.png"}  # fmt: skip


def test_the_job_page_lists_outputs_and_variables(jobs):
    carol, job, _, _ = jobs
    page = carol.get(f"/jobs/{job.id}")
    files = page.html.select("table.outputs tbody tr")
    assert {tr.td.get_text() for tr in files} == LISTED
    assert "3 links or special files in the output directory are neither listed nor served" in page.text
    assert f"/jobs/{job.id}/outputs.zip" in page.text
    # the variables, in the order written, escaped
    rows = [(tr.th.get_text(), tr.td.get_text()) for tr in page.html.select("table.vars tbody tr")]
    assert rows == [
        ("OUT_ENERGY", "12.4 keV"),
        ("OUT_HTML", '<b onmouseover="x">bold</b>'),
        ("OUT_EMPTY", ""),
    ]
    assert '<b onmouseover="x">' not in page.text and "&lt;b onmouseover=" in page.text
    assert "1 line that was not" in page.text
    # a name with HTML is text in the page, never markup
    assert "<img src=x onerror" not in page.text
    # stdout without JavaScript: in the page as text
    assert page.html.select_one("pre#stdout").get_text().startswith("printed on stdout")


def test_downloads_are_attachments_streamed_as_written(jobs):
    carol, job, _, _ = jobs
    res = carol.get(f"/jobs/{job.id}/file", {"name": "result.csv"})
    assert res.body == CSV.encode()
    assert res.headers["Content-Type"] == "application/octet-stream"
    assert res.headers["Content-Disposition"].startswith('attachment; filename="result.csv"')
    assert (
        res.headers["X-Content-Type-Options"] == "nosniff"
        and "sandbox" in res.headers["Content-Security-Policy"]
    )
    assert res.headers["Content-Length"] == str(len(CSV))
    assert json.loads(carol.get(f"/jobs/{job.id}/file", {"name": "sub/deep/summary.json"}).body) == {
        "energy": 12.4,
        "ok": True,
    }
    # the page with a script: a file to save, not a page
    evil = carol.get(f"/jobs/{job.id}/file", {"name": HTML_NAME})
    assert evil.headers["Content-Type"] == "application/octet-stream"
    assert (
        evil.headers["Content-Disposition"].startswith("attachment;")
        and "\n" not in evil.headers["Content-Disposition"]
    )
    svg = carol.get(f"/jobs/{job.id}/file", {"name": "plot.svg"})
    assert svg.headers["Content-Type"] == "application/octet-stream" and svg.headers[
        "Content-Disposition"
    ].startswith("attachment")


@pytest.mark.parametrize("name", ["passwd", "bob/secret.txt", "database", "nothing.txt", "sub", "sub/deep"])
def test_links_lead_nowhere(jobs, name):
    carol, job, _, _ = jobs
    for path in ("file", "preview", "image"):
        res = carol.get(f"/jobs/{job.id}/{path}", {"name": name}, status=404)
        assert "root:" not in res.text and "bob secret" not in res.text and "SQLite" not in res.text
    res = carol.get(f"{API}/jobs/{job.id}/file", {"name": name}, status=404)
    assert res.json["code"] == "not_found" and "name" in res.json["fields"]


@pytest.mark.parametrize("name", ["../../1/output/secret.txt", "/etc/passwd", "a\x00b", "sub//x", "./notes.txt",
                                  "x" * 5000, "sub/" + "y" * 300])  # fmt: skip
def test_bad_names_are_400_naming_the_field(jobs, name):
    carol, job, _, _ = jobs
    res = carol.get(f"/jobs/{job.id}/file", {"name": name}, status=400)
    assert res.html.select_one("main") is not None and "name " in res.html.select_one("main").get_text()
    res = carol.get(f"/jobs/{job.id}/preview", {"name": name}, status=400)
    api = carol.get(f"{API}/jobs/{job.id}/file", {"name": name}, status=400)
    assert api.json["code"] == "bad_parameter" and "name" in api.json["fields"]


def test_previews(jobs):
    carol, job, _, _ = jobs
    csv = carol.get(f"/jobs/{job.id}/preview", {"name": "result.csv"})
    assert [th.get_text() for th in csv.html.select("table.grid thead th")] == ["time", "signal"]
    assert len(csv.html.select("table.grid tbody tr")) == 20
    line = csv.html.select_one("figure.plot svg polyline")
    assert line is not None and len(line["points"].split()) == 20
    text = carol.htmx("GET", f"/jobs/{job.id}/preview", {"name": "notes.txt"})
    assert "<html" not in text.text and text.html.select_one("pre").get_text() == "line one\nline two"
    js = carol.get(f"/jobs/{job.id}/preview", {"name": "sub/deep/summary.json"})
    assert '"energy": 12.4' in js.html.select_one("pre").get_text()
    html = carol.get(f"/jobs/{job.id}/preview", {"name": HTML_NAME})
    assert "<script>alert" not in html.text and "&lt;script&gt;alert(document.cookie)" in html.text
    svg = carol.get(f"/jobs/{job.id}/preview", {"name": "plot.svg"})
    assert "never drawn" in svg.text and "<svg xmlns" not in svg.text.split("<main", 1)[1].split("figure")[0]
    fake = carol.get(f"/jobs/{job.id}/preview", {"name": "fake.png"})
    assert "not a valid PNG image" in fake.text and "<img" not in fake.html.select_one("main").decode()


def test_images_by_their_bytes(jobs):
    carol, job, _, _ = jobs
    page = carol.get(f"/jobs/{job.id}/preview", {"name": "picture.png"})
    img = page.html.select_one("img.preview-image")
    assert img is not None and "/image?name=picture.png" in img["src"]
    png = carol.get(f"/jobs/{job.id}/image", {"name": "picture.png"})
    assert png.headers["Content-Type"] == "image/png" and png.body == _png()
    assert png.headers["X-Content-Type-Options"] == "nosniff"
    tif = carol.get(f"/jobs/{job.id}/image", {"name": "frame.tif"})
    assert tif.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(tif.body)).size == (40, 30)
    # what is not an image by its bytes is never served as one, whatever its name
    for name in ("fake.png", "plot.svg", HTML_NAME):
        carol.get(f"/jobs/{job.id}/image", {"name": name}, status=404)


def test_zip_of_all_outputs(jobs):
    carol, job, _, _ = jobs
    res = carol.get(f"/jobs/{job.id}/outputs.zip")
    assert res.headers["Content-Type"] == "application/zip"
    assert res.headers["Content-Disposition"].startswith(f'attachment; filename="job-{job.id}-outputs.zip"')
    with zipfile.ZipFile(io.BytesIO(res.body)) as z:
        assert set(z.namelist()) == LISTED
        assert z.read("result.csv") == CSV.encode()
        assert b"bob secret" not in b"".join(z.read(n) for n in z.namelist())


def test_api_lists_files_and_variables(jobs, doc):
    carol, job, _, _ = jobs
    auth = token(carol, "carol")  # (an API client: a bearer token, no cookie needed)
    body = check(doc, carol.get(f"{API}/jobs/{job.id}", headers=auth), "/api/v1/jobs/{job_id}", "get").json
    assert body["output_vars"] == {
        "OUT_ENERGY": "12.4 keV",
        "OUT_HTML": '<b onmouseover="x">bold</b>',
        "OUT_EMPTY": "",
    }
    assert body["output_vars_skipped"] == 1 and body["output_vars_incomplete"] is False
    files = {f["name"]: f for f in body["output_files"]}
    assert set(files) == LISTED and files["result.csv"]["size"] == len(CSV)
    got = carol.get(files["result.csv"]["download_url"], headers=auth)
    assert got.body == CSV.encode() and got.headers["Content-Disposition"].startswith("attachment")
    assert body["outputs_zip_url"].endswith(f"/api/v1/jobs/{job.id}/outputs.zip")
    assert carol.get(body["outputs_zip_url"]).headers["Content-Type"] == "application/zip"
    listed = check(doc, carol.get(f"{API}/jobs/{job.id}/files"), "/api/v1/jobs/{job_id}/files", "get").json
    assert {f["name"] for f in listed["files"]} == LISTED and listed["total"] == len(LISTED)
    missing = carol.get(f"{API}/jobs/{job.id}/file", status=400)
    assert check(doc, missing, "/api/v1/jobs/{job_id}/file", "get").json["fields"] == {"name": "required"}


def test_carol_cannot_reach_bobs_outputs_by_id(jobs):
    carol, _, bob, bob_job = jobs
    assert bob.get(f"/jobs/{bob_job.id}/file", {"name": "secret.txt"}).body == b"bob secret"
    for path in ("file", "preview", "image"):
        carol.get(f"/jobs/{bob_job.id}/{path}", {"name": "secret.txt"}, status=404)
    carol.get(f"/jobs/{bob_job.id}/outputs.zip", status=404)
    carol.htmx("GET", f"/jobs/{bob_job.id}/outputs", status=404)
    for path in ("", "/files", "/outputs.zip"):
        carol.get(f"{API}/jobs/{bob_job.id}{path}", status=404)
    carol.get(f"{API}/jobs/{bob_job.id}/file", {"name": "secret.txt"}, status=404)


def test_outputs_fragment_and_page(jobs):
    carol, job, _, _ = jobs
    frag = carol.htmx("GET", f"/jobs/{job.id}/outputs")
    assert (
        frag.html.select_one("#job-outputs") is not None and "hx-trigger" not in frag.text
    )  # ended: no refresh
    assert "<html" not in frag.text
    res = carol.get(f"/jobs/{job.id}/outputs", status=303)
    assert res.location.endswith(f"/jobs/{job.id}#files-h")


def test_a_job_without_outputs_says_what_to_do(app, tm, dbsession, backends):
    job = run_job(dbsession, backends, "db/carol", "echo hi")
    carol = make_testapp(app, tm, dbsession)
    carol.login("carol")
    page = carol.get(f"/jobs/{job.id}")
    assert "No output files." in page.text and "$JOB_OUTPUT_DIR" in page.text
    assert "None: the job wrote no" in page.text
    body = carol.get(f"{API}/jobs/{job.id}").json
    assert body["output_files"] == [] and body["output_vars"] == {}


def test_a_huge_vars_file_is_bounded(app, tm, dbsession, backends):
    script = 'i=0; while [ $i -lt 1500 ]; do echo "OUT_V$i=$i"; i=$((i+1)); done > "$JOB_OUTPUT_VARS"'
    job = run_job(dbsession, backends, "db/carol", script)
    carol = make_testapp(app, tm, dbsession)
    carol.login("carol")
    body = carol.get(f"{API}/jobs/{job.id}").json
    assert len(body["output_vars"]) == 1000 and body["output_vars_incomplete"] is True
    assert body["output_vars"]["OUT_V999"] == "999"
    page = carol.get(f"/jobs/{job.id}")
    assert "Some variables were left out" in page.text and "500 more variables" in page.text


def test_vars_file_as_a_link_is_not_read(app, tm, dbsession, backends):
    job = run_job(dbsession, backends, "db/carol", 'ln -s /etc/passwd "$JOB_OUTPUT_VARS"')
    assert job.output_vars is None
    assert json.dumps(job.output_vars) == "null"


def test_a_cancelled_job_keeps_the_variables_it_wrote(app, tm, dbsession, backends):
    sub = Submission(owner="db/carol", job_type="Date", mode="single")
    job = Job(
        submission=sub, owner="db/carol", job_type="Date", argv=[], backend="local", status=JobStatus.QUEUED
    )
    dbsession.add(job)
    dbsession.flush()
    script = 'echo "OUT_STEP=3" > "$JOB_OUTPUT_VARS"; echo started; exec sleep 60'
    job.backend_job_id = backends["local"].submit(JobSpec(job.id, "db/carol", "/bin/sh", ("-c", script)))
    dbsession.flush()
    carol = make_testapp(app, tm, dbsession)
    carol.login("carol")
    deadline = time.monotonic() + 20
    while b"started" not in backends["local"].read(job.backend_job_id, "stdout"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    carol.post(f"/jobs/{job.id}/cancel", {"csrf_token": carol.get_csrf_token()}, status=303)
    for _ in range(50):
        if not job.live:
            break
        wait_for(dbsession, backends, [job.id])
    assert job.status == JobStatus.CANCELLED
    assert carol.get(f"{API}/jobs/{job.id}").json["output_vars"] == {"OUT_STEP": "3"}


def test_a_long_stdout_is_in_the_page_up_to_64_kb(app, tm, dbsession, backends):
    script = "i=0; while [ $i -lt 2000 ]; do echo \"line $i: $(printf '%060d' $i)\"; i=$((i+1)); done"
    job = run_job(dbsession, backends, "db/carol", script)
    carol = make_testapp(app, tm, dbsession)
    carol.login("carol")
    page = carol.get(f"/jobs/{job.id}")
    pre = page.html.select_one("pre#stdout")
    text = pre.get_text()
    assert text.startswith("line 0: ") and "line 1999" not in text and len(text.encode()) == 64 * 1024
    # without JavaScript: a link to the whole; with it, the rest follows from where this ends
    assert f"/jobs/{job.id}/output/stdout" in page.html.find("noscript").decode()
    assert pre.select_one("span.tail")["hx-get"].endswith("offset=65536")
    rest = carol.htmx("GET", f"/jobs/{job.id}/output/stdout", {"offset": 65536})
    assert (text + rest.text).splitlines()[-1].startswith("line 1999: ")


def test_a_corrupt_tiff_says_it_cannot_be_shown(app, tm, dbsession, backends):
    job = run_job(
        dbsession, backends, "db/carol", "printf 'II*\\000garbage' > \"$JOB_OUTPUT_DIR/broken.tif\""
    )
    carol = make_testapp(app, tm, dbsession)
    carol.login("carol")
    for get in (carol.get, lambda url, params: carol.htmx("GET", url, params)):
        res = get(f"/jobs/{job.id}/preview", {"name": "broken.tif"})
        assert "cannot be shown" in res.text and "<img" not in res.html.select_one(".preview").decode()
    carol.get(f"/jobs/{job.id}/image", {"name": "broken.tif"}, status=404)

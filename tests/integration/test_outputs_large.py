"""Issue 13, point 4.6: large output files and zips of many files are streamed, never
read whole. The portal on waitress (in this process: its memory is this process's) sends
a 200 MB output file (sparse) and a zip of 10,000 files to a client that reads them in
pieces; this process's resident memory (/proc) may grow by a bounded amount only. A
behaviour bound, not a timing."""

import json
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from ijpweb.models import Job, Submission
from ijpweb.states import JobStatus

pytestmark = pytest.mark.once  # the portal under test has its own SQLite database

BIG = 200 * 1024 * 1024
GROWTH = 50 * 1024 * 1024  # the bound on resident memory's growth while it is sent


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _job_with_output(engine, owner: str) -> tuple[int, Path]:
    """A completed job of ``owner`` on the live portal's local backend; its output dir."""
    with Session(engine) as db, db.begin():
        sub = Submission(owner=owner, job_type="Date", mode="single")
        job = Job(submission=sub, owner=owner, job_type="Date", argv=[], backend="local",
                  status=JobStatus.COMPLETED)  # fmt: skip
        db.add(job)
        db.flush()
        job.backend_job_id = str(job.id)
        job_id = job.id
    # the live portal's job directories: next to its database (tests/conftest.live_server)
    root = Path(engine.url.database).parent / "jobs"
    out = root / str(job_id) / "output"
    out.mkdir(parents=True)
    (out.parent / "work").mkdir()
    return job_id, out


def _token(url: str, user: str) -> str:
    body = json.dumps({"username": user, "password": f"{user}-demo"}).encode()
    req = urllib.request.Request(
        f"{url}/api/v1/session", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)["token"]


def _fetch(url: str, token: str, sink=None) -> tuple[int, int, dict]:
    """GET ``url`` read in 1 MB pieces (written to ``sink`` if given); returns (bytes
    read, the largest growth of resident memory seen meanwhile, headers)."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    start, peak, n = rss(), 0, 0
    with urllib.request.urlopen(req, timeout=120) as resp:
        headers = dict(resp.headers)
        while chunk := resp.read(1 << 20):
            n += len(chunk)
            if sink is not None:
                sink.write(chunk)
            peak = max(peak, rss() - start)
    return n, peak, headers


def test_a_200_mb_output_is_streamed(live_server):
    url, engine = live_server
    job_id, out = _job_with_output(engine, "db/bob")
    with open(out / "big.bin", "wb") as f:
        f.truncate(BIG)  # sparse: 200 MB of zeros that take no disk
    token = _token(url, "bob")
    n, growth, headers = _fetch(f"{url}/api/v1/jobs/{job_id}/file?name=big.bin", token)
    assert n == BIG and headers["Content-Length"] == str(BIG)
    assert growth < GROWTH, f"resident memory grew by {growth >> 20} MB while 200 MB were sent"
    # the same through the page's route
    n, growth, _ = _fetch(f"{url}/jobs/{job_id}/file?name=big.bin", token)
    assert n == BIG and growth < GROWTH


def test_a_zip_of_10000_files_is_streamed(live_server, tmp_path):
    url, engine = live_server
    job_id, out = _job_with_output(engine, "db/bob")
    for i in range(100):
        d = out / f"d{i:02}"
        d.mkdir()
        for j in range(100):
            (d / f"f{j:02}.txt").write_text(f"{i} {j}\n")
    token = _token(url, "bob")
    with open(tmp_path / "all.zip", "wb") as sink:
        n, growth, headers = _fetch(f"{url}/api/v1/jobs/{job_id}/outputs.zip", token, sink)
    assert headers["Content-Type"] == "application/zip" and growth < GROWTH
    with zipfile.ZipFile(tmp_path / "all.zip") as z:
        names = z.namelist()
        assert len(names) == 10_000 and z.read("d42/f07.txt") == b"42 7\n"
    # carol may not have it
    req = urllib.request.Request(f"{url}/api/v1/jobs/{job_id}/outputs.zip",
                                 headers={"Authorization": f"Bearer {_token(url, 'carol')}"})  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    with e.value:
        assert e.value.code == 404

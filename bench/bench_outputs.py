"""A job's outputs (issue 13, point 4): what listing, previewing and downloading them
cost the portal.

    .venv/bin/python bench/bench_outputs.py

One portal process on waitress (4 threads), the client in the same process reading
1 MiB at a time, logged in with an API token as bob. The jobs are completed rows of the
local backend whose output directories this script fills. Reported per case: the median
and p95 time of N requests, or for a large download its time, rate and the process's
peak RSS growth while it is sent.

1. the job's page with 10 output files, and with 10,000 (500 listed, "and 9,500 more");
2. /api/v1/jobs/{id}/files of the same two;
3. a CSV's preview: 5 KB, and 50 MB (only its first 256 KB are read: the two should cost
   the same);
4. a 4000 x 4000 16-bit TIFF converted to a PNG preview;
5. a 1 GiB output file (sparse) downloaded;
6. the zip of 10,000 files of 1 KiB.
"""

from __future__ import annotations

import io
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_ids import MIB, portal, rss_mib, serve, urlopen  # noqa: E402


def _token(url: str, user: str) -> str:
    req = urllib.request.Request(  # noqa: S310 - the server this script started
        f"{url}/api/v1/session", data=json.dumps({"username": user, "password": f"{user}-demo"}).encode(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urlopen(req) as res:
        return json.loads(res.read())["token"]


def _job(settings, owner: str) -> tuple[int, Path]:
    from sqlalchemy.orm import Session

    from ijpweb.models import Job, Submission, get_engine
    from ijpweb.states import JobStatus

    with Session(get_engine(settings)) as db, db.begin():
        job = Job(submission=Submission(owner=owner, job_type="Date", mode="single"), owner=owner, job_type="Date",
                  argv=[], backend="local", status=JobStatus.COMPLETED)  # fmt: skip
        db.add(job)
        db.flush()
        job.backend_job_id = str(job.id)
        job_id = job.id
    out = Path(settings["ijp.batch.local.dir"]) / str(job_id) / "output"
    out.mkdir(parents=True)
    (out.parent / "work").mkdir()
    return job_id, out


def _get(url: str, token: str) -> tuple[int, float]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    start, n = time.perf_counter(), 0
    with urlopen(req) as res:
        while chunk := res.read(MIB):
            n += len(chunk)
    return n, time.perf_counter() - start


def _times(url: str, token: str, rounds: int) -> str:
    _get(url, token)  # (warm)
    ms = sorted(_get(url, token)[1] * 1000 for _ in range(rounds))
    return f"median {statistics.median(ms):7.1f} ms, p95 {ms[int(len(ms) * 0.95) - 1]:7.1f} ms ({rounds} requests)"


def _big(url: str, token: str) -> str:
    base = rss_mib()
    peak = base
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    start, n = time.perf_counter(), 0
    with urlopen(req) as res:
        while chunk := res.read(MIB):
            n += len(chunk)
            peak = max(peak, rss_mib())
    took = time.perf_counter() - start
    return f"{n / MIB:8.0f} MiB in {took:6.2f} s, {n / MIB / took:7.1f} MiB/s, peak RSS growth {peak - base:5.1f} MiB"


def main() -> None:
    from PIL import Image

    with tempfile.TemporaryDirectory(prefix="ijp-bench-outputs-") as tmp:
        app, settings = portal(Path(tmp))
        url, _server = serve(app)
        token = _token(url, "bob")

        small, out = _job(settings, "db/bob")
        for i in range(10):
            (out / f"f{i}.txt").write_text("x" * 1024)
        (out / "small.csv").write_text("".join(f"{i},{i * i},{i % 7}\n" for i in range(400)))
        big, out = _job(settings, "db/bob")
        for i in range(100):
            d = out / f"d{i:02}"
            d.mkdir()
            for j in range(100):
                (d / f"f{j:02}.txt").write_bytes(b"x" * 1024)
        large, out = _job(settings, "db/bob")
        with open(out / "large.csv", "w") as f:
            row = 0
            while f.tell() < 50 * MIB:
                f.write("".join(f"{r},{r * 0.5},{r % 13}\n" for r in range(row, row + 10_000)))
                row += 10_000
        with open(out / "huge.bin", "wb") as f:
            f.truncate(1024 * MIB)
        frame = io.BytesIO()
        Image.new("I;16", (4000, 4000), 700).save(frame, "TIFF")
        (out / "frame.tif").write_bytes(frame.getvalue())

        print(f"1. job page, 10 files:        {_times(f'{url}/jobs/{small}', token, 50)}")
        print(f"   job page, 10,000 files:    {_times(f'{url}/jobs/{big}', token, 20)}")
        print(f"2. API files, 10 files:       {_times(f'{url}/api/v1/jobs/{small}/files', token, 50)}")
        print(f"   API files, 10,000 files:   {_times(f'{url}/api/v1/jobs/{big}/files', token, 20)}")
        print(
            f"3. preview, 5 KB CSV:         {_times(f'{url}/jobs/{small}/preview?name=small.csv', token, 30)}"
        )
        print(
            f"   preview, 50 MB CSV:        {_times(f'{url}/jobs/{large}/preview?name=large.csv', token, 30)}"
        )
        print(f"4. 4000x4000 16-bit TIFF:     {_times(f'{url}/jobs/{large}/image?name=frame.tif', token, 5)}")
        print(f"5. 1 GiB file:                {_big(f'{url}/api/v1/jobs/{large}/file?name=huge.bin', token)}")
        print(f"6. zip of 10,000 files:       {_big(f'{url}/api/v1/jobs/{big}/outputs.zip', token)}")


if __name__ == "__main__":
    main()

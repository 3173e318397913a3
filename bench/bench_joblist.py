"""Benchmark (c) of issue 4: the job list page, its htmx fragment and a filtered list
with 100,000 jobs in the database. Prints p50/p95 in ms.

    .venv/bin/python bench/bench_joblist.py                     # SQLite (a temp file)
    IJP_BENCH_DATABASE_URL=postgresql+psycopg://... .venv/bin/python bench/bench_joblist.py

Requests go through the whole WSGI app in-process (WebTest), so the figures are the
portal's own time: routing, security, the database and the templates.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
import webtest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import demo_database, settings_for, timed  # noqa: E402

from ijpweb import main  # noqa: E402
from ijpweb.models import (  # noqa: E402
    Job,
    JobTag,
    Submission,
)
from ijpweb.states import JobStatus  # noqa: E402

JOBS = int(os.environ.get("IJP_BENCH_JOBS", 100_000))
ROUNDS = int(os.environ.get("IJP_BENCH_ROUNDS", 200))


def main_() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="ijp-bench-"))
    url = os.environ.get("IJP_BENCH_DATABASE_URL") or f"sqlite:///{tmp / 'bench.sqlite'}"
    settings = settings_for(url, tmp)
    engine = demo_database(settings)
    start = time.monotonic()
    statuses = [JobStatus.COMPLETED] * 8 + [JobStatus.FAILED, JobStatus.RUNNING]
    with engine.begin() as c:
        if c.execute(sa.select(sa.func.count(Job.id))).scalar() < JOBS:
            now = datetime.now(UTC)
            sub = c.execute(sa.insert(Submission).values(owner="db/alice", job_type="Date", mode="each",
                                                         executable="date", created_at=now)).inserted_primary_key[0]  # fmt: skip
            rows = [
                {"submission_id": sub, "owner": "db/alice" if i % 3 else "db/bob", "job_type": "Date" if i % 2 else "Sleepcount",
                 "dataset_ids": [], "datafile_ids": [], "options": {}, "argv": [], "backend": "local",
                 "backend_job_id": str(i), "status": statuses[i % len(statuses)],
                 "submitted_at": now - timedelta(seconds=JOBS - i)}
                for i in range(JOBS)
            ]  # fmt: skip
            for k in range(0, JOBS, 10_000):
                c.execute(sa.insert(Job), rows[k : k + 10_000])
            # tags: one job in ten "calib", one in seven one of 50 run tags
            ids = c.execute(sa.select(Job.id, Job.owner).order_by(Job.id)).all()
            tags = [{"job_id": j, "owner": o, "tag": "calib"} for j, o in ids[::10]]
            tags += [{"job_id": j, "owner": o, "tag": f"run-{j % 50}"} for j, o in ids[::7]]
            c.execute(sa.insert(JobTag), tags)
    print(f"database: {engine.dialect.name}, {JOBS} jobs (loaded in {time.monotonic() - start:.1f} s)")

    app = webtest.TestApp(main({}, **settings), extra_environ={"HTTP_HOST": "localhost"})
    app.get("/login")
    token = app.cookies["csrf_token"]
    app.post("/login", {"username": "alice", "password": "alice-demo", "csrf_token": token}, status=303)
    cases = {
        "GET /jobs (page)": lambda: app.get("/jobs"),
        "GET /jobs (htmx rows)": lambda: app.get("/jobs", headers={"HX-Request": "true"}),
        "GET /jobs?status=Failed&page=20": lambda: app.get("/jobs", {"status": "Failed", "page": 20}),
        "GET /jobs?job_type=Date&page=500": lambda: app.get("/jobs", {"job_type": "Date", "page": 500}),
        "GET /jobs?tag=calib&page=50": lambda: app.get("/jobs", {"tag": "calib", "page": 50}),
    }
    for name, call in cases.items():
        timed(name, call, ROUNDS, 36)


if __name__ == "__main__":
    main_()

"""Benchmark of the operator's console (issue 11, point 4): every user's jobs, filtered and
paged by keyset, with a million jobs in the database. Prints p50/p95 in ms.

    .venv/bin/python bench/bench_console.py                     # SQLite (a temp file)
    IJP_BENCH_DATABASE_URL=postgresql+psycopg://... .venv/bin/python bench/bench_console.py

Requests go through the whole WSGI app in-process (WebTest), as staff with a bearer token:
routing, security, the database and the JSON or the template. The jobs: 100 users, 1 in
1000 live (Running or Queued), 1 in 50 Failed, the rest Completed; two job types (one
rare), two backends, one submitted a minute.
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
from ijpweb.models import Job, Submission  # noqa: E402
from ijpweb.states import JobStatus  # noqa: E402

JOBS = int(os.environ.get("IJP_BENCH_JOBS", 1_000_000))
ROUNDS = int(os.environ.get("IJP_BENCH_ROUNDS", 100))
BATCH = 20_000


def status(i: int) -> JobStatus:
    if i % 1000 == 0:
        return JobStatus.RUNNING
    if i % 1000 == 500:
        return JobStatus.QUEUED
    return JobStatus.FAILED if i % 50 == 1 else JobStatus.COMPLETED


def fill(engine, start: datetime) -> None:
    with engine.begin() as c:
        have = c.execute(sa.select(sa.func.count(Job.id))).scalar()
        if have >= JOBS:
            return
        sub = c.execute(sa.insert(Submission).values(owner="db/bob", job_type="Date", mode="each",
                                                     executable="date", created_at=start)).inserted_primary_key[0]  # fmt: skip
        for k in range(have, JOBS, BATCH):
            rows = [
                {"submission_id": sub, "owner": f"db/user{i % 100}" if i % 100 else "db/bob",
                 "job_type": "Sleepcount" if i % 200 == 0 else "Date", "dataset_ids": [], "datafile_ids": [],
                 "options": {}, "argv": [], "backend": "slurm" if i % 3 == 0 else "local", "backend_job_id": str(i),
                 "status": status(i), "submitted_at": start + timedelta(minutes=i)}
                for i in range(k, min(JOBS, k + BATCH))
            ]  # fmt: skip
            c.execute(sa.insert(Job), rows)


def main_() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="ijp-bench-"))
    url = os.environ.get("IJP_BENCH_DATABASE_URL") or f"sqlite:///{tmp / 'bench.sqlite'}"
    settings = settings_for(url, tmp, **{"ijp.batch.local.sandbox": "none"})
    engine = demo_database(settings)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    began = time.monotonic()
    fill(engine, start)
    if engine.dialect.name == "postgresql":
        with engine.connect() as c:
            c.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE job")
    print(f"database: {engine.dialect.name}, {JOBS} jobs (loaded in {time.monotonic() - began:.1f} s)")

    app = webtest.TestApp(main({}, **settings), extra_environ={"HTTP_HOST": "localhost"})
    auth = {"Authorization": "Bearer " + app.post_json("/api/v1/session",
            {"username": "alice", "password": "alice-demo"}).json["token"]}  # fmt: skip
    app.get("/login")
    csrf = app.cookies["csrf_token"]
    app.post("/login", {"username": "alice", "password": "alice-demo", "csrf_token": csrf}, status=303)
    deep = JOBS // 10  # a cursor far down the list: 90% of the jobs are newer
    mid = start + timedelta(minutes=JOBS // 2)
    admin = "/api/v1/admin/jobs"

    def api(**params):
        return lambda: app.get(admin, params, headers=auth)

    cases = {
        "api: newest 50": api(),
        f"api: before={deep}": api(before=deep),
        "api: user=db/bob": api(user="db/bob"),
        f"api: user=db/bob before={deep}": api(user="db/bob", before=deep),
        "api: status=Running": api(status="Running"),
        "api: status=live": api(status="live"),
        f"api: status=Failed before={deep}": api(status="Failed", before=deep),
        "api: jobtype=Sleepcount (1 in 200)": api(jobtype="Sleepcount"),
        "api: backend=slurm": api(backend="slurm"),
        "api: one day, mid-way": api(since=mid.date().isoformat(), until=mid.date().isoformat()),
        "api: user+status+backend": api(user="db/user7", status="Failed", backend="local"),
        "page: /console/jobs": lambda: app.get("/console/jobs"),
        "page: /console/jobs?status=live": lambda: app.get("/console/jobs", {"status": "live"}),
        "page: /console (overview)": lambda: app.get("/console"),
    }
    for name, call in cases.items():
        timed(name, call, ROUNDS, 40)


if __name__ == "__main__":
    main_()

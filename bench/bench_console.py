"""Benchmark of the operator's console (issue 11, point 4; issue 12): every user's jobs,
filtered and paged by signed keyset cursors (as /api/v1/jobs), with a million jobs in the
database. Prints p50/p95 in ms, and, measured in one interleaved run, a deep page against
the newest (the ratio: a page costs what it shows) and the p95 beside issue 12's goal.

    .venv/bin/python bench/bench_console.py                     # SQLite (a temp file)
    IJP_BENCH_DATABASE_URL=postgresql+psycopg://... .venv/bin/python bench/bench_console.py

Requests go through the whole WSGI app in-process (WebTest), as staff with a bearer token:
routing, security, the database and the JSON or the template. The jobs: 100 users, 1 in
1000 live (Running or Queued), 1 in 50 Failed, the rest Completed; two job types (one
rare), two backends, one submitted a minute.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
import webtest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import demo_database, goal, percentile, settings_for, timed  # noqa: E402

from ijpweb import console, main  # noqa: E402
from ijpweb.jobs.actions import OLDER  # noqa: E402
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
        # VACUUM as autovacuum would after such a load: without the visibility map the
        # bounded counts' index-only scans read a heap page per row (jobtype=Sleepcount's
        # count of 5,000 jobs: 83 ms p50 with ANALYZE alone)
        with engine.connect() as c:
            c.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE job")
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
    cursors = app.app.registry["ijp.cursors"]

    def cursor(**filters) -> str:
        """The cursor of the page older than job ``deep`` in the list of ``filters``, as
        the portal signs it for alice (the same key: the app's own Cursors)."""
        return cursors.encode(console.JobFilter(**filters).scope("db/alice"), (OLDER, deep))

    def api(**params):
        return lambda: app.get(admin, params, headers=auth)

    cases = {
        "api: newest 50": api(),
        f"api: cursor older than {deep}": api(cursor=cursor()),
        "api: user=db/bob": api(user="db/bob"),
        f"api: user=db/bob cursor older than {deep}": api(user="db/bob", cursor=cursor(user="db/bob")),
        "api: status=Running": api(status="Running"),
        "api: status=live": api(status="live"),
        f"api: status=Failed cursor older than {deep}": api(
            status="Failed", cursor=cursor(status="Failed")
        ),  # fmt: skip
        "api: jobtype=Sleepcount (1 in 200)": api(jobtype="Sleepcount"),
        "api: backend=slurm": api(backend="slurm"),
        "api: one day, mid-way": api(since=mid.date().isoformat(), until=mid.date().isoformat()),
        "api: user+status+backend": api(user="db/user7", status="Failed", backend="local"),
        "api: per_page=200": api(per_page=200),
        "page: /console/jobs": lambda: app.get("/console/jobs"),
        "page: /console/jobs?status=live": lambda: app.get("/console/jobs", {"status": "live"}),
        f"page: /console/jobs cursor older than {deep}": lambda: app.get(
            "/console/jobs", {"cursor": cursor()}
        ),
        "rows: /console/jobs (htmx)": lambda: app.get("/console/jobs", headers={"HX-Request": "true"}),
        "page: /console/audit": lambda: app.get("/console/audit"),
        "page: /console (overview)": lambda: app.get("/console"),
    }
    for name, call in cases.items():
        timed(name, call, ROUNDS, 48)

    # a deep page against the newest, interleaved (the machine's noise falls on both alike)
    pairs = {
        "api": (cases["api: newest 50"], cases[f"api: cursor older than {deep}"]),
        "page": (cases["page: /console/jobs"], cases[f"page: /console/jobs cursor older than {deep}"]),
    }
    times = {(face, k): [] for face in pairs for k in (0, 1)}
    for _ in range(ROUNDS):
        for face, calls in pairs.items():
            for k, call in enumerate(calls):
                t = time.perf_counter()
                call()
                times[face, k].append((time.perf_counter() - t) * 1000)
    for face in pairs:
        first, later = (statistics.median(times[face, k]) for k in (0, 1))
        goal(f"{face}: deep page / newest page (p50 {later:.1f} / {first:.1f} ms)", later / first, 1.5, "x")
        worst = max(percentile(times[face, k], 95) for k in (0, 1))
        goal(f"{face}: single client p95 (newest and deep pages)", worst, 100, "ms")


if __name__ == "__main__":
    main_()

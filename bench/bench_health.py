"""Benchmark of what operators watch (issue 11, points 4 and 5) with a million jobs: a
Prometheus scrape of /metrics (every job counted by status and backend: one grouped query),
the console's backends (live jobs by backend and status, failures in the last hour, the
backlog), /healthz, and what a harvest cycle adds to record the backends' health. Prints
p50/p95 in ms.

    .venv/bin/python bench/bench_health.py                     # SQLite (a temp file)
    IJP_BENCH_DATABASE_URL=postgresql+psycopg://... .venv/bin/python bench/bench_health.py

The jobs as bench_console.py makes them (100 users, 1 in 1000 live, 1 in 50 Failed, two
backends, one a minute), every ended job with its finish time; the newest hour's jobs
include some failed within the last hour.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
import transaction
import webtest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import demo_database, settings_for, timed  # noqa: E402

from ijpweb import health, main  # noqa: E402
from ijpweb.models import Job, Submission, get_tm_session  # noqa: E402
from ijpweb.states import JobStatus  # noqa: E402

JOBS = int(os.environ.get("IJP_BENCH_JOBS", 1_000_000))
ROUNDS = int(os.environ.get("IJP_BENCH_ROUNDS", 50))
BATCH = 20_000
TOKEN = secrets.token_urlsafe(24)  # /metrics wants it


def status(i: int) -> JobStatus:
    if i % 1000 == 0:
        return JobStatus.RUNNING
    if i % 1000 == 500:
        return JobStatus.QUEUED
    if i % 1000 == 250:
        return JobStatus.SUBMITTING
    return JobStatus.FAILED if i % 50 == 1 else JobStatus.COMPLETED


def fill(engine, start: datetime) -> None:
    """JOBS jobs, one a minute up to now (the newest hour's within the last hour)."""
    with engine.begin() as c:
        have = c.execute(sa.select(sa.func.count(Job.id))).scalar()
        if have >= JOBS:
            return
        sub = c.execute(sa.insert(Submission).values(owner="db/bob", job_type="Date", mode="each",
                                                     executable="date", created_at=start)).inserted_primary_key[0]  # fmt: skip
        for k in range(have, JOBS, BATCH):
            rows = []
            for i in range(k, min(JOBS, k + BATCH)):
                s, at = status(i), start + timedelta(minutes=i)
                rows.append({"submission_id": sub, "owner": f"db/user{i % 100}", "job_type": "Date",
                             "dataset_ids": [], "datafile_ids": [], "options": {}, "argv": [],
                             "backend": "slurm" if i % 3 == 0 else "local", "backend_job_id": str(i), "status": s,
                             "submitted_at": at, "finished_at": None if s.live else at})  # fmt: skip
            c.execute(sa.insert(Job), rows)


def main_() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="ijp-bench-"))
    url = os.environ.get("IJP_BENCH_DATABASE_URL") or f"sqlite:///{tmp / 'bench.sqlite'}"
    settings = settings_for(url, tmp, **{"ijp.batch.local.sandbox": "none", "ijp.metrics.token": TOKEN})
    engine = demo_database(settings)
    began = time.monotonic()
    fill(engine, datetime.now(UTC) - timedelta(minutes=JOBS))
    if engine.dialect.name == "postgresql":
        with engine.connect() as c:
            c.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE job")
    print(f"database: {engine.dialect.name}, {JOBS} jobs (loaded in {time.monotonic() - began:.1f} s)")

    app_ = main({}, **settings)
    backends = app_.registry["ijp.backends"]
    factory = app_.registry["dbsession_factory"]

    def cycle():  # what a harvest cycle adds: observe (the local backend's probe) and record
        tm = transaction.TransactionManager(explicit=True)
        with tm:
            db = get_tm_session(factory, tm)
            health.record(db, health.observe(backends, {}))

    cycle()
    app = webtest.TestApp(app_, extra_environ={"HTTP_HOST": "localhost"})
    auth = {"Authorization": "Bearer " + app.post_json("/api/v1/session",
            {"username": "alice", "password": "alice-demo"}).json["token"]}  # fmt: skip
    app.get("/login")
    csrf = app.cookies["csrf_token"]
    app.post("/login", {"username": "alice", "password": "alice-demo", "csrf_token": csrf}, status=303)
    scrape = app.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    print(
        f"/metrics: {len(scrape)} bytes, {sum(1 for line in scrape.splitlines() if not line.startswith('#'))} samples"
    )
    timed(
        "GET /metrics (scrape)",
        lambda: app.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}),
        ROUNDS,
    )
    timed("GET /api/v1/admin/backends", lambda: app.get("/api/v1/admin/backends", headers=auth), ROUNDS)
    timed("page /console/backends", lambda: app.get("/console/backends"), ROUNDS)
    timed("page /console (overview)", lambda: app.get("/console"), ROUNDS)
    timed("harvest cycle: observe + record (1 backend)", cycle, ROUNDS)
    cycle()  # (a harvest just now: /healthz answers 200)
    timed("GET /healthz", lambda: app.get("/healthz", status=200), ROUNDS)
    with engine.connect() as c:
        t = time.perf_counter()
        c.execute(sa.select(Job.backend, Job.status, sa.func.count()).group_by(Job.backend, Job.status)).all()
        print(f"the grouped count alone, once: {(time.perf_counter() - t) * 1000:.1f} ms")


if __name__ == "__main__":
    main_()

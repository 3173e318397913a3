"""Benchmark of the dashboard's statements (issue 13, point 2): ijpweb.jobs.dashboard for a
user with 9,000, 90,000 and 900,000 jobs (bench_joblist's databases of 10,000, 100,000 and
1,000,000 jobs: nine in ten db/alice's), each live status empty, one in 50 Failed.

    .venv/bin/python bench/bench_dashboard.py                   # SQLite (IJP_BENCH_DIR, as bench_joblist)
    IJP_BENCH_DATABASE_URL=postgresql+psycopg://.../ijp_bench .venv/bin/python bench/bench_dashboard.py

The databases are bench_joblist's (made and filled by its functions when missing). For
each round every size is asked in turn (interleaved), so the 1M/10k ratio is measured in
one run. Also the unbounded GROUP BY count the dashboard used first, for comparison.
The goal: the dashboard at 1,000,000 jobs costs at most twice what it costs at 10,000.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_joblist import SIZES, database_url, fill, settle  # noqa: E402
from common import demo_database, goal, percentile, settings_for  # noqa: E402

from ijpweb.jobs.dashboard import dashboard  # noqa: E402
from ijpweb.models import Job  # noqa: E402

ROUNDS = int(os.environ.get("IJP_BENCH_ROUNDS", 40))
USER = "db/alice"


def grouped(db) -> list:
    """The first version's count: every one of the user's index entries, grouped."""
    return db.execute(
        sa.select(Job.status, sa.func.count()).where(Job.owner == USER).group_by(Job.status)
    ).all()


def main() -> None:
    tmp = Path(os.environ.get("IJP_BENCH_DIR") or tempfile.gettempdir()) / "ijp-bench-joblist"
    tmp.mkdir(parents=True, exist_ok=True)
    sessions = {}
    for size in SIZES:
        settings = settings_for(
            database_url(size, tmp), tmp / str(size), **{"ijp.batch.local.sandbox": "none"}
        )
        engine = demo_database(settings)
        took = fill(engine, size)
        print(f"{engine.dialect.name}: {size:,} jobs" + (f" (loaded in {took:.1f} s)" if took else " (kept)"))
        if took:
            settle(engine)
        sessions[size] = Session(engine)
    cases = {
        "dashboard (every statement)": lambda db: dashboard(db, USER),
        "unbounded GROUP BY count": grouped,
    }
    times = {(size, name): [] for size in SIZES for name in cases}
    for _ in range(2):  # warm up
        for db in sessions.values():
            for call in cases.values():
                call(db)
    shown = {size: dashboard(db, USER) for size, db in sessions.items()}
    for _ in range(ROUNDS):
        for name, call in cases.items():
            for size, db in sessions.items():
                t = time.perf_counter()
                call(db)
                times[(size, name)].append((time.perf_counter() - t) * 1000)
                db.rollback()  # (a fresh snapshot each time, as a request's)
    print(f"\n{ROUNDS} rounds interleaved (p50 / p95 ms):")
    for name in cases:
        for size in SIZES:
            t = times[(size, name)]
            print(f"  {name:30} {size:>9,} jobs  {statistics.median(t):8.2f} / {percentile(t, 95):8.2f}")
    for size, d in shown.items():
        print(
            f"  shown at {size:,}: all jobs {d.total}, failed {d.counts.get('Failed')}, {len(d.submissions)} submissions"
        )
    lo, hi = SIZES[0], SIZES[-1]
    ratio = statistics.median(times[(hi, "dashboard (every statement)")]) / statistics.median(
        times[(lo, "dashboard (every statement)")]
    )
    print()
    goal(f"dashboard p50 at {hi:,} / at {lo:,} jobs", ratio, 2.0, "x")
    for db in sessions.values():
        db.close()


if __name__ == "__main__":
    main()

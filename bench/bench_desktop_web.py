"""Benchmark of what desktops add to the portal's own work (issue 14, part W): the harvest's
desktop step (ijpweb.batch.harvest.harvest_desktops, every cycle), the idle check
(ijpweb.jobs.desktops.end_idle, every cycle), the backstop for sessions past their ready
timeout or time limit (end_overdue, every cycle), and the desktop badges of a list page of 25
jobs (desktop_states), on a database of 100,000 jobs with 0, 100 and 1,000 of them live
interactive jobs whose desktops are ready (a steady cycle: nothing to write).

    .venv/bin/python bench/bench_desktop_web.py
    IJP_BENCH_DATABASE_URL=postgresql+psycopg://.../ijp_bench .venv/bin/python bench/bench_desktop_web.py

Goals, with 100 live desktops: a steady harvest cycle's desktop step, idle check and
overdue check together at most 5 ms p50 (a harvest cycle runs every 2 s: a quarter of a per cent of it), and the
list's badges (one query for the page's live jobs) at most 2 ms p50. (p50: on the shared
2-core machine the p95 of even an empty step is the scheduler's noise, see the README.)
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_joblist import fill, settle  # noqa: E402
from common import demo_database, goal, percentile, settings_for  # noqa: E402

from ijpweb.batch import BatchState, DesktopInfo  # noqa: E402
from ijpweb.batch.harvest import harvest_desktops  # noqa: E402
from ijpweb.jobs.desktops import desktop_states, end_idle, end_overdue  # noqa: E402
from ijpweb.models import Job, utcnow  # noqa: E402
from ijpweb.models.desktops import Desktop  # noqa: E402
from ijpweb.settings import DesktopSettings  # noqa: E402
from ijpweb.states import JobStatus  # noqa: E402

ROUNDS = int(os.environ.get("IJP_BENCH_ROUNDS", 200))
SIZE = int(os.environ.get("IJP_BENCH_JOBS", 100_000))  # 1000000: a facility's years
LIVE = (0, 100, 1000)
HISTORY = SIZE // 10  # ended desktops of older jobs (a tenth of all jobs were interactive)


def set_desktops(engine, n: int) -> tuple[dict, list[int]]:
    """Exactly ``n`` live interactive jobs with ready desktops (the newest ``n`` jobs, as
    Running); returns what their backend answers, and the ids of the newest 25 jobs."""
    now = utcnow()
    with engine.begin() as c:
        c.execute(sa.delete(Desktop.__table__))
        ids = list(c.execute(sa.select(Job.id).order_by(Job.id.desc()).limit(max(LIVE))).scalars())
        chosen = ids[:n]
        older = sa.select(Job.id).order_by(Job.id).limit(HISTORY)  # (jobs ended long ago)
        c.execute(
            sa.insert(Desktop.__table__).from_select(
                ["job_id", "state", "ended_reason"],
                sa.select(older.subquery().c.id, sa.literal("ended"), sa.literal("ended by the user")),
            )
        )
        if chosen:
            c.execute(
                sa.update(Job.__table__).where(Job.id.in_(chosen))
                .values(status=JobStatus.RUNNING.value, backend="local", backend_job_id=sa.cast(Job.id, sa.String))
            )  # fmt: skip
            c.execute(
                sa.insert(Desktop.__table__),
                [{"job_id": i, "state": "ready", "host": "127.0.0.1", "port": 5900 + i % 1000, "ready_at": now,
                  "ends_at": now + timedelta(hours=8), "viewers": 1, "viewer_seen_at": now} for i in chosen],
            )  # fmt: skip
    info = DesktopInfo("127.0.0.1", 0, now, now + timedelta(hours=8))
    answered = {}
    for i in chosen:
        answered[("local", str(i))] = BatchState(
            JobStatus.RUNNING, desktop=DesktopInfo("127.0.0.1", 5900 + i % 1000, info.ready_at, info.ends_at)
        )
    return answered, ids[:25]


def main() -> None:
    url = os.environ.get("IJP_BENCH_DATABASE_URL")
    tmp = Path(os.environ.get("IJP_BENCH_DIR") or tempfile.gettempdir()) / "ijp-bench-desktops"
    tmp.mkdir(parents=True, exist_ok=True)
    settings = settings_for(
        url or f"sqlite:///{tmp / 'desktops.sqlite'}", tmp, **{"ijp.batch.local.sandbox": "none"}
    )
    engine = demo_database(settings)
    took = fill(engine, SIZE)
    if took:
        settle(engine)
    print(f"{engine.dialect.name}: {SIZE:,} jobs" + (f" (loaded in {took:.1f} s)" if took else " (kept)")
          + f", {HISTORY:,} ended desktops")  # fmt: skip
    limits = DesktopSettings()
    results = {}
    for n in LIVE:
        answered, page = set_desktops(engine, n)
        with Session(engine) as db:
            jobs = list(db.scalars(sa.select(Job).where(Job.id.in_(page))))
            db.expunge_all()  # (loaded once, as the list's page has them: a rollback does not expire them)
            cases = {
                "harvest_desktops (steady)": lambda answered=answered: harvest_desktops(
                    db, answered, utcnow()
                ),
                "harvest_desktops (the purge's sweep)": lambda answered=answered: harvest_desktops(
                    db, answered, utcnow(), sweep=True
                ),
                "end_idle (none idle)": lambda: end_idle(db, {}, limits),
                "end_overdue (none overdue)": lambda: end_overdue(db, {}, limits),
                "desktop_states, a page of 25": lambda jobs=jobs: desktop_states(db, jobs),
            }
            for name, call in cases.items():
                call()
                times = []
                for _ in range(ROUNDS):
                    t = time.perf_counter()
                    changed = call()
                    times.append((time.perf_counter() - t) * 1000)
                    db.rollback()
                if name.startswith("harvest"):
                    assert changed == 0, f"a steady cycle wrote {changed} desktops"
                results[(n, name)] = times
                print(f"{n:5} live desktops  {name:32} p50 {statistics.median(times):6.2f} ms"
                      f"   p95 {percentile(times, 95):6.2f} ms")  # fmt: skip
    cycle = [
        a + b + c
        for a, b, c in zip(
            results[(100, "harvest_desktops (steady)")],
            results[(100, "end_idle (none idle)")],
            results[(100, "end_overdue (none overdue)")],
            strict=True,
        )
    ]
    print()
    goal(
        "harvest desktop step + idle and overdue checks, 100 desktops, p50",
        statistics.median(cycle),
        5,
        " ms",
    )
    badges = results[(100, "desktop_states, a page of 25")]
    goal("list badges (desktop_states), 100 desktops, p50", statistics.median(badges), 2, " ms")
    set_desktops(engine, 0)


if __name__ == "__main__":
    main()

"""A bulk cancel of 200 SLURM jobs (the job list's "Cancel" on a page of 200 ticked jobs,
POST /jobs/bulk or /api/v1/jobs/cancel: ijpweb.jobs.actions.cancel_jobs), against a
throw-away single-node SLURM cluster (bin/slurm-test-cluster, started and stopped here).

Each round records 200 jobs as a click does, hands them to SLURM with the background
submitter's code (held, ``--hold``, so they wait in the queue: a queue, not the cluster's
scheduling, is measured) and then cancels them all in one bulk action, timed, with the
SLURM commands it ran counted; as job-array tasks (the SLURM default) and as one sbatch
per job, interleaved; medians.

    .venv/bin/python bench/bench_bulk_cancel.py
    IJP_BENCH_BULK=200 IJP_BENCH_ROUNDS=3 .venv/bin/python bench/bench_bulk_cancel.py
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_slurm import database, record, scancel_all  # noqa: E402

from ijpweb.batch.slurm import SlurmBackend  # noqa: E402
from ijpweb.batch.submitter import submit_pending  # noqa: E402
from ijpweb.jobs.actions import cancel_jobs  # noqa: E402
from ijpweb.models import Job  # noqa: E402
from ijpweb.states import JobStatus  # noqa: E402

BULK = int(os.environ.get("IJP_BENCH_BULK", 200))
ROUNDS = int(os.environ.get("IJP_BENCH_ROUNDS", 3))


def one_round(tmp: Path, conf: str, arrays: bool, r: int) -> tuple[float, Counter]:
    d = tmp / f"bulk-{arrays}-{r}"
    engine = database(d)
    backend = SlurmBackend("cluster", d / "jobs", slurm_conf=conf, sbatch_options=["--hold"], arrays=arrays,
                           job_prefix=f"bulk{r}{int(arrays)}")  # fmt: skip
    ids = record(engine, BULK)
    with Session(engine) as db, db.begin():
        while submit_pending(db, {"cluster": backend}):
            pass
    calls: Counter = Counter()
    # every SLURM command the backend runs (before fix C, _run was the only way to run one)
    name = "_exec" if hasattr(backend, "_exec") else "_run"
    run = getattr(backend, name)
    setattr(backend, name, lambda argv, **kw: calls.update([argv[0]]) or run(argv, **kw))
    start = time.perf_counter()
    with Session(engine) as db, db.begin():
        outcomes = cancel_jobs(db, {"cluster": backend}, "db/alice", ids)
    took = time.perf_counter() - start
    setattr(backend, name, run)
    done = sum(o.result == "done" for o in outcomes)
    assert done == BULK, [o for o in outcomes if o.result != "done"][:3]
    with Session(engine) as db:
        cancelled = db.scalar(sa.select(sa.func.count()).where(Job.status == JobStatus.CANCELLED))
    assert cancelled == BULK, f"{cancelled} of {BULK} jobs are Cancelled in the database"
    engine.dispose()
    return took, calls


def main() -> int:
    missing = [c for c in ("slurmctld", "slurmd", "munged", "sbatch") if not shutil.which(c)]
    if missing:
        print(f"SKIPPED: SLURM is not installed (missing {', '.join(missing)}); "
              "apt-get install slurmctld slurmd slurm-client munge")  # fmt: skip
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="ijp-bench-bulk-"))
    script = ROOT / "bin" / "slurm-test-cluster"
    env = {**os.environ, "SLURM_CONF": str(tmp / "cluster" / "slurm.conf")}
    subprocess.run([str(script), "start", str(tmp / "cluster")], check=True, env=env)
    try:
        print(f"a bulk cancel of {BULK} held SLURM jobs, median of {ROUNDS} interleaved rounds "
              f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the start)")  # fmt: skip
        times: dict[bool, list[float]] = {True: [], False: []}
        calls: dict[bool, Counter] = {}
        for r in range(ROUNDS):
            for arrays in (True, False):
                took, calls[arrays] = one_round(tmp, env["SLURM_CONF"], arrays, r)
                times[arrays].append(took)
                scancel_all(env)
        for arrays, label in ((True, "job-array tasks:"), (False, "one sbatch per job:")):
            t = times[arrays]
            said = ", ".join(f"{n} {c}" for c, n in sorted(calls[arrays].items()))
            print(f"    {label:20} {statistics.median(t):7.2f} s (min {min(t):.2f}, max {max(t):.2f}); "
                  f"SLURM commands per bulk cancel: {said}")  # fmt: skip
        print(f"    (load average {os.getloadavg()[0]:.1f} at the end)")
    finally:
        subprocess.run([str(script), "stop", str(tmp / "cluster")], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

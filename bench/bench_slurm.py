"""Benchmarks (a) and (b) of issue 4, against a throw-away single-node SLURM cluster
(bin/slurm-test-cluster):

(a) a 500-job fan-out through the portal (jobs recorded as the click records them, then
    handed over by the background submitter's code until none waits) against a shell
    loop of plain ``sbatch`` on the same cluster, as a ratio; with one sbatch per job
    and with job arrays. Jobs are submitted held (``--hold``) in both, so the cluster's
    scheduling is not measured, only the submission.
(b) harvest cycles with 10,000 live SLURM jobs (held tasks of job arrays) in the
    database: the first cycle (every job changes state), then steady cycles (nothing
    changes) interleaved with ``squeue``'s own call, as a ratio (issue 12: at most 4);
    and what a steady cycle sends to the database (no UPDATE, no Job object) and where
    its time goes (reading the live rows, the backend's states(), deciding).

    .venv/bin/python bench/bench_slurm.py            # both
    IJP_BENCH_PARTS=harvest .venv/bin/python bench/bench_slurm.py
    IJP_BENCH_PROFILE=1 ...                          # and cProfile one steady cycle
    # (b) on PostgreSQL (its jobs and submissions are removed first)
    IJP_BENCH_PARTS=harvest IJP_BENCH_DATABASE_URL=postgresql+psycopg://.../ijp_bench_harvest \
        .venv/bin/python bench/bench_slurm.py
"""

from __future__ import annotations

import cProfile
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import goal  # noqa: E402

from ijpweb.batch.harvest import harvest  # noqa: E402
from ijpweb.batch.slurm import SQUEUE_FORMAT, SlurmBackend  # noqa: E402
from ijpweb.batch.submitter import submit_pending  # noqa: E402
from ijpweb.models import Job, Submission, upgrade  # noqa: E402
from ijpweb.states import JobStatus  # noqa: E402

FANOUT = int(os.environ.get("IJP_BENCH_FANOUT", 500))
LIVE = int(os.environ.get("IJP_BENCH_LIVE", 10_000))
ROUNDS = int(os.environ.get("IJP_BENCH_ROUNDS", 5))
HARVEST_ROUNDS = int(os.environ.get("IJP_BENCH_HARVEST_ROUNDS", 15))
PARTS = os.environ.get("IJP_BENCH_PARTS", "fanout,harvest").split(",")
HARVEST_DATABASE = os.environ.get("IJP_BENCH_DATABASE_URL")  # (b) on this database, else SQLite


def database(tmp: Path) -> sa.Engine:
    tmp.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(f"sqlite:///{tmp / 'bench.sqlite'}")
    upgrade(engine, str(ROOT / "testing.ini"))
    return engine


def record(engine, n: int, status=JobStatus.SUBMITTING) -> list[int]:
    """What the click does: one submission, n job rows."""
    with Session(engine) as db, db.begin():
        sub = Submission(owner="db/alice", job_type="True", mode="each", executable="/bin/true")
        db.add(sub)
        db.flush()
        rows = [
            {"submission_id": sub.id, "owner": "db/alice", "job_type": "True", "dataset_ids": [i],
             "datafile_ids": [], "options": {}, "argv": [], "backend": "cluster", "status": status}
            for i in range(n)
        ]  # fmt: skip
        db.execute(sa.insert(Job), rows)
        return list(db.scalars(sa.select(Job.id).where(Job.submission_id == sub.id).order_by(Job.id)))


def scancel_all(env) -> None:
    subprocess.run(["scancel", "--user", str(os.getuid())], env=env, check=False)
    while subprocess.run(
        ["squeue", "-h", "-t", "PD,R", "-o", "%i"], env=env, capture_output=True, text=True
    ).stdout:
        time.sleep(0.2)


def fan_out(engine, backend) -> float:
    """Seconds from the click's rows to the last job handed over, committing per chunk
    as the background submitter does."""
    start = time.perf_counter()
    record(engine, FANOUT)
    while True:
        with Session(engine) as db, db.begin():
            if not submit_pending(db, {"cluster": backend}):
                break
    return time.perf_counter() - start


def shell_loop(tmp: Path, env) -> float:
    script = tmp / "true.sh"
    script.write_text("#!/bin/sh\ntrue\n")
    script.chmod(0o755)
    loop = (
        f"for i in $(seq {FANOUT}); do sbatch --parsable --hold --job-name=plain-$i "
        f'--output=/dev/null "{script}" >/dev/null || exit 1; done'
    )
    start = time.perf_counter()
    subprocess.run(["sh", "-c", loop], env=env, check=True)
    return time.perf_counter() - start


def bench_fanout(tmp: Path, conf: str, env) -> None:
    """The three ways in turn, ROUNDS times (the machine's load drifts); medians."""
    print(f"(a) fan-out of {FANOUT} jobs (held), median of {ROUNDS} interleaved rounds")
    times: dict[str, list[float]] = {"plain": [], "per-job": [], "arrays": []}
    for r in range(ROUNDS):
        times["plain"].append(shell_loop(tmp, env))
        scancel_all(env)
        for arrays in (False, True):
            d = tmp / f"fan-{arrays}-{r}"
            engine = database(d)
            backend = SlurmBackend(
                "cluster", d / "jobs", slurm_conf=conf, sbatch_options=["--hold"], arrays=arrays,
                job_prefix=f"fan{r}{int(arrays)}",
            )  # fmt: skip
            times["arrays" if arrays else "per-job"].append(fan_out(engine, backend))
            with Session(engine) as db:
                waiting = db.scalar(sa.select(sa.func.count()).where(Job.status != JobStatus.QUEUED))
            assert waiting == 0, f"{waiting} jobs were not submitted"
            scancel_all(env)
    plain = statistics.median(times["plain"])
    print(f"    shell loop of sbatch:          {plain:7.2f} s")
    for key, label in (("per-job", "portal, one sbatch per job:"), ("arrays", "portal, job arrays:")):
        t = statistics.median(times[key])
        print(f"    {label:30} {t:7.2f} s   ratio {t / plain:.2f}")


class Timed:
    """The backend, with the moments its states() was entered and left."""

    def __init__(self, backend):
        self.backend, self.marks = backend, []

    def states(self, ids):
        self.marks.append(time.perf_counter())
        try:
            return self.backend.states(ids)
        finally:
            self.marks.append(time.perf_counter())


def steady_cycle(engine, backend) -> tuple[float, float, float]:
    """One harvest cycle as the scheduler runs it (one transaction), nothing changing:
    seconds before the backend is asked (the transaction begins, the live rows are read),
    asking it (states(): squeue and its parsing), and after (deciding, the commit)."""
    timed = Timed(backend)
    start = time.perf_counter()
    with Session(engine) as db, db.begin():
        changed = harvest(db, {"cluster": timed})["cluster"]
    end = time.perf_counter()
    assert changed == 0, f"{changed} jobs changed in a steady cycle"
    asked, answered = timed.marks
    return asked - start, answered - asked, end - answered


def squeue_alone(env) -> float:
    """squeue's own call, as the backend makes it (from this process, output read)."""
    start = time.perf_counter()
    subprocess.run(["squeue", "-h", "-r", "-t", "all", "-o", SQUEUE_FORMAT], env=env, capture_output=True,
                   text=True, check=True)  # fmt: skip
    return time.perf_counter() - start


def harvest_database(tmp: Path) -> sa.Engine:
    if not HARVEST_DATABASE:
        return database(tmp)
    engine = sa.create_engine(HARVEST_DATABASE)
    upgrade(engine, str(ROOT / "testing.ini"))
    with engine.begin() as conn:
        conn.execute(sa.delete(Job))
        conn.execute(sa.delete(Submission))
    return engine


def bench_harvest(tmp: Path, conf: str, env) -> None:
    d = tmp / "harvest"
    engine = harvest_database(d)
    backend = SlurmBackend(
        "cluster", d / "jobs", slurm_conf=conf, sbatch_options=["--hold"], job_prefix="live"
    )
    ids = record(engine, LIVE)
    with Session(engine) as db, db.begin():
        while submit_pending(db, {"cluster": backend}, array_limit=1000):
            pass
    with Session(engine) as db:
        queued = db.scalar(sa.select(sa.func.count()).where(Job.status == JobStatus.QUEUED))
    listed = len(
        subprocess.run(
            ["squeue", "-h", "-r", "-o", "%i"], env=env, capture_output=True, text=True
        ).stdout.split()
    )
    print(f"(b) harvest with {queued} live jobs in the database ({engine.dialect.name}; {listed} in squeue)")
    calls: list[str] = []
    run = backend._run
    backend._run = lambda argv, **kw: calls.append(argv[0]) or run(argv, **kw)
    start = time.perf_counter()
    with Session(engine) as db, db.begin():
        changed = harvest(db, {"cluster": backend})["cluster"]
    took = time.perf_counter() - start
    print(f"    first cycle (all change to Held):     {took:6.2f} s, {len(calls)} call(s): {' '.join(calls)}; "
          f"{changed} changed")  # fmt: skip
    goal("    first cycle, seconds", took, 2, " s")

    # what a steady cycle sends to the database and loads, observed on the real engine
    statements: list[tuple[str, int]] = []
    loaded: list[Job] = []

    def sent(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement.lstrip().split()[0].upper(), len(parameters) if executemany else 1))

    def load(target, context):
        loaded.append(target)

    calls.clear()
    event.listen(engine, "before_cursor_execute", sent)
    event.listen(Job, "load", load)
    steady_cycle(engine, backend)
    event.remove(engine, "before_cursor_execute", sent)
    event.remove(Job, "load", load)
    kinds = Counter(k for k, _ in statements)
    print(f"    steady cycle: {len(calls)} call(s) ({' '.join(calls)}); statements: "
          f"{', '.join(f'{k} x{n}' for k, n in sorted(kinds.items()))}; {kinds['UPDATE']} UPDATE, "
          f"{len(loaded)} Job objects loaded")  # fmt: skip

    # steady cycles and squeue alone, interleaved, HARVEST_ROUNDS rounds; medians
    backend._run = run
    parts, squeues = [], []
    for _ in range(HARVEST_ROUNDS):
        squeues.append(squeue_alone(env))
        parts.append(steady_cycle(engine, backend))
    cycle = statistics.median(sum(p) for p in parts)
    alone = statistics.median(squeues)
    read, ask, rest = (statistics.median(p[k] for p in parts) for k in range(3))
    print(f"    steady cycle (nothing changes):       {cycle * 1000:6.1f} ms (median of {HARVEST_ROUNDS}, "
          f"min {min(sum(p) for p in parts) * 1000:.1f})")  # fmt: skip
    print(
        f"    squeue alone, interleaved:            {alone * 1000:6.1f} ms (median, min {min(squeues) * 1000:.1f})"
    )
    goal("    steady harvest cycle / squeue (medians)", cycle / alone, 4, "x")
    # the least disturbed of each (the machine's load weighs more on the cycle's CPU work
    # than on squeue, which mostly waits for slurmctld)
    print(f"    (the fastest of each: {min(sum(p) for p in parts) / min(squeues):.2f}x; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")  # fmt: skip
    print(f"    where a steady cycle's time goes (medians): reading the live rows {read * 1000:.1f} ms, "
          f"states() {ask * 1000:.1f} ms (of which squeue about {alone * 1000:.1f}), deciding and the commit "
          f"{rest * 1000:.1f} ms")  # fmt: skip
    if os.environ.get("IJP_BENCH_PROFILE"):  # where a steady cycle's time goes, by function
        profile = cProfile.Profile()
        profile.runcall(steady_cycle, engine, backend)
        pstats.Stats(profile).sort_stats("tottime").print_stats(15)
    assert len(ids) == LIVE
    scancel_all(env)
    engine.dispose()


def main() -> int:
    missing = [c for c in ("slurmctld", "slurmd", "munged", "sbatch") if not shutil.which(c)]
    if missing:
        print(f"SKIPPED: SLURM is not installed (missing {', '.join(missing)}); "
              "apt-get install slurmctld slurmd slurm-client munge")  # fmt: skip
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="ijp-bench-slurm-"))
    script = ROOT / "bin" / "slurm-test-cluster"
    env = {**os.environ, "SLURM_CONF": str(tmp / "cluster" / "slurm.conf")}
    subprocess.run(
        [str(script), "start", str(tmp / "cluster")], check=True, env={**env, "SLURM_MAX_JOBS": "60000"}
    )
    try:
        if "fanout" in PARTS:
            bench_fanout(tmp, env["SLURM_CONF"], env)
        if "harvest" in PARTS:
            bench_harvest(tmp, env["SLURM_CONF"], env)
    finally:
        subprocess.run([str(script), "stop", str(tmp / "cluster")], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

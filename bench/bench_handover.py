"""Benchmarks of issue 10: the local backend's hand-over, and what the sandbox costs.

(a) Start-up of one trivial job (``/bin/true``), one at a time: from ``submit`` to its
    exit recorded on disk, on the local backend with ``sandbox = bwrap`` and with
    ``sandbox = none``, against a plain ``subprocess.run`` loop of the same program.
(b) Hand-over of 300 jobs to the local backend (``max_running = 4``, as development.ini):
    the seconds the caller spends in ``submit`` (what the portal's submitter waits for),
    and until all 300 have run (the queue drains by itself); with each sandbox. Then the
    portal's own submitter: 300 rows Submitting in SQLite handed over by
    ``submit_pending``, committing per chunk as the background task does.

    .venv/bin/python bench/bench_handover.py

``IJP_BENCH_SOURCE=DIR`` runs the same measurements on another source tree of ijpweb
(e.g. ``git archive <commit> ijpweb | tar -x -C DIR``): that is how the "before" figures
in bench/README.md were taken. Such a tree may know no sandbox; only ``none`` is run.
"""

from __future__ import annotations

import inspect
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = os.environ.get("IJP_BENCH_SOURCE")
if SOURCE:  # another tree of ijpweb than the editable install's
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]
    sys.path.insert(0, SOURCE)
else:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from ijpweb.batch import JobSpec  # noqa: E402
from ijpweb.batch.local import LocalBackend  # noqa: E402
from ijpweb.batch.submitter import submit_pending  # noqa: E402
from ijpweb.models import Job, Submission, upgrade  # noqa: E402
from ijpweb.states import JobStatus  # noqa: E402

JOBS = int(os.environ.get("IJP_BENCH_HANDOVER", 300))
STARTS = int(os.environ.get("IJP_BENCH_STARTS", 50))
SANDBOXES = "sandbox" in inspect.signature(LocalBackend).parameters
KINDS = ("bwrap", "none") if SANDBOXES else ("none",)


def python_for_launchers(tmp: Path) -> str:
    """The interpreter the backend starts launchers with; for another tree, one that
    imports that tree's ijpweb (an old launcher ran as ``python -m ijpweb.batch.runner``)."""
    if not SOURCE:
        return sys.executable
    wrapper = tmp / "python"
    wrapper.write_text(
        f'#!/bin/sh\nexec {sys.executable} -c "import runpy, sys; '
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)]; "
        f"sys.path.insert(0, '{SOURCE}'); sys.argv[:] = ['runner', sys.argv[-1]]; "
        "runpy.run_module('ijpweb.batch.runner', run_name='__main__')\" \"$@\"\n"
    )
    wrapper.chmod(0o700)
    return str(wrapper)


def backend(root: Path, kind: str, max_running: int, python: str) -> LocalBackend:
    if not SANDBOXES:
        return LocalBackend("local", root, max_running=max_running, python=python)
    from ijpweb.batch.sandbox import Sandbox

    return LocalBackend("local", root, max_running=max_running, python=python, sandbox=Sandbox(kind=kind))


def trivial(job_id: int) -> JobSpec:
    return JobSpec(job_id, "db/alice", "/bin/true", ())


def wait_for(paths: list[Path], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    for p in paths:
        while not p.exists():
            if time.monotonic() > deadline:
                raise SystemExit(f"{p} did not appear")
            time.sleep(0.0005)


def start_up(tmp: Path, kind: str, python: str) -> list[float]:
    b = backend(tmp / f"start-{kind}", kind, 1, python)
    times = []
    for i in range(1, STARTS + 1):
        start = time.perf_counter()
        b.submit(trivial(i))
        wait_for([b.root / str(i) / "exit.json"])
        times.append(time.perf_counter() - start)
        b.states([str(i)])  # as a harvest would: reaps the launcher
    return times


def plain_loop() -> list[float]:
    times = []
    for _ in range(STARTS):
        start = time.perf_counter()
        subprocess.run(["/bin/true"], check=True)
        times.append(time.perf_counter() - start)
    return times


def hand_over(tmp: Path, kind: str, python: str) -> tuple[float, float]:
    b = backend(tmp / f"handover-{kind}", kind, 4, python)
    start = time.perf_counter()
    for i in range(1, JOBS + 1):
        b.submit(trivial(i))
    submitted = time.perf_counter() - start
    ends = [b.root / str(i) / "exit.json" for i in range(1, JOBS + 1)]
    if SANDBOXES:
        wait_for(ends)  # the launchers start the queue's next jobs themselves
    else:
        while not all(e.exists() for e in ends):  # an old backend starts them when asked
            b.states([str(JOBS)])
            time.sleep(0.01)
    return submitted, time.perf_counter() - start


def database(tmp: Path) -> sa.Engine:
    tmp.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(f"sqlite:///{tmp / 'bench.sqlite'}")
    upgrade(engine, str(ROOT / "testing.ini"), script_location=str(Path(SOURCE or ROOT) / "migrations"))
    return engine


def portal_hand_over(tmp: Path, kind: str, python: str) -> float:
    """The portal's submitter: JOBS rows Submitting, handed over chunk by chunk."""
    engine = database(tmp / f"portal-{kind}")
    b = backend(tmp / f"portal-{kind}" / "jobs", kind, 4, python)
    with Session(engine) as db, db.begin():
        sub = Submission(owner="db/alice", job_type="True", mode="each", executable="/bin/true")
        db.add(sub)
        db.flush()
        rows = [
            {"submission_id": sub.id, "owner": "db/alice", "job_type": "True", "dataset_ids": [i],
             "datafile_ids": [], "options": {}, "argv": [], "backend": "local", "status": JobStatus.SUBMITTING}
            for i in range(JOBS)
        ]  # fmt: skip
        db.execute(sa.insert(Job), rows)
    start = time.perf_counter()
    while True:
        with Session(engine) as db, db.begin():
            if not submit_pending(db, {"local": b}):
                break
    took = time.perf_counter() - start
    with Session(engine) as db:
        left = db.scalar(sa.select(sa.func.count()).where(Job.status == JobStatus.SUBMITTING))
    assert left == 0, f"{left} jobs were not handed over"
    return took


def main() -> int:
    if SANDBOXES and not os.access("/usr/bin/bwrap", os.X_OK):
        print("SKIPPED: bubblewrap is not installed (apt-get install bubblewrap)")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="ijp-bench-handover-"))
    python = python_for_launchers(tmp)
    print(f"source: {SOURCE or ROOT}")
    try:
        print(f"(a) start-up of /bin/true, one job at a time, {STARTS} times: median / p95")
        rows = {"plain subprocess.run": plain_loop()}
        for kind in KINDS:
            rows[f"local backend, sandbox = {kind}"] = start_up(tmp, kind, python)
        for label, times in rows.items():
            times.sort()
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            print(f"    {label:34} {statistics.median(times) * 1000:8.1f} ms / {p95 * 1000:8.1f} ms")
        print(f"(b) hand-over of {JOBS} jobs (max_running 4)")
        for kind in KINDS:
            submitted, done = hand_over(tmp, kind, python)
            print(
                f"    sandbox = {kind:5}  submit calls {submitted:7.2f} s ({submitted / JOBS * 1000:6.1f} ms a job),"
                f" all {JOBS} run {done:7.2f} s"
            )
            took = portal_hand_over(tmp, kind, python)
            print(
                f"    sandbox = {kind:5}  the portal's submitter {took:7.2f} s ({took / JOBS * 1000:6.1f} ms a job)"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

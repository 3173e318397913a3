"""Issue 4, point 5: SLURM's controller restarting mid-run loses nothing. While it is
down the portal shows the jobs Unknown (never an error page, never a guess); when it is
back every job is found again and its outcome recorded."""

import os
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from ijpweb.batch.harvest import harvest
from ijpweb.batch.slurm import SlurmBackend
from ijpweb.batch.submitter import submit_pending
from ijpweb.states import JobStatus

from .test_arrays import record, rows

pytestmark = pytest.mark.once


def cycle(engine, backends):
    with Session(engine) as db, db.begin():
        harvest(db, backends)
    return rows(engine, sorted(_ids))


_ids: list[int] = []


def test_a_controller_restart_mid_run_loses_nothing(slurm_cluster, portal_engine, tmp_path):
    backends = {"cluster": SlurmBackend("cluster", tmp_path / "jobs", slurm_conf=slurm_cluster, timeout=5,
                                        job_prefix=f"outage{tmp_path.name}")}  # fmt: skip
    _ids[:] = record(portal_engine, 4, "sleep 3; echo done $IJP_JOB_ID")
    with Session(portal_engine) as db, db.begin():
        assert submit_pending(db, backends) == 4
    deadline = time.monotonic() + 30
    while not all(j.status == JobStatus.RUNNING for j in cycle(portal_engine, backends)):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    pid = int((Path(slurm_cluster).parent / "slurmctld.pid").read_text())
    os.kill(pid, 15)
    try:
        while Path(f"/proc/{pid}").exists():
            time.sleep(0.1)
        jobs = cycle(portal_engine, backends)
        assert {(j.status, j.reason) for j in jobs} == {(JobStatus.UNKNOWN, "backend cluster did not answer")}
        time.sleep(4)  # the jobs end while the controller is away
    finally:
        subprocess.run(
            ["slurmctld", "-f", slurm_cluster], env={**os.environ, "SLURM_CONF": slurm_cluster}, check=True
        )
    deadline = time.monotonic() + 60
    while True:
        jobs = cycle(portal_engine, backends)
        if not any(j.live for j in jobs):
            break
        assert time.monotonic() < deadline, [(j.status, j.reason) for j in jobs]
        time.sleep(0.5)
    assert [(j.status, j.exit_code) for j in jobs] == [(JobStatus.COMPLETED, 0)] * 4
    backend = backends["cluster"]
    assert [backend.read(j.backend_job_id, "stdout") for j in jobs] == [
        f"done {j.id}\n".encode() for j in jobs
    ]

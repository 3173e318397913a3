"""Point 5 of issue 4: kill the portal (SIGKILL) during a 200-job fan-out to SLURM;
after a restart every job the cluster accepted is in the database exactly once."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from ijpweb.models import Job, Submission
from ijpweb.states import JobStatus

pytestmark = pytest.mark.once
ROOT = Path(__file__).resolve().parents[2]
N = 200
NOW = datetime.now(UTC)


def portal_ini(tmp: Path, slurm_conf: str) -> Path:
    text = (ROOT / "testing.ini").read_text()
    text = text.replace("sqlite:///%(here)s/var/testing.sqlite", f"sqlite:///{tmp / 'portal.sqlite'}")
    text = text.replace("script_location = %(here)s/migrations", f"script_location = {ROOT / 'migrations'}")
    text = text.replace("ijp.scheduler.enabled = false", "ijp.scheduler.enabled = true")
    text = text.replace("listen = 127.0.0.1:6544", "listen = 127.0.0.1:0")
    text = text.replace(
        "ijp.batch.backends = local",
        f"ijp.batch.backends = cluster\nijp.batch.cluster.type = slurm\nijp.batch.cluster.slurm_conf = {slurm_conf}\n"
        f"ijp.batch.cluster.dir = {tmp / 'jobs'}\n"
        "ijp.batch.cluster.arrays = false",  # one sbatch per job: test_arrays.py has the other way
    )
    ini = tmp / "portal.ini"
    ini.write_text(text)
    return ini


def start(ini: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "pserve"), str(ini)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def slurm_names(slurm_conf: str) -> Counter:
    env = {**os.environ, "SLURM_CONF": slurm_conf}
    names = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%j"], capture_output=True, text=True, env=env
    ).stdout
    done = subprocess.run(
        ["sacct", "-c", "-n", "-P", "-o", "JobName"], capture_output=True, text=True, env=env
    ).stdout
    # a job that has left the queue is in the completion log; one still listed may be in both
    queued = Counter(names.split())
    finished = Counter(done.split())
    return Counter({n: max(queued[n], finished[n]) for n in set(queued) | set(finished)})


def test_sigkill_during_fan_out_loses_nothing_and_submits_nothing_twice(slurm_cluster, tmp_path):
    ini = portal_ini(tmp_path, slurm_cluster)
    admin = [sys.executable, "-c", "import sys; from ijpweb.admin import main; sys.exit(main())"]
    subprocess.run([*admin, str(ini), "migrate"], check=True, capture_output=True)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'portal.sqlite'}")
    with engine.begin() as c:  # the click: jobs recorded, Submitting
        sub = c.execute(
            sa.insert(Submission).values(
                owner="db/alice",
                job_type="True",
                mode="each",
                executable="/bin/true",
                interactive=False,
                created_at=sa.func.now(),
            )  # fmt: skip
        ).inserted_primary_key[0]
        c.execute(sa.insert(Job), [
            {"submission_id": sub, "owner": "db/alice", "job_type": "True", "dataset_ids": [], "datafile_ids": [],
             "options": {}, "argv": [], "backend": "cluster", "status": "Submitting", "submitted_at": NOW}
            for _ in range(N)
        ])  # fmt: skip

    def counts():
        with engine.connect() as c:
            return dict(c.execute(sa.select(Job.status, sa.func.count()).group_by(Job.status)).all())

    with engine.connect() as c:
        mine = {f"ijp-{i}" for i in c.execute(sa.select(Job.id)).scalars()}

    def accepted():  # this test's jobs only: the cluster is shared with other tests
        return sum(1 for n in slurm_names(slurm_cluster) if n in mine)

    portal = start(ini, tmp_path / "portal.log")
    deadline = time.monotonic() + 60
    # kill while SLURM holds jobs whose ids the portal has not yet recorded
    while True:
        in_slurm = accepted()
        recorded = N - counts().get(JobStatus.SUBMITTING, N)
        if in_slurm > recorded + 3:
            break
        assert time.monotonic() < deadline, (tmp_path / "portal.log").read_text()[-2000:]
    os.killpg(portal.pid, signal.SIGKILL)
    portal.wait()
    at_kill = counts()
    assert at_kill.get(JobStatus.SUBMITTING, 0) > 0, f"the fan-out ended before the kill: {at_kill}"
    in_slurm_at_kill = accepted()
    recorded = N - at_kill.get(JobStatus.SUBMITTING, 0)
    assert in_slurm_at_kill > recorded, "the kill should leave accepted jobs unrecorded"
    print(f"at the kill: {recorded} recorded, {in_slurm_at_kill} accepted by SLURM")

    portal = start(ini, tmp_path / "portal.log")
    try:
        deadline = time.monotonic() + 120
        while counts().get(JobStatus.SUBMITTING, 0):
            assert time.monotonic() < deadline, (tmp_path / "portal.log").read_text()[-2000:]
            time.sleep(0.2)
    finally:
        os.killpg(portal.pid, signal.SIGTERM)
        portal.wait(timeout=30)
    with engine.connect() as c:
        rows = c.execute(sa.select(Job.id, Job.status, Job.backend_job_id)).all()
    assert len(rows) == N and all(
        status == JobStatus.QUEUED or status in ("Queued", "Running", "Completed") for _, status, _ in rows
    )
    slurm_ids = [b for _, _, b in rows]
    assert (
        None not in slurm_ids and len(set(slurm_ids)) == N
    )  # every job recorded, each with its own SLURM job
    names = slurm_names(slurm_cluster)
    per_job = [names[f"ijp-{job_id}"] for job_id, _, _ in rows]
    assert per_job == [1] * N, Counter(per_job)  # in SLURM exactly once each
    # leave the shared cluster to the tests after this one: 200 jobs, each started in its
    # sandbox, would keep its CPUs busy for a while yet
    subprocess.run(["scancel", *slurm_ids], env={**os.environ, "SLURM_CONF": slurm_cluster}, check=False)

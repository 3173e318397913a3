"""Issue 4, point 6: a fan-out to SLURM goes as one job array (one sbatch call), and a
crash after SLURM accepted the array is recovered, not submitted again."""

import time
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from ijpweb.batch import JobSpec
from ijpweb.batch.harvest import harvest
from ijpweb.batch.slurm import SlurmBackend
from ijpweb.batch.submitter import submit_pending
from ijpweb.models import Job, Submission
from ijpweb.states import JobStatus

pytestmark = pytest.mark.once  # SLURM is the system under test; the database is its own
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cluster(slurm_cluster, tmp_path):
    # its own prefix: the cluster is shared with the other tests
    return SlurmBackend(
        "cluster", tmp_path / "jobs", slurm_conf=slurm_cluster, job_prefix=f"arr{tmp_path.name}"
    )


def record(engine, n, script="echo job $IJP_JOB_ID") -> list[int]:
    """The click: a submission of ``n`` jobs, recorded as Submitting."""
    with Session(engine) as db, db.begin():
        sub = Submission(owner="db/alice", job_type="Shell", mode="each", executable="/bin/sh")
        db.add(sub)
        jobs = [
            Job(submission=sub, owner="db/alice", job_type="Shell", dataset_ids=[i], datafile_ids=[],
                options={}, argv=["-c", script], backend="cluster", status=JobStatus.SUBMITTING)
            for i in range(n)
        ]  # fmt: skip
        db.add_all(jobs)
        db.flush()
        return [j.id for j in jobs]


def counting(backend):
    calls = []
    run = backend._run
    backend._run = lambda argv, **kw: calls.append(argv[0]) or run(argv, **kw)
    return calls


def rows(engine, ids):
    with Session(engine) as db:
        return [db.get(Job, i) for i in ids]


def test_a_fan_out_is_one_job_array(portal_engine, cluster):
    engine = portal_engine
    ids = record(engine, 60)
    calls = counting(cluster)
    with Session(engine) as db, db.begin():
        assert submit_pending(db, {"cluster": cluster}) == 60
    assert calls.count("sbatch") == 1
    jobs = rows(engine, ids)
    (array,) = {j.backend_job_id.partition("_")[0] for j in jobs}
    assert [j.backend_job_id for j in jobs] == [f"{array}_{t}" for t in range(60)]
    assert {j.status for j in jobs} == {JobStatus.QUEUED}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with Session(engine) as db, db.begin():
            harvest(db, {"cluster": cluster})
        if all(not j.live for j in rows(engine, ids)):
            break
        time.sleep(0.3)
    jobs = rows(engine, ids)
    assert [(j.status, j.exit_code) for j in jobs] == [(JobStatus.COMPLETED, 0)] * 60
    assert [cluster.read(j.backend_job_id, "stdout") for j in jobs] == [f"job {i}\n".encode() for i in ids]


def test_an_array_accepted_before_a_crash_is_recovered_not_resubmitted(portal_engine, cluster):
    engine = portal_engine
    ids = record(engine, 30, "sleep 1")
    # the crash: SLURM accepted the array, the portal died before recording its ids
    before = cluster.submit_many([JobSpec(i, "db/alice", "/bin/sh", ("-c", "sleep 1")) for i in ids])
    calls = counting(cluster)
    with Session(engine) as db, db.begin():
        assert submit_pending(db, {"cluster": cluster}) == 30
    assert "sbatch" not in calls
    assert {j.id: j.backend_job_id for j in rows(engine, ids)} == before
    queue = cluster._run(["squeue", "-h", "-r", "-t", "all", "-o", "%i"]).split()
    assert sorted(
        i for i in queue if i.partition("_")[0] == next(iter(before.values())).partition("_")[0]
    ) == sorted(before.values())

"""A bulk cancel or delete on the SLURM backend against a real single-node cluster
(bin/slurm-test-cluster): one ``scancel`` naming every job (each id its own argument,
their length bounded as sacct's lists are), one ``squeue`` to read them back; each job
answered on its own, a controller that does not answer an error for its jobs."""

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from ijpweb.batch import BatchError
from ijpweb.batch.slurm import SlurmBackend
from ijpweb.batch.submitter import submit_pending
from ijpweb.jobs.actions import cancel_jobs, delete_jobs
from ijpweb.models import Job, Submission
from ijpweb.states import JobStatus

from .test_slurm import spec, wait

pytestmark = pytest.mark.once  # the cluster is the system under test, not the database


@pytest.fixture
def held(slurm_cluster, tmp_path):
    return SlurmBackend("slurm", tmp_path / "jobs", slurm_conf=slurm_cluster, sbatch_options=["--hold"])


def commands(backend):
    """The SLURM commands ``backend`` runs from now on, each argv as run."""
    calls = []
    run = backend._exec
    backend._exec = lambda argv: calls.append(argv) or run(argv)
    return calls


def test_one_scancel_for_array_tasks_plain_jobs_and_ended_ones(held, slurm_cluster, tmp_path):
    tasks = list(held.submit_many([spec("true") for _ in range(3)]).values())
    plain = [held.submit(spec("true")) for _ in range(2)]
    quick = SlurmBackend("slurm", held.root, slurm_conf=slurm_cluster)
    ended = quick.submit(spec("true"))
    wait(quick, ended, {JobStatus.COMPLETED})
    ours = [*tasks, *plain, ended]
    calls = commands(held)
    answers = held.cancel_many([*ours, "424242", "1;reboot", tasks[0]])
    assert [c[0] for c in calls] == ["scancel"]
    assert calls[0] == ["scancel", *ours]  # each id its own argument, never a shell
    assert set(answers) == {*ours, "424242", "1;reboot"}
    assert all(answers[i] is None for i in ours)  # (an ended job: nothing to do)
    assert "not one of this portal's" in str(answers["424242"])
    assert "no such SLURM job" in str(answers["1;reboot"])
    states = held.states(ours)
    assert {states[i].status for i in tasks + plain} == {JobStatus.CANCELLED}
    assert states[ended].status == JobStatus.COMPLETED
    # then deleted together: whether they ended is asked once
    running = held.submit(spec("true"))
    calls.clear()
    answers = held.delete_many([*ours, running])
    assert [c[0] for c in calls] in (["squeue"], ["squeue", "sacct"])
    assert all(answers[i] is None for i in ours) and "has not ended" in str(answers[running])
    assert not any((held.root / "by-slurm-id" / i).exists() for i in ours)
    held.cancel(running)


def test_scancels_arguments_are_bounded(held):
    jobs = [held.submit(spec("true")) for _ in range(5)]
    held.sacct_ids_chars = 2 * max(len(j) for j in jobs) + 1  # two ids or so per scancel
    calls = commands(held)
    assert held.cancel_many(jobs) == dict.fromkeys(jobs)
    assert len(calls) >= 2 and [i for c in calls for i in c[1:]] == jobs  # each once, in order
    assert all(len(" ".join(c[1:])) <= held.sacct_ids_chars for c in calls)
    assert {s.status for s in held.states(jobs).values()} == {JobStatus.CANCELLED}


def test_a_dead_controller_fails_its_jobs_and_is_asked_once(tmp_path):
    dead = SlurmBackend("slurm", tmp_path / "jobs", slurm_conf=str(tmp_path / "nowhere.conf"), timeout=3)
    for i in ("1", "2"):
        (dead.root / i).mkdir()
        (dead.root / "by-slurm-id" / i).symlink_to(f"../{i}")
    dead.sacct_ids_chars = 1  # one id per call, had scancel answered
    calls = commands(dead)
    answers = dead.cancel_many(["1", "2"])
    assert len(calls) == 1
    assert all(isinstance(e, BatchError) and str(e).startswith("scancel") for e in answers.values())
    with pytest.raises(BatchError, match="scancel"):
        dead.cancel("1")


def test_a_bulk_cancel_of_a_submission_runs_one_scancel_and_one_squeue(
    slurm_cluster, tmp_path, portal_engine
):
    backend = SlurmBackend(
        "cluster", tmp_path / "jobs", slurm_conf=slurm_cluster, sbatch_options=["--hold"], job_prefix="bulk"
    )
    with Session(portal_engine) as db, db.begin():
        sub = Submission(owner="db/alice", job_type="True", mode="each", executable="/bin/true")
        db.add(sub)
        db.flush()
        db.add_all(
            Job(submission_id=sub.id, owner="db/alice", job_type="True", dataset_ids=[i], datafile_ids=[],
                options={}, argv=[], backend="cluster", status=JobStatus.SUBMITTING)
            for i in range(12)
        )  # fmt: skip
    with Session(portal_engine) as db, db.begin():
        while submit_pending(db, {"cluster": backend}):
            pass
        ids = list(db.scalars(sa.select(Job.id).order_by(Job.id)))
    calls = commands(backend)
    with Session(portal_engine) as db, db.begin():
        outcomes = cancel_jobs(db, {"cluster": backend}, "db/alice", ids)
    assert {o.result for o in outcomes} == {"done"}
    assert [c[0] for c in calls] == ["scancel", "squeue"]
    with Session(portal_engine) as db:
        assert set(db.scalars(sa.select(Job.status))) == {JobStatus.CANCELLED}
    calls.clear()
    with Session(portal_engine) as db, db.begin():
        outcomes = delete_jobs(db, {"cluster": backend}, "db/alice", ids)
    assert {o.result for o in outcomes} == {"done"}
    assert [c[0] for c in calls] == ["squeue"]
    with Session(portal_engine) as db:
        assert db.scalar(sa.select(sa.func.count()).select_from(Job)) == 0

"""Issue 12, point 4: a harvest touches only what changed. The live jobs are read as
plain rows (no Job objects, no tags); a steady cycle writes nothing; the rows that
changed are all written, in one UPDATE, with every rule of a state change kept; a
user's cancel committed while the backend is asked wins.

Statements are counted with SQLAlchemy's event listeners on the real engine (the
database under test), and Job objects with the mapper's load event: observation, not
mocks. The backend is a real implementation of the batch seam whose answers the test
sets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from ijpweb.batch import BatchError, BatchState
from ijpweb.batch.harvest import harvest
from ijpweb.models import Job, JobTag, Submission
from ijpweb.models.jobs import as_utc
from ijpweb.states import JobStatus

from ..conftest import committing_sessions

OWNER = "db/harvest-bob"  # rows of these tests are committed: removed by owner afterwards
N = 120
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


class Answers:
    """A backend whose answers the test sets: ``table`` maps a backend id to its state;
    ``during`` runs inside states() (while the harvest waits for the backend); ``dead``
    makes it fail as a backend that does not answer."""

    def __init__(self, name: str = "harvested"):
        self.name = name
        self.table: dict[str, BatchState] = {}
        self.asked: list[list[str]] = []
        self.during: Callable[[], None] | None = None
        self.dead = False

    def states(self, ids: Sequence[str]) -> dict[str, BatchState]:
        self.asked.append(list(ids))
        if self.during is not None:
            self.during()
        if self.dead:
            raise BatchError("connection refused")
        return {i: self.table[i] for i in ids if i in self.table}


@pytest.fixture
def committed(dbengine):
    with committing_sessions(dbengine, "db/harvest-%") as session:
        yield session


def live_jobs(committed, n: int = N, owner: str = OWNER, backend: str = "harvested") -> dict[str, int]:
    """``n`` committed jobs, Queued on ``backend`` with backend ids ``<owner>-<i>``, each
    with two tags: backend id -> job id."""
    with committed() as db, db.begin():
        sub = Submission(owner=owner, job_type="Sleepcount", mode="each", executable="sleepcount.py")
        jobs = [
            Job(submission=sub, owner=owner, job_type="Sleepcount", backend=backend,
                backend_job_id=f"{owner}-{i}", status=JobStatus.QUEUED, tags=["calib", f"run{i}"])
            for i in range(n)
        ]  # fmt: skip
        db.add_all(jobs)
        db.flush()
        return {j.backend_job_id: j.id for j in jobs}


@contextmanager
def observed(engine):
    """The statements sent to the database (text, number of parameter sets) and the Job
    objects loaded, while inside."""
    statements: list[tuple[str, int]] = []
    loaded: list[Job] = []

    def sent(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, len(parameters) if executemany else 1))

    def load(target, context):
        loaded.append(target)

    event.listen(engine, "before_cursor_execute", sent)
    event.listen(Job, "load", load)
    try:
        yield statements, loaded
    finally:
        event.remove(engine, "before_cursor_execute", sent)
        event.remove(Job, "load", load)


def cycle(committed, backend) -> int:
    with committed() as db, db.begin():
        return harvest(db, {backend.name: backend})[backend.name]


def updates(statements) -> list[tuple[str, int]]:
    return [(s, n) for s, n in statements if s.lstrip().upper().startswith("UPDATE")]


def rows(committed, ids) -> dict[int, Job]:
    with committed() as db:
        return {j.id: j for j in db.scalars(sa.select(Job).where(Job.id.in_(list(ids))))}


def test_a_steady_cycle_reads_plain_rows_and_writes_nothing(committed, dbengine):
    backend = Answers()
    jobs = live_jobs(committed)
    backend.table = {b: BatchState(JobStatus.QUEUED) for b in jobs}
    with observed(dbengine) as (statements, loaded):
        assert cycle(committed, backend) == 0
    assert updates(statements) == []
    assert loaded == []  # no Job object, so no tags loaded either
    assert not [s for s, _ in statements if "job_tag" in s]
    assert len([s for s, _ in statements if "FROM job" in s]) == 1  # one read of the live jobs
    assert sorted(backend.asked[0]) == sorted(jobs)  # one call with every live job


def test_every_changed_row_is_written_in_one_update_and_only_those(committed, dbengine):
    backend = Answers()
    jobs = live_jobs(committed)
    ids = list(jobs)
    running, done, failed = ids[:30], ids[30:40], ids[40:45]
    backend.table = {b: BatchState(JobStatus.QUEUED) for b in ids}
    for i, b in enumerate(running):
        started = T0 + timedelta(minutes=i)
        backend.table[b] = BatchState(
            JobStatus.RUNNING, started_at=started, nodes=1, cores=4, hosts=f"node{i % 3}"
        )
    for b in done:
        backend.table[b] = BatchState(JobStatus.COMPLETED, 0, None, T0, T0 + timedelta(hours=1))
    for b in failed:
        backend.table[b] = BatchState(JobStatus.FAILED, 137, "out of memory", T0, T0 + timedelta(hours=2))
    with observed(dbengine) as (statements, loaded):
        assert cycle(committed, backend) == 45
    assert [n for _, n in updates(statements)] == [45]  # one executemany, one row each
    assert loaded == []
    now = rows(committed, jobs.values())
    for i, b in enumerate(running):
        job = now[jobs[b]]
        assert (job.status, job.nodes, job.cores, job.hosts) == (JobStatus.RUNNING, 1, 4, f"node{i % 3}")
        assert as_utc(job.started_at) == T0 + timedelta(minutes=i)
        assert job.finished_at is None
        assert job.tags == ["calib", f"run{ids.index(b)}"]  # the tags are untouched
    for b in done:
        job = now[jobs[b]]
        assert (job.status, job.exit_code, job.reason) == (JobStatus.COMPLETED, 0, None)
        assert as_utc(job.finished_at) == T0 + timedelta(hours=1)
    for b in failed:
        assert (now[jobs[b]].status, now[jobs[b]].exit_code, now[jobs[b]].reason) == (
            JobStatus.FAILED, 137, "out of memory",
        )  # fmt: skip
    for b in ids[45:]:
        assert (now[jobs[b]].status, now[jobs[b]].started_at) == (JobStatus.QUEUED, None)
    # the same answers again: the ended jobs are no longer asked about, the rest is steady
    with observed(dbengine) as (statements, loaded):
        assert cycle(committed, backend) == 0
    assert updates(statements) == [] and loaded == []
    assert sorted(backend.asked[-1]) == sorted(ids[:30] + ids[45:])


def test_times_are_set_once_and_a_place_is_kept_once_known(committed):
    backend = Answers()
    jobs = live_jobs(committed, n=3)
    a, b, c = jobs
    backend.table = {
        a: BatchState(JobStatus.RUNNING, started_at=T0, nodes=2, cores=8, hosts="node[1-2]"),
        b: BatchState(JobStatus.RUNNING, started_at=T0),
        c: BatchState(JobStatus.QUEUED),
    }
    assert cycle(committed, backend) == 2
    later = T0 + timedelta(hours=3)
    backend.table = {
        # requeued and started again elsewhere: the first start stays; the place follows
        a: BatchState(JobStatus.COMPLETED, 0, None, later, None),  # no place, no end time
        b: BatchState(JobStatus.RUNNING, started_at=later),  # a second start time: not news
        c: BatchState(JobStatus.CANCELLED, None, "cancelled"),
    }
    before = datetime.now(UTC)
    assert cycle(committed, backend) == 2
    now = rows(committed, jobs.values())
    ja, jb, jc = (now[jobs[x]] for x in (a, b, c))
    assert (ja.status, ja.nodes, ja.cores, ja.hosts) == (JobStatus.COMPLETED, 2, 8, "node[1-2]")
    assert as_utc(ja.started_at) == T0
    assert as_utc(ja.finished_at) >= before - timedelta(seconds=1)  # the harvest's time
    assert (jb.status, as_utc(jb.started_at)) == (JobStatus.RUNNING, T0)
    assert (jc.status, jc.reason, jc.started_at) == (JobStatus.CANCELLED, "cancelled", None)
    assert jc.finished_at is not None


def test_unreported_jobs_and_a_dead_backend_make_jobs_unknown_with_the_reason(committed, dbengine):
    backend, other = Answers(), Answers("other")
    jobs = live_jobs(committed, n=4)
    theirs = live_jobs(committed, n=2, owner="db/harvest-carol", backend="other")
    backend.table = {b: BatchState(JobStatus.QUEUED) for b in list(jobs)[:3]}  # the 4th is gone
    other.table = {b: BatchState(JobStatus.QUEUED) for b in theirs}
    other.dead = True
    with committed() as db, db.begin():
        assert harvest(db, {"harvested": backend, "other": other}) == {"harvested": 1, "other": 2}
    now = rows(committed, [*jobs.values(), *theirs.values()])
    gone = now[jobs[list(jobs)[3]]]
    assert (gone.status, gone.reason) == (JobStatus.UNKNOWN, "not reported by the backend")
    assert {(now[i].status, now[i].reason) for i in theirs.values()} == {
        (JobStatus.UNKNOWN, "backend other did not answer")
    }
    # the backend answers again: its jobs follow; still nothing written for the others
    other.dead = False
    with observed(dbengine) as (statements, _), committed() as db, db.begin():
        assert harvest(db, {"harvested": backend, "other": other}) == {"harvested": 0, "other": 2}
    assert [n for _, n in updates(statements)] == [2]
    assert {rows(committed, theirs.values())[i].status for i in theirs.values()} == {JobStatus.QUEUED}


def test_a_cancel_committed_while_the_backend_is_asked_wins(committed):
    """Carol's attack on bob's harvest: her cancel lands between the harvest's read and
    its write. The harvest must neither overwrite it nor count it."""
    backend = Answers()
    jobs = live_jobs(committed, n=3)
    victim = jobs[list(jobs)[1]]
    backend.table = {b: BatchState(JobStatus.RUNNING, started_at=T0) for b in jobs}

    def cancel():
        with committed() as db, db.begin():
            db.execute(
                sa.update(Job).where(Job.id == victim).values(status=JobStatus.CANCELLED, reason="by bob")
            )

    backend.during = cancel
    assert cycle(committed, backend) == 2
    now = rows(committed, jobs.values())
    assert (now[victim].status, now[victim].reason, now[victim].started_at) == (
        JobStatus.CANCELLED,
        "by bob",
        None,
    )
    assert {now[i].status for i in jobs.values() if i != victim} == {JobStatus.RUNNING}


def test_jobs_the_session_holds_show_what_was_written_and_nothing_is_left_to_flush(committed):
    backend = Answers()
    jobs = live_jobs(committed, n=2)
    a, b = jobs
    backend.table = {
        a: BatchState(JobStatus.RUNNING, started_at=T0, nodes=1),
        b: BatchState(JobStatus.QUEUED),
    }
    with committed() as db, db.begin():
        held = db.get(Job, jobs[a])
        assert harvest(db, {"harvested": backend})["harvested"] == 1
        assert (held.status, held.nodes, held.started_at) == (JobStatus.RUNNING, 1, T0)
        assert not db.dirty
    assert rows(committed, [jobs[a]])[jobs[a]].status == JobStatus.RUNNING


def test_jobs_being_submitted_or_without_a_backend_id_are_not_asked_about(committed):
    backend = Answers()
    jobs = live_jobs(committed, n=2)
    first, second = jobs.values()
    with committed() as db, db.begin():
        db.execute(sa.update(Job).where(Job.id == first).values(status=JobStatus.SUBMITTING))
        db.execute(sa.update(Job).where(Job.id == second).values(backend_job_id=None))
    assert cycle(committed, backend) == 0
    assert backend.asked == []
    assert {j.status for j in rows(committed, jobs.values()).values()} == {
        JobStatus.SUBMITTING,
        JobStatus.QUEUED,
    }


def test_tags_survive_a_harvest(committed):
    backend = Answers()
    jobs = live_jobs(committed, n=2)
    backend.table = {b: BatchState(JobStatus.COMPLETED, 0, None, T0, T0) for b in jobs}
    assert cycle(committed, backend) == 2
    with committed() as db:
        tags = db.scalars(
            sa.select(JobTag.tag).where(JobTag.job_id.in_(list(jobs.values()))).order_by(JobTag.tag)
        )
        assert list(tags) == ["calib", "calib", "run0", "run1"]


def test_the_schedulers_harvest_task_writes_no_job_in_a_steady_cycle(app, committed, dbengine):
    """The task as the scheduler runs it (its fence, one transaction, the backends' health
    recorded): in a steady cycle the job table is read once and not written."""
    from ijpweb.models.health import BackendHealth
    from ijpweb.scheduler import Scheduler

    backend = Answers()
    jobs = live_jobs(committed, n=50)
    backend.table = {b: BatchState(JobStatus.QUEUED) for b in jobs}
    s = app.registry["ijp.scheduler"]
    scheduler = Scheduler(s.session_factory, {"harvested": backend}, s.catalog_for, s.settings, dbengine)
    try:
        scheduler.campaign()
        with observed(dbengine) as (statements, loaded):
            scheduler.harvest()
        assert backend.asked, "the harvest task did not run"
        assert [n for st, n in updates(statements) if st.split()[1] == "job"] == []
        assert loaded == []
        first = next(iter(jobs))
        backend.table[first] = BatchState(JobStatus.RUNNING, started_at=T0)
        with observed(dbengine) as (statements, loaded):
            scheduler.harvest()
        assert [n for st, n in updates(statements) if st.split()[1] == "job"] == [1]
        assert rows(committed, [jobs[first]])[jobs[first]].status == JobStatus.RUNNING
    finally:
        scheduler.leaders.close()
        with Session(dbengine) as db, db.begin():
            db.execute(sa.delete(BackendHealth).where(BackendHealth.name == "harvested"))


def test_alike_changes_are_written_a_thousand_rows_per_update(committed, dbengine):
    """A queue of 2,100 pending tasks held at once (one state for all): three UPDATEs by
    id list, not 2,100 rows of parameters; every row written, and a job cancelled while
    the backend was asked is still left alone."""
    backend = Answers()
    jobs = live_jobs(committed, n=2100)
    held = BatchState(JobStatus.HELD, reason="JobHeldUser")
    backend.table = dict.fromkeys(jobs, held)
    victim = jobs[list(jobs)[1500]]

    def cancel():
        with committed() as db, db.begin():
            db.execute(sa.update(Job).where(Job.id == victim).values(status=JobStatus.CANCELLED))

    backend.during = cancel
    with observed(dbengine) as (statements, loaded):
        assert cycle(committed, backend) == 2099
    harvests = [n for st, n in updates(statements) if "coalesce" in st.lower()]  # (not the cancel's)
    assert harvests == [1, 1, 1] and loaded == []
    now = rows(committed, jobs.values())
    assert {(j.status, j.reason) for i, j in now.items() if i != victim} == {(JobStatus.HELD, "JobHeldUser")}
    assert now[victim].status == JobStatus.CANCELLED

"""A cancelled or deleted job never runs afterwards, and no later job takes its id or its
output: the submitter racing the user's cancel and delete, for real. Each side is a
transaction of its own that commits, as a request and the background submitter are
(SQLite serialises their writes; PostgreSQL locks the rows), and the local backend
runs real programs.

The report: carol cancelled and deleted a job while the submitter handed it over; its
program ran on, SQLite gave its id to bob's next job, which showed carol's output as its
own, and the submitter failed with StaleDataError."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from ijpweb.batch.harvest import harvest
from ijpweb.batch.submitter import submit_pending
from ijpweb.jobs.actions import JobActionError, cancel_job, delete_job
from ijpweb.models import Job, Submission
from ijpweb.states import JobStatus

from ..conftest import committing_sessions

OWNER = "db/race-carol"  # rows of these tests are committed: removed by owner afterwards


@pytest.fixture
def committed(dbengine):
    """Sessions that commit, one per request (or submitter cycle)."""
    with committing_sessions(dbengine, "db/race-%") as session:
        yield session


def pending_job(committed, owner: str = OWNER, count: int = 60) -> int:
    """A committed job waiting for the submitter, as a click leaves it."""
    with committed() as db, db.begin():
        sub = Submission(owner=owner, job_type="Sleepcount", mode="single", executable="sleepcount.py")
        job = Job(submission=sub, owner=owner, job_type="Sleepcount", argv=["--count", str(count), "--sleep", "0.2"],
                  backend="local", status=JobStatus.SUBMITTING)  # fmt: skip
        db.add(job)
        db.flush()
        return job.id


class HandOver:
    """The local backend, with the submitter held inside ``submit`` once the job's
    program runs, until the test lets it go on."""

    def __init__(self, backend):
        self.backend = backend
        self.handed, self.resume = threading.Event(), threading.Event()

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def submit(self, spec):
        backend_id = self.backend.submit(spec)
        out = self.backend.root / backend_id / "stdout"
        deadline = time.monotonic() + 30
        while b"Count 1" not in (out.read_bytes() if out.exists() else b""):  # it runs
            assert time.monotonic() < deadline, "the job's program did not start"
            time.sleep(0.05)
        self.handed.set()
        assert self.resume.wait(60)
        return backend_id


def in_background(fn) -> tuple[threading.Thread, list]:
    errors: list = []

    def run():
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def submitter(committed, backends):
    def cycle():
        with committed() as db, db.begin():
            submit_pending(db, backends)

    return cycle


def program_pgid(jobdir: Path) -> int:
    return json.loads((jobdir / "started.json").read_text())["pgid"]


def group_alive(pgid: int) -> list[int]:
    """Processes of the job's process group that still run (zombies do not count)."""
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(entry))
    return alive


def wait_until(predicate, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_cancelled_and_deleted_during_hand_over_it_stops_leaves_nothing_and_its_id_is_never_reused(
    committed, backends
):
    local = backends["local"]
    job_id = pending_job(committed)
    over = HandOver(local)
    thread, errors = in_background(submitter(committed, {"local": over}))
    assert over.handed.wait(60), errors
    jobdir = local.root / str(job_id)
    pgid = program_pgid(jobdir)
    assert group_alive(pgid)  # carol's program runs
    # carol: cancel, then delete, each a request of its own, while the submitter holds the job
    with committed() as db, db.begin():
        cancel_job(db, backends, db.get(Job, job_id))
    with committed() as db, db.begin():
        job = db.get(Job, job_id)
        assert job.status == JobStatus.CANCELLED and job.reason == "cancelled before it was submitted"
        delete_job(db, backends, job)
    over.resume.set()
    thread.join(60)
    assert not thread.is_alive() and errors == []  # no StaleDataError, nothing
    assert not jobdir.exists()  # its directory and output are gone from the backend
    assert wait_until(lambda: not group_alive(pgid)), "the deleted job's program still runs"
    with committed() as db:
        assert db.get(Job, job_id) is None
    # bob's next job: a new id, and nothing of carol's job for it to adopt
    bobs = pending_job(committed, owner="db/race-bob", count=1)
    assert bobs > job_id
    submitter(committed, backends)()
    with committed() as db:
        job = db.get(Job, bobs)
        assert job.status == JobStatus.QUEUED and job.backend_job_id == str(bobs)
    assert wait_until(lambda: local.states([str(bobs)])[str(bobs)].status == JobStatus.COMPLETED)
    assert b"Count 2" not in local.read(str(bobs), "stdout")  # its own output only


def test_cancelled_during_hand_over_it_is_cancelled_on_the_backend_and_delete_removes_it(committed, backends):
    local = backends["local"]
    job_id = pending_job(committed)
    over = HandOver(local)
    thread, errors = in_background(submitter(committed, {"local": over}))
    assert over.handed.wait(60), errors
    pgid = program_pgid(local.root / str(job_id))
    with committed() as db, db.begin():
        cancel_job(db, backends, db.get(Job, job_id))
    over.resume.set()
    thread.join(60)
    assert errors == []
    assert wait_until(lambda: not group_alive(pgid)), "the cancelled job's program still runs"
    with committed() as db, db.begin():
        job = db.get(Job, job_id)
        # still Cancelled, and it keeps the backend's id, so that delete finds its files
        assert job.status == JobStatus.CANCELLED and job.backend_job_id == str(job_id)
        assert local.states([str(job_id)])[str(job_id)].status == JobStatus.CANCELLED
        delete_job(db, backends, job)
    assert not (local.root / str(job_id)).exists()


def test_a_cancel_just_after_the_hand_over_waits_for_it_and_cancels_on_the_backend(committed, backends):
    """The submitter has written the job Queued but not committed yet: the cancel waits
    for that commit (row lock, or SQLite's one writer) and then cancels the job where it
    now is, on the backend; the submitter's write does not undo it."""
    local = backends["local"]
    job_id = pending_job(committed)
    db = committed()
    db.begin()
    assert submit_pending(db, backends) == 1
    thread, errors = in_background(lambda: _cancel(committed, backends, job_id))
    thread.join(0.5)  # let it reach the lock (or not: either order must end the same)
    db.commit()
    thread.join(60)
    assert errors == []
    with committed() as check:
        job = check.get(Job, job_id)
        assert job.status == JobStatus.CANCELLED and job.backend_job_id == str(job_id)
    assert local.states([str(job_id)])[str(job_id)].status == JobStatus.CANCELLED


def _cancel(committed, backends, job_id):
    with committed() as db, db.begin():
        cancel_job(db, backends, db.get(Job, job_id))


def test_a_job_being_submitted_is_not_deleted_before_it_is_cancelled(committed, backends):
    job_id = pending_job(committed)
    with committed() as db, db.begin():
        job = db.get(Job, job_id)
        with pytest.raises(JobActionError, match="cancel it before deleting it"):
            delete_job(db, backends, job)
    with committed() as db:
        assert db.get(Job, job_id).status == JobStatus.SUBMITTING  # nothing changed


class HarvestPaused:
    """The local backend, with the harvester held after it asked for the states (which
    it then writes), until the test lets it go on."""

    def __init__(self, backend):
        self.backend = backend
        self.asked, self.resume = threading.Event(), threading.Event()

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def states(self, ids):
        states = self.backend.states(ids)
        self.asked.set()
        assert self.resume.wait(60)
        return states


def running_job(committed, backends) -> int:
    job_id = pending_job(committed)
    submitter(committed, backends)()
    local = backends["local"]
    assert wait_until(lambda: b"Count 1" in local.read(str(job_id), "stdout"))
    return job_id


def harvester(committed, backends):
    def cycle():
        with committed() as db, db.begin():
            harvest(db, backends)

    return cycle


@pytest.mark.parametrize("delete", [False, True], ids=["cancel", "cancel-and-delete"])
def test_a_cancel_or_delete_during_a_harvest_is_not_undone(committed, backends, delete):
    """The harvester read the job Running and the backend said Running; the user cancels
    (and deletes) before it writes: its write must neither bring the job back to Running
    nor fail on the deleted row (StaleDataError, and the whole cycle lost)."""
    job_id = running_job(committed, backends)
    paused = HarvestPaused(backends["local"])
    thread, errors = in_background(harvester(committed, {"local": paused}))
    assert paused.asked.wait(60), errors
    with committed() as db, db.begin():
        cancel_job(db, backends, db.get(Job, job_id))
    if delete:
        with committed() as db, db.begin():
            delete_job(db, backends, db.get(Job, job_id))
    paused.resume.set()
    thread.join(60)
    assert errors == []
    with committed() as db:
        job = db.get(Job, job_id)
        assert job is None if delete else job.status == JobStatus.CANCELLED

"""What a user does with their jobs: find the ones they may act on (:func:`owned_job`),
list them, follow a submission's progress, read their output, cancel and delete them.

No Pyramid here: it takes a database session, the backends and plain values.
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from ..batch import BatchBackend, BatchError
from ..batch.harvest import write_state
from ..models import Job, JobTag, Submission, utcnow
from ..states import LIVE, TERMINAL, JobStatus


def owned_job(db, user: str, job_id: int, *, staff: bool = False) -> Job | None:
    """The one ownership rule, for every face (the pages and /api/v1 through their route
    factory, /ijp/rest/jm itself): job ``job_id`` if ``user`` may see and act on it, which
    is their own job; any job only when the caller says ``staff=True`` (a staff console,
    never by default). None for another user's job and for no job alike."""
    job = db.get(Job, job_id)
    if job is None or (job.owner != user and not staff):
        return None
    return job


class JobActionError(Exception):
    """A cancel or delete that cannot be done now; the message says why. ``reached``: the
    backend was asked and may have acted (a cancel that got there, whose state could not be
    read back; a delete that may have removed files): not "nothing changed"."""

    def __init__(self, message: str, *, reached: bool = False):
        super().__init__(message)
        self.reached = reached


def list_jobs(
    db,
    owner: str,
    *,
    status: str = "",
    job_type: str = "",
    tag: str = "",
    submission: int | None = None,
    since=None,
    until=None,
    page: int = 1,
    per_page: int = 25,
) -> tuple[list[Job], int]:
    q = sa.select(Job).where(Job.owner == owner)
    if since is not None:
        q = q.where(Job.submitted_at >= since)
    if until is not None:
        q = q.where(Job.submitted_at < until)
    if status == "live":
        q = q.where(Job.status.in_(list(LIVE)))
    elif status:
        q = q.where(Job.status == JobStatus(status))
    if job_type:
        q = q.where(Job.job_type == job_type)
    if tag:
        q = q.where(Job.id.in_(sa.select(JobTag.job_id).where(JobTag.owner == owner, JobTag.tag == tag)))
    if submission is not None:
        q = q.where(Job.submission_id == submission)
    total = db.scalar(sa.select(sa.func.count()).select_from(q.subquery()))
    jobs = db.scalars(q.order_by(Job.id.desc()).offset((page - 1) * per_page).limit(per_page)).all()
    return list(jobs), total


def submission_progress(db, owner: str, submission_id: int) -> dict[str, int] | None:
    """How many of a submission's jobs are still being submitted, for its owner only."""
    rows = db.execute(
        sa.select(Job.status, sa.func.count())
        .join(Submission, Job.submission_id == Submission.id)
        .where(Submission.id == submission_id, Submission.owner == owner)
        .group_by(Job.status)
    ).all()
    if not rows:
        return None
    total = sum(n for _, n in rows)
    waiting = sum(n for s, n in rows if s == JobStatus.SUBMITTING)
    return {"total": total, "submitted": total - waiting}


def read_output(backends: Mapping[str, BatchBackend], job: Job, stream: str, offset: int = 0,
                limit: int = 65536) -> bytes:  # fmt: skip
    """Bytes of a job's stdout or stderr from ``offset`` (none while no backend holds
    it); BatchError when the backend cannot be read now."""
    backend = backends.get(job.backend)
    if backend is None or not job.backend_job_id:
        return b""
    try:
        return backend.read(job.backend_job_id, stream, offset, limit)
    except OSError:
        raise BatchError("the output cannot be read at the moment") from None


CANCELLED_EARLY = "cancelled before it was submitted"


def _update(db, job: Job | None, job_id: int, values: Mapping, *where) -> bool:
    """One UPDATE of job ``job_id`` (if ``where`` holds); the loaded ``job`` shows the new
    values, and has nothing left to flush (a flush of a row deleted meanwhile would fail)."""
    stmt = sa.update(Job).where(Job.id == job_id, *where).values(**values)
    done = db.execute(stmt.execution_options(synchronize_session=False)).rowcount == 1
    if job is not None:
        if done:
            for key, value in values.items():
                set_committed_value(job, key, value)
        else:
            db.expire(job)
    return done


def _reload(db, job: Job) -> bool:
    """Read the job's row again (another request or the submitter may have changed it);
    False if it has been deleted."""
    try:
        db.refresh(job)
    except sa.exc.InvalidRequestError:
        return False
    return True


def cancel_job(db, backends: Mapping[str, BatchBackend], job: Job) -> None:
    """Cancel a live job. One not yet with its backend never gets there (the submitter
    withdraws it if it got there meanwhile); one the submitter has just handed over is
    cancelled on the backend."""
    if job.status == JobStatus.SUBMITTING and job.backend_job_id is None:
        early = {"status": JobStatus.CANCELLED, "reason": CANCELLED_EARLY, "finished_at": utcnow()}
        if _update(db, job, job.id, early, Job.status == JobStatus.SUBMITTING):
            return
        if not _reload(db, job):  # handed over meanwhile, or deleted
            raise JobActionError(f"job {job.id} no longer exists")
    if not job.live:
        raise JobActionError(f"job {job.id} has already ended ({job.status})")
    backend = backends.get(job.backend)
    if backend is None or job.backend_job_id is None:
        raise JobActionError(f"job {job.id} has no backend to cancel it on")
    try:
        backend.cancel(job.backend_job_id)
    except BatchError as e:  # (one that timed out may still have got there)
        raise JobActionError(str(e), reached=True) from None
    try:
        state = backend.states([job.backend_job_id])[job.backend_job_id]
    except (BatchError, KeyError) as e:
        raise JobActionError(
            f"the cancel was sent to {job.backend}, but the job's state could not be read back ({e}); "
            "its status follows when the backend answers again",
            reached=True,
        ) from None
    write_state(db, job, state)


def delete_job(db, backends: Mapping[str, BatchBackend], job: Job) -> None:
    """Delete an ended job: first its directory and output on the backend, then its row
    (and tags). A live job is refused: cancel it first (also one being submitted). The
    row goes only as it was read: if the submitter has just recorded the backend id of a
    job cancelled during its hand-over, that backend job is deleted too."""
    reached = False  # (a backend asked to delete may have removed files, even if it failed)
    for _ in range(3):
        if job.live:
            raise JobActionError(
                f"job {job.id} is {job.status}; cancel it before deleting it", reached=reached
            )
        backend_id = job.backend_job_id
        backend = backends.get(job.backend)
        if backend is not None and backend_id is not None:
            reached = True
            try:
                backend.delete(backend_id)
            except (BatchError, OSError) as e:
                raise JobActionError(
                    f"job {job.id} could not be deleted on {job.backend}: {e}", reached=True
                ) from None
        gone = sa.delete(Job).where(
            Job.id == job.id,
            Job.status.in_(list(TERMINAL)),
            Job.backend_job_id.is_not_distinct_from(backend_id),
        )
        if db.execute(gone.execution_options(synchronize_session=False)).rowcount or not _reload(db, job):
            db.expunge(job)
            return
    raise JobActionError(f"job {job.id} keeps changing; try again", reached=reached)

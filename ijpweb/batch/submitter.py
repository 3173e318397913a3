"""The background submitter: hand the jobs recorded as Submitting (ijpweb.jobs.submission)
to their backends, a chunk at a time, without ever submitting one twice or losing one
(ijpweb.scheduler runs it every second, and at once after a click).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from .. import health, outages
from ..jobs.sessions import forget_sessions
from ..models import Job, utcnow
from ..planning import SESSION_ENV
from ..states import JobStatus
from . import BatchBackend, BatchError, JobBusy, JobSpec

log = logging.getLogger(__name__)


def submit_pending(
    db,
    backends: Mapping[str, BatchBackend],
    limit: int = 25,
    array_limit: int = 1000,
    claim: Claim | None = None,
    desktop=None,
) -> int:
    """Submit jobs still Submitting, oldest first; return how many were settled.

    Each backend is first asked which of them it holds already (a crash after the
    backend accepted a job but before its id was stored): those only get their id
    recorded, so no job is submitted twice and none is lost. A backend with
    ``submit_many`` (SLURM job arrays) takes up to ``array_limit`` jobs of a submission
    in one call; the others take ``limit`` jobs, one call each.

    Nothing is written until every backend call is done (the catalog a remote batch
    server asks may live in this same SQLite database). The user may cancel or delete a
    job while its backend is called: the result is written only to a job still
    Submitting (one UPDATE by id and status each, never a flush of rows read earlier),
    and a job cancelled or deleted meanwhile is withdrawn from the backend
    (:func:`_withdraw`).

    Where several portal processes share the database, ``claim(db, job_ids, limit)``
    (ijpweb.leaders.claim_jobs) gives this transaction the jobs no other process is
    handing over: up to ``limit`` of ``job_ids``, claimed until the transaction ends.

    ``desktop``: the settings' DesktopSettings (``ijp.desktop.*``), from which an
    interactive job's JobSpec.desktop is built (its defaults where None)."""
    settled = _orphans(db, backends)
    waiting = db.execute(
        sa.select(Job.id, Job.backend)
        .where(Job.status == JobStatus.SUBMITTING, Job.backend.in_(_unpaused(db, backends)))
        .order_by(Job.id)
        .limit(CANDIDATES)
    ).all()
    if not waiting:  # the usual case, every second: read, and write nothing
        return settled
    for name in sorted({b for _, b in waiting}):
        backend = backends[name]
        many = backend.submit_many if getattr(backend, "arrays", False) else None
        size = array_limit if many else limit
        candidates = [i for i, b in waiting if b == name]
        claimed = claim(db, candidates, size) if claim is not None else candidates[:size]
        # read after the claim: a job another process settled before it is no longer Submitting
        mine = db.scalars(
            sa.select(Job).where(Job.id.in_(claimed), Job.status == JobStatus.SUBMITTING).order_by(Job.id)
        ).all() if claimed else []  # fmt: skip
        if not mine:
            continue
        # all the backend needs, read now: the rows may be cancelled or deleted meanwhile
        specs = {j.id: job_spec(j, desktop) for j in mine}
        groups = {j.id: j.submission_id for j in mine}
        try:
            held = backend.find(list(specs))
        except BatchError as e:  # the backend is down: try again next time
            outages.failed(f"submit to backend {name}", e)  # (once a minute while it lasts)
            continue
        # job id -> (the backend's id for it, or None and why not)
        outcome: dict[int, tuple[str | None, str]] = {i: (held[i], "") for i in specs if i in held}
        to_submit = [i for i in specs if i not in held]
        if many and len(to_submit) > 1:
            for sub_id in sorted({groups[i] for i in to_submit}):
                group = [i for i in to_submit if groups[i] == sub_id]
                reason = "not accepted by the backend"
                try:
                    ids = many([specs[i] for i in group])
                except JobBusy as e:  # being prepared elsewhere: left Submitting, tried again
                    log.info("jobs %s..%s are left for later: %s", group[0], group[-1], e)
                    continue
                except BatchError as e:
                    ids = {}
                    log.warning("jobs %s..%s could not be submitted: %s", group[0], group[-1], e)
                    reason = f"could not be submitted: {e}"
                outcome.update({i: (ids.get(i), reason) for i in group})
        else:
            # a few at once: the batch system answers each call in milliseconds, and waiting
            # for one before sending the next would make a fan-out slower than a shell loop
            with ThreadPoolExecutor(max_workers=SUBMIT_THREADS, thread_name_prefix="submit") as pool:
                results = list(
                    pool.map(_submit_one, [backend] * len(to_submit), [specs[i] for i in to_submit])
                )
            for i, (backend_id, error) in zip(to_submit, results, strict=True):
                if isinstance(error, JobBusy):  # being prepared elsewhere: left Submitting
                    log.info("job %s is left for later: %s", i, error)
                    continue
                if error is not None:
                    log.warning("job %s could not be submitted: %s", i, error)
                outcome[i] = (backend_id, f"could not be submitted: {error}")
        _record(db, backend, outcome, {j.id: j for j in mine})
        settled += len(outcome)
    if settled:
        forget_sessions(db)
    return settled


SUBMIT_THREADS = 4


def _unpaused(db, backends: Mapping[str, BatchBackend]) -> list[str]:
    """The backends whose waiting jobs are handed over now: a backend staff paused keeps
    its jobs waiting, Submitting, until it is resumed (ijpweb.console says why)."""
    return sorted(set(backends) - health.paused(db))


CANDIDATES = 5000  # waiting jobs looked at per chunk (the oldest), across backends
# claim(db, job_ids, limit) -> the job ids this transaction may hand over
Claim = Callable[[Any, Sequence[int], int], list[int]]
ORPHAN_GRACE = timedelta(minutes=10)


def _orphans(db, backends: Mapping[str, BatchBackend]) -> int:
    """Fail jobs waiting for a backend this portal does not have (removed from the ini),
    once no other portal process sharing the database has taken them for a while. (A
    read first: most of the time there are none, and nothing is written.)"""
    waiting = sa.select(Job.id).where(
        Job.status == JobStatus.SUBMITTING, Job.backend.not_in(list(backends)),
        Job.submitted_at < utcnow() - ORPHAN_GRACE,
    )  # fmt: skip
    ids = list(db.scalars(waiting))
    if ids:
        db.execute(
            sa.update(Job).where(Job.id.in_(ids), Job.status == JobStatus.SUBMITTING)
            .values(status=JobStatus.FAILED, finished_at=utcnow(),
                    reason="its backend is not configured (any more); submit it again")
            .execution_options(synchronize_session=False)
        )  # fmt: skip
    return len(ids)


def _record(db, backend: BatchBackend, outcome: Mapping[int, tuple[str | None, str]],
            rows: Mapping[int, Job]) -> None:  # fmt: skip
    """Write what the backend said to each job that is still Submitting; withdraw the
    others from the backend (the user cancelled or deleted them meanwhile).

    First a read, which takes no lock: the jobs cancelled or deleted before now are
    withdrawn before anything is written (on SQLite a write locks the whole database).
    Then one UPDATE by id and status Submitting for each of the others (one executemany):
    on PostgreSQL it waits for a cancel that has the row and then finds it Cancelled; a
    cancel that comes after it waits for this commit and then finds the job Queued with
    its backend id, and cancels it there. A read then tells which were written."""
    now = utcnow()
    current = dict(db.execute(sa.select(Job.id, Job.status).where(Job.id.in_(list(outcome)))).all())
    written: dict[int, dict] = {}
    for job_id, (backend_id, reason) in outcome.items():
        if current.get(job_id) != JobStatus.SUBMITTING:
            _withdraw(db, backend, job_id, backend_id, rows.get(job_id))
        elif backend_id:
            written[job_id] = {"backend_job_id": backend_id, "status": JobStatus.QUEUED, "reason": None,
                               "finished_at": None}  # fmt: skip
        else:
            written[job_id] = {"backend_job_id": None, "status": JobStatus.FAILED, "reason": reason,
                               "finished_at": now}  # fmt: skip
    if not written:
        return
    t = Job.__table__
    stmt = (
        sa.update(t)
        .where(t.c.id == sa.bindparam("job_id"), t.c.status == JobStatus.SUBMITTING)
        .values({k: sa.bindparam(f"new_{k}") for k in SETTLED})
    )
    params = [{"job_id": i, **{f"new_{k}": v for k, v in values.items()}} for i, values in written.items()]
    db.connection().execute(stmt, params)
    now_held = {
        i: (status, backend_id)
        for i, status, backend_id in db.execute(
            sa.select(t.c.id, t.c.status, t.c.backend_job_id).where(t.c.id.in_(list(written)))
        )
    }
    for job_id, values in written.items():
        job = rows.get(job_id)
        if now_held.get(job_id) == (values["status"], values["backend_job_id"]):
            if job is not None:
                for key, value in values.items():
                    set_committed_value(job, key, value)
        else:  # cancelled or deleted in the meantime after all
            _withdraw(db, backend, job_id, values["backend_job_id"], job)


SETTLED = ("backend_job_id", "status", "reason", "finished_at")


def _withdraw(db, backend: BatchBackend, job_id: int, backend_id: str | None, job: Job | None) -> None:
    """The job was cancelled or deleted while its backend was called: it must not run.
    Cancelled, it is cancelled on the backend too and keeps the backend's id (so that
    deleting it removes its directory there); deleted, it is cancelled and deleted there.
    (Neither, another portal process sharing the database has settled it: left alone.)"""
    if job is not None:
        db.expire(job)
    if not backend_id:
        return
    status = db.scalar(sa.select(Job.status).where(Job.id == job_id))
    if status not in (None, JobStatus.CANCELLED):
        return
    try:
        backend.cancel(backend_id)
    except (BatchError, OSError) as e:
        log.warning("job %s, cancelled while it was submitted, could not be cancelled on %s: %s",
                    job_id, backend.name, e)  # fmt: skip
    if status is not None:
        kept = (
            sa.update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.CANCELLED, Job.backend_job_id.is_(None))
            .values(backend_job_id=backend_id)
        )
        if db.execute(kept.execution_options(synchronize_session=False)).rowcount:
            return
        if db.scalar(sa.select(Job.id).where(Job.id == job_id)) is not None:
            return  # it has a backend id already
    try:  # deleted (before, or just now): nothing of it may stay on the backend
        backend.delete(backend_id)
    except (BatchError, OSError) as e:
        log.warning("job %s, deleted while it was submitted, could not be deleted on %s: %s",
                    job_id, backend.name, e)  # fmt: skip


def _submit_one(backend: BatchBackend, spec: JobSpec) -> tuple[str | None, BatchError | None]:
    try:
        return backend.submit(spec), None
    except BatchError as e:
        return None, e


def job_spec(job: Job, desktop=None) -> JobSpec:
    """What the backend is given for ``job``. An interactive job's ``desktop`` (time limit,
    geometry, ready timeout) comes from its submission's resources (the job type's
    ``<resources time>``, the geometry the run form sent) and ``desktop``, the settings'
    DesktopSettings (``ijp.desktop.time_limit``, ``ready_seconds``; defaults where None)."""
    sub = job.submission
    env = {SESSION_ENV: sub.catalog_session} if sub.catalog_session else {}
    spec_desktop = None
    if sub.interactive:
        if desktop is None:
            from ..settings import DesktopSettings

            desktop = DesktopSettings()
        spec_desktop = desktop.spec(sub.resources or {})
    return JobSpec(
        job.id,
        job.owner,
        sub.executable,
        tuple(job.argv),
        env,
        sub.interactive,
        sub.family,
        dict(sub.resources),
        # a job type with the session flag talks to the catalog: its sandbox keeps the network
        network=bool(env),
        desktop=spec_desktop,
    )

"""Harvesting: ask every backend for the state of all its live jobs, one call per
backend per cycle, and write what changed to the database. Pages and the API read
only the database."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from types import SimpleNamespace

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from ..health import ask
from ..models.catalog import CatalogSession
from ..models.jobs import Job, WebSession, utcnow
from ..states import LIVE, JobStatus
from . import BatchBackend, BatchState

log = logging.getLogger(__name__)


KEPT = ("status", "exit_code", "reason", "started_at", "finished_at", "nodes", "cores", "hosts")


def apply_state(job: Job, state: BatchState) -> bool:
    """Copy ``state`` onto ``job``; return whether anything changed."""
    before = [getattr(job, k) for k in KEPT]
    job.status = state.status
    if state.nodes or state.cores or state.hosts:  # kept once known: a finished job still ran there
        job.nodes, job.cores, job.hosts = state.nodes, state.cores, state.hosts
    job.exit_code = state.exit_code
    job.reason = state.reason
    if state.started_at and not job.started_at:
        job.started_at = state.started_at
    if state.status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
        job.finished_at = job.finished_at or state.finished_at or utcnow()
    return before != [getattr(job, k) for k in KEPT]


def changes(job: Job, state: BatchState) -> dict | None:
    """What ``state`` changes in ``job`` (the KEPT fields), or None; ``job`` is untouched."""
    new = SimpleNamespace(**{k: getattr(job, k) for k in KEPT})
    return {k: getattr(new, k) for k in KEPT} if apply_state(new, state) else None


def write_states(db, changed: Sequence[tuple[Job, dict]]) -> int:
    """Write each job's new values by its id, and only while its status is still the one
    read: a cancel or delete by its user meanwhile wins (a flush would overwrite the
    cancel, or fail with StaleDataError on a row deleted under it). One UPDATE for all
    (executemany), then one read of which rows now hold what was written: those loaded
    jobs show it, with nothing left to flush; the others are read again when next used.
    Returns how many were written."""
    if not changed:
        return 0
    t = Job.__table__
    stmt = (
        sa.update(t)
        .where(t.c.id == sa.bindparam("job_id"), t.c.status == sa.bindparam("was"))
        .values({k: sa.bindparam(f"new_{k}") for k in KEPT})
    )
    db.connection().execute(
        stmt,
        [
            {"job_id": job.id, "was": job.status, **{f"new_{k}": v for k, v in values.items()}}
            for job, values in changed
        ],
    )
    now: dict[int, str] = {}
    ids = [job.id for job, _ in changed]
    for i in range(0, len(ids), 5000):
        now.update(db.execute(sa.select(t.c.id, t.c.status).where(t.c.id.in_(ids[i : i + 5000]))).all())
    written = 0
    for job, values in changed:
        if now.get(job.id) == values["status"]:
            for key, value in values.items():
                set_committed_value(job, key, value)
            written += 1
        else:
            db.expire(job)
    return written


def write_state(db, job: Job, state: BatchState) -> bool:
    """:func:`write_states` for one job; whether it changed."""
    values = changes(job, state)
    return values is not None and write_states(db, [(job, values)]) == 1


def harvest(dbsession, backends: Mapping[str, BatchBackend], checks: dict | None = None) -> dict[str, int]:
    """One cycle. Returns the number of jobs changed per backend. ``checks`` receives, for
    each backend asked about its live jobs, how long it took and whether it answered
    (ijpweb.health.Check; a failure is logged at most once a minute, ijpweb.outages)."""
    changed: dict[str, int] = {}
    for name, backend in backends.items():
        jobs = dbsession.scalars(
            sa.select(Job).where(
                Job.backend == name,
                Job.status.in_([s for s in LIVE if s != JobStatus.SUBMITTING]),
                Job.backend_job_id.is_not(None),
            )
        ).all()
        if not jobs:
            changed[name] = 0
            continue
        check, states = ask(name, backend.states, [j.backend_job_id for j in jobs])
        if checks is not None:
            checks[name] = check
        if states is None:  # a dead backend must not stop the others
            states = {
                j.backend_job_id: BatchState(JobStatus.UNKNOWN, reason=f"backend {name} did not answer")
                for j in jobs
            }
        new = []
        for job in jobs:
            state = states.get(job.backend_job_id)
            if state is None:
                state = BatchState(JobStatus.UNKNOWN, reason="not reported by the backend")
            values = changes(job, state)
            if values is not None:
                new.append((job, values))
        changed[name] = write_states(dbsession, new)
    return changed


def purge_expired_sessions(dbsession) -> int:
    """Forget logins and catalog sessions that have expired."""
    now = utcnow()
    n = dbsession.execute(sa.delete(WebSession).where(WebSession.expires_at < now)).rowcount
    n += dbsession.execute(sa.delete(CatalogSession).where(CatalogSession.expires_at < now)).rowcount
    return n

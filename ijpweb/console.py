"""The operator's console: every user's jobs (cancel, delete), the live logins and API
tokens (revoke), the job type and dataset type file problems, and the audit of every
staff action. For staff only (``ijp.staff``); views/console.py (pages) and
views/admin.py (``/api/v1/admin``) are thin over this.

No Pyramid here: it takes a database session, the backends, the catalog and plain
values. Every action writes its :class:`~ijpweb.models.AuditEntry` into the caller's
transaction, after the action has succeeded: both are committed together, or neither.
Every staff action that may have changed something is audited: one that failed after
the backend was asked (a cancel or delete that may have acted, a node's scontrol) is
audited with its failure, and its views commit that row with their 409.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from . import health, paging
from .batch import BatchBackend, BatchError, slurm
from .catalog import Catalog, CatalogError
from .inputs import InputError, text
from .jobs.actions import (
    JobActionError,
    JobPage,
    KeysetPage,
    cancel_job,
    delete_job,
    job_keyset,
    keyset_page,
    owned_job,
    submitted_between,
)
from .jobs.sessions import end_login
from .models import AuditEntry, Job, WebSession, utcnow
from .states import LIVE, JobStatus

log = logging.getLogger(__name__)

HANDLE_LENGTH = 8


class ConsoleError(Exception):
    """An action that cannot be done: ``code`` and ``status`` (404 nothing there, 409 not
    now) say why, for any face; nothing was changed."""

    def __init__(self, message: str, code: str, status: int):
        super().__init__(message)
        self.code, self.status = code, status


# --- every user's jobs -------------------------------------------------------------------


def when(raw, field: str, *, end_of_day: bool = False) -> datetime | None:
    """An ISO 8601 time (one without a zone is UTC, as the times are stored) or date, as
    an aware UTC datetime; None when absent or empty. A date is its midnight (UTC), or
    with ``end_of_day`` the next midnight, so that "until 2026-11-30" includes that day.
    Anything else raises InputError naming ``field``."""
    if raw is None or not text(raw, field, 64).strip():
        return None
    value = raw.strip()
    try:
        if len(value) == 10:  # YYYY-MM-DD
            day = date.fromisoformat(value)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if end_of_day else start
        moment = datetime.fromisoformat(value)
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):  # (a day near year 1 or 9999 may not move to UTC)
        raise InputError(field, "must be an ISO 8601 date (2026-11-30) or time (2026-11-30T14:00Z)") from None


@dataclass(frozen=True)
class JobFilter:
    """Which jobs: every field empty (or None) means any. ``status`` is a status or
    "live" (not ended); ``since`` and ``until`` bound the submission time (until excluded)."""

    user: str = ""
    status: str = ""
    job_type: str = ""
    backend: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def where(self) -> list:
        conditions = []
        if self.user:
            conditions.append(Job.owner == self.user)
        if self.status == "live":
            conditions.append(Job.status.in_(sorted(LIVE)))
        elif self.status:
            conditions.append(Job.status == JobStatus(self.status))
        if self.job_type:
            conditions.append(Job.job_type == self.job_type)
        if self.backend:
            conditions.append(Job.backend == self.backend)
        return conditions + submitted_between(self.since, self.until)

    def scope(self, actor: str) -> str:
        """The list's scope for its cursors (ijpweb.paging): ``actor``'s (the staff member
        it was given to) with these filters; a cursor of other filters does not verify."""
        filters = {"user": self.user, "status": self.status, "job_type": self.job_type,
                   "backend": self.backend, "since": self.since and self.since.isoformat(),
                   "until": self.until and self.until.isoformat()}  # fmt: skip
        return paging.scope("console.jobs", actor, filters)


def jobs_select(f: JobFilter) -> sa.Select:
    """Every user's jobs that match ``f``, unordered (:func:`jobs` pages it; the plans test reads it)."""
    return sa.select(Job).where(*f.where())


def jobs_page_select(f: JobFilter, direction: str | None, position: int | None, limit: int) -> sa.Select:
    """The statement of a page of :func:`jobs`, ``limit`` + 1 jobs newest first, or older
    or newer than job ``position`` (ijpweb.jobs.actions.job_keyset, as a user's own list:
    filtered by date, in (submitted_at, id) order). The plans test reads it."""
    dated = f.since is not None or f.until is not None
    return job_keyset(jobs_select(f), Job.id, dated, direction, position, limit)


def jobs_count_select(f: JobFilter) -> sa.Select:
    """How many jobs match ``f``, counting at most paging.COUNT_CAP + 1 of them (the plans test reads it)."""
    return paging.bounded_count_select(jobs_select(f).with_only_columns(Job.id))


def jobs(db, cursors: paging.Cursors, actor: str, f: JobFilter, cursor: str | None = None,
         per_page: int = 50, *, count: bool = True) -> JobPage:  # fmt: skip
    """Every user's jobs that match ``f``, newest first: the page ``cursor`` (a cursor
    this list gave ``actor``, ijpweb.jobs.actions.keyset_page: another list's or a
    changed one is an InputError naming ``cursor``) points to, and their count up to
    paging.COUNT_CAP. Costs what it shows, as a user's own list does."""
    per_page = max(1, min(per_page, paging.MAX_PER_PAGE))
    page = keyset_page(db, cursors, f.scope(actor), cursor, per_page,
                       lambda d, p, n: jobs_page_select(f, d, p, n))  # fmt: skip
    total = paging.counted(db.scalar(jobs_count_select(f)) or 0) if count else None
    return JobPage(page.rows, total, page.newer, page.older, per_page, page.first)


def live_counts(db) -> dict[str, int]:
    """How many jobs are in each live status now (from the status index: the ended
    jobs, however many, are not read)."""
    rows = db.execute(
        sa.select(Job.status, sa.func.count()).where(Job.status.in_(sorted(LIVE))).group_by(Job.status)
    ).all()
    found = {JobStatus(s).value: n for s, n in rows}
    return {s.value: found.get(s.value, 0) for s in JobStatus if s in LIVE}


def find_job(db, actor: str, job_id: int) -> Job:
    """Any user's job, for staff (the one ownership rule, with staff=True), or ConsoleError 404."""
    job = owned_job(db, actor, job_id, staff=True)
    if job is None:
        raise ConsoleError(f"there is no job {job_id}", "not_found", 404)
    return job


def cancel(db, backends: Mapping[str, BatchBackend], actor: str, job: Job) -> None:
    """Cancel any user's live job as staff (the same core action as the owner's cancel).
    JobActionError when it cannot be done now: refused before the backend was asked,
    nothing changed and nothing is audited; once the backend was asked (it may have
    stopped the job: a cancel sent whose state could not be read back, a cancel that timed
    out) the attempt is audited with what went wrong, and the caller must commit it."""
    job_id, owner, before, what = job.id, job.owner, job.status, job.job_type
    try:
        cancel_job(db, backends, job)
    except JobActionError as e:
        if e.reached:
            record(
                db, actor, "job.cancel", f"job {job_id}", f"{what} of {owner}: {before}, not confirmed: {e}"
            )
        raise
    record(db, actor, "job.cancel", f"job {job_id}", f"{what} of {owner}: {before} -> {job.status}")


def delete(db, backends: Mapping[str, BatchBackend], actor: str, job: Job) -> None:
    """Delete any user's ended job and its files as staff (the owner's delete); audited,
    also when it failed after the backend was asked (files may be gone), as cancel is."""
    job_id, what = job.id, f"{job.job_type} of {job.owner}, {job.status}"
    try:
        delete_job(db, backends, job)
    except JobActionError as e:
        if e.reached:
            record(db, actor, "job.delete", f"job {job_id}", f"{what}, not confirmed: {e}")
        raise
    record(db, actor, "job.delete", f"job {job_id}", what)


# --- logins and API tokens ----------------------------------------------------------------


def handle(web_session_id: str) -> str:
    """A short, non-secret name of a login or API token: the first hex digits of the
    SHA-256 of what is stored for it. (The stored id of a web login is the secret its
    cookie carries; an API token's is the token's SHA-256. Neither is ever shown.)"""
    return hashlib.sha256(web_session_id.encode()).hexdigest()[:HANDLE_LENGTH]


@dataclass(frozen=True)
class Login:
    handle: str
    user: str
    kind: str  # web | api
    created_at: datetime
    expires_at: datetime


def logins(
    db, *, user: str = "", kind: str = "", page: int = 1, per_page: int = 100
) -> tuple[list[Login], int]:
    """The live logins (kind web) and API tokens (kind api), by user, newest first; and
    how many there are. (Expired ones are purged by the harvester: the table is small.)"""
    q = sa.select(WebSession).where(WebSession.expires_at > utcnow())
    if user:
        q = q.where(WebSession.user_name == user)
    if kind:
        q = q.where(WebSession.kind == kind)
    total = db.scalar(sa.select(sa.func.count()).select_from(q.subquery()))
    rows = db.scalars(
        q.order_by(WebSession.user_name, WebSession.created_at.desc(), WebSession.id)
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    return [Login(handle(ws.id), ws.user_name, ws.kind, ws.created_at, ws.expires_at) for ws in rows], total


@dataclass(frozen=True)
class Revoked:
    logins: int  # logins and tokens revoked
    waiting: int  # of their catalog sessions, those kept for live jobs until they end


def revoke(db, catalog: Catalog, actor: str, user: str, login_handle: str = "") -> Revoked:
    """Revoke one of ``user``'s logins or API tokens (by its handle), or all of them: each
    ends at once. Their catalog sessions follow the logout rules (ijpweb.jobs.end_login):
    logged out of the catalog now, or, while live jobs of the user use one, once the last
    of them has ended, so revoking a login does not kill its jobs (cancel those to stop
    them). ConsoleError 404 when there is nothing to revoke; nothing changed then."""
    found = list(db.scalars(sa.select(WebSession).where(WebSession.user_name == user)))
    if login_handle:
        found = [ws for ws in found if handle(ws.id) == login_handle]
        if len(found) > 1:  # two of one user's 32-bit handles alike: refuse rather than guess
            raise ConsoleError(
                f"{len(found)} logins of {user} have the handle {login_handle}; revoke all of them instead",
                "ambiguous",
                409,
            )
    if not found:
        what = f"no login or API token {login_handle}" if login_handle else "no login or API token"
        raise ConsoleError(f"{user} has {what}", "not_found", 404)
    kinds = sorted(ws.kind for ws in found)
    sessions = sorted({ws.catalog_session for ws in found})
    for ws in found:
        db.delete(ws)
    db.flush()
    waiting = 0
    for sid in sessions:
        try:
            waiting += end_login(db, catalog, sid)
        except CatalogError as e:  # revoked all the same (the session id is a credential: not logged)
            log.warning("a revoked login's catalog session could not be logged out: %s", type(e).__name__)
    counts = ", ".join(f"{kinds.count(k)} {k}" for k in sorted(set(kinds)))
    detail = f"{counts}; {waiting} catalog session(s) kept until their live jobs end" if waiting else counts
    if login_handle:
        record(db, actor, "login.revoke", f"{user} {login_handle}", detail)
    else:
        record(db, actor, "login.revoke_all", user, detail)
    return Revoked(len(found), waiting)


# --- job type and dataset type files -------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    kind: str  # job type | dataset type
    file: str
    line: int | None
    reason: str


def problems(jobtypes, datasettypes) -> list[Problem]:
    """What did not load from jobtypes/ and datasettypes/, with file, line and reason."""
    return [Problem("job type", p.file, p.line, p.reason) for p in jobtypes.problems] + [
        Problem("dataset type", p.file, p.line, p.reason) for p in datasettypes.problems
    ]


# --- backends ------------------------------------------------------------------------------
#
# Pausing a backend: no new submission is given to it (ijpweb.jobs.submission skips it
# when choosing one; with every backend paused a submission is refused, 503 no_backend,
# saying so). Jobs already recorded for it and not yet handed over wait, Submitting, until
# it is resumed (ijpweb.batch.submitter skips it; their owner may cancel them): choosing
# another backend for them would change what their owner asked estimates of, and a
# submission's jobs stay together. Jobs on it continue, and it is harvested as before.


def backends(db, configured: Mapping[str, BatchBackend]) -> list[health.Backend]:
    """Every backend with its health, pause, live jobs, failures in the last hour and backlog."""
    return health.backends(db, configured)


def _backend(configured: Mapping[str, BatchBackend], name: str) -> BatchBackend:
    backend = configured.get(name)
    if backend is None:
        raise ConsoleError(f"there is no backend {name!r}", "not_found", 404)
    return backend


def pause(db, configured: Mapping[str, BatchBackend], actor: str, name: str) -> None:
    """Pause a backend (see above); ConsoleError 409 if it is paused already."""
    _backend(configured, name)
    if not health.set_paused(db, name, actor):
        raise ConsoleError(f"backend {name} is paused already", "conflict", 409)
    waiting = db.scalar(
        sa.select(sa.func.count()).where(Job.backend == name, Job.status == JobStatus.SUBMITTING)
    )
    record(
        db,
        actor,
        "backend.pause",
        f"backend {name}",
        f"{waiting} job(s) recorded for it wait until it is resumed",
    )


def resume(db, configured: Mapping[str, BatchBackend], actor: str, name: str) -> None:
    """Resume a paused backend; ConsoleError 409 if it is not paused."""
    _backend(configured, name)
    if not health.set_paused(db, name, None):
        raise ConsoleError(f"backend {name} is not paused", "conflict", 409)
    record(db, actor, "backend.resume", f"backend {name}")


NODE_VERBS = ("drain", "resume")


def node_action(db, configured: Mapping[str, BatchBackend], actor: str, name: str, node: str, verb: str,
                reason: str = "") -> list:  # fmt: skip
    """Drain (with ``reason``) or resume a node of a SLURM backend through ``scontrol``,
    as the portal's account (SLURM decides whether it may: a refusal is ConsoleError 409
    with SLURM's words). The node must be one sinfo lists now; its new state is recorded
    at once. Returns the nodes as listed after it. InputError names a bad reason."""
    backend = _backend(configured, name)
    if not hasattr(backend, "drain"):
        raise ConsoleError(f"backend {name} has no nodes to manage (not SLURM)", "not_found", 404)
    try:
        node = slurm.node_name(node)
    except ValueError:
        raise ConsoleError(f"backend {name} has no node {node[:70]!r}", "not_found", 404) from None
    if verb == "drain":
        try:
            reason = slurm.drain_reason(reason)
        except ValueError as e:
            raise InputError("reason", str(e)) from None
    try:
        listed = backend.nodes()
    except BatchError as e:  # (nothing asked of the node yet: nothing to audit)
        raise ConsoleError(f"SLURM refused to {verb} {node}: {e}", "refused", 409) from None
    if node not in {n.name for n in listed}:
        raise ConsoleError(f"backend {name} has no node {node!r}", "not_found", 404)
    try:
        if verb == "drain":
            backend.drain(node, reason)
        else:
            backend.resume(node)
    except BatchError as e:  # refused, or no answer in time (then it may have been done): audited
        detail = f"{reason} (not done, or not confirmed: {e})".lstrip()
        record(db, actor, f"node.{verb}", f"node {node} of backend {name}", detail)
        raise ConsoleError(f"SLURM refused to {verb} {node}: {e}", "refused", 409) from None
    try:
        listed = backend.nodes()
    except BatchError as e:  # done, but not listed again: the next harvest will
        log.warning("backend %s: nodes not listed after %s of %s: %s", name, verb, node, e)
    health.record_nodes(db, name, listed)
    record(db, actor, f"node.{verb}", f"node {node} of backend {name}", reason)
    return listed


# --- the audit ------------------------------------------------------------------------------


def record(db, actor: str, action: str, target: str, detail: str = "") -> AuditEntry:
    """One audit row, in the caller's transaction (committed with the action or not at all)."""
    entry = AuditEntry(actor=actor, action=action, target=target[:300], detail=detail[:1000], at=utcnow())
    db.add(entry)
    db.flush()
    return entry


def audit_scope(actor: str) -> str:
    """The audit's scope for its cursors: it has no filters, and is ``actor``'s."""
    return paging.scope("console.audit", actor, {})


def audit_page_select(direction: str | None, position: int | None, limit: int) -> sa.Select:
    """A page of the audit, newest first, by id (job_keyset, as the job lists)."""
    return job_keyset(sa.select(AuditEntry), AuditEntry.id, False, direction, position, limit)


def audit(db, cursors: paging.Cursors, actor: str, cursor: str | None = None, per_page: int = 50,
          *, count: bool = True) -> tuple[KeysetPage, paging.Count | None]:  # fmt: skip
    """A page of the audit, newest first (the page ``cursor`` points to, as :func:`jobs`),
    and how many entries there are, up to paging.COUNT_CAP."""
    per_page = max(1, min(per_page, paging.MAX_PER_PAGE))
    page = keyset_page(db, cursors, audit_scope(actor), cursor, per_page, audit_page_select)
    if not count:
        return page, None
    return page, paging.bounded_count(db.execute, sa.select(AuditEntry.id))

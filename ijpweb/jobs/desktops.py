"""Interactive jobs' desktops (issue 14), as every face uses them: the limits a submission
must keep (``ijp.desktop.max_per_user`` and each backend's ``max_interactive``), the
websocket's token (minted when the owner opens the desktop), ending a session (End
session, and the idle timeout), and what a page says of a desktop.

No Pyramid here: it takes a database session, the backends and the settings. The
harvest (ijpweb.batch.harvest) keeps the Desktop rows in step with the jobs.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from ..batch import BatchBackend, BatchError
from ..desktop.proxy import CHECK_SECONDS
from ..models import Job, Submission
from ..models.desktops import Desktop, DesktopToken
from ..models.jobs import as_utc, utcnow
from ..states import LIVE, JobStatus

log = logging.getLogger(__name__)

LIVE_DESKTOP = ("starting", "ready")
TOKEN_HOURS = 12  # the longest a desktop token lasts (less when the login ends sooner)
TOKENS_PER_LOGIN = 20  # tokens one login keeps for one job (a page load each); older ones go
ENDED_BY_USER = "ended by the user"
# A proxy refreshes viewer_seen_at every CHECK_SECONDS for each viewer it serves: a count
# above zero whose viewer_seen_at is older than this was left by a proxy that died with
# viewers connected (SIGKILL, a crash, a restart of the portal), and counts as no viewer.
STALE_VIEWERS = timedelta(seconds=2 * CHECK_SECONDS + 30)
# The portal's own backstops for what a session's supervisor keeps (which runs in the
# job's sandbox, and which the job can stop): a desktop still starting this long after its
# ready timeout, or still ready this long after its time limit, is ended by the harvest.
READY_MARGIN = timedelta(seconds=30)
LIMIT_GRACE = timedelta(seconds=60)


class LimitError(Exception):
    """A submission would run more desktop sessions than allowed: nothing was created."""


class DesktopError(Exception):
    """A desktop cannot be opened or ended; ``status`` is the HTTP status a face answers."""

    def __init__(self, message: str, code: str, status: int = 409):
        super().__init__(message)
        self.code, self.status = code, status


def _sessions(n: int) -> str:
    return f"{n} desktop session{'s' if n != 1 else ''}"


def live_desktops(db, *, owner: str | None = None, backend: str | None = None) -> int:
    """Interactive jobs that are live (their desktop starting or ready), of one owner or
    on one backend."""
    q = (
        sa.select(sa.func.count())
        .select_from(Desktop)
        .join(Job, Job.id == Desktop.job_id)
        .where(Desktop.state.in_(LIVE_DESKTOP), Job.status.in_(list(LIVE)))
    )
    if owner is not None:
        q = q.where(Job.owner == owner)
    if backend is not None:
        q = q.where(Job.backend == backend)
    return db.scalar(q) or 0


def check_limits(db, limits, owner: str, backend: str | None, adding: int = 1) -> None:
    """LimitError naming the limit when ``adding`` more sessions of ``owner`` on
    ``backend`` would pass ``limits.max_per_user`` (0: none) or the backend's
    ``max_interactive`` (not asked when ``backend`` is None); ``limits`` is the
    settings' DesktopSettings."""
    most = limits.max_per_user
    if most:
        have = live_desktops(db, owner=owner)
        if have + adding > most:
            raise LimitError(
                f"You have {_sessions(have)} running, the most allowed (ijp.desktop.max_per_user = {most}): "
                "end one first"
                if adding == 1
                else f"You have {_sessions(have)} running and ask for {adding} more; the most allowed is {most} "
                "(ijp.desktop.max_per_user): end some first"
            )
    if backend is None:
        return
    most = limits.max_interactive.get(backend, 4)
    have = live_desktops(db, backend=backend)
    if have + adding > most:
        raise LimitError(
            f"The {backend} backend runs {_sessions(have)}, the most it allows "
            f"(ijp.batch.{backend}.max_interactive = {most}): end one or try again later"
        )


def _lock_key(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\0".join(parts).encode()).digest()[:4], "big", signed=True)


LOCK_CLASS = _lock_key("ijpweb", "desktop-limits")  # pg_advisory_xact_lock(int, int)'s first key


def serialize(db, owner: str, backend: str | None) -> None:
    """Take, for the rest of this transaction, the locks that make :func:`check_limits`
    and the rows the submission then adds one step: two simultaneous submissions of
    ``owner`` (or onto ``backend``) would both count the sessions before either had
    added its own, and pass the limit together. PostgreSQL: a transaction-level advisory
    lock on the owner, then one on the backend (always in that order); SQLite: its write
    lock, taken by a write that changes nothing (a count after it sees every committed
    submission, and none commits before this one ends)."""
    if db.get_bind().dialect.name == "postgresql":
        keys = [_lock_key("owner", owner)] + ([_lock_key("backend", backend)] if backend is not None else [])
        for key in keys:
            db.execute(sa.text("SELECT pg_advisory_xact_lock(:cls, :key)"), {"cls": LOCK_CLASS, "key": key})
    else:
        db.execute(sa.update(Desktop.__table__).where(sa.false()).values(viewers=Desktop.viewers))


def create_desktops(db, job_ids: Iterable[int]) -> None:
    """A Desktop row, "starting", for each new interactive job."""
    for job_id in job_ids:
        db.add(Desktop(job_id=job_id, state="starting"))


def desktops_of(db, job_ids: Iterable[int]) -> dict[int, Desktop]:
    """The Desktop rows of these jobs (the interactive ones among them), in one query."""
    ids = list(dict.fromkeys(job_ids))
    if not ids:
        return {}
    return {d.job_id: d for d in db.scalars(sa.select(Desktop).where(Desktop.job_id.in_(ids)))}


def desktop_states(db, jobs) -> dict[int, str]:
    """What a list shows of the live interactive jobs among ``jobs``: starting, ready or
    ending, by job id (one query; none when no job is live)."""
    found = desktops_of(db, [j.id for j in jobs if j.live])
    return {i: "ending" if d.ended_reason else d.state for i, d in found.items() if d.state in LIVE_DESKTOP}


# --- the websocket's token ----------------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def mint_token(
    db, job: Job, web_session_id: str, login_expires_at: datetime, origin: str, now: datetime | None = None
):
    """A fresh token for ``job``'s desktop and this login (its owner's), for websockets from
    ``origin`` only (the viewer page's: ``ijpweb.desktop.tokens.origin_of``): returned once, to
    go into the cookie; only its SHA-256 is stored. Returns (token, expires_at). The
    login's older tokens for the job beyond :data:`TOKENS_PER_LOGIN` go."""
    now = now or utcnow()
    expires = min(as_utc(login_expires_at), now + timedelta(hours=TOKEN_HOURS))
    token = secrets.token_urlsafe(32)
    db.execute(sa.delete(DesktopToken.__table__).where(DesktopToken.expires_at <= now))
    kept = (
        sa.select(DesktopToken.token_hash)
        .where(DesktopToken.job_id == job.id, DesktopToken.web_session_id == web_session_id)
        .order_by(DesktopToken.created_at.desc())
        .limit(TOKENS_PER_LOGIN - 1)
    )
    old = db.scalars(
        sa.select(DesktopToken.token_hash).where(
            DesktopToken.job_id == job.id,
            DesktopToken.web_session_id == web_session_id,
            DesktopToken.token_hash.not_in(kept),
        )
    ).all()
    if old:
        db.execute(sa.delete(DesktopToken.__table__).where(DesktopToken.token_hash.in_(old)))
    db.add(
        DesktopToken(
            token_hash=token_hash(token), job_id=job.id, web_session_id=web_session_id, owner=job.owner,
            origin=origin, created_at=now, expires_at=expires,
        )
    )  # fmt: skip
    db.flush()
    return token, expires


def forget_tokens(db, *, job_ids: Iterable[int] = (), web_session_ids: Iterable[str] = ()) -> int:
    """Delete the desktop tokens of these jobs (they ended) or of these logins (they
    ended); returns how many."""
    n = 0
    jobs, logins = list(job_ids), list(web_session_ids)
    for column, values in ((DesktopToken.job_id, jobs), (DesktopToken.web_session_id, logins)):
        for i in range(0, len(values), 1000):
            n += (
                db.execute(sa.delete(DesktopToken.__table__).where(column.in_(values[i : i + 1000]))).rowcount
                or 0
            )
    return n


# --- opening and ending ---------------------------------------------------------------------------


def openable(job: Job, desktop: Desktop | None) -> None:
    """DesktopError saying why ``job``'s desktop cannot be opened now (its owner asks;
    another user's job is the caller's 404 before this): a batch job, an ended session, one
    that is ending. A desktop still starting is no error: the caller shows a waiting page."""
    if desktop is None:
        raise DesktopError(f"job {job.id} is a batch job: it has no desktop", "not_interactive", 404)
    if desktop.state == "ended" or not job.live:
        why = f" ({desktop.ended_reason})" if desktop.ended_reason else ""
        raise DesktopError(f"the desktop of job {job.id} has ended{why}", "ended", 410)
    if desktop.ended_reason:
        raise DesktopError(f"the desktop of job {job.id} is ending ({desktop.ended_reason})", "ending", 409)


def end_session(db, backends: Mapping[str, BatchBackend], job: Job, desktop: Desktop | None,
                reason: str = ENDED_BY_USER) -> None:  # fmt: skip
    """End ``job``'s session (End session): its backend writes end.json and stops the
    job; the harvest then sees it Completed with ``reason``. A job not yet with its
    backend is cancelled instead. DesktopError saying why not."""
    from .actions import JobActionError, cancel_job

    if desktop is None:
        raise DesktopError(
            f"job {job.id} is a batch job: it has no desktop session to end", "not_interactive", 404
        )
    if not job.live or desktop.state == "ended":
        raise DesktopError(f"the desktop of job {job.id} has already ended", "ended", 409)
    if desktop.ended_reason:
        return  # ending already (a second click): nothing more to do
    if job.backend_job_id is None:
        try:
            cancel_job(db, backends, job)
        except JobActionError as e:
            raise DesktopError(str(e), "not_ended") from None
        desktop.state, desktop.ended_reason = "ended", reason
        forget_tokens(db, job_ids=[job.id])
        return
    backend = backends.get(job.backend)
    if backend is None:
        raise DesktopError(f"job {job.id}'s backend {job.backend} is no longer configured", "no_backend", 503)
    try:
        error = _end(backend, [job.backend_job_id], reason).get(job.backend_job_id)
    except BatchError as e:
        error = e
    if error is not None:
        raise DesktopError(f"the session of job {job.id} could not be ended: {error}", "not_ended", 503)
    desktop.ended_reason = reason  # "Ending…" until the harvest sees the job end
    db.flush()


def _end(backend: BatchBackend, ids: list[str], reason: str, failed: bool = False) -> dict:
    end = getattr(backend, "end_sessions", None)
    if end is None:
        raise BatchError("this backend runs no desktop sessions")
    if failed and "failed" in inspect.signature(end).parameters:
        return end(ids, reason, failed=True)  # the job ends FAILED with ``reason``
    return end(ids, reason)


def idle_reason(minutes: float) -> str:
    return f"no viewer for {minutes:g} minutes"


def end_idle(db, backends: Mapping[str, BatchBackend], limits, now: datetime | None = None) -> int:
    """The idle timeout: end the ready desktops that no one has viewed for
    ``limits.idle_minutes`` (none connected, and the last viewer gone, or the desktop
    ready, that long ago), each backend asked once; returns how many were ended."""
    if not limits.idle_minutes:
        return 0
    now = now or utcnow()
    cutoff = now - timedelta(minutes=limits.idle_minutes)
    rows = db.execute(
        sa.select(Desktop.job_id, Job.backend, Job.backend_job_id)
        .join(Job, Job.id == Desktop.job_id)
        .where(
            Desktop.state == "ready",
            # no viewer: none counted, or a count no proxy has refreshed (STALE_VIEWERS)
            sa.or_(Desktop.viewers <= 0, Desktop.viewer_seen_at < now - STALE_VIEWERS),
            Desktop.ended_reason.is_(None),
            sa.func.coalesce(Desktop.viewer_seen_at, Desktop.ready_at) < cutoff,
            Job.backend_job_id.is_not(None),
        )
    ).all()
    return _end_rows(db, backends, rows, lambda _: idle_reason(limits.idle_minutes), "idle")


def _end_rows(
    db, backends: Mapping[str, BatchBackend], rows, reason_of, what: str, failed: bool = False
) -> int:
    """End the sessions of ``rows`` ((job id, backend, backend job id), ...), each backend
    asked once per reason (``reason_of(job_id)``), and set their ended_reason; how many."""
    by_backend: dict[tuple[str, str], dict[str, int]] = {}
    for job_id, name, backend_job_id in rows:
        by_backend.setdefault((name, reason_of(job_id)), {})[backend_job_id] = job_id
    ended: dict[str, list[int]] = {}
    for (name, reason), jobs in by_backend.items():
        backend = backends.get(name)
        if backend is None:
            continue
        try:
            errors = _end(backend, list(jobs), reason, failed)
        except BatchError as e:
            log.warning("backend %s: %s desktops not ended: %s", name, what, e)
            continue
        for backend_job_id, job_id in jobs.items():
            error = errors.get(backend_job_id)
            if error is None:
                ended.setdefault(reason, []).append(job_id)
            else:
                log.warning("job %s: its %s desktop was not ended: %s", job_id, what, error)
    done = [i for ids in ended.values() for i in ids]
    for reason, ids in ended.items():
        db.execute(
            sa.update(Desktop.__table__)
            .where(Desktop.job_id.in_(ids), Desktop.ended_reason.is_(None))
            .values(ended_reason=reason)
        )
        log.info("ended %d desktop(s) with %s", len(ids), reason)
    if done:
        for key, obj in list(db.identity_map.items()):
            if key[0] is Desktop and obj.job_id in done:
                db.expire(obj)
    return len(done)


def not_started_reason(limits) -> str:
    return f"the desktop did not start within {limits.ready_seconds:g} s"


def time_limit_reason(seconds: int) -> str:
    h, rest = divmod(int(seconds), 3600)
    return f"the time limit ({h}:{rest // 60:02d}:{rest % 60:02d}) was reached"


def end_overdue(db, backends: Mapping[str, BatchBackend], limits, now: datetime | None = None) -> int:
    """The portal's backstop for the limits a session's supervisor keeps (it runs in the
    job's sandbox, where the job can stop it): a desktop still starting
    ``limits.ready_seconds`` + READY_MARGIN after its job started is ended as failed ("the
    desktop did not start within 60 s"); a ready one LIMIT_GRACE past its ``ends_at`` (the
    job's start + its time limit, by the portal's clock: harvest.desktop_update) is ended
    "the time limit (H:MM:SS) was reached". One query each, from the desktops' state index;
    returns how many were ended."""
    now = now or utcnow()
    late = db.execute(
        sa.select(Desktop.job_id, Job.backend, Job.backend_job_id)
        .join(Job, Job.id == Desktop.job_id)
        .where(
            Desktop.state == "starting",
            Desktop.ended_reason.is_(None),
            Job.status == JobStatus.RUNNING,
            Job.started_at < now - timedelta(seconds=limits.ready_seconds) - READY_MARGIN,
            Job.backend_job_id.is_not(None),
        )
    ).all()
    n = _end_rows(db, backends, late, lambda _: not_started_reason(limits), "unstarted", failed=True)
    over = db.execute(
        sa.select(Desktop.job_id, Job.backend, Job.backend_job_id, Job.started_at, Desktop.ends_at,
                  Submission.resources)
        .join(Job, Job.id == Desktop.job_id)
        .join(Submission, Submission.id == Job.submission_id)
        .where(
            Desktop.state == "ready",
            Desktop.ended_reason.is_(None),
            Desktop.ends_at < now - LIMIT_GRACE,
            Job.backend_job_id.is_not(None),
        )
    ).all()  # fmt: skip
    limit = {row[0]: limits.spec(row[5] or {})["time_limit"] for row in over}
    n += _end_rows(db, backends, [row[:3] for row in over], lambda i: time_limit_reason(limit[i]), "overdue")
    return n


# --- what a page says ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Panel:
    """A desktop as its job's page shows it: ``state`` starting | ready | ending | ended."""

    state: str
    reason: str | None = None  # why it ended (or is ending)
    ends_at: datetime | None = None  # the time limit's end
    idle_ends_at: datetime | None = None  # set when the idle warning shows: when it ends
    idle_minutes: int | None = None  # how long no one has viewed it (with the warning)
    viewers: int = 0

    @property
    def live(self) -> bool:
        return self.state in ("starting", "ready", "ending")


def panel(job: Job, desktop: Desktop | None, limits, now: datetime | None = None) -> Panel | None:
    """What the job page's desktop panel shows (None for a batch job)."""
    if desktop is None:
        return None
    now = now or utcnow()
    if desktop.state == "ended" or job.status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
        return Panel("ended", desktop.ended_reason or job.reason)
    if desktop.ended_reason:
        return Panel("ending", desktop.ended_reason)
    if desktop.state != "ready":
        return Panel("starting")
    ends_at = as_utc(desktop.ends_at) if desktop.ends_at else None
    idle_ends = idle_minutes = None
    since = desktop.viewer_seen_at or desktop.ready_at
    seen = as_utc(desktop.viewer_seen_at) if desktop.viewer_seen_at else None
    unviewed = desktop.viewers <= 0 or (seen is not None and seen < now - STALE_VIEWERS)
    if limits.idle_minutes and unviewed and since is not None:
        since = as_utc(since)
        end = since + timedelta(minutes=limits.idle_minutes)
        if now >= end - timedelta(minutes=limits.idle_warning_minutes):
            idle_ends, idle_minutes = end, int((now - since).total_seconds() // 60)
    return Panel("ready", None, ends_at, idle_ends, idle_minutes, desktop.viewers)


def api_state(desktop: Desktop, job: Job) -> str:
    """starting | ready | ended, as /api/v1 names a desktop's state."""
    if desktop.state == "ended" or not job.live:
        return "ended"
    return desktop.state if desktop.state in LIVE_DESKTOP else "starting"

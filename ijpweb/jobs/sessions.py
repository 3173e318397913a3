"""The catalog sessions of jobs: kept alive while live jobs use them, logged out when
their user logs out, or once the last of those jobs has ended.

No Pyramid here: it takes a database session and the catalog.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from .. import outages
from ..catalog import Catalog, CatalogError
from ..models import Job, PendingLogout, Submission, utcnow
from ..states import LIVE

log = logging.getLogger(__name__)


def forget_sessions(db) -> None:
    """A submission's catalog session is kept only while some of its jobs are live (it
    is kept alive for them, see :func:`keep_sessions_alive`)."""
    live = sa.select(Job.submission_id).where(Job.status.in_(list(LIVE)))
    db.execute(
        sa.update(Submission)
        .where(Submission.catalog_session.is_not(None), Submission.id.not_in(live))
        .values(catalog_session=None)
    )


def forget_login_tokens(db, web_session_id: str) -> int:
    """A login ended: the desktop tokens it was given go with it at once (the database's
    ON DELETE CASCADE does too; this does not wait for it)."""
    from .desktops import forget_tokens

    return forget_tokens(db, web_session_ids=[web_session_id])


def end_login(db, catalog: Catalog, catalog_session: str) -> bool:
    """A user logged out (or revoked an API token): their catalog session is logged out
    of the catalog now, unless live jobs use it. Then it stays for them, kept alive as
    ever, and is logged out once the last of them has ended (:func:`logout_pending`).
    Returns whether the logout waits for jobs."""
    busy = db.scalar(
        sa.select(Job.id)
        .join(Submission, Job.submission_id == Submission.id)
        .where(Submission.catalog_session == catalog_session, Job.status.in_(list(LIVE)))
        .limit(1)
    )
    if busy is None:
        catalog.logout(catalog_session)
        return False
    if db.get(PendingLogout, catalog_session) is None:
        db.add(PendingLogout(catalog_session=catalog_session, requested_at=utcnow()))
        db.flush()
    return True


def logout_pending(db, catalog: Catalog) -> int:
    """Log out of the catalog the sessions whose users logged out while jobs used them,
    once none of those jobs is live; return how many. (One small read when there are
    none, so the harvester may call it after every change.)"""
    pending = list(db.scalars(sa.select(PendingLogout.catalog_session)))
    if not pending:
        return 0
    busy = set(
        db.scalars(
            sa.select(Submission.catalog_session)
            .join(Job, Job.submission_id == Submission.id)
            .where(Submission.catalog_session.in_(pending), Job.status.in_(list(LIVE)))
            .distinct()
        )
    )
    done = [sid for sid in pending if sid not in busy]
    for sid in done:
        try:
            catalog.logout(sid)
        except CatalogError as e:  # gone already: nothing more to do (the id is a credential: not logged)
            log.info("a catalog session whose jobs have ended could not be logged out: %s", type(e).__name__)
    if done:
        db.execute(
            sa.update(Submission).where(Submission.catalog_session.in_(done)).values(catalog_session=None)
        )
        db.execute(sa.delete(PendingLogout).where(PendingLogout.catalog_session.in_(done)))
    return len(done)


def keep_sessions_alive(db, catalog: Catalog, below_minutes: float = 20) -> int:
    """The original's #14: refresh the catalog session of every submission with live
    jobs once it has less than ``below_minutes`` left, so long jobs do not lose it (also
    after their user has logged out). Returns how many were refreshed. A session that
    has gone is left (and logged without its id: it is a credential)."""
    forget_sessions(db)
    logout_pending(db, catalog)
    sessions = db.scalars(
        sa.select(Submission.catalog_session).where(Submission.catalog_session.is_not(None)).distinct()
    ).all()
    refreshed = 0
    for sid in sessions:
        try:
            if catalog.remaining_minutes(sid) < below_minutes:
                catalog.refresh(sid)
                refreshed += 1
        except CatalogError as e:
            # (one line a minute however many sessions fail: the catalog is down, ijpweb.outages)
            outages.failed("keepalive of a catalog session", f"it cannot be kept alive: {type(e).__name__}")
    return refreshed

"""The background work, in one place: which periodic tasks run, how often, and how
each runs (in one transaction, like a request).

- ``submit`` (every second, and at once after a click): hand the jobs recorded as
  Submitting to their backends (ijpweb.batch.submitter), a chunk per transaction;
- ``harvest`` (every ijp.harvest.seconds): the state of every live job, one call per
  backend (ijpweb.batch.harvest), then the logouts that waited for ended jobs;
- ``keepalive`` (every 5 minutes): the catalog sessions of live jobs (ijpweb.jobs.sessions);
- ``purge`` (every 10 minutes): expired logins and catalog sessions.

Every task runs through :meth:`Scheduler.run`, the one place that decides whether and
how a task runs in this process. APScheduler runs them in this process where
``ijp.scheduler.enabled``, started once the application is created.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TypeVar

import transaction
from apscheduler.schedulers.background import BackgroundScheduler
from pyramid.events import ApplicationCreated

from . import health, outages
from .batch import BatchBackend
from .batch.harvest import harvest, purge_expired_sessions
from .batch.submitter import submit_pending
from .jobs.sessions import keep_sessions_alive, logout_pending
from .models import get_tm_session

log = logging.getLogger(__name__)

T = TypeVar("T")


class Scheduler:
    """The periodic tasks of one portal process (see the module's text)."""

    def __init__(self, session_factory, backends: Mapping[str, BatchBackend], catalog_for, settings):
        # catalog_for(db): the catalog as a background task reads it through ``db``
        self.session_factory, self.backends, self.catalog_for = session_factory, backends, catalog_for
        self.settings = settings
        self._aps = None  # APScheduler's BackgroundScheduler, once started

    def run(self, task: str, work: Callable[..., T]) -> T | None:
        """Run one task's ``work(db)`` in one transaction, like a request; return its result
        (None if it failed, which is logged)."""
        tm = transaction.TransactionManager(explicit=True)
        try:
            with tm:
                result = work(get_tm_session(self.session_factory, tm))
        except Exception as e:
            # an outage (the database, a backend) fails every run alike: one line a minute
            # with the reason, not a traceback a second (ijpweb.outages)
            outages.failed(task, e)
            return None
        outages.ok(task)
        return result

    def submit(self) -> None:
        """Submit waiting jobs, committing after each chunk (25 jobs, or one job array):
        progress shows as it happens, and a crash loses at most one chunk's ids (which
        find() recovers)."""

        def one_chunk(db):
            return submit_pending(db, self.backends)

        while self.run("submit", one_chunk):
            pass

    def harvest(self) -> None:
        def cycle(db):
            asked: dict = {}
            changed = harvest(db, self.backends, asked)
            # each backend's health for the console, /healthz and /metrics: one row each
            health.record(db, health.observe(self.backends, asked))
            if any(changed.values()):
                # jobs that ended may free a catalog session whose user has logged out
                logout_pending(db, self.catalog_for(db))

        self.run("harvest", cycle)

    def keepalive(self) -> None:
        self.run("keepalive", lambda db: keep_sessions_alive(db, self.catalog_for(db)))

    def purge(self) -> None:
        self.run("purge", purge_expired_sessions)

    def submit_soon(self) -> None:
        """Run the background submitter now (after a click), if this process runs it."""
        if self._aps is not None:
            self._aps.modify_job("submit", next_run_time=datetime.now(self._aps.timezone))

    def start(self) -> None:
        """Start APScheduler 3 in this process with the periodic tasks."""
        aps = BackgroundScheduler(daemon=True)
        aps.add_job(
            self.harvest,
            "interval",
            seconds=self.settings.harvest_seconds,
            id="harvest",
            max_instances=1,
            coalesce=True,
        )
        aps.add_job(self.purge, "interval", minutes=10, id="purge", coalesce=True)
        # keep the catalog sessions of running jobs alive (the original's #14)
        aps.add_job(self.keepalive, "interval", minutes=5, id="keepalive", coalesce=True)
        aps.add_job(self.submit, "interval", seconds=1, id="submit", max_instances=1, coalesce=True)
        aps.start()
        self._aps = aps
        log.info("harvesting every %s s", self.settings.harvest_seconds)

    def shutdown(self, wait: bool = True) -> None:
        """Stop the periodic tasks (if they were started here)."""
        if self._aps is not None:
            self._aps.shutdown(wait=wait)


def _start(event) -> None:
    event.app.registry["ijp.scheduler"].start()


def includeme(config):
    """One Scheduler per process, as ``registry["ijp.scheduler"]``; its tasks start with
    the application where ijp.scheduler.enabled."""
    registry = config.registry
    settings = registry.settings["ijp"]
    registry["ijp.scheduler"] = Scheduler(
        registry["dbsession_factory"], registry["ijp.backends"], registry["ijp.catalog_for"], settings
    )
    if settings.scheduler_enabled:
        config.add_subscriber(_start, ApplicationCreated)

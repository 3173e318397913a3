"""The background work, in one place: which periodic tasks run, how often, and how
each runs (in one transaction, like a request).

- ``submit`` (every second, and at once after a click): hand the jobs recorded as
  Submitting to their backends (ijpweb.batch.submitter), a chunk per transaction;
- ``harvest`` (every ijp.harvest.seconds): the state of every live job, one call per
  backend (ijpweb.batch.harvest, with the interactive jobs' desktops), then the logouts
  that waited for ended jobs, and the idle timeout of desktops no one has viewed for
  ijp.desktop.idle_minutes (ijpweb.jobs.desktops.end_idle), and the backstop for the
  sessions whose supervisor did not keep their ready timeout or time limit (end_overdue);
- ``keepalive`` (every 5 minutes): the catalog sessions of live jobs (ijpweb.jobs.sessions);
- ``purge`` (every 10 minutes): expired logins and catalog sessions.

Every task runs through :meth:`Scheduler.run`, the one place that decides whether and
how a task runs in this process. APScheduler runs them in this process where
``ijp.scheduler.enabled`` ("this process may lead"), started once the application is
created.

Several portal processes may share one PostgreSQL database (ijpweb.leaders): the harvest,
keepalive and purge run in the one process that leads each (an advisory lock, tried by
every process once a second, so a new leader takes over within seconds when one dies);
the submitter runs in each and claims the jobs it hands over, so none is handed over
twice. On SQLite there is one portal process, which runs everything.
:meth:`Scheduler.leadership` says what this process runs now.
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
from .catalog.ids import purge_prepared
from .jobs.desktops import end_idle, end_overdue
from .jobs.sessions import keep_sessions_alive, logout_pending
from .leaders import Leaders, OneProcess, claim_jobs, fence, is_postgresql
from .models import get_tm_session

log = logging.getLogger(__name__)

T = TypeVar("T")

# the tasks that run in one process at a time (its leader); the submitter runs in every
# process with the scheduler enabled, claiming the jobs it submits
LED = ("harvest", "keepalive", "purge")
TASKS = ("submit", *LED)
CAMPAIGN_SECONDS = 1.0  # how often a process tries to take the leads it lacks


class Scheduler:
    """The periodic tasks of one portal process (see the module's text)."""

    def __init__(self, session_factory, backends: Mapping[str, BatchBackend], catalog_for, settings, engine):
        # catalog_for(db): the catalog as a background task reads it through ``db``
        self.session_factory, self.backends, self.catalog_for = session_factory, backends, catalog_for
        self.settings = settings
        self.namespace = getattr(settings, "scheduler_namespace", "ijpweb")
        # who leads the tasks that run once: advisory locks on PostgreSQL, else this process
        self.leaders = Leaders(engine, self.namespace, LED) if is_postgresql(engine) else OneProcess(LED)
        self._aps = None  # APScheduler's BackgroundScheduler, once started
        # this scheduler's outages, logged once a minute (ijpweb.outages): its own
        # reference, so a second scheduler in one process (a test's) keeps its own count
        self.quiet = outages.QUIET

    def leadership(self) -> dict[str, bool]:
        """What this process runs now, by task: the submitter wherever the scheduler runs
        (it claims its jobs), each of the others where this process leads it. (No
        database call: as of the last try, at most CAMPAIGN_SECONDS ago.)"""
        if self._aps is None:
            return dict.fromkeys(TASKS, False)
        return {"submit": True, **self.leaders.leading()}

    def campaign(self) -> None:
        """Keep the leads this process holds and try to take the others."""
        self.leaders.campaign()

    def run(self, task: str, work: Callable[..., T]) -> T | None:
        """Run one task's ``work(db)`` in one transaction, like a request, where this
        process runs it (a task in LED: where it leads it); return its result (None if it
        failed, which is logged, or did not run here)."""
        if task in LED and not self.leaders.holds(task):
            return None
        tm = transaction.TransactionManager(explicit=True)
        try:
            with tm:
                db = get_tm_session(self.session_factory, tm)
                # a led task runs in one transaction at a time, whoever leads it now: a run
                # a former leader still has under way keeps the fence (ijpweb.leaders)
                if task in LED and not fence(db, self.namespace, task):
                    log.info("the background task %s is still running elsewhere: this run is skipped", task)
                    return None
                result = work(db)
        except Exception as e:
            # an outage (the database, a backend) fails every run alike: one line a minute
            # with the reason, not a traceback a second (ijpweb.outages)
            self.quiet.failed(task, e)
            return None
        self.quiet.ok(task)
        return result

    def submit(self) -> None:
        """Submit waiting jobs, committing after each chunk (25 jobs, or one job array):
        progress shows as it happens, and a crash loses at most one chunk's ids (which
        find() recovers)."""

        def one_chunk(db):
            return submit_pending(
                db, self.backends, claim=self._claim, desktop=getattr(self.settings, "desktop", None)
            )

        while self.run("submit", one_chunk):
            pass

    def _claim(self, db, job_ids, limit):
        return claim_jobs(db, self.namespace, job_ids, limit)

    def harvest(self) -> None:
        def cycle(db):
            asked: dict = {}
            desktop = getattr(self.settings, "desktop", None)
            changed = harvest(db, self.backends, asked, desktop)
            # each backend's health for the console, /healthz and /metrics: one row each
            health.record(db, health.observe(self.backends, asked))
            if any(changed.values()):
                # jobs that ended may free a catalog session whose user has logged out
                logout_pending(db, self.catalog_for(db))
            if desktop is not None:
                # desktops no one has viewed for idle_minutes end; and those past their
                # ready timeout or time limit, should their supervisor not have ended them
                end_idle(db, self.backends, desktop)
                end_overdue(db, self.backends, desktop)

        self.run("harvest", cycle)

    def keepalive(self) -> None:
        self.run("keepalive", lambda db: keep_sessions_alive(db, self.catalog_for(db)))

    def purge(self) -> None:
        # expired logins and catalog sessions, and IDS prepared ids that have had their day
        self.run("purge", lambda db: purge_expired_sessions(db) + purge_prepared(db))
        if self.leaders.holds("purge"):
            # job directories a killed process left half-written (they may hold a session)
            for backend in self.backends.values():
                clean = getattr(backend, "clean_leftovers", None)
                if clean is not None:
                    try:
                        clean()
                    except OSError as e:
                        log.warning("backend %s: leftover job directories not removed: %s", backend.name, e)

    def submit_soon(self) -> None:
        """Run the background submitter now (after a click), if this process runs it."""
        if self._aps is not None:
            self._aps.modify_job("submit", next_run_time=datetime.now(self._aps.timezone))

    def start(self) -> None:
        """Start APScheduler 3 in this process with the periodic tasks."""
        self.leaders.campaign()  # leads taken now, so that the first harvest runs at once
        aps = BackgroundScheduler(daemon=True)
        aps.add_job(
            self.campaign, "interval", seconds=CAMPAIGN_SECONDS, id="campaign", max_instances=1, coalesce=True
        )
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
        if isinstance(self.leaders, Leaders):
            log.info(
                "PostgreSQL: the tasks %s run in the one portal process that leads each (advisory locks, "
                "namespace %r); the submitter runs in every process and claims its jobs; this process leads %s",
                ", ".join(LED), self.namespace,
                ", ".join(t for t, led in self.leaders.leading().items() if led) or "none yet",
            )  # fmt: skip

    def shutdown(self, wait: bool = True) -> None:
        """Stop the periodic tasks (if they were started here)."""
        if self._aps is not None:
            self._aps.shutdown(wait=wait)
        self.leaders.close()  # another process takes over at once


def leadership(registry) -> dict[str, bool]:
    """What this portal process runs of the background work, by task (for /healthz)."""
    return registry["ijp.scheduler"].leadership()


def _start(event) -> None:
    event.app.registry["ijp.scheduler"].start()


def includeme(config):
    """One Scheduler per process, as ``registry["ijp.scheduler"]``; its tasks start with
    the application where ijp.scheduler.enabled."""
    registry = config.registry
    settings = registry.settings["ijp"]
    engine = registry["dbengine"]
    registry["ijp.scheduler"] = Scheduler(
        registry["dbsession_factory"], registry["ijp.backends"], registry["ijp.catalog_for"], settings, engine
    )
    if not is_postgresql(engine):
        (log.warning if settings.deployment == "production" else log.info)(
            "SQLite: run one portal process; for several, use PostgreSQL"
        )
    if settings.scheduler_enabled:
        config.add_subscriber(_start, ApplicationCreated)

"""The backends' health and pause, kept in the database (backend_health, one row per
backend): the process that harvests writes what it saw each cycle (:func:`observe`, then
:func:`record`); every process reads it for the console, /healthz and /metrics; staff
pause a backend there (ijpweb.console), and submissions skip a paused one
(:func:`paused`).

No Pyramid here: it takes a database session and the backends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from . import outages
from .batch import BatchBackend
from .models import BackendHealth, Job, as_utc, utcnow
from .states import LIVE, JobStatus

log = logging.getLogger(__name__)


@dataclass
class Check:
    """One backend in one harvest cycle: how long asking it took, and the error if it did
    not answer (None when it did); a SLURM backend's nodes as sinfo listed them."""

    seconds: float
    error: str | None = None
    nodes: list | None = None


def task(name: str) -> str:
    """The name a backend's harvest failures are logged under (ijpweb.outages)."""
    return f"harvest of backend {name}"


def ask(name: str, call, *args):
    """``call(*args)`` timed, as a :class:`Check` and its result (None if it failed; the
    failure logged at most once a minute, ijpweb.outages)."""
    started = time.monotonic()
    try:
        result = call(*args)
    except Exception as e:  # noqa: BLE001 - a dead backend must not stop the others
        outages.failed(task(name), e)
        return Check(time.monotonic() - started, outages.reason(e)), None
    return Check(time.monotonic() - started), result


# a SLURM backend's nodes are listed at most this often (each sinfo is a call to slurmctld;
# the harvest may run every few seconds)
NODES_SECONDS = 30.0
_listed: dict[str, float] = {}  # backend -> when this process last listed its nodes (monotonic)


def observe(backends: Mapping[str, BatchBackend], asked: Mapping[str, Check],
            nodes_every: float = NODES_SECONDS) -> dict[str, Check]:  # fmt: skip
    """Every backend's check of this cycle: ``asked`` holds those the harvest asked about
    their live jobs; the others are probed (``probe()``, where a backend has one: the
    local backend's directory, the batch server's version, ``scontrol ping``). A SLURM
    backend's nodes are listed (``nodes()``, one sinfo call) every ``nodes_every``
    seconds, and not while it does not answer (they stay as last listed)."""
    out: dict[str, Check] = {}
    for name, backend in backends.items():
        check = asked.get(name)
        lister = getattr(backend, "nodes", None)
        due = time.monotonic() - _listed.get(name, -nodes_every) >= nodes_every
        if check is not None and check.error is not None:
            pass  # it did not answer the harvest: not asked again now
        elif lister is not None and due:
            listed, nodes = ask(name, lister)
            if nodes is not None:
                listed.nodes = [n.as_dict() for n in nodes]
                _listed[name] = time.monotonic()
            check = _merge(check, listed)
        elif check is None and (probe := getattr(backend, "probe", None)) is not None:
            check, _ = ask(name, probe)
        out[name] = check if check is not None else Check(0.0)
        if out[name].error is None:
            outages.ok(task(name))
    return out


def _merge(first: Check | None, second: Check) -> Check:
    if first is None:
        return second
    return Check(first.seconds + second.seconds, first.error or second.error, second.nodes)


def ensure(db, names: Collection[str]) -> None:
    """A row for each backend in ``names`` (one read; an insert only for a new backend,
    which another process may be making at the same time: then nothing happens)."""
    have = set(db.scalars(sa.select(BackendHealth.name).where(BackendHealth.name.in_(list(names)))))
    missing = [{"name": n} for n in names if n not in have]
    if missing:
        dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
        db.execute(
            dialect.insert(BackendHealth).values(missing).on_conflict_do_nothing(index_elements=["name"])
        )


def record(db, checks: Mapping[str, Check], now: datetime | None = None) -> None:
    """Write each backend's check: one UPDATE per backend (pause columns untouched, so a
    pause meanwhile is kept)."""
    if not checks:
        return
    now = now or utcnow()
    ensure(db, list(checks))
    was = dict(db.execute(
        sa.select(BackendHealth.name, BackendHealth.error_since).where(BackendHealth.name.in_(list(checks)))
    ).all())  # fmt: skip
    t = BackendHealth.__table__
    for name, check in checks.items():
        values: dict = {"reachable": check.error is None, "checked_at": now, "duration": check.seconds}
        if check.error is None:
            values["error_since"] = None
        else:
            values |= {"last_error": check.error[:300], "last_error_at": now,
                       "error_since": was.get(name) or now, "errors": t.c.errors + 1}  # fmt: skip
        if check.nodes is not None:
            values["nodes"] = check.nodes
        db.execute(sa.update(t).where(t.c.name == name).values(values))


def record_nodes(db, name: str, nodes: list) -> None:
    """A SLURM backend's nodes, listed again just now (after a drain or resume)."""
    ensure(db, [name])
    db.execute(
        sa.update(BackendHealth).where(BackendHealth.name == name).values(nodes=[n.as_dict() for n in nodes])
    )


def paused(db) -> set[str]:
    """The backends staff have paused (a read of a table of one row per backend)."""
    return set(db.scalars(sa.select(BackendHealth.name).where(BackendHealth.paused.is_(True))))


def set_paused(db, name: str, actor: str | None) -> bool:
    """Pause ``name`` (``actor`` who) or resume it (None); whether it changed."""
    ensure(db, [name])
    t = BackendHealth.__table__
    stmt = sa.update(t).where(t.c.name == name, t.c.paused.is_(actor is None))
    values = {"paused": True, "paused_by": actor, "paused_at": utcnow()} if actor else {"paused": False}
    return db.execute(stmt.values(values)).rowcount == 1


# --- reading it: the console, /healthz, /metrics ----------------------------------------------


@dataclass
class Backend:
    """One backend as the console shows it."""

    name: str
    kind: str
    reachable: bool | None = None  # None: not asked yet
    checked_at: datetime | None = None
    duration: float | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    error_since: datetime | None = None
    errors: int = 0
    paused: bool = False
    paused_by: str | None = None
    paused_at: datetime | None = None
    nodes: list | None = None  # SLURM: dicts of ijpweb.batch.slurm.Node
    # jobs now: status -> count (the live ones), and failed in the last hour
    jobs: dict[str, int] = field(default_factory=dict)
    failed_last_hour: int = 0

    @property
    def backlog(self) -> int:
        """Jobs recorded for it and not yet handed over (Submitting)."""
        return self.jobs.get(JobStatus.SUBMITTING.value, 0)


def kind(backend) -> str:
    return {"LocalBackend": "local", "SlurmBackend": "slurm", "RemoteBackend": "remote"}.get(
        type(backend).__name__, type(backend).__name__
    )


def rows(db) -> dict[str, BackendHealth]:
    return {h.name: h for h in db.scalars(sa.select(BackendHealth))}


def backends(db, configured: Mapping[str, BatchBackend], *, counts: bool = True) -> list[Backend]:
    """Every configured backend with its health, pause and (``counts``) its live jobs and
    those that failed in the last hour: three small reads (the jobs' from indexes)."""
    health = rows(db)
    out = []
    for name, backend in configured.items():
        b = Backend(name, kind(backend))
        if (h := health.get(name)) is not None:
            for key in ("reachable", "checked_at", "duration", "last_error", "last_error_at", "error_since",
                        "errors", "paused", "paused_by", "paused_at", "nodes"):  # fmt: skip
                setattr(b, key, getattr(h, key))
            for key in ("checked_at", "last_error_at", "error_since", "paused_at"):
                if getattr(b, key) is not None:
                    setattr(b, key, as_utc(getattr(b, key)))
        out.append(b)
    if counts and out:
        by = {b.name: b for b in out}
        live = db.execute(
            sa.select(Job.backend, Job.status, sa.func.count())
            .where(Job.status.in_(sorted(LIVE)))
            .group_by(Job.backend, Job.status)
        ).all()
        for backend, status, n in live:
            if backend in by:
                by[backend].jobs[JobStatus(status).value] = n
        failed = db.execute(
            sa.select(Job.backend, sa.func.count())
            .where(Job.status == JobStatus.FAILED, Job.finished_at >= utcnow() - timedelta(hours=1))
            .group_by(Job.backend)
        ).all()
        for backend, n in failed:
            if backend in by:
                by[backend].failed_last_hour = n
    return out


def jobs_by_status_and_backend(db) -> list[tuple[str, str, int]]:
    """(backend, status, count) of every job: one grouped query (an index scan of
    ix_job_backend_status)."""
    return [
        (backend, JobStatus(status).value, n)
        for backend, status, n in db.execute(
            sa.select(Job.backend, Job.status, sa.func.count()).group_by(Job.backend, Job.status)
        ).all()
    ]


# --- /healthz ---------------------------------------------------------------------------------

STALE_CYCLES = 3  # a backend not harvested for this many intervals: is any process harvesting?


def backend_checks(rows_by_name: Mapping[str, BackendHealth], configured: Collection[str],
                   harvest_seconds: float, now: datetime) -> dict[str, dict]:  # fmt: skip
    """Each configured backend for /healthz: ok when it answered at a harvest within the
    last STALE_CYCLES intervals; why not otherwise. Nothing but names, flags and times
    (the error's text stays on the console: /healthz needs no login)."""
    out = {}
    for name in configured:
        h = rows_by_name.get(name)
        checked = as_utc(h.checked_at) if h is not None and h.checked_at is not None else None
        age = (now - checked).total_seconds() if checked else None
        entry: dict = {"reachable": h.reachable if h is not None else None,
                       "paused": bool(h is not None and h.paused),
                       "last_harvest": checked.isoformat() if checked else None,
                       "age_seconds": round(age, 1) if age is not None else None}  # fmt: skip
        if checked is None:
            entry |= {"ok": False, "reason": "not harvested yet"}
        elif age > STALE_CYCLES * harvest_seconds:
            entry |= {
                "ok": False,
                "reason": f"not harvested for {age:.0f} s: is any portal process harvesting?",
            }
        elif not h.reachable:
            entry |= {
                "ok": False,
                "reason": "did not answer at the last harvest (see the console's backends)",
            }
        else:
            entry["ok"] = True
        out[name] = entry
    return out


def some_process_harvests(
    rows_by_name: Mapping[str, BackendHealth], harvest_seconds: float, now: datetime
) -> bool:
    """Whether a harvest ran within the last STALE_CYCLES intervals (in any process)."""
    times = [as_utc(h.checked_at) for h in rows_by_name.values() if h.checked_at is not None]
    return bool(times) and (now - max(times)).total_seconds() <= STALE_CYCLES * harvest_seconds

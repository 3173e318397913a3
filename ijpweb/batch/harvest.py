"""Harvesting: ask every backend for the state of all its live jobs, one call per
backend per cycle, and write what changed to the database. Pages and the API read
only the database."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from ..health import ask
from ..models.catalog import CatalogSession
from ..models.desktops import Desktop, DesktopToken
from ..models.jobs import Job, Submission, WebSession, as_utc, utcnow
from ..settings import DesktopSettings
from ..states import LIVE, JobStatus
from . import BatchBackend, BatchState

log = logging.getLogger(__name__)


KEPT = ("status", "exit_code", "reason", "started_at", "finished_at", "nodes", "cores", "hosts")
ENDED = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
GROUP = 1000  # the most ids in one UPDATE ... WHERE id IN (...)


class Seen(NamedTuple):
    """What the harvest reads of a live job, without an ORM object (no JSON columns, no
    tags): whether a time is set, not the time (it is only ever set once)."""

    status: str  # a JobStatus's value
    exit_code: int | None
    reason: str | None
    unstarted: bool
    unfinished: bool
    nodes: int | None
    cores: int | None
    hosts: str | None


def _seen_columns(t: sa.Table) -> list:
    # the status as the text stored (a JobStatus is a str, and equal to it): no conversion
    # of each row's value to the enum
    return [sa.type_coerce(t.c.status, sa.String), t.c.exit_code, t.c.reason, t.c.started_at.is_(None), t.c.finished_at.is_(None),
            t.c.nodes, t.c.cores, t.c.hosts]  # fmt: skip


def seen(job: Job) -> Seen:
    return Seen(job.status, job.exit_code, job.reason, job.started_at is None, job.finished_at is None,
                job.nodes, job.cores, job.hosts)  # fmt: skip


def update(was: Seen, state: BatchState, now: datetime) -> dict | None:
    """What ``state`` changes in a job seen as ``was``, as the values to write (started_at
    and finished_at: None keeps the stored one), or None when nothing changes. A job's
    place (nodes, cores, hosts) is kept once known: a finished job still ran there; its
    start and end times are set once."""
    placed = state.nodes or state.cores or state.hosts
    nodes, cores, hosts = (state.nodes, state.cores, state.hosts) if placed else was[5:]
    started = state.started_at if was.unstarted else None
    finished = (state.finished_at or now) if was.unfinished and state.status in ENDED else None
    if (
        started is None
        and finished is None
        and (state.status, state.exit_code, state.reason, nodes, cores, hosts) == (*was[:3], *was[5:])
    ):
        return None
    return {"status": state.status, "exit_code": state.exit_code, "reason": state.reason,
            "started_at": started, "finished_at": finished, "nodes": nodes, "cores": cores, "hosts": hosts}  # fmt: skip


def write_states(db, changed: Sequence[tuple[int, JobStatus, dict]]) -> set[int]:
    """Write each job's new values (:func:`update`) by its id, and only while its status is
    still the one read (``(id, status read, values)``): a cancel or delete by its user
    meanwhile wins (a flush would overwrite the cancel, or fail on a row deleted under
    it). Few statements however many rows (see below), then one read of which rows now
    hold what was written: jobs this session has loaded show it, with nothing left to flush; the
    others it has loaded are read again when next used. Returns the ids written."""
    if not changed:
        return set()
    t = Job.__table__
    columns = {k: sa.bindparam(f"new_{k}") for k in KEPT if k not in ("started_at", "finished_at")} | {
        # set once: kept where the row has one already
        k: sa.func.coalesce(t.c[k], sa.bindparam(f"new_{k}", type_=t.c[k].type))
        for k in ("started_at", "finished_at")
    }
    one = (
        sa.update(t)
        .where(t.c.id == sa.bindparam("job_id"), t.c.status == sa.bindparam("was"))
        .values(columns)
    )
    alike = (
        sa.update(t)
        .where(t.c.id.in_(sa.bindparam("job_ids", expanding=True)), t.c.status == sa.bindparam("was"))
        .values(columns)
    )
    # Alike jobs share their values (harvest decides them once): those read with the same
    # status are written by one UPDATE ... WHERE id IN (...) per GROUP of them; the others
    # (a job that started has its own start time) by one executemany of them all.
    groups: dict[tuple[int, str], tuple[dict, list[int]]] = {}
    for i, was, new in changed:
        groups.setdefault((id(new), was), (new, []))[1].append(i)
    single = []
    for (_, was), (new, ids) in groups.items():
        named = {f"new_{k}": v for k, v in new.items()}
        if len(ids) == 1:
            single.append({**named, "job_id": ids[0], "was": was})
            continue
        for n in range(0, len(ids), GROUP):
            db.connection().execute(alike, {**named, "job_ids": ids[n : n + GROUP], "was": was})
    if single:
        db.connection().execute(one, single)
    now: dict[int, str] = {}
    ids = [i for i, _, _ in changed]
    for n in range(0, len(ids), 5000):
        now.update(db.execute(sa.select(t.c.id, t.c.status).where(t.c.id.in_(ids[n : n + 5000]))).all())
    # the jobs this session holds (none, in the scheduler's harvest)
    held = {key[1][0]: job for key, job in db.identity_map.items() if key[0] is Job}
    written = set()
    ended = []
    for i, _, values in changed:
        job = held.get(i)
        if now.get(i) != values["status"]:
            if job is not None:
                db.expire(job)
            continue
        written.add(i)
        if values["status"] in ENDED:
            ended.append(i)
        if job is not None:
            for key, value in values.items():
                if key in ("started_at", "finished_at"):
                    value = getattr(job, key) or value
                set_committed_value(job, key, value)
    if ended:  # an interactive job's desktop ends with it (one read of these jobs' desktops)
        end_desktops(db, ended, utcnow())
    return written


def write_state(db, job: Job, state: BatchState) -> bool:
    """:func:`write_states` for one loaded job; whether it changed."""
    values = update(seen(job), state, utcnow())
    return values is not None and job.id in write_states(db, [(job.id, job.status, values)])


def harvest(
    dbsession, backends: Mapping[str, BatchBackend], checks: dict | None = None, desktop=None
) -> dict[str, int]:
    """One cycle. Returns the number of jobs changed per backend. ``checks`` receives, for
    each backend asked about its live jobs, how long it took and whether it answered
    (ijpweb.health.Check; a failure is logged at most once a minute, ijpweb.outages).

    The live jobs are read as plain rows (ids, backend ids, what a change needs), not ORM
    objects, and only the rows whose state changed are written, in one executemany: a
    steady cycle is one SELECT per backend and no UPDATE. ``desktop``: the settings'
    DesktopSettings (interactive sessions' time limits; None: the defaults)."""
    t = Job.__table__
    asked = [s for s in LIVE if s != JobStatus.SUBMITTING]
    now = utcnow()
    changed: dict[str, int] = {}
    answered: dict[tuple[str, str], BatchState] = {}  # (backend, backend job id): its state
    for name, backend in backends.items():
        rows = dbsession.execute(
            sa.select(t.c.id, t.c.backend_job_id, *_seen_columns(t)).where(
                t.c.backend == name, t.c.status.in_(asked), t.c.backend_job_id.is_not(None)
            )
        ).all()
        if not rows:
            changed[name] = 0
            continue
        check, states = ask(name, backend.states, [r[1] for r in rows])
        if checks is not None:
            checks[name] = check
        if states is None:  # a dead backend must not stop the others
            gone = BatchState(JobStatus.UNKNOWN, reason=f"backend {name} did not answer")
            states = {}
        else:
            gone = BatchState(JobStatus.UNKNOWN, reason="not reported by the backend")
            answered.update(((name, k), v) for k, v in states.items() if v.desktop is not None)
        new = []
        # Many jobs are alike (a queue of pending tasks, which a backend may answer with one
        # state object): each pair of what was read and what is answered is decided once.
        # (The states are kept alive by ``states`` meanwhile, so their ids are theirs.)
        decided: dict[tuple, dict | None] = {}
        for row in rows:
            state = states.get(row[1], gone)
            key = (row[2:], id(state))
            if key in decided:
                values = decided[key]
            else:
                values = decided[key] = update(Seen(*row[2:]), state, now)
            if values is not None:
                new.append((row[0], row[2], values))
        written = write_states(dbsession, new)
        changed[name] = len(written)
        ended = [
            (row[0], row[1]) for row in rows if row[0] in written and states.get(row[1], gone).status in ENDED
        ]
        if ended:
            capture_vars(dbsession, backend, ended)
    harvest_desktops(dbsession, answered, now, limits=desktop)
    return changed


class DesktopSeen(NamedTuple):
    """What the harvest reads of a desktop that has not ended, with its job's status."""

    state: str
    host: str | None
    port: int | None
    ready_at: datetime | None
    ends_at: datetime | None
    ended_reason: str | None


def desktop_update(was: DesktopSeen, status: JobStatus, reason: str | None, state: BatchState | None,
                   now: datetime, *, started_at: datetime | None = None,
                   time_limit: int | None = None) -> dict | None:  # fmt: skip
    """What changes in a desktop seen as ``was`` whose job's status (as written by this
    harvest) is ``status`` with ``reason``, and whose backend answered ``state`` (None:
    nothing new of its desktop): "ended" with the job's reason once the job has ended;
    "ready" with where its VNC server listens once the backend says so. None: no change.

    Its times are the portal's, never the job's (desktop/state.json is written in the
    job's sandbox, and a job that dated itself ready in 2099 would never be idle):
    ``ready_at`` is ``now`` when the harvest first sees it ready; ``ends_at`` is its job's
    start as the backend recorded it (``started_at``, outside the sandbox; ``now`` if not
    known) + the session's ``time_limit`` (seconds, from its submission; None: unknown)."""
    if status not in LIVE:
        return {"state": "ended", "ended_reason": reason or was.ended_reason or "the session ended",
                "host": None, "port": None}  # fmt: skip
    info = state.desktop if state is not None else None
    if info is None:
        return None
    # (SQLite gives times back without their zone: UTC)
    ready_at = as_utc(was.ready_at) if was.ready_at else now
    start = min(as_utc(started_at), now) if started_at else ready_at
    ends_at = start + timedelta(seconds=time_limit) if time_limit else None
    new = {"state": "ready", "host": info.host, "port": info.port, "ready_at": ready_at, "ends_at": ends_at,
           "ended_reason": was.ended_reason}  # fmt: skip
    was_ends = as_utc(was.ends_at) if was.ends_at else None
    if (was.state, was.host, was.port, was_ends) == ("ready", info.host, info.port, ends_at):
        return None
    return new


DESKTOP_COLUMNS = ("job_id", "state", "host", "port", "ready_at", "ends_at", "ended_reason")


def _desktop_rows(db, where) -> list:
    d = Desktop.__table__
    return db.execute(
        sa.select(*(d.c[k] for k in DESKTOP_COLUMNS), Job.backend, Job.backend_job_id,
                  sa.type_coerce(Job.status, sa.String), Job.reason, Job.started_at, Submission.resources)
        .join(Job, Job.id == d.c.job_id)
        .join(Submission, Submission.id == Job.submission_id)
        .where(where)
    ).all()  # fmt: skip


def harvest_desktops(
    db, answered: Mapping[tuple[str, str], BatchState], now: datetime, *, sweep: bool = False, limits=None
) -> int:
    """Keep the desktops that are starting in step with their jobs: ready once the backend
    says where the VNC server listens (``answered``: the states of this cycle that carry a
    desktop), ended if their job ended first. (A ready desktop ends with its job: when
    write_states writes the job ended, :func:`end_desktops`; where its VNC server listens
    does not move.) One read, of the starting desktops alone, so a steady cycle reads no
    row however many desktops are open. ``sweep`` (the purge, every few minutes) also reads
    the ready ones, and ends those whose job ended some other way. Returns how many changed."""
    d = Desktop.__table__
    if sweep:
        live = [s.value for s in LIVE]
        where = sa.or_(d.c.state == "starting",
                       sa.and_(d.c.state == "ready", sa.type_coerce(Job.status, sa.String).not_in(live)))  # fmt: skip
    else:
        where = d.c.state == "starting"
    return _apply_desktops(db, _desktop_rows(db, where), answered, now, limits)


def end_desktops(db, job_ids: Sequence[int], now: datetime) -> int:
    """The desktops of jobs just written as ended (write_states: the harvest, a cancel) end
    with their job's reason, and their tokens go: one read of those jobs' desktops."""
    n = 0
    for i in range(0, len(job_ids), GROUP):
        d = Desktop.__table__
        rows = _desktop_rows(db, sa.and_(d.c.job_id.in_(job_ids[i : i + GROUP]), d.c.state != "ended"))
        n += _apply_desktops(db, rows, {}, now)
    return n


def _apply_desktops(
    db, rows, answered: Mapping[tuple[str, str], BatchState], now: datetime, limits=None
) -> int:
    d = Desktop.__table__
    changes, ended = [], []
    limits = limits if limits is not None else DesktopSettings()
    for row in rows:
        was = DesktopSeen(*row[1:7])
        state = answered.get((row[7], row[8])) if row[8] is not None else None
        limit = limits.spec(row[12] or {})["time_limit"] if state is not None else None
        values = desktop_update(
            was, JobStatus(row[9]), row[10], state, now, started_at=row[11], time_limit=limit
        )
        if values is None:
            continue
        if values["state"] == "ended":
            ended.append(row[0])
            values = {**values, "ready_at": was.ready_at, "ends_at": was.ends_at}
        changes.append({"key": row[0], **{f"new_{k}": v for k, v in values.items()}})
    if changes:
        columns = ("state", "ended_reason", "host", "port", "ready_at", "ends_at")
        db.connection().execute(
            sa.update(d).where(d.c.job_id == sa.bindparam("key"))
            .values({k: sa.bindparam(f"new_{k}", type_=d.c[k].type) for k in columns}),
            changes,
        )  # fmt: skip
        for key, obj in list(db.identity_map.items()):
            if key[0] is Desktop:
                db.expire(obj)
    if ended:
        for n in range(0, len(ended), GROUP):
            db.execute(sa.delete(DesktopToken.__table__).where(DesktopToken.job_id.in_(ended[n : n + GROUP])))
    return len(changes)


def capture_vars(db, backend: BatchBackend, jobs: Sequence[tuple[int, str]]) -> int:
    """Store the output variables each of ``jobs`` (portal id, backend id), just ended,
    wrote (``JOB_OUTPUT_VARS``; parsed and bounded by ijpweb.outputs). A backend that
    keeps none, or cannot be read now, leaves them unset: never an error of the harvest.
    Returns how many jobs had some."""
    read = getattr(backend, "output_vars", None)
    if read is None:
        return 0
    t = Job.__table__
    found = []
    for job_id, backend_job_id in jobs:
        try:
            got = read(backend_job_id)
        except Exception as e:  # noqa: BLE001 - a job's files, or a batch server, may fail in any way
            log.warning("job %s: its output variables could not be read: %s", job_id, e)
            continue
        if got is not None and (got.values or got.skipped or got.cut):
            found.append({"job_id": job_id, "vars": got.as_json()})
    if found:
        db.connection().execute(
            sa.update(t).where(t.c.id == sa.bindparam("job_id")).values(output_vars=sa.bindparam("vars")),
            found,
        )
        held = {key[1][0]: job for key, job in db.identity_map.items() if key[0] is Job}
        for f in found:
            if (job := held.get(f["job_id"])) is not None:
                set_committed_value(job, "output_vars", f["vars"])
    return len(found)


def purge_expired_sessions(dbsession) -> int:
    """Forget logins and catalog sessions that have expired."""
    now = utcnow()
    n = dbsession.execute(sa.delete(WebSession).where(WebSession.expires_at < now)).rowcount
    n += dbsession.execute(sa.delete(CatalogSession).where(CatalogSession.expires_at < now)).rowcount
    # desktop tokens past their time (those of ended logins went with them), and desktops
    # whose job ended by a way that did not end them
    dbsession.execute(sa.delete(DesktopToken.__table__).where(DesktopToken.expires_at < now))
    harvest_desktops(dbsession, {}, now, sweep=True)
    return n

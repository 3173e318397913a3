"""Creating, listing, cancelling and deleting jobs: the service views call.

No Pyramid here: it takes a database session, the backends and plain values.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from .batch import BatchBackend, BatchError, JobSpec
from .batch.harvest import write_state
from .catalog import (
    Catalog,
    CatalogError,
    DatafileView,
    DatasetView,
    ParameterView,
    QueryBusyError,
    SessionError,
)
from .families import FamilyError
from .models import Job, JobTag, PendingLogout, Submission, utcnow
from .planning import (
    SESSION_ENV,
    DatasetInfo,
    Plan,
    PlanError,
    Selection,
    argv_problem,
    plan,
    provenance_args,
    shown_name,
)
from .states import LIVE, TERMINAL, JobStatus

log = logging.getLogger(__name__)


class JobActionError(Exception):
    """A cancel or delete that cannot be done now; the message says why."""


@dataclass(frozen=True)
class ResolvedSelection:
    selection: Selection
    datasets: list  # DatasetView
    datafiles: list  # DatafileView
    missing_datasets: list[int]
    missing_datafiles: list[int]
    parameter_errors: list[str]

    @property
    def not_visible(self) -> str:
        return not_visible(self.missing_datasets, self.missing_datafiles)


def not_visible(dataset_ids: Sequence[int], datafile_ids: Sequence[int]) -> str:
    """What to tell a user who named inputs the catalog does not show them ("" if none)."""
    missing = [f"dataset {i}" for i in dataset_ids] + [f"datafile {i}" for i in datafile_ids]
    return "not found or not visible to you: " + ", ".join(missing) if missing else ""


@dataclass(frozen=True)
class DatasetDetail:
    dataset: DatasetView
    parameters: list[ParameterView]  # the catalog's
    job_parameters: dict[str, object]  # the dataset type's, which option conditions use
    datafiles: list[DatafileView]


def dataset_detail(catalog: Catalog, session_id: str, datasettypes, dataset_id: int) -> DatasetDetail | None:
    """One dataset as this user sees it, with its parameters and datafiles; None if not visible."""
    found = catalog.datasets(session_id, [dataset_id])
    if not found:
        return None
    params = catalog.job_parameters(session_id, found, datasettypes.parameters_for)
    return DatasetDetail(
        found[0],
        catalog.dataset_parameters(session_id, dataset_id),
        params.get(dataset_id, {}),
        catalog.dataset_datafiles(session_id, dataset_id),
    )


def resolve_selection(
    catalog: Catalog,
    session_id: str,
    datasettypes,
    dataset_ids: Sequence[int],
    datafile_ids: Sequence[int],
) -> ResolvedSelection:
    """The selection as this user sees it, with each dataset's type parameters."""
    datasets = catalog.datasets(session_id, list(dict.fromkeys(dataset_ids)))
    datafiles = catalog.datafiles(session_id, list(dict.fromkeys(datafile_ids)))
    errors: list[str] = []
    try:
        params = catalog.job_parameters(session_id, datasets, datasettypes.parameters_for)
    except ValueError as e:  # a bad query in a dataset-type file: staff must fix it
        log.error("dataset-type parameters: %s", e)
        errors.append(str(e))
        params = {d.id: {} for d in datasets}
    infos = tuple(DatasetInfo(d.id, d.type_name, params.get(d.id, {})) for d in datasets)
    seen_ds = {d.id for d in datasets}
    seen_df = {f.id for f in datafiles}
    return ResolvedSelection(
        Selection(infos, tuple(f.id for f in datafiles)),
        datasets,
        datafiles,
        [i for i in dataset_ids if i not in seen_ds],
        [i for i in datafile_ids if i not in seen_df],
        errors,
    )


def choose_backend(backends: Mapping[str, BatchBackend], spec: JobSpec, deadline: float = 5.0) -> str:
    """One backend is used directly. With several, all are asked for an estimate at
    once; the lowest within ``deadline`` seconds wins; those that fail or are late
    are skipped. Raises BatchError when none answers."""
    if not backends:
        raise BatchError("no batch backend is configured")
    if len(backends) == 1:
        return next(iter(backends))
    pool = ThreadPoolExecutor(max_workers=len(backends), thread_name_prefix="estimate")
    futures = {pool.submit(b.estimate, spec): name for name, b in backends.items()}
    answers: dict[str, float] = {}
    try:
        for future in as_completed(futures, timeout=deadline):
            name = futures[future]
            try:
                est = future.result()
            except Exception as e:  # noqa: BLE001 - a failing backend is skipped
                log.warning("backend %s gave no estimate: %s", name, e)
                continue
            if est is not None:
                answers[name] = est
    except FuturesTimeout:
        late = [futures[f] for f in futures if not f.done()]
        log.warning("no estimate within %s s from %s", deadline, ", ".join(late))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    if not answers:
        raise BatchError(f"no batch backend gave an estimate within {deadline:g} s; nothing was submitted")
    return min(answers, key=lambda name: (answers[name], list(backends).index(name)))


class SubmitError(Exception):
    """Nothing was submitted; ``code``, ``status`` and ``fields`` say why, for any face."""

    def __init__(self, message: str, code: str, status: int = 400, fields: Mapping[str, str] | None = None):
        super().__init__(message)
        self.code, self.status, self.fields = code, status, dict(fields or {})


@dataclass(frozen=True)
class SubmitRequest:
    job_type: str
    dataset_ids: Sequence[int]
    datafile_ids: Sequence[int]
    values: Mapping[str, object]
    mode: str | None = None
    confirmed: bool = False
    tags: Sequence[str] = ()
    # option names that no option has (or that do not apply) are errors, not ignored:
    # for clients that type names (the API); a form only sends the options it shows
    strict: bool = False
    # the values were read from an argument list (planning.parse_argv, the original API):
    # an option not given is left out of the job's arguments where the form could leave it
    from_argv: bool = False


MAX_TAGS = 20
TAG = re.compile(r"[\w.:@+/-]{1,64}")


def clean_tags(tags) -> list[str]:
    """Tags as given by a user, checked (ValueError says what is wrong), sorted, unique."""
    if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
        raise ValueError("tags must be a list of words")
    out = sorted({t.strip() for t in tags if t.strip()})
    for t in out:
        if problem := argv_problem(t, None):  # a NUL or a lone surrogate: say which
            raise ValueError(f"tag {shown_name(t)}: {problem}")
        if not TAG.fullmatch(t):
            raise ValueError(f"tag {t[:70]!r} is not 1 to 64 letters, digits or . _ - : @ + /")
    if len(out) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags on a job")
    return out


def split_tags(text: str) -> list[str]:
    """Tags typed into one field, separated by spaces or commas."""
    return [t for t in re.split(r"[\s,]+", text) if t]


def resubmission(job: Job) -> SubmitRequest:
    """What submitted ``job``: the same job type, inputs, option values and tags, to
    prefill a form (or a request) that the user may change before submitting."""
    return SubmitRequest(
        job.job_type, list(job.dataset_ids), list(job.datafile_ids), dict(job.options),
        job.submission.mode, False, job.tags,
    )  # fmt: skip


def submit(db, backends, catalog: Catalog, datasettypes, jobtypes, families, settings, user: str,
           session_id: str, req: SubmitRequest) -> Submission:  # fmt: skip
    """Check everything (job type, family, inputs as the user sees them, option values,
    one job or one per input), choose the backend and record the jobs; raise
    :class:`SubmitError` with nothing recorded. The web form and the API both call this."""
    jt = jobtypes.get(req.job_type)
    if jt is None:
        raise SubmitError(f"there is no job type called {req.job_type!r}", "unknown_job_type")
    try:
        families.check(jt.family, user)
    except FamilyError as e:
        raise SubmitError(str(e), "forbidden_family", 403) from None
    try:
        resolved = resolve_selection(catalog, session_id, datasettypes, req.dataset_ids, req.datafile_ids)
    except SessionError:
        raise SubmitError("your catalog session has expired; log in again", "session_expired", 401) from None
    except QueryBusyError as e:
        raise SubmitError(str(e), "catalog_busy", 429) from None
    except CatalogError as e:
        raise SubmitError(f"the catalog could not be asked: {e}", "catalog_unavailable", 503) from None
    if resolved.not_visible:
        raise SubmitError(resolved.not_visible, "not_visible")
    try:
        tags, bad_tags = clean_tags(req.tags), {}
    except ValueError as e:
        tags, bad_tags = [], {"tags": str(e)}
    try:
        p = plan(jt, resolved.selection, req.values, mode=req.mode, confirmed=req.confirmed,
                 icat_url=settings.icat_url, ids_url=settings.ids_url, strict=req.strict,
                 from_argv=req.from_argv, max_length=settings.max_value_length)  # fmt: skip
    except PlanError as e:  # every bad field at once, the tags too
        raise SubmitError(str(e), e.code, fields={**e.fields, **bad_tags}) from None
    if bad_tags:
        raise SubmitError(bad_tags["tags"], "invalid_tags", fields=bad_tags)
    try:
        return create_jobs(db, backends, p, user, session_id, settings.url, settings.estimate_seconds, tags)
    except BatchError as e:
        raise SubmitError(str(e), "no_backend", 503) from None


def create_jobs(
    db,
    backends: Mapping[str, BatchBackend],
    plan: Plan,
    owner: str,
    catalog_session: str,
    ijp_url: str,
    deadline: float = 5.0,
    tags: Sequence[str] = (),
) -> Submission:
    """Choose the backend (BatchError, and nothing recorded, if none answers) and record
    the jobs, status Submitting. The backends are called later, by :func:`submit_pending`
    (in the background), so one click for 500 jobs returns at once, and a crash in
    between loses nothing: the rows are there, and every backend job carries its
    portal job id."""
    jt = plan.job_type
    probe = JobSpec(
        0, owner, jt.executable, plan.jobs[0].args, {}, jt.interactive, jt.family, dict(jt.resources)
    )
    backend_name = choose_backend(backends, probe, deadline)
    sub = Submission(
        owner=owner,
        job_type=jt.name,
        mode=plan.mode,
        executable=jt.executable,
        interactive=jt.interactive,
        family=jt.family,
        resources=dict(jt.resources),
        catalog_session=catalog_session if jt.session_id else None,
    )
    db.add(sub)
    rows = []
    for jp in plan.jobs:
        job = Job(
            submission=sub,
            owner=owner,
            job_type=jt.name,
            dataset_ids=list(jp.dataset_ids),
            datafile_ids=list(jp.datafile_ids),
            options=dict(plan.values),
            argv=list(jp.args),
            backend=backend_name,
            status=JobStatus.SUBMITTING,
        )
        job.tags = tags
        db.add(job)
        rows.append(job)
    db.flush()
    for job in rows:  # the ids exist now
        job.argv = job.argv + provenance_args(jt, job.id, ijp_url)
    db.flush()
    return sub


def submit_pending(db, backends: Mapping[str, BatchBackend], limit: int = 25, array_limit: int = 1000) -> int:
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
    (:func:`_withdraw`)."""
    settled = _orphans(db, backends)
    jobs = db.scalars(
        sa.select(Job)
        .where(Job.status == JobStatus.SUBMITTING, Job.backend.in_(list(backends)))
        .order_by(Job.id)
        .limit(max(limit, array_limit))
    ).all()
    if not jobs:  # the usual case, every second: read, and write nothing
        return settled
    for name in sorted({j.backend for j in jobs}):
        backend = backends[name]
        many = backend.submit_many if getattr(backend, "arrays", False) else None
        mine = [j for j in jobs if j.backend == name][: array_limit if many else limit]
        # all the backend needs, read now: the rows may be cancelled or deleted meanwhile
        specs = {j.id: _spec(j) for j in mine}
        groups = {j.id: j.submission_id for j in mine}
        try:
            held = backend.find(list(specs))
        except BatchError as e:  # the backend is down: try again next time
            log.warning("backend %s cannot be asked about pending jobs: %s", name, e)
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
                if error is not None:
                    log.warning("job %s could not be submitted: %s", i, error)
                outcome[i] = (backend_id, f"could not be submitted: {error}")
        _record(db, backend, outcome, {j.id: j for j in mine})
        settled += len(outcome)
    if settled:
        forget_sessions(db)
    return settled


SUBMIT_THREADS = 4
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


CANCELLED_EARLY = "cancelled before it was submitted"


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


def _spec(job: Job) -> JobSpec:
    sub = job.submission
    env = {SESSION_ENV: sub.catalog_session} if sub.catalog_session else {}
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
    )


def forget_sessions(db) -> None:
    """A submission's catalog session is kept only while some of its jobs are live (it
    is kept alive for them, see :func:`keep_sessions_alive`)."""
    live = sa.select(Job.submission_id).where(Job.status.in_(list(LIVE)))
    db.execute(
        sa.update(Submission)
        .where(Submission.catalog_session.is_not(None), Submission.id.not_in(live))
        .values(catalog_session=None)
    )


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
            log.warning("a catalog session of running jobs cannot be kept alive: %s", type(e).__name__)
    return refreshed


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
        state = backend.states([job.backend_job_id])[job.backend_job_id]
    except BatchError as e:
        raise JobActionError(str(e)) from None
    write_state(db, job, state)


def delete_job(db, backends: Mapping[str, BatchBackend], job: Job) -> None:
    """Delete an ended job: first its directory and output on the backend, then its row
    (and tags). A live job is refused: cancel it first (also one being submitted). The
    row goes only as it was read: if the submitter has just recorded the backend id of a
    job cancelled during its hand-over, that backend job is deleted too."""
    for _ in range(3):
        if job.live:
            raise JobActionError(f"job {job.id} is {job.status}; cancel it before deleting it")
        backend_id = job.backend_job_id
        backend = backends.get(job.backend)
        if backend is not None and backend_id is not None:
            try:
                backend.delete(backend_id)
            except (BatchError, OSError) as e:
                raise JobActionError(f"job {job.id} could not be deleted on {job.backend}: {e}") from None
        gone = sa.delete(Job).where(
            Job.id == job.id,
            Job.status.in_(list(TERMINAL)),
            Job.backend_job_id.is_not_distinct_from(backend_id),
        )
        if db.execute(gone.execution_options(synchronize_session=False)).rowcount or not _reload(db, job):
            db.expunge(job)
            return
    raise JobActionError(f"job {job.id} keeps changing; try again")

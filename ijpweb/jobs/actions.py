"""What a user does with their jobs: find the ones they may act on (:func:`owned_job`),
list them, follow a submission's progress, read their output, cancel and delete them.

No Pyramid here: it takes a database session, the backends and plain values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from .. import paging
from ..batch import BatchBackend, BatchError
from ..batch.harvest import capture_vars, seen, update, write_states
from ..inputs import InputError
from ..models import Job, JobTag, Submission, utcnow
from ..models.jobs import named_datafiles, named_datasets
from ..states import LIVE, TERMINAL, JobStatus
from .submission import clean_tags


def owned_job(db, user: str, job_id: int, *, staff: bool = False) -> Job | None:
    """The one ownership rule, for every face (the pages and /api/v1 through their route
    factory, /ijp/rest/jm itself): job ``job_id`` if ``user`` may see and act on it, which
    is their own job; any job only when the caller says ``staff=True`` (a staff console,
    never by default). None for another user's job and for no job alike."""
    job = db.get(Job, job_id)
    if job is None or (job.owner != user and not staff):
        return None
    return job


class JobActionError(Exception):
    """A cancel or delete that cannot be done now; the message says why. ``reached``: the
    backend was asked and may have acted (a cancel that got there, whose state could not be
    read back; a delete that may have removed files): not "nothing changed"."""

    def __init__(self, message: str, *, reached: bool = False):
        super().__init__(message)
        self.reached = reached


@dataclass(frozen=True)
class JobQuery:
    """Which of ``owner``'s jobs a list holds: every filter empty (or None) means any.
    ``status`` is a status or "live" (not ended); ``since`` and ``until`` bound the
    submission time (until excluded); ``tag`` one of the owner's tags."""

    owner: str
    status: str = ""
    job_type: str = ""
    tag: str = ""
    submission: int | None = None
    since: datetime | None = None
    until: datetime | None = None

    def scope(self) -> str:
        """The list's scope for its cursors (ijpweb.paging): another user's or another
        filter's cursor does not verify here."""
        filters = {"status": self.status, "job_type": self.job_type, "tag": self.tag,
                   "submission": self.submission, "since": self.since and self.since.isoformat(),
                   "until": self.until and self.until.isoformat()}  # fmt: skip
        return paging.scope("jobs", self.owner, filters)


def _id_column(q: JobQuery):
    # with a tag, the list is read from job_tag's (owner, tag, job_id) index in job_id order
    return JobTag.job_id if q.tag else Job.id


OLDER, NEWER = "<", ">"  # a cursor's direction: the page older (or newer) than its id


def submitted_between(since: datetime | None, until: datetime | None) -> list:
    """The conditions "submitted at or after ``since``, before ``until``"."""
    conditions = []
    if since is not None:
        conditions.append(Job.submitted_at >= since)
    if until is not None:
        conditions.append(Job.submitted_at < until)
    return conditions


def job_keyset(stmt: sa.Select, id_column, dated: bool, direction: str | None, position: int | None,
               limit: int) -> sa.Select:  # fmt: skip
    """``stmt``'s page of ``limit`` + 1 jobs, newest first (``direction`` None), older than
    job ``position`` (OLDER) or newer (NEWER, oldest first: the caller reverses them); a
    keyset, read from an index however deep the page. A list filtered by submission date
    (``dated``) is in the order of (submitted_at, id), so that the date index gives both
    its range and its order (by id alone, a date range would be read whole and sorted, or
    every newer job walked); its position is then that of job ``position`` in it (a job
    deleted meanwhile ends the list: the first page is a click away)."""
    order = (Job.submitted_at, id_column) if dated else (id_column,)
    if position is not None:
        if dated:
            when = sa.select(Job.submitted_at).where(Job.id == position).scalar_subquery()
            left, right = sa.tuple_(*order), sa.tuple_(when, sa.literal(position, type_=id_column.type))
        else:
            left, right = id_column, sa.literal(position, type_=id_column.type)
        stmt = stmt.where(left > right if direction == NEWER else left < right)
    if direction == NEWER:
        return stmt.order_by(*[c.asc() for c in order]).limit(limit + 1)
    return stmt.order_by(*[c.desc() for c in order]).limit(limit + 1)


def job_select(q: JobQuery) -> sa.Select:
    """The jobs of ``q``, unordered: every list, page and count of a user's jobs is built
    on this one statement (tests/functional/test_query_plans_jobs.py reads its plans)."""
    stmt = sa.select(Job).where(Job.owner == q.owner)
    if q.tag:
        stmt = stmt.join(JobTag, JobTag.job_id == Job.id).where(JobTag.owner == q.owner, JobTag.tag == q.tag)
    stmt = stmt.where(*submitted_between(q.since, q.until))
    if q.status == "live":
        stmt = stmt.where(Job.status.in_(sorted(LIVE)))
    elif q.status:
        stmt = stmt.where(Job.status == JobStatus(q.status))
    if q.job_type:
        stmt = stmt.where(Job.job_type == q.job_type)
    if q.submission is not None:
        stmt = stmt.where(Job.submission_id == q.submission)
    return stmt


def page_select(q: JobQuery, direction: str | None, position: int | None, limit: int) -> sa.Select:
    """One page of ``q`` plus one row (to know whether there is more): see :func:`job_keyset`."""
    dated = q.since is not None or q.until is not None
    return job_keyset(job_select(q), _id_column(q), dated, direction, position, limit)


def count_select(q: JobQuery, cap: int = paging.COUNT_CAP) -> sa.Select:
    """How many jobs ``q`` holds, counting at most ``cap`` + 1 of them (paging.bounded_count's statement)."""
    if q.tag and q == JobQuery(q.owner, tag=q.tag):
        # a tag alone: counted in job_tag's index (a tag row carries its job's owner), not
        # by reading each tagged job
        rows = sa.select(JobTag.job_id).where(JobTag.owner == q.owner, JobTag.tag == q.tag)
    else:
        rows = job_select(q).with_only_columns(Job.id)
    return sa.select(sa.func.count()).select_from(rows.limit(cap + 1).subquery())


def count_jobs(db, q: JobQuery) -> paging.Count:
    """How many jobs ``q`` holds, exactly up to paging.COUNT_CAP ("more than 10,000" past it)."""
    return paging.counted(db.scalar(count_select(q)) or 0)


@dataclass(frozen=True)
class JobPage:
    """A page of jobs, newest first; ``newer``/``older``: the cursors of the pages beside
    it (None: none; the first page is asked for without a cursor); ``total``: how many
    jobs the list holds, counted up to paging.COUNT_CAP."""

    jobs: list[Job]
    total: paging.Count | None
    newer: str | None
    older: str | None
    per_page: int
    first: bool  # this is the newest page (no cursor)


def read_cursor(cursors: paging.Cursors, list_scope: str, token: str | None) -> tuple[str | None, int | None]:
    """The direction and id a cursor of the list ``list_scope`` holds; (None, None) for
    none; an InputError naming ``cursor`` (a 400 on every face) for one that was changed or
    belongs to another list (another user's, other filters)."""
    if not token:
        return None, None
    try:
        direction, position = cursors.decode(list_scope, token, length=2)
    except paging.CursorError as e:
        raise InputError(e.field, e.reason) from None
    if direction not in (OLDER, NEWER) or type(position) is not int:
        raise InputError("cursor", "is not valid for this list")
    return direction, position


@dataclass(frozen=True)
class KeysetPage:
    """The rows of one page, newest first, and the cursors of the pages beside it
    (``newer``/``older``; None: none); ``first``: it is the newest page (no cursor)."""

    rows: list
    newer: str | None
    older: str | None
    first: bool


def keyset_page(db, cursors: paging.Cursors, list_scope: str, cursor: str | None, per_page: int,
                select_page) -> KeysetPage:  # fmt: skip
    """A page of a list ordered newest first by id, by keyset: ``select_page(direction,
    position, per_page)`` builds its statement of ``per_page`` + 1 rows (:func:`job_keyset`),
    ``cursor`` (from a page of this very list, ``list_scope``) says which page. Every list
    paged by id on every face is paged here: a user's jobs, the console's, the audit."""
    direction, position = read_cursor(cursors, list_scope, cursor)
    rows = list(db.scalars(select_page(direction, position, per_page)))
    if direction == NEWER and len(rows) <= per_page:
        # nothing newer beyond it: that is the first page (full, and its refresh shows new rows)
        direction, rows = None, list(db.scalars(select_page(None, None, per_page)))
    if direction == NEWER:
        rows = rows[:per_page][::-1]
        more_older, more_newer = True, True
    else:
        more_older, more_newer = len(rows) > per_page, direction == OLDER
        rows = rows[:per_page]
    if direction == OLDER and not rows:
        more_newer = False  # past the end (rows deleted meanwhile): only "first" leads back
    newer = cursors.encode(list_scope, (NEWER, rows[0].id)) if more_newer and rows else None
    older = cursors.encode(list_scope, (OLDER, rows[-1].id)) if more_older and rows else None
    return KeysetPage(rows, newer, older, direction is None)


def list_jobs(db, cursors: paging.Cursors, q: JobQuery, cursor: str | None = None,
              per_page: int = 25, *, count: bool = True) -> JobPage:  # fmt: skip
    """A page of ``q``'s jobs: the newest, or the one ``cursor`` (from a JobPage of this
    very list) points to. Costs what it shows: ``per_page`` + 1 rows read from an index,
    and a count that stops at paging.COUNT_CAP."""
    page = keyset_page(db, cursors, q.scope(), cursor, per_page, lambda d, p, n: page_select(q, d, p, n))
    total = count_jobs(db, q) if count else None
    return JobPage(page.rows, total, page.newer, page.older, per_page, page.first)


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


def submission_counts_select(owner: str, submission_ids: list[int]) -> sa.Select:
    """(submission, status, jobs) of ``owner``'s submissions ``submission_ids`` (a
    submission's jobs are its owner's): counted in (submission_id, status) alone
    (tests/functional/test_joblist_plans.py reads its plan)."""
    owned = sa.select(Submission.id).where(Submission.owner == owner, Submission.id.in_(submission_ids))
    return (
        sa.select(Job.submission_id, Job.status, sa.func.count())
        .where(Job.submission_id.in_(submission_ids), Job.submission_id.in_(owned))
        .group_by(Job.submission_id, Job.status)
    )


def submission_counts(db, owner: str, submission_ids) -> dict[int, dict[str, int]]:
    """For each of ``owner``'s submissions ``submission_ids`` (those on a page of the job
    list), how many jobs it has and how many of them are done (Completed), failed (Failed
    or Cancelled) and live: one statement, read from (submission_id, status)."""
    ids = sorted(set(submission_ids))
    if not ids:
        return {}
    rows = db.execute(submission_counts_select(owner, ids)).all()
    out: dict[int, dict[str, int]] = {}
    for sub, status, n in rows:
        c = out.setdefault(sub, {"total": 0, "done": 0, "failed": 0, "live": 0})
        c["total"] += n
        status = JobStatus(status)
        key = "done" if status == JobStatus.COMPLETED else "live" if status.live else "failed"
        c[key] += n
    return out


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


CANCELLED_EARLY = "cancelled before it was submitted"


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


def _reload(db, job: Job) -> bool:
    """Read the job's row again (another request or the submitter may have changed it);
    False if it has been deleted."""
    try:
        db.refresh(job)
    except sa.exc.InvalidRequestError:
        return False
    return True


def cancel_job(db, backends: Mapping[str, BatchBackend], job: Job) -> None:
    """Cancel a live job (:func:`cancel_all` of one): JobActionError saying why not."""
    _raise(cancel_all(db, backends, [job])[job.id])


def delete_job(db, backends: Mapping[str, BatchBackend], job: Job) -> None:
    """Delete an ended job (:func:`delete_all` of one): JobActionError saying why not."""
    _raise(delete_all(db, backends, [job])[job.id])


def _raise(error: JobActionError | None) -> None:
    if error is not None:
        raise error


def _cancel_early(db, job: Job) -> bool:
    """Cancel a job not yet with its backend, which then never gets there (the submitter
    withdraws it if it got there meanwhile); False when it is with its backend (read
    again: the submitter may have just handed it over)."""
    if job.status != JobStatus.SUBMITTING or job.backend_job_id is not None:
        return False
    early = {"status": JobStatus.CANCELLED, "reason": CANCELLED_EARLY, "finished_at": utcnow()}
    if _update(db, job, job.id, early, Job.status == JobStatus.SUBMITTING):
        return True
    if not _reload(db, job):  # handed over meanwhile, or deleted
        raise JobActionError(f"job {job.id} no longer exists")
    return False


def cancel_all(db, backends: Mapping[str, BatchBackend], jobs: list[Job]) -> dict[int, JobActionError | None]:
    """Cancel live jobs, each backend asked once for all of its jobs (its cancel_many),
    then once for their states (written, and the output variables of those that had
    started and have ended captured: the harvest no longer sees them end). For each job None (cancelled) or
    why not; a backend that does not answer fails its own jobs, never the others'."""
    out: dict[int, JobActionError | None] = {}
    asked: dict[str, list[Job]] = {}
    for job in jobs:
        try:
            if _cancel_early(db, job):
                out[job.id] = None
                continue
        except JobActionError as e:
            out[job.id] = e
            continue
        if not job.live:
            out[job.id] = JobActionError(f"job {job.id} has already ended ({job.status})")
        elif backends.get(job.backend) is None or job.backend_job_id is None:
            out[job.id] = JobActionError(f"job {job.id} has no backend to cancel it on")
        else:
            asked.setdefault(job.backend, []).append(job)
    for name, group in asked.items():
        out.update(_cancel_on(db, name, backends[name], group))
    return out


def _cancel_on(db, name: str, backend: BatchBackend, jobs: list[Job]) -> dict[int, JobActionError | None]:
    out: dict[int, JobActionError | None] = {}
    try:
        answers = backend.cancel_many([j.backend_job_id for j in jobs])
    except (BatchError, OSError) as e:  # (one that timed out may still have got there)
        return {j.id: JobActionError(str(e), reached=True) for j in jobs}
    sent = []
    for j in jobs:
        error = answers.get(j.backend_job_id, BatchError(f"{name} did not answer for job {j.id}"))
        if error is None:
            sent.append(j)
        else:
            out[j.id] = JobActionError(str(error), reached=True)
    if not sent:
        return out
    try:
        states = backend.states([j.backend_job_id for j in sent])
    except (BatchError, OSError) as e:
        states, why = {}, str(e)
    else:
        why = "no answer for it"
    now, changed, held = utcnow(), [], {}
    for j in sent:
        state = states.get(j.backend_job_id)
        if state is None:
            out[j.id] = JobActionError(
                f"the cancel was sent to {name}, but the job's state could not be read back ({why}); "
                "its status follows when the backend answers again",
                reached=True,
            )
            continue
        out[j.id] = None
        if (values := update(seen(j), state, now)) is not None:
            changed.append((j.id, j.status, values))
            held[j.id] = j
    written = write_states(db, changed)
    # (one that never started wrote no variables: a page of queued jobs costs no reads)
    ended = [(i, held[i].backend_job_id) for i in written if not held[i].live and held[i].started_at]
    if ended:
        capture_vars(db, backend, ended)
    return out


def delete_all(db, backends: Mapping[str, BatchBackend], jobs: list[Job]) -> dict[int, JobActionError | None]:
    """Delete ended jobs: first their directories and output on their backends (each
    backend asked once for all of its jobs: its delete_many), then their rows (and tags).
    A live job is refused: cancel it first (also one being submitted). A row goes only as
    it was read: if the submitter has just recorded the backend id of a job cancelled
    during its hand-over, that backend job is deleted too (the job is tried again, up to
    three times). For each job None (deleted) or why not."""
    out: dict[int, JobActionError | None] = {}
    reached: set[int] = set()  # (a backend asked to delete may have removed files, even if it failed)
    pending = list(jobs)
    for _ in range(3):
        ready: list[tuple[Job, str | None]] = []
        asked: dict[str, list[Job]] = {}
        for job in pending:
            if job.live:
                out[job.id] = JobActionError(
                    f"job {job.id} is {job.status}; cancel it before deleting it", reached=job.id in reached
                )
            elif backends.get(job.backend) is not None and job.backend_job_id is not None:
                asked.setdefault(job.backend, []).append(job)
            else:
                ready.append((job, job.backend_job_id))
        for name, group in asked.items():
            reached.update(j.id for j in group)
            try:
                answers = backends[name].delete_many([j.backend_job_id for j in group])
            except (BatchError, OSError) as e:
                answers = dict.fromkeys((j.backend_job_id for j in group), e)
            for j in group:
                error = answers.get(j.backend_job_id, BatchError(f"{name} did not answer for it"))
                if error is None:
                    ready.append((j, j.backend_job_id))
                else:
                    out[j.id] = JobActionError(
                        f"job {j.id} could not be deleted on {name}: {error}", reached=True
                    )
        pending = []
        for job, backend_id in ready:
            gone = sa.delete(Job).where(
                Job.id == job.id,
                Job.status.in_(list(TERMINAL)),
                Job.backend_job_id.is_not_distinct_from(backend_id),
            )
            if db.execute(gone.execution_options(synchronize_session=False)).rowcount or not _reload(db, job):
                db.expunge(job)
                out[job.id] = None
            else:
                pending.append(job)
        if not pending:
            break
    for job in pending:
        out[job.id] = JobActionError(f"job {job.id} keeps changing; try again", reached=job.id in reached)
    return out


# --- several jobs at once: the list's bulk actions (the pages and /api/v1 alike) -----------------

MAX_BULK = paging.MAX_PER_PAGE  # ids in one bulk request: at most a page of the list


@dataclass(frozen=True)
class Outcome:
    """What a bulk action did to one job: ``result`` is done, skipped (nothing to do: a
    cancel of an ended job, a delete of a live one), failed (``message`` says why) or
    not_found (no such job of yours: another user's id is reported exactly like a missing one)."""

    job_id: int
    result: str
    message: str = ""


BULK_VERBS = ("cancel", "delete", "tag")


def check_bulk_ids(ids: list[int]) -> list[int]:
    """The ids of one bulk request, each once in the order given: at least one and at most
    MAX_BULK (an InputError naming ``ids`` otherwise)."""
    unique = list(dict.fromkeys(ids))
    if not unique:
        raise InputError("ids", "must name at least one job")
    if len(unique) > MAX_BULK:
        raise InputError("ids", f"must name at most {MAX_BULK} jobs at once (a page of the list)")
    return unique


def owned_jobs(db, owner: str, ids: list[int]) -> dict[int, Job]:
    """Those of jobs ``ids`` that are ``owner``'s, by id: one query whose WHERE holds the
    owner (another user's job is not read at all, as if it did not exist)."""
    if not ids:
        return {}
    return {j.id: j for j in db.scalars(sa.select(Job).where(Job.owner == owner, Job.id.in_(ids)))}


def _each(db, owner: str, ids: list[int], act) -> list[Outcome]:
    ids = check_bulk_ids(ids)
    jobs = owned_jobs(db, owner, ids)
    return [
        act(jobs[i]) if i in jobs else Outcome(i, "not_found", f"there is no job {i} of yours") for i in ids
    ]


def _all_at_once(db, owner: str, ids: list[int], skip, act_all, done: str) -> list[Outcome]:
    """The owner's jobs ``ids``: those ``skip`` says why to leave alone are skipped, the
    others acted on together (``act_all``: each backend asked once), reported one by one."""
    ids = check_bulk_ids(ids)
    jobs = owned_jobs(db, owner, ids)
    skipped = {i: why for i, job in jobs.items() if (why := skip(job))}
    errors = act_all([job for i, job in jobs.items() if i not in skipped])
    out = []
    for i in ids:
        if i not in jobs:
            out.append(Outcome(i, "not_found", f"there is no job {i} of yours"))
        elif i in skipped:
            out.append(Outcome(i, "skipped", skipped[i]))
        elif errors[i] is not None:
            out.append(Outcome(i, "failed", str(errors[i])))
        else:
            out.append(Outcome(i, "done", f"job {i} {done}"))
    return out


def cancel_jobs(db, backends: Mapping[str, BatchBackend], owner: str, ids: list[int]) -> list[Outcome]:
    """Cancel each of the owner's jobs ``ids`` that is live (:func:`cancel_all`: each
    backend asked once)."""

    def skip(job: Job) -> str | None:
        return None if job.live else f"job {job.id} had already ended ({job.status})"

    return _all_at_once(db, owner, ids, skip, lambda jobs: cancel_all(db, backends, jobs), "cancelled")


def delete_jobs(db, backends: Mapping[str, BatchBackend], owner: str, ids: list[int]) -> list[Outcome]:
    """Delete each of the owner's jobs ``ids`` that has ended (:func:`delete_all`: each
    backend asked once)."""

    def skip(job: Job) -> str | None:
        return f"job {job.id} is {job.status}: cancel it before deleting it" if job.live else None

    return _all_at_once(db, owner, ids, skip, lambda jobs: delete_all(db, backends, jobs), "deleted")


def tag_jobs(db, owner: str, ids: list[int], add: list[str], remove: list[str]) -> list[Outcome]:
    """Add the tags ``add`` to the owner's jobs ``ids`` and take ``remove`` off them (both
    checked by the caller, ijpweb.jobs.submission.clean_tags); a job that would carry more
    tags than allowed keeps its own and says so."""

    def act(job: Job) -> Outcome:
        before = job.tags
        after = (set(before) | set(add)) - set(remove)
        try:
            job.tags = clean_tags(sorted(after))
        except ValueError as e:
            return Outcome(job.id, "failed", f"job {job.id}: {e}")
        if job.tags == before:
            return Outcome(job.id, "skipped", f"job {job.id} already had those tags")
        return Outcome(job.id, "done", f"job {job.id} tagged")

    return _each(db, owner, ids, act)


_SAID = {  # how a summary says each result, by verb: (done, skipped, failed)
    "cancel": ("Cancelled {n}", "{n} had already ended", "{n} could not be cancelled"),
    "delete": ("Deleted {n}", "{n} {were} still live (cancel first)", "{n} could not be deleted"),
    "tag": ("Tagged {n}", "{n} already had those tags", "{n} could not be tagged"),
}


def summary(verb: str, outcomes: list[Outcome]) -> str:
    """One sentence for a person: "Cancelled 3; 1 had already ended; 1 not found"."""
    counts = {r: sum(o.result == r for o in outcomes) for r in ("done", "skipped", "failed", "not_found")}
    done, skipped, failed = _SAID[verb]
    parts = [done.format(n=counts["done"])]
    for template, n in ((skipped, counts["skipped"]), (failed, counts["failed"])):
        if n:
            parts.append(template.format(n=n, were="was" if n == 1 else "were"))
    if counts["not_found"]:
        parts.append(f"{counts['not_found']} not found")
    return "; ".join(parts)


# --- the filtered list as a file: CSV or JSON, streamed -------------------------------------------

EXPORT_PAGE = 1000  # jobs read per statement while exporting


@dataclass(frozen=True)
class ExportRow:
    """A job as an export writes it (ijpweb.jobs.export.job_record): its columns, read
    without building the ORM's Job (five times faster for a long list)."""

    id: int
    submission_id: int
    job_type: str
    status: JobStatus
    submitted_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    named_datasets: list
    named_datafiles: list
    tags: list[str]


_EXPORTED = (Job.id, Job.submission_id, Job.job_type, Job.status, Job.submitted_at, Job.started_at,
             Job.finished_at, Job.dataset_ids, Job.datafile_ids, Job.input_names)  # fmt: skip


def export_pages(session_factory, q: JobQuery, page: int = EXPORT_PAGE):
    """Every job of ``q`` as ExportRows, newest first (by date, with since or until), in
    pages of ``page``: each read by keyset (:func:`page_select`, its columns only) with its
    jobs' tags in one more statement, in a short session of its own: a list of a million
    jobs is never held, nor one transaction kept open for the whole download."""
    position = None
    while True:
        with session_factory() as db:
            stmt = page_select(q, position and OLDER, position, page).with_only_columns(*_EXPORTED)
            rows = db.execute(stmt).all()[:page]
            tags: dict[int, list[str]] = {}
            if rows:
                for job_id, tag in db.execute(
                    sa.select(JobTag.job_id, JobTag.tag)
                    .where(JobTag.job_id.in_([r.id for r in rows]))
                    .order_by(JobTag.job_id, JobTag.tag)
                ):
                    tags.setdefault(job_id, []).append(tag)
        if not rows:
            return
        yield [
            ExportRow(
                r.id,
                r.submission_id,
                r.job_type,
                r.status,
                r.submitted_at,
                r.started_at,
                r.finished_at,
                named_datasets(r.dataset_ids, r.input_names),
                named_datafiles(r.datafile_ids, r.input_names),
                tags.get(r.id, []),
            )  # fmt: skip
            for r in rows
        ]
        if len(rows) < page:
            return
        position = rows[-1].id

"""Submitting: check a request (job type, family, inputs as the user sees them, option
values, tags), choose the backend and record the jobs, status Submitting. The batch
submitter (ijpweb.batch.submitter) hands them to their backend in the background.

No Pyramid here: the :class:`Submitter` is built once (ijpweb.jobs.includeme) and every
face calls it with what is per request.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass

from .. import health
from ..batch import BatchBackend, BatchError, JobSpec
from ..catalog import Catalog, CatalogError, QueryBusyError, SessionError
from ..families import FamilyError
from ..models import Job, Submission
from ..planning import Plan, PlanError, argv_problem, plan, provenance_args, shown_name
from ..settings import clamp_geometry
from ..states import JobStatus
from . import desktops
from .selection import resolve_selection

log = logging.getLogger(__name__)


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
    # an interactive job's desktop size, WxH (the form's hidden field, forms.js; /api/v1's
    # "geometry"): clamped to what the settings allow, the default when not given
    geometry: str | None = None


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


class Submitter:
    """Submissions, as every face makes them (the web form, /api/v1, /ijp/rest/jm): built
    once (ijpweb.jobs.includeme, reached as ``request.submitter``) with what is the same
    for every request; each call takes what is per request."""

    def __init__(self, services: Mapping[str, object], settings, wake: Callable[[], None] = lambda: None):
        # services: where the process keeps them (Pyramid's registry): ijp.backends,
        # ijp.jobtypes (the source of job types), ijp.datasettypes, ijp.families; read at
        # each submission, as the pages read them, so both always see the same ones.
        # wake: runs the background submitter now
        self._services, self.settings, self._wake = services, settings, wake

    @property
    def backends(self) -> Mapping[str, BatchBackend]:
        return self._services["ijp.backends"]

    @property
    def jobtypes(self):
        return self._services["ijp.jobtypes"]

    @property
    def datasettypes(self):
        return self._services["ijp.datasettypes"]

    @property
    def families(self):
        return self._services["ijp.families"]

    def submit(self, db, catalog: Catalog, user: str, session_id: str, req: SubmitRequest) -> Submission:
        """Check everything (job type, family, inputs as the user sees them, option values,
        one job or one per input), choose the backend and record the jobs; raise
        :class:`SubmitError` with nothing recorded. Call :meth:`wake` once they are committed."""
        settings = self.settings
        jt = self.jobtypes.current().get(req.job_type)
        if jt is None:
            raise SubmitError(f"there is no job type called {req.job_type!r}", "unknown_job_type")
        try:
            self.families.check(jt.family, user)
        except FamilyError as e:
            raise SubmitError(str(e), "forbidden_family", 403) from None
        try:
            resolved = resolve_selection(
                catalog, session_id, self.datasettypes, req.dataset_ids, req.datafile_ids
            )
        except SessionError:
            raise SubmitError(
                "your catalog session has expired; log in again", "session_expired", 401
            ) from None
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
        if jt.interactive and settings.desktop.max_per_user:  # (before a backend is asked)
            try:
                desktops.check_limits(db, settings.desktop, user, None, len(p.jobs))
            except desktops.LimitError as e:
                raise SubmitError(str(e), "too_many_desktops", 409) from None
        try:
            return create_jobs(
                db, self.backends, p, user, session_id, settings.url, settings.estimate_seconds, tags,
                names=InputNames.of(resolved.datasets, resolved.datafiles),
                desktop=settings.desktop, geometry=req.geometry,
            )  # fmt: skip
        except desktops.LimitError as e:
            raise SubmitError(str(e), "too_many_desktops", 409) from None
        except BatchError as e:
            raise SubmitError(str(e), "no_backend", 503) from None

    def wake(self) -> None:
        """Hand the jobs just recorded (and committed) to their backends now, not at the
        background submitter's next round (a no-op where this process does not run it)."""
        self._wake()


@dataclass(frozen=True)
class InputNames:
    """The names of a submission's inputs as the catalog showed them to its owner (from the
    lookup the submission made anyway): each job records those of its own inputs."""

    datasets: Mapping[int, str]
    datafiles: Mapping[int, tuple[str, str]]  # id -> (name, its dataset's name)

    @classmethod
    def of(cls, datasets, datafiles) -> InputNames:
        return cls({d.id: d.name for d in datasets}, {f.id: (f.name, f.dataset_name) for f in datafiles})

    def for_job(self, dataset_ids: Sequence[int], datafile_ids: Sequence[int]) -> dict:
        """A job's ``input_names``: {"datasets": [[id, name]...], "datafiles": [[id, name,
        dataset name]...]} in the job's order (an input without a name: "")."""
        return {
            "datasets": [[i, self.datasets.get(i, "")] for i in dataset_ids],
            "datafiles": [[i, *self.datafiles.get(i, ("", ""))] for i in datafile_ids],
        }


def create_jobs(
    db,
    backends: Mapping[str, BatchBackend],
    plan: Plan,
    owner: str,
    catalog_session: str,
    ijp_url: str,
    deadline: float = 5.0,
    tags: Sequence[str] = (),
    *,
    names: InputNames | None = None,
    desktop=None,
    geometry: str | None = None,
) -> Submission:
    """Choose the backend (a paused one never; BatchError, and nothing recorded, if none
    answers or every one is paused) and record the jobs, status Submitting. The backends
    are called later, by
    :func:`ijpweb.batch.submitter.submit_pending` (in the background), so one click for
    500 jobs returns at once, and a crash in between loses nothing: the rows are there,
    and every backend job carries its portal job id.

    An interactive job type's jobs each get a Desktop row ("starting"), and the
    submission keeps the desktop's ``geometry`` in its resources; ``desktop`` (the
    settings' DesktopSettings) bounds the sessions of the user and of the backend chosen
    (desktops.LimitError, nothing recorded)."""
    jt = plan.job_type
    probe = JobSpec(
        0, owner, jt.executable, plan.jobs[0].args, {}, jt.interactive, jt.family, dict(jt.resources)
    )
    # a backend staff paused takes no new submission (ijpweb.console); all paused, none is made
    paused = health.paused(db)
    if backends and paused >= set(backends):
        raise BatchError(
            "every batch backend is paused by the portal's staff: nothing was submitted; try again later"
        )
    backend_name = choose_backend({n: b for n, b in backends.items() if n not in paused}, probe, deadline)
    resources = dict(jt.resources)
    if jt.interactive:
        if desktop is not None:  # counted and added under a lock: simultaneous submissions wait
            desktops.serialize(db, owner, backend_name)
            desktops.check_limits(db, desktop, owner, backend_name, len(plan.jobs))
        resources["geometry"] = clamp_geometry(geometry)
    sub = Submission(
        owner=owner,
        job_type=jt.name,
        mode=plan.mode,
        executable=jt.executable,
        interactive=jt.interactive,
        family=jt.family,
        resources=resources,
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
            input_names=names.for_job(jp.dataset_ids, jp.datafile_ids) if names else None,
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
    if jt.interactive:
        desktops.create_desktops(db, [job.id for job in rows])
    db.flush()
    return sub

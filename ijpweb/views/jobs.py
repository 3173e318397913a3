"""The job list, a job's page, its output, cancel and delete. State comes from the
database (the harvester keeps it current); output is read from the backend by offset."""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime, timedelta

from pyramid.httpexceptions import HTTPNotFound, HTTPSeeOther
from pyramid.renderers import render_to_response
from pyramid.response import Response
from pyramid.view import view_config

from ..batch import STREAMS, BatchError
from ..inputs import MAX_JOB_ID, MAX_OFFSET, InputError, job_id
from ..jobs.actions import (
    MAX_BULK,
    JobActionError,
    JobQuery,
    cancel_job,
    cancel_jobs,
    check_bulk_ids,
    delete_job,
    delete_jobs,
    export_pages,
    list_jobs,
    owned_jobs,
    read_output,
    submission_counts,
    submission_progress,
    summary,
    tag_jobs,
)
from ..jobs.desktops import desktop_states, panel
from ..jobs.export import csv_rows, json_rows
from ..jobs.submission import clean_tags, split_tags
from ..models import user_tags
from ..models.desktops import Desktop
from ..paging import MAX_PER_PAGE, page_size
from ..security import Permission
from ..states import JobStatus
from ..templating import _duration, _elapsed, badge, inputs_short, rel
from . import HTMX, param_int, param_text, vary

PER_PAGE = 25
MAX_ASKED = 1_000_000  # a per_page beyond paging.MAX_PER_PAGE is capped (and the page says so)
CHUNK = 256 * 1024


def _day(params, name: str) -> date | None:
    """A date filter of the page (``YYYY-MM-DD``, as an ``<input type="date">`` sends it)."""
    raw = param_text(params, name, 32)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InputError(name, "must be a date, YYYY-MM-DD") from None


def list_query(request, params) -> tuple[JobQuery, dict]:
    """The list's filters from the page's parameters, as a JobQuery of the caller's jobs and
    as the parameters that name them again (for links, the export and the bulk form). A
    status that is no status means any (the form only offers real ones)."""
    status = param_text(params, "status")
    if status and status != "live" and status not in {s.value for s in JobStatus}:
        status = ""
    job_type, tag = param_text(params, "job_type"), param_text(params, "tag")
    submission = param_int(params, "submission", None, 1, MAX_JOB_ID)
    since, until = _day(params, "since"), _day(params, "until")
    query = JobQuery(
        request.identity.user_name, status=status, job_type=job_type, tag=tag, submission=submission,
        since=since and datetime(since.year, since.month, since.day, tzinfo=UTC),
        # (until: that whole day)
        until=until and datetime(until.year, until.month, until.day, tzinfo=UTC) + timedelta(days=1),
    )  # fmt: skip
    named = {"status": status, "job_type": job_type, "tag": tag, "submission": submission,
             "since": since and since.isoformat(), "until": until and until.isoformat()}  # fmt: skip
    return query, {k: v for k, v in named.items() if v}


def grouped_rows(jobs: list, counts: dict[int, dict]) -> list[dict]:
    """The page's jobs with the consecutive jobs of one submission of several jobs gathered
    into a group (``{"submission", "counts", "jobs"}``); a job alone is ``{"job"}``. Paging
    stays by job: a submission cut by a page's end shows as a group on both pages."""
    out: list[dict] = []
    for job in jobs:
        c = counts.get(job.submission_id)
        if c is None or c["total"] < 2:
            out.append({"job": job})
        elif out and out[-1].get("submission") == job.submission_id:
            out[-1]["jobs"].append(job)
        else:
            out.append(
                {"submission": job.submission_id, "counts": c, "jobs": [job], "job_type": job.job_type}
            )
    return out


class ListRow:
    """What a row of the job list shows of a job, computed once in Python (a page has up
    to 200 rows; each value worked out in the template was a call from Jinja, several
    times what it costs here): jobs/_rows.jinja2 prints them. ``ran`` says what ``run``
    is: "ended" (its run time), "running" (so far), "waiting" (since submitted) or ""."""

    __slots__ = ("id", "url", "job_type", "status", "exit_code", "inputs", "submitted", "ran", "run", "tags",
                 "desktop")  # fmt: skip

    def __init__(
        self, job, url: str, tag_url, now: datetime, naive_now: datetime, desktop: str | None = None
    ):
        self.id, self.url, self.job_type = job.id, url, job.job_type
        self.status = badge(job.status.value)
        self.exit_code = job.exit_code if job.exit_code not in (None, 0) else None
        self.inputs = inputs_short(job)
        self.submitted = rel(job.submitted_at, naive_now)
        if job.started_at and job.finished_at:
            self.ran, self.run = "ended", _duration(_elapsed(job.started_at, job.finished_at))
        elif job.started_at:
            self.ran, self.run = "running", _duration(_elapsed(job.started_at, now))
        elif job.live:
            self.ran, self.run = "waiting", _duration(_elapsed(job.submitted_at, now))
        else:
            self.ran, self.run = "", ""
        self.tags = [(t, tag_url(t)) for t in job.tags]
        # an interactive job's desktop while the job is live: starting, ready or ending
        self.desktop = desktop


def id_url(request, route: str, key: str):
    """``request.route_url(route, **{key: id})`` for any integer id, from one route_url:
    the URL of a sentinel id, split around it (an id's digits are never quoted)."""
    sentinel = "9081726354"
    before, sep, after = request.route_url(route, **{key: sentinel}).partition(sentinel)
    if not sep or sentinel in after:  # (a route that does not show the id once as given)
        return lambda i: request.route_url(route, **{key: i})
    return lambda i: f"{before}{int(i)}{after}"


def list_rows(request, jobs: list) -> dict:
    """Each job's ListRow by the job, their URLs each made once (a tag's link once a page)."""
    url = id_url(request, "jobs.detail", "job_id")
    tag_urls: dict[str, str] = {}

    def tag_url(t: str) -> str:
        if t not in tag_urls:
            tag_urls[t] = request.route_url("jobs.list", _query={"tag": t})
        return tag_urls[t]

    now = datetime.now(UTC)
    naive_now = now.replace(tzinfo=None)  # (rel's: UTC without its zone)
    shown = desktop_states(request.dbsession, [j for j in jobs if j.live])
    return {job: ListRow(job, url(job.id), tag_url, now, naive_now, shown.get(job.id)) for job in jobs}


def _shown(items: list[dict], rows: dict) -> list[dict]:
    """grouped_rows' items with each job as its ListRow (the group's own values kept)."""
    for item in items:
        if "job" in item:
            item["job"] = rows[item["job"]]
        else:
            item["jobs"] = [rows[j] for j in item["jobs"]]
    return items


def _list(request):
    query, named = list_query(request, request.GET)
    asked = param_int(request.GET, "per_page", None, 1, MAX_ASKED)
    per_page, capped = page_size(asked, PER_PAGE)
    found = list_jobs(
        request.dbsession, request.cursors, query, param_text(request.GET, "cursor", 2048), per_page
    )
    submission = query.submission
    progress = (
        submission_progress(request.dbsession, request.identity.user_name, submission) if submission else None
    )
    # grouped by submission unless asked not to (or the list is one submission's already)
    grouped = param_text(request.GET, "grouped") != "0" and submission is None
    counts = (
        submission_counts(request.dbsession, query.owner, {j.submission_id for j in found.jobs})
        if grouped
        else {}
    )
    # the links keep the filters (and a page size that was asked for)
    keep = named | ({"per_page": per_page} if asked else {}) | ({} if grouped else {"grouped": "0"})
    return {
        "progress": progress,
        "found": found,
        "jobs": found.jobs,
        "rows": _shown(
            grouped_rows(found.jobs, counts) if grouped else [{"job": j} for j in found.jobs],
            list_rows(request, found.jobs),
        ),
        "grouped": grouped,
        "capped": capped,
        "max_per_page": MAX_PER_PAGE,
        "links": keep,
        "filters": named,
        "here": keep | ({"cursor": request.GET["cursor"]} if not found.first else {}),
        "status": query.status,
        "job_type": query.job_type,
        "tag": query.tag,
        "since": named.get("since", ""),
        "until": named.get("until", ""),
        "selected": set(),
        "select_all": param_text(request.GET, "select") == "all",
        "statuses": [s.value for s in JobStatus],
        "job_types": [jt.name for jt in request.jobtypes.all()],
        "any_live": any(j.live for j in found.jobs)
        or bool(progress and progress["submitted"] < progress["total"]),
        "submission": submission,
        "result": None,
        "bulk_error": None,
    }


@view_config(
    route_name="jobs.list", request_method="GET", permission=Permission.USE, renderer="jobs/index.jinja2"
)
def jobs_page(request):
    vary(request)
    # the user's tags for the filter: the page only, not the rows it refreshes every 3 s
    return _list(request) | {"tags": user_tags(request.dbsession, request.identity.user_name)}


@view_config(
    route_name="jobs.list",
    request_method="GET",
    header=HTMX,
    permission=Permission.USE,
    renderer="jobs/_rows.jinja2",
)
def jobs_rows(request):
    """The rows (their refresh every 3 s while a job is live), or the whole list with its
    toolbar when the filters changed (htmx targets ``#job-list``: the export links and the
    bulk form carry the filters)."""
    vary(request)
    if request.headers.get("HX-Target") == "job-list":
        values = _list(request)
        return render_to_response("jobs/_list.jinja2", values, request=request, response=request.response)
    return _list(request)


# --- several jobs at once ------------------------------------------------------------------------

BULK_ACTIONS = ("cancel", "delete", "tag", "untag")


def bulk_ids(params) -> list[int]:
    """The jobs ticked (``id``, repeated): each a job id, at most MAX_BULK (a page): a 400
    naming ``ids`` above; an empty list is for the caller to refuse."""
    raw = params.getall("id")
    if len(raw) > MAX_BULK:
        raise InputError("ids", f"must name at most {MAX_BULK} jobs at once (a page of the list)")
    return list(dict.fromkeys(job_id(r, "id") for r in raw))


@view_config(route_name="jobs.bulk", request_method="POST", permission=Permission.USE)
def bulk(request):
    """Cancel, delete, tag or untag the jobs ticked in the list (``id``, repeated). Cancel
    and delete first show what they will do (``confirm=1`` does it: the confirmation page
    and htmx's dialog send it); then the list again with what was done, job by job. The
    list's filters come in the query string and are kept."""
    action = param_text(request.POST, "action", 16)
    if action not in BULK_ACTIONS:
        raise InputError("action", f"must be one of {', '.join(BULK_ACTIONS)}")
    ids = bulk_ids(request.POST)
    owner, db = request.identity.user_name, request.dbsession
    htmx = request.headers.get("HX-Request") == "true"
    template = "jobs/_list.jinja2" if htmx else "jobs/index.jinja2"
    if not ids:
        return _bulk_list(request, template, None, "Tick one or more jobs first.", status=400)
    tags: list[str] = []
    if action in ("tag", "untag"):
        try:
            tags = clean_tags(split_tags(param_text(request.POST, "tags", 2000)))
        except ValueError as e:
            return _bulk_list(request, template, None, f"Tags: {e}", status=422, ticked=ids)
        if not tags:
            return _bulk_list(request, template, None, "Type the tags to add or remove first.", status=400,
                              ticked=ids)  # fmt: skip
    if action in ("cancel", "delete") and param_text(request.POST, "confirm", 8) != "1":
        jobs = owned_jobs(db, owner, check_bulk_ids(ids))
        return render_to_response(
            "jobs/bulk_confirm.jinja2",
            {"verb": action, "jobs": [jobs[i] for i in ids if i in jobs],
             "missing": [i for i in ids if i not in jobs], "filters": _kept(request)},
            request=request,
        )  # fmt: skip
    if action == "cancel":
        outcomes = cancel_jobs(db, request.backends, owner, ids)
    elif action == "delete":
        outcomes = delete_jobs(db, request.backends, owner, ids)
    else:
        outcomes = tag_jobs(db, owner, ids, *((tags, []) if action == "tag" else ([], tags)))
    verb = "tag" if action == "untag" else action
    result = {"summary": summary(verb, outcomes), "outcomes": outcomes, "verb": action}
    return _bulk_list(request, template, result, None)


def _kept(request) -> dict:
    """The list's filters, as the bulk form's query string carries them (checked again)."""
    return list_query(request, request.GET)[1]


def _bulk_list(request, template: str, result, error, status: int = 200, ticked=()):
    """The list as it is now (its filters from the query string) with the outcome of a
    bulk action, or why it was not done (the jobs ticked stay ticked)."""
    values = _list(request) | {"result": result, "bulk_error": error, "selected": set(ticked)}
    values["tags"] = user_tags(request.dbsession, request.identity.user_name)
    response = render_to_response(template, values, request=request)
    response.status = status
    response.vary = ("HX-Request",)
    return response


# --- the list as a file ----------------------------------------------------------------------------

EXPORTS = {"csv": ("text/csv", csv_rows), "json": ("application/json", json_rows)}


def export_response(request, query: JobQuery, fmt: str) -> Response:
    """The jobs of ``query`` (the caller's: the query holds the owner) as a CSV or JSON
    file, streamed: the rows are read a keyset page at a time while the file is sent, in
    sessions of their own (the request's has ended by then), never the whole list at once."""
    if fmt not in EXPORTS:
        raise InputError("format", "must be csv or json")
    content_type, write = EXPORTS[fmt]
    shared = request.environ.get("app.dbsession")  # (the tests': their rows are not committed)
    factory = (
        (lambda: contextlib.nullcontext(shared))
        if shared is not None
        else request.registry["dbsession_factory"]
    )
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    resp = Response(app_iter=write(export_pages(factory, query)), content_type=content_type, charset="utf-8")
    resp.headers["Content-Disposition"] = f'attachment; filename="jobs-{stamp}.{fmt}"'
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


@view_config(route_name="jobs.export", request_method="GET", permission=Permission.USE)
def export(request):
    """The list with the page's filters (status, job type, tag, submission, dates) as a
    file: ``format=csv`` or ``json``."""
    query, _ = list_query(request, request.GET)
    return export_response(request, query, param_text(request.GET, "format", 8) or "csv")


def _job(request):
    job = request.context.job
    jt = request.jobtypes.get(job.job_type)
    # an interactive job's desktop panel (None for a batch job: no Desktop row)
    desktop = panel(job, request.dbsession.get(Desktop, job.id), request.registry.settings["ijp"].desktop)
    return {"job": job, "jt": jt, "streams": STREAMS, "desktop": desktop}


@view_config(
    route_name="jobs.detail", request_method="GET", permission=Permission.USE, renderer="jobs/detail.jinja2"
)
def job_page(request):
    from .outputs import page_context  # (views.outputs imports this module)

    vary(request)
    return _job(request) | page_context(request, request.context.job)


@view_config(
    route_name="jobs.detail",
    request_method="GET",
    header=HTMX,
    permission=Permission.USE,
    renderer="jobs/_status.jinja2",
)
def job_status(request):
    vary(request)
    return _job(request)


@view_config(
    route_name="jobs.tags", request_method="POST", permission=Permission.USE, renderer="jobs/_tags.jinja2"
)
def job_tags(request):
    """Replace the job's tags with the words typed; a bad one is named and nothing changes."""
    job, text = request.context.job, request.POST.get("tags", "")
    try:
        job.tags = clean_tags(split_tags(text))
    except ValueError as e:
        request.response.status = 422
        return {"job": job, "tags_text": text, "tags_error": str(e)}
    if request.headers.get("HX-Request") != "true":
        return HTTPSeeOther(location=request.route_url("jobs.detail", job_id=job.id))
    return {"job": job}


def decode_chunk(data: bytes, final: bool) -> tuple[str, int]:
    """Decode UTF-8 without splitting a character across chunks: returns the text and
    how many bytes it used (an incomplete character at the end waits for more)."""
    if not final:
        for cut in range(0, 4):
            end = len(data) - cut
            try:
                return data[:end].decode("utf-8"), end
            except UnicodeDecodeError as e:
                if e.start < end - 4:
                    break
    return data.decode("utf-8", errors="replace"), len(data)


@view_config(
    route_name="jobs.output",
    request_method="GET",
    header=HTMX,
    permission=Permission.USE,
    renderer="jobs/_output.jinja2",
)
def job_output(request):
    """A chunk of stdout or stderr from ``offset`` for the job's page (escaped into the
    page), and (while there may be more) the element that fetches the next one."""
    vary(request)
    job = request.context.job
    stream = request.matchdict["stream"]
    if stream not in STREAMS:
        raise HTTPNotFound()
    offset = param_int(request.GET, "offset", 0, 0, MAX_OFFSET)
    error = None
    try:
        data = read_output(request.backends, job, stream, offset, CHUNK)
    except BatchError as e:
        data, error = b"", str(e)
    text, used = decode_chunk(data, final=not job.live and len(data) < CHUNK)
    more = len(data) == CHUNK
    return {
        "job": job,
        "stream": stream,
        "text": text,
        "next_offset": offset + used,
        "follow": (job.live or more) and error is None,
        "soon": more,
        "error": error,
    }


# a job's output is the job's to write: a browser shows it as text and runs nothing in it
PLAIN_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"


@view_config(route_name="jobs.output", request_method="GET", permission=Permission.USE)
def job_output_text(request):
    """The stdout or stderr itself (from ``offset``, to the end as it is now), streamed
    as ``text/plain; charset=utf-8``, never as a page (``nosniff``, and a CSP that runs
    nothing); with ``download=1`` as an attachment to save."""
    job = request.context.job
    stream = request.matchdict["stream"]
    if stream not in STREAMS:
        raise HTTPNotFound()
    offset = param_int(request.GET, "offset", 0, 0, MAX_OFFSET)
    download = param_text(request.GET, "download") not in ("", "0")
    try:
        first = read_output(request.backends, job, stream, offset, CHUNK)
    except BatchError as e:
        return _plain([f"{e}\n".encode()], 503, {"Retry-After": "2"})
    backend, backend_job_id = request.backends.get(job.backend), job.backend_job_id

    def chunks(data: bytes = first, at: int = offset):
        # read on after the view has returned: from the backend, not the job's row
        while data:
            yield data
            if len(data) < CHUNK:
                return
            at += len(data)
            try:
                data = backend.read(backend_job_id, stream, at, CHUNK)
            except (OSError, BatchError):  # the output went away meanwhile: what was read is sent
                return

    disposition = f'{"attachment" if download else "inline"}; filename="job-{job.id}-{stream}.txt"'
    return _plain(chunks(), 200, {"Content-Disposition": disposition})


def _plain(app_iter, status: int, headers: dict) -> Response:
    resp = Response(app_iter=app_iter, status=status, content_type="text/plain", charset="utf-8")
    resp.headers.update({"X-Content-Type-Options": "nosniff", "Content-Security-Policy": PLAIN_CSP,
                         "Vary": "HX-Request"} | headers)  # fmt: skip
    return resp


def _action(request, action, verb):
    job = request.context.job
    try:
        action(request.dbsession, request.backends, job)
    except JobActionError as e:
        request.response.status = 409
        return {"job": job, "verb": verb, "error": str(e)}
    # where the focus lands next: the notice saying what was done (autofocus)
    if verb == "delete":
        target = request.route_url("jobs.list", _query={"deleted": job.id})
    else:
        target = request.route_url("jobs.detail", job_id=job.id, _query={"cancelled": 1})
    if request.headers.get("HX-Request") == "true":
        return Response(status=204, headers={"HX-Redirect": target})  # (no body, so no type)
    return HTTPSeeOther(location=target)


@view_config(
    route_name="jobs.cancel", request_method="GET", permission=Permission.USE, renderer="jobs/confirm.jinja2"
)
@view_config(
    route_name="jobs.delete", request_method="GET", permission=Permission.USE, renderer="jobs/confirm.jinja2"
)
def confirm_page(request):
    verb = "cancel" if request.matched_route.name == "jobs.cancel" else "delete"
    return {"job": request.context.job, "verb": verb, "error": None}


@view_config(
    route_name="jobs.cancel", request_method="POST", permission=Permission.USE, renderer="jobs/confirm.jinja2"
)
def cancel(request):
    return _action(request, cancel_job, "cancel")


@view_config(
    route_name="jobs.delete", request_method="POST", permission=Permission.USE, renderer="jobs/confirm.jinja2"
)
def delete(request):
    return _action(request, delete_job, "delete")

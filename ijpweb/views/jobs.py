"""The job list, a job's page, its output, cancel and delete. State comes from the
database (the harvester keeps it current); output is read from the backend by offset."""

from __future__ import annotations

from pyramid.httpexceptions import HTTPNotFound, HTTPSeeOther
from pyramid.response import Response
from pyramid.view import view_config

from ..batch import STREAMS, BatchError
from ..inputs import MAX_JOB_ID, MAX_OFFSET
from ..jobs.actions import (
    JobActionError,
    JobQuery,
    cancel_job,
    delete_job,
    list_jobs,
    read_output,
    submission_progress,
)
from ..jobs.submission import clean_tags, split_tags
from ..models import user_tags
from ..paging import MAX_PER_PAGE, page_size
from ..security import Permission
from ..states import JobStatus
from . import HTMX, param_int, param_text, vary

PER_PAGE = 25
MAX_ASKED = 1_000_000  # a per_page beyond paging.MAX_PER_PAGE is capped (and the page says so)
CHUNK = 256 * 1024


def _list(request):
    status = param_text(request.GET, "status")
    if status and status != "live" and status not in {s.value for s in JobStatus}:
        status = ""
    job_type = param_text(request.GET, "job_type")
    tag = param_text(request.GET, "tag")
    asked = param_int(request.GET, "per_page", None, 1, MAX_ASKED)
    per_page, capped = page_size(asked, PER_PAGE)
    query = JobQuery(request.identity.user_name, status=status, job_type=job_type, tag=tag)
    found = list_jobs(
        request.dbsession, request.cursors, query, param_text(request.GET, "cursor", 2048), per_page
    )
    submission = param_int(request.GET, "submission", None, 1, MAX_JOB_ID)
    progress = (
        submission_progress(request.dbsession, request.identity.user_name, submission) if submission else None
    )
    # the links keep the filters (and a page size that was asked for), never the progress
    keep = {"status": status, "job_type": job_type, "tag": tag, "per_page": asked and per_page}
    keep = {k: v for k, v in keep.items() if v}
    return {
        "progress": progress,
        "found": found,
        "jobs": found.jobs,
        "capped": capped,
        "max_per_page": MAX_PER_PAGE,
        "links": keep,
        "here": keep
        | ({"cursor": request.GET["cursor"]} if not found.first else {})
        | ({"submission": submission} if submission else {}),
        "status": status,
        "job_type": job_type,
        "tag": tag,
        "statuses": [s.value for s in JobStatus],
        "job_types": [jt.name for jt in request.jobtypes.all()],
        "any_live": any(j.live for j in found.jobs)
        or bool(progress and progress["submitted"] < progress["total"]),
        "submission": submission,
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
    vary(request)
    return _list(request)


def _job(request):
    job = request.context.job
    jt = request.jobtypes.get(job.job_type)
    return {"job": job, "jt": jt, "streams": STREAMS}


@view_config(
    route_name="jobs.detail", request_method="GET", permission=Permission.USE, renderer="jobs/detail.jinja2"
)
def job_page(request):
    vary(request)
    return _job(request)


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
    if verb == "delete":
        target = request.route_url("jobs.list")
    else:
        target = request.route_url("jobs.detail", job_id=job.id)
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

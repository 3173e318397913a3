"""The JSON API under /api/v1 (described by /api/v1/openapi.json). Thin views over the
same core the pages use; errors are always ``{"code", "message", "fields"?}``.

Authentication: the login cookie, or ``Authorization: Bearer <token>`` from
``POST /api/v1/session`` (catalog credentials), revoked by ``DELETE /api/v1/session``.
"""

from __future__ import annotations

import contextlib
import math
import re
from datetime import UTC, datetime

from pyramid.exceptions import ConfigurationError
from pyramid.httpexceptions import HTTPNotFound
from pyramid.interfaces import IRoutesMapper
from pyramid.response import Response
from pyramid.view import view_config

from .. import declared, inputs, paging, planning
from ..batch import STREAMS, BatchError
from ..catalog import (
    AuthenticationError,
    CatalogError,
    DatafileQuery,
    DatasetQuery,
    QueryBusyError,
    QueryLimitError,
    SessionError,
)
from ..catalog import pages as catalog_pages
from ..jobs import desktops
from ..jobs.actions import (
    MAX_BULK,
    JobActionError,
    JobQuery,
    cancel_job,
    cancel_jobs,
    check_bulk_ids,
    delete_job,
    delete_jobs,
    list_jobs,
    owned_job,
    read_output,
    summary,
    tag_jobs,
)
from ..jobs.comments import count_comments
from ..jobs.selection import dataset_detail, not_visible, resolve_selection
from ..jobs.submission import SubmitError, SubmitRequest, clean_tags, resubmission
from ..models import Job, WebSession, as_utc, utcnow
from ..models.desktops import Desktop
from ..openapi import document
from ..security import Permission, TooManyTokens, bearer_token, catalog_login, end_session, start_api_session
from ..settings import parse_geometry
from ..states import JobStatus
from ..throttle import LoginThrottled
from . import submit_jobs
from .desktop import desktop_url
from .jobs import decode_chunk, export_response

MAX_PER_PAGE = 200
MAX_ASKED_PER_PAGE = 1_000_000  # /jobs: a per_page past paging.MAX_PER_PAGE is capped, and says so
MAX_CHUNK = 1 << 20


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, fields: dict | None = None,
                 headers: dict | None = None):  # fmt: skip
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields or {}
        self.headers = headers or {}


@view_config(context=ApiError, renderer="json")
def api_error(exc, request):
    request.tm.doom()
    request.response.status = exc.status
    if exc.status in (429, 503):
        request.response.headers["Retry-After"] = "2"
    request.response.headers.update(exc.headers)
    body = {"code": exc.code, "message": exc.message}
    if exc.fields:
        body["fields"] = exc.fields
    return body


def _json(request) -> dict:
    """The body: a JSON object, bounded in size and depth, every string valid text (read
    once per request: the check of its fields reads it before the view)."""
    if _BODY not in request.environ:
        request.environ[_BODY] = _read_json(request)
    return request.environ[_BODY]


_BODY = "ijpweb.api.body"


def _read_json(request) -> dict:
    size = request.content_length or 0
    if size > inputs.MAX_JSON_BYTES:
        raise ApiError(413, "too_large", f"the request body is larger than {inputs.MAX_JSON_BYTES} bytes")
    try:
        body = inputs.loads(request.body, "the request body", root="")
    except inputs.InputError as e:
        if e.field == "the request body":
            raise ApiError(e.status, "too_large" if e.status == 413 else "bad_json", e.message) from None
        # a string inside it that is not text: named as the API names that field's errors
        # (an option by its name, the tags as "tags"; anything else by its path)
        head, _, rest = e.field.partition(".")
        if head == "options" and rest:
            name = re.split(r"[.\[]", rest, maxsplit=1)[0]
            raise ApiError(
                422, "invalid_options", f"{name}: {e.reason}", {name: f"{name}: {e.reason}"}
            ) from None
        if e.field.startswith("tags["):
            raise ApiError(422, "invalid_tags", e.message, {"tags": e.message}) from None
        raise
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the request body must be a JSON object")
    return body


def strict_request(view, info):
    """A view deriver: an /api/v1 view refuses, before it runs, the query parameters and
    body fields that its operation in the OpenAPI document does not declare
    (ijpweb/declared.py): 400 naming each, with the declared name it most looks like. A
    misspelt ``tagz`` or ``option`` is never silently ignored. (A view whose route and
    method the document does not describe is not checked: tests/functional/test_api_strict.py
    fails until the document describes it.)"""
    route_name = info.options.get("route_name") or ""
    operation = info.options.get("api_operation")  # (optional: named, it must be the one there)
    if not route_name.startswith("api."):
        return view
    route = info.registry.getUtility(IRoutesMapper).get_route(route_name)
    methods = info.options.get("request_method") or ()
    found = [declared.at(route.pattern, m) for m in ((methods,) if isinstance(methods, str) else methods)]
    if operation is not None and found != [declared.operations().get(operation)]:
        raise ConfigurationError(
            f"{route_name} {methods}: api_operation {operation!r} is not its operation in ijpweb/openapi.py"
        )
    if len(found) != 1 or found[0] is None:  # (several methods: one view per operation, as here)
        return view
    accepts = found[0]

    def checked(context, request):
        unknown = declared.unknown_names(request.GET.keys(), accepts.query, "parameter")
        if unknown:
            raise ApiError(400, "unknown_parameter", *declared.refusal(unknown))
        if accepts.body is not None:
            unknown = declared.unknown_fields(_json(request), accepts.body)
        else:  # it takes no body: every field of a JSON object sent anyway is unknown
            unknown = declared.unknown_names(_sent_fields(request), (), "field")
        if unknown:
            raise ApiError(400, "unknown_field", *declared.refusal(unknown))
        return view(context, request)

    return checked


strict_request.options = ("api_operation",)


def _sent_fields(request) -> list[str]:
    """The fields of the JSON object in the body of a request that takes none ([] when
    there is no body, or it is no JSON object: such a body is not read at all)."""
    if request.content_type.startswith("multipart/") or request.content_type == "application/octet-stream":
        return []  # an upload's data (views/data.py streams it): never read whole here
    if (request.content_length or 0) > inputs.MAX_JSON_BYTES:
        return []  # (no JSON the API reads is that large: not read to look for fields)
    if not request.body.strip():
        return []
    try:
        sent = inputs.loads(request.body, "the request body")
    except inputs.InputError:
        return []
    return list(sent) if isinstance(sent, dict) else []


def includeme(config):
    config.add_view_deriver(strict_request)


def _text(request, name: str, max_length: int = 200) -> str:
    """A text query parameter ('' when absent): valid Unicode, no NUL, bounded."""
    return inputs.text(request.GET.get(name, ""), name, max_length)


def _iso(value: datetime | None) -> str | None:
    return as_utc(value).isoformat() if value else None


def _int(request, name: str, default: int, low: int, high: int) -> int:
    raw = request.GET.get(name)
    return default if raw is None else inputs.whole_number(raw, name, low, high)


def job_json(job: Job) -> dict:
    started, finished, submitted = (
        as_utc(t) if t else None for t in (job.started_at, job.finished_at, job.submitted_at)
    )
    return {
        "id": job.id,
        "submission": job.submission_id,
        "job_type": job.job_type,
        "status": job.status.value,
        "live": job.live,
        "dataset_ids": list(job.dataset_ids),
        "datafile_ids": list(job.datafile_ids),
        "options": dict(job.options),
        "command": list(job.argv),  # the session only as its stand-in
        "exit_code": job.exit_code,
        "reason": job.reason,
        "backend": job.backend,
        "backend_job_id": job.backend_job_id,
        "submitted_at": _iso(submitted),
        "started_at": _iso(started),
        "finished_at": _iso(finished),
        "queue_seconds": (started - submitted).total_seconds() if started else None,
        "wall_seconds": (finished - started).total_seconds() if started and finished else None,
        "provenance_id": job.provenance_id,
        "nodes": job.nodes,
        "cores": job.cores,
        "hosts": job.hosts,
        "tags": job.tags,
        "inputs": job_inputs_json(job),
    }


def interactive_json(request, job: Job, desktop) -> dict | None:
    """An interactive job's desktop, to its owner: ``{"state": starting | ready | ended,
    "url": the viewer page}``; None for a batch job (no Desktop row)."""
    if desktop is None:
        return None
    return {"state": desktops.api_state(desktop, job), "url": desktop_url(request, job.id)}


def owned_jobs_json(request, jobs) -> list[dict]:
    """The owner's jobs as /api/v1 gives them, each with ``interactive`` (one query for the
    desktops of them all)."""
    found = desktops.desktops_of(request.dbsession, [j.id for j in jobs])
    return [job_json(j) | {"interactive": interactive_json(request, j, found.get(j.id))} for j in jobs]


def job_inputs_json(job: Job) -> dict:
    """The job's inputs by name, as its owner saw them at submission (None: not recorded)."""
    return {
        "datasets": [{"id": i, "name": n or None} for i, n in job.named_datasets],
        "datafiles": [{"id": i, "name": n or None, "dataset": d or None} for i, n, d in job.named_datafiles],
    }


def dataset_json(ds) -> dict:
    return {
        "id": ds.id,
        "name": ds.name,
        "type": ds.type_name,
        "investigation": ds.investigation,
        "investigation_title": ds.investigation_title,
        "description": ds.description,
        "complete": ds.complete,
        "datafile_count": ds.datafile_count,
        "datafile_size": ds.datafile_size,
        "create_time": _iso(ds.create_time),
    }


# --- session -------------------------------------------------------------------------------


@view_config(route_name="api.session", request_method="POST", renderer="json", require_csrf=False)
def login(request):
    body = _json(request)
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise ApiError(400, "bad_request", "username and password are required",
                       {k: "required" for k in ("username", "password") if not isinstance(body.get(k), str)})  # fmt: skip
    authenticator = body.get("authenticator") or "db"
    if not isinstance(authenticator, str):
        raise ApiError(400, "bad_request", "authenticator must be text", {"authenticator": "must be text"})
    try:
        result = catalog_login(request, authenticator, {"username": username, "password": password})
    except LoginThrottled as e:
        raise ApiError(429, "too_many_failed_logins", str(e)) from None
    except AuthenticationError as e:
        raise ApiError(401, "unauthenticated", str(e)) from None
    except CatalogError as e:
        raise ApiError(503, "catalog_unavailable", f"the catalog cannot log you in now: {e}") from None
    try:
        token = start_api_session(request, result.user_name, result.session_id, result.expires_at)
    except TooManyTokens as e:
        with contextlib.suppress(CatalogError):  # (the catalog session just made is no one's)
            request.catalog.logout(result.session_id)
        wait = max(1, math.ceil((e.first_end - utcnow()).total_seconds()))
        raise ApiError(429, "too_many_tokens", str(e), headers={"Retry-After": str(wait)}) from None
    request.response.status = 201
    return {"token": token, "user": result.user_name, "expires_at": _iso(result.expires_at)}


@view_config(route_name="api.session", request_method="GET", permission=Permission.USE, renderer="json")
def session(request):
    ident = request.identity
    ws = request.dbsession.get(WebSession, ident.web_session)
    return {"user": ident.user_name, "staff": ident.staff, "expires_at": _iso(ws.expires_at)}


@view_config(route_name="api.session", request_method="DELETE", permission=Permission.USE)
def revoke(request):
    """Revoke this token; its catalog session is logged out once no job uses it."""
    if bearer_token(request) is None:
        raise ApiError(
            400, "not_a_token", "only a bearer token is revoked here; log out of the web pages instead"
        )
    end_session(request)
    return Response(status=204)


# --- job types -------------------------------------------------------------------------------


@view_config(route_name="api.jobtypes", request_method="GET", permission=Permission.USE, renderer="json")
def jobtypes(request):
    return {"jobtypes": [_jobtype_json(jt) for jt in request.jobtypes.all()]}


def _jobtype_json(jt) -> dict:
    """A job type as /api/v1 gives it: ``interactive`` true for one that runs a desktop."""
    return jt.to_api_json() | {"interactive": jt.interactive}


def _jobtype(request):
    jt = request.jobtypes.get(request.matchdict["name"])
    if jt is None:
        raise ApiError(404, "not_found", f"there is no job type called {request.matchdict['name']!r}")
    return jt


@view_config(route_name="api.jobtype", request_method="GET", permission=Permission.USE, renderer="json")
def jobtype(request):
    return _jobtype_json(_jobtype(request))


# --- submissions and jobs --------------------------------------------------------------------


def _ids(body: dict, key: str) -> list[int]:
    try:
        return inputs.json_ids(body.get(key, []), key)
    except inputs.InputError as e:
        raise ApiError(400, "bad_request", e.message, {key: e.reason}) from None


def _owned_job(request, job_id) -> Job:
    if isinstance(job_id, float) and job_id.is_integer():  # JSON's 7.0 is the integer 7
        job_id = int(job_id)
    if isinstance(job_id, bool) or not isinstance(job_id, int) or not 0 < job_id <= inputs.MAX_JOB_ID:
        raise ApiError(
            400, "bad_request", f"like must be the id of a job of yours (1 to {inputs.MAX_JOB_ID})",
            {"like": "a job id"},
        )  # fmt: skip
    job = owned_job(request.dbsession, request.identity.user_name, job_id)
    if job is None:
        raise ApiError(404, "not_found", f"there is no job {job_id} of yours", {"like": "not found"})
    return job


def _submit_request(request, body: dict) -> SubmitRequest:
    """The request as given; with ``like``, what submitted that job, changed by what is given
    (an option given as null is dropped)."""
    base = (
        resubmission(_owned_job(request, body["like"])) if "like" in body else SubmitRequest("", [], [], {})
    )
    job_type, mode = body.get("job_type", base.job_type), body.get("mode", base.mode)
    values = body.get("options", {})
    if not isinstance(job_type, str) or not job_type:
        raise ApiError(400, "bad_request", "job_type is required", {"job_type": "required"})
    if not isinstance(values, dict):
        raise ApiError(400, "bad_request", "options must be an object", {"options": "an object"})
    if mode not in (None, "single", "each"):
        raise ApiError(400, "bad_request", "mode must be single or each", {"mode": "single or each"})
    jt = request.jobtypes.get(job_type)  # (no such job type: the submission says so)
    if jt is not None:  # the options given here are named by the job type's options
        what = f"option in job type {planning.shown_name(jt.name)!r}"
        if unknown := declared.unknown_names(values, [o.key for o in jt.options], what, "options."):
            raise ApiError(400, "unknown_field", *declared.refusal(unknown))
    values = {k: v for k, v in {**base.values, **values}.items() if v is not None}
    tags = body.get("tags", base.tags)
    if not isinstance(tags, list | tuple):
        raise ApiError(400, "bad_request", "tags must be a list of words", {"tags": "a list of words"})
    geometry = body.get("geometry")
    if geometry is not None:  # an interactive job's desktop size, WxH (clamped to what is allowed)
        try:
            parse_geometry(geometry)
        except ValueError as e:
            raise ApiError(
                400, "bad_request", str(e), {"geometry": "WIDTHxHEIGHT, such as 1280x800"}
            ) from None
    return SubmitRequest(
        job_type,
        _ids(body, "datasets") if "datasets" in body else base.dataset_ids,
        _ids(body, "datafiles") if "datafiles" in body else base.datafile_ids,
        values,
        mode,
        _flag(body, "confirm"),
        tags,
        strict=True,
        geometry=geometry,
    )


def _flag(body: dict, key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise ApiError(400, "bad_request", f"{key} must be true or false", {key: "true or false"})
    return value


@view_config(route_name="api.submissions", request_method="POST", permission=Permission.USE, renderer="json")
def submit(request):
    try:
        sub = submit_jobs(request, _submit_request(request, _json(request)))
    except SubmitError as e:
        if e.code == "not_visible":
            raise _unseen(str(e)) from None
        status = {"unknown_job_type": 404, "invalid_options": 422, "invalid_tags": 422}.get(e.code, e.status)
        raise ApiError(status, e.code, str(e), e.fields) from None
    request.response.status = 201
    return {"submission": sub.id, "jobs": owned_jobs_json(request, sub.jobs)}


@view_config(route_name="api.jobs", request_method="GET", permission=Permission.USE, renderer="json")
def jobs(request):
    """A page of the caller's jobs, newest first: a keyset, followed with ``cursor`` (the
    ``next`` or ``previous`` of a page of this very list; another list's is a 400)."""
    query = _job_query(request)
    asked = _int(request, "per_page", 25, 1, MAX_ASKED_PER_PAGE)
    per_page, capped = paging.page_size(asked)
    found = list_jobs(request.dbsession, request.cursors, query, _text(request, "cursor", 2048), per_page)
    return {"jobs": owned_jobs_json(request, found.jobs), **list_page_json(request, "api.jobs", found, found.total,
                                                                        per_page, capped)}  # fmt: skip


def _bulk(request, verb: str, act) -> dict:
    """Several jobs at once (``ids``, at most a page of the list): each acted on as its own
    endpoint does, and reported one by one (another user's job is not_found like a missing one)."""
    body = _json(request)
    try:
        ids = check_bulk_ids(inputs.json_ids(body.get("ids"), "ids", MAX_BULK))
        if any(i > inputs.MAX_JOB_ID for i in ids):
            raise inputs.InputError("ids", f"must be job ids (whole numbers from 1 to {inputs.MAX_JOB_ID})")
    except inputs.InputError as e:
        raise ApiError(400, "bad_request", e.message, {"ids": e.reason}) from None
    outcomes = act(request.identity.user_name, ids)
    return {"summary": summary(verb, outcomes),
            "results": [{"id": o.job_id, "result": o.result, "message": o.message} for o in outcomes]}  # fmt: skip


@view_config(route_name="api.jobs.cancel", request_method="POST", permission=Permission.USE, renderer="json")
def cancel_many(request):
    return _bulk(
        request, "cancel", lambda owner, ids: cancel_jobs(request.dbsession, request.backends, owner, ids)
    )


@view_config(route_name="api.jobs.delete", request_method="POST", permission=Permission.USE, renderer="json")
def delete_many(request):
    return _bulk(
        request, "delete", lambda owner, ids: delete_jobs(request.dbsession, request.backends, owner, ids)
    )


@view_config(route_name="api.jobs.tags", request_method="POST", permission=Permission.USE, renderer="json")
def tag_many(request):
    """Add ``add`` to the jobs ``ids`` and take ``remove`` off them."""
    body, lists = _json(request), {}
    for key in ("add", "remove"):
        if not isinstance(body.get(key, []), list):
            raise ApiError(400, "bad_request", f"{key} must be a list of tags", {key: "a list of tags"})
        try:
            lists[key] = clean_tags(body.get(key, []))
        except ValueError as e:
            raise ApiError(422, "invalid_tags", f"{key}: {e}", {key: str(e)}) from None
    if not lists["add"] and not lists["remove"]:
        raise ApiError(400, "bad_request", "add or remove must name a tag", {"add": "required"})
    return _bulk(request, "tag", lambda owner, ids: tag_jobs(request.dbsession, owner, ids, lists["add"],
                                                              lists["remove"]))  # fmt: skip


@view_config(route_name="api.jobs.export", request_method="GET", permission=Permission.USE)
def export(request):
    """The filtered list (the filters of GET /api/v1/jobs) as one CSV or JSON file, streamed."""
    fmt = _text(request, "format") or "csv"
    if fmt not in ("csv", "json"):
        raise ApiError(400, "bad_parameter", "format must be csv or json", {"format": "csv or json"})
    return export_response(request, _job_query(request), fmt)


def _job_query(request) -> JobQuery:
    """The caller's jobs with the filters of GET /api/v1/jobs (a bad one is a 400 naming it)."""
    status = _text(request, "status")
    if "status" in request.GET and status != "live" and status not in {s.value for s in JobStatus}:
        raise ApiError(400, "bad_parameter", f"status {status!r} is not a job status", {"status": "unknown"})
    since, until = (_when(request, k) for k in ("since", "until"))
    submission = _int(request, "submission", 0, 1, inputs.MAX_JOB_ID) or None
    return JobQuery(request.identity.user_name, status=status, job_type=_text(request, "job_type"),
                    tag=_text(request, "tag"), submission=submission, since=since, until=until)  # fmt: skip


def page_fields(request, route: str, *, total, exact, per_page, capped, next_cursor, previous_cursor,
                **route_kw) -> dict:  # fmt: skip
    """The fields every keyset list of /api/v1 answers with: the bounded total, the page
    size and whether it was capped (also the X-Per-Page-Capped header), the next and
    previous cursors and their URLs at ``route`` with the request's other parameters."""
    if capped:
        request.response.headers["X-Per-Page-Capped"] = str(paging.MAX_PER_PAGE)

    def link(cursor):
        if cursor is None:
            return None
        kept = {k: v for k, v in request.GET.items() if k != "cursor"}
        return request.route_url(route, **route_kw, _query={**kept, "cursor": cursor})

    return {
        "total": total,
        "total_exact": exact,
        "per_page": per_page,
        "per_page_capped": capped,
        "next": next_cursor,
        "next_url": link(next_cursor),
        "previous": previous_cursor,
        "previous_url": link(previous_cursor),
    }


def list_page_json(request, route: str, page, total: paging.Count, per_page: int, capped: bool) -> dict:
    """The page fields of a list paged by id (ijpweb.jobs.actions.keyset_page: a user's
    jobs, the console's jobs and audit); the next page is the older one."""
    return page_fields(request, route, total=total.value, exact=total.exact, per_page=per_page, capped=capped,
                       next_cursor=page.older, previous_cursor=page.newer)  # fmt: skip


def _when(request, name: str) -> datetime | None:
    raw = request.GET.get(name)
    if raw is None:
        return None
    try:  # in UTC, as the times are stored (SQLite compares them as text)
        return as_utc(datetime.fromisoformat(raw)).astimezone(UTC)
    except (ValueError, OverflowError):  # (a time near year 1 or 9999 may not move to UTC)
        raise ApiError(
            400, "bad_parameter", f"{name} must be an ISO 8601 date or time", {name: "not a date"}
        ) from None


@view_config(route_name="api.job", request_method="GET", permission=Permission.USE, renderer="json")
def job(request):
    """The job, with its output files (``output_files``, each with its ``download_url``;
    ``outputs_zip_url`` for them all) and output variables (``output_vars``)."""
    from .outputs import files_json, vars_json  # (views.outputs imports this module)

    job = request.context.job
    files = files_json(request, job)
    found = {
        "output_files": files["files"],
        "output_files_total": files["total"],
        "outputs_zip_url": files["zip_url"],
    }
    comments = {
        "comments": count_comments(request.dbsession, job),
        "comments_url": request.route_url("api.job.comments", job_id=job.id),
    }
    return owned_jobs_json(request, [job])[0] | found | vars_json(job) | comments


@view_config(route_name="api.job", request_method="DELETE", permission=Permission.USE)
def delete(request):
    try:
        delete_job(request.dbsession, request.backends, request.context.job)
    except JobActionError as e:
        raise ApiError(409, "conflict", str(e)) from None
    return Response(status=204)


@view_config(route_name="api.job.cancel", request_method="POST", permission=Permission.USE, renderer="json")
def cancel(request):
    job = request.context.job
    try:
        cancel_job(request.dbsession, request.backends, job)
    except JobActionError as e:
        raise ApiError(409, "conflict", str(e)) from None
    return job_json(job)


@view_config(route_name="api.job.end", request_method="POST", permission=Permission.USE, renderer="json")
def end(request):
    """End an interactive job's session (as its page's End session): the job ends shortly,
    Completed, with the reason "ended by the user"."""
    job = request.context.job
    try:
        desktops.end_session(request.dbsession, request.backends, job, request.dbsession.get(Desktop, job.id))
    except desktops.DesktopError as e:
        raise ApiError(e.status, e.code, str(e)) from None
    return owned_jobs_json(request, [job])[0]


@view_config(route_name="api.job.tags", request_method="PUT", permission=Permission.USE, renderer="json")
def set_tags(request):
    """Replace the job's tags with the list given."""
    job, body = request.context.job, _json(request)
    if "tags" not in body:
        raise ApiError(
            400, "bad_request", "tags is required (an empty list removes them all)", {"tags": "required"}
        )
    if not isinstance(body["tags"], list):
        raise ApiError(400, "bad_request", "tags must be a list of words", {"tags": "a list of words"})
    try:
        job.tags = clean_tags(body["tags"])
    except ValueError as e:
        raise ApiError(422, "invalid_tags", str(e), {"tags": str(e)}) from None
    request.dbsession.flush()
    return job_json(job)


@view_config(route_name="api.job.output", request_method="GET", permission=Permission.USE, renderer="json")
def output(request):
    """Bytes from ``offset`` (at most ``limit``), as text without a split character;
    ``next_offset`` is where to ask next."""
    job = request.context.job
    stream = request.matchdict["stream"]
    if stream not in STREAMS:
        raise HTTPNotFound()
    offset = _int(request, "offset", 0, 0, inputs.MAX_OFFSET)
    limit = _int(request, "limit", 65536, 1, MAX_CHUNK)
    try:
        data = read_output(request.backends, job, stream, offset, limit)
    except BatchError as e:
        raise ApiError(503, "backend_unavailable", f"the output cannot be read now: {e}") from None
    text, used = decode_chunk(data, final=not job.live and len(data) < limit)
    return {
        "text": text,
        "offset": offset,
        "next_offset": offset + used,
        "complete": not job.live and len(data) < limit,
    }


# --- datasets and what applies to a selection ---------------------------------------------


def _unseen(message: str) -> ApiError:
    """Datasets or datafiles one may not see, whether they exist or not: one status, one
    code and one message form (``not found or not visible to you: dataset 7``) on every
    endpoint that takes their ids, so that no answer tells another's from none at all."""
    return ApiError(404, "not_found", message)


def _catalog(request, call):
    try:
        return call(request.catalog, request.identity.catalog_session)
    except SessionError:
        raise ApiError(401, "session_expired", "your catalog session has expired; log in again") from None
    except QueryBusyError as e:  # ijp.catalog.user_queries
        raise ApiError(429, "catalog_busy", str(e)) from None
    except QueryLimitError as e:  # the time limit, maxEntities
        raise ApiError(e.status, "catalog_limit", str(e)) from None
    except CatalogError as e:
        raise ApiError(503, "catalog_unavailable", f"the catalog could not be asked: {e}") from None


def _dataset_page_json(request, found, where, list_scope: str, capped: bool, route: str, **route_kw) -> dict:
    """A catalog list's page fields, as /api/v1/jobs has them, and its page number."""
    links = catalog_pages.links(request.cursors, list_scope, found, where)
    return {
        "page": where.number,
        **page_fields(
            request,
            route,
            total=found.total,
            exact=found.exact,
            per_page=found.per_page,
            capped=capped,
            next_cursor=links.next,
            previous_cursor=links.previous,
            **route_kw,
        ),  # fmt: skip
    }


@view_config(route_name="api.datasets", request_method="GET", permission=Permission.USE, renderer="json")
def datasets(request):
    """Datasets you can see, by type, investigation and part of the name: a keyset page,
    followed with ``cursor`` (the ``next`` or ``previous`` of a page of this very search)."""
    type_name, investigation = _text(request, "type"), _text(request, "investigation")
    name = _text(request, "name", 1000)[:200]
    per_page, capped = paging.page_size(_int(request, "per_page", 25, 1, MAX_ASKED_PER_PAGE))
    scope = catalog_pages.dataset_scope(request.identity.user_name, type_name, investigation, name)
    where = catalog_pages.decode(request.cursors, scope, _text(request, "cursor", 2048))
    q = DatasetQuery(
        type_name=type_name, investigation=investigation, name=name, per_page=per_page,
        after=where.after, before=where.before, count=where.count,
    )  # fmt: skip
    found = catalog_pages.counted(_catalog(request, lambda c, sid: c.search_datasets(sid, q)), where)
    return {
        "datasets": [dataset_json(d) for d in found.items],
        **_dataset_page_json(request, found, where, scope, capped, "api.datasets"),
        "facets": found.facets,
    }


def _dataset_id(request) -> int:
    raw = request.matchdict["dataset_id"]
    try:
        return inputs.ident(raw, "dataset_id")
    except inputs.InputError:  # (digits, but no id: none can be seen)
        raise _unseen(not_visible([planning.shown_name(raw, 30)], [])) from None


def _files(request, ds_id: int, default_per_page: int):
    """The datafile page asked for (``file``: part of the name; ``cursor``; ``per_page``)."""
    name = _text(request, "file", 1000)[:200]
    per_page, capped = paging.page_size(_int(request, "per_page", default_per_page, 1, MAX_ASKED_PER_PAGE))
    scope = catalog_pages.datafile_scope(request.identity.user_name, ds_id, name)
    where = catalog_pages.decode(request.cursors, scope, _text(request, "cursor", 2048))
    return (
        DatafileQuery(
            name=name, per_page=per_page, after=where.after, before=where.before, count=where.count
        ),
        where,
        scope,
        capped,
    )


def _datafile_json(f) -> dict:
    return {"id": f.id, "name": f.name, "size": f.size, "format": f.format}


@view_config(route_name="api.dataset", request_method="GET", permission=Permission.USE, renderer="json")
def dataset(request):
    """A dataset with its parameters (the catalog's, and the dataset type's that job
    option conditions use) and the first page of its datafiles (the rest: ``datafiles_next``
    at /api/v1/datasets/{id}/datafiles)."""
    ds_id = _dataset_id(request)
    files, where, scope, capped = _files(request, ds_id, 50)
    d = _catalog(request, lambda c, sid: dataset_detail(c, sid, request.datasettypes, ds_id, files))
    if d is None:
        raise _unseen(not_visible([ds_id], []))
    files_page = catalog_pages.counted(d.datafiles, where)
    page = _dataset_page_json(
        request, files_page, where, scope, capped, "api.dataset.datafiles", dataset_id=ds_id
    )
    return dataset_json(d.dataset) | {
        "parameters": [{"name": p.name, "value": _plain(p.value), "units": p.units} for p in d.parameters],
        "job_parameters": {k: _plain(v) for k, v in d.job_parameters.items()},
        "datafiles": [_datafile_json(f) for f in files_page.items],
        "datafiles_total": page["total"],
        "datafiles_total_exact": page["total_exact"],
        "datafiles_next": page["next"],
        "datafiles_next_url": page["next_url"],
    }


@view_config(
    route_name="api.dataset.datafiles", request_method="GET", permission=Permission.USE, renderer="json"
)
def dataset_datafiles(request):
    """A page of a dataset's datafiles (those you may read), by name; ``file``: part of the
    name; followed with ``cursor``."""
    ds_id = _dataset_id(request)
    files, where, scope, capped = _files(request, ds_id, 100)

    def go(c, sid):
        if not c.datasets(sid, [ds_id]):
            return None
        return c.dataset_datafiles(sid, ds_id, files)

    found = _catalog(request, go)
    if found is None:
        raise _unseen(not_visible([ds_id], []))
    found = catalog_pages.counted(found, where)
    return {
        "datafiles": [_datafile_json(f) for f in found.items],
        **_dataset_page_json(request, found, where, scope, capped, "api.dataset.datafiles", dataset_id=ds_id),
    }


def _plain(value):
    """A parameter value as JSON has it (dates as ISO text)."""
    return value.isoformat() if isinstance(value, datetime) else value


def _id_list(request, name: str) -> list[int]:
    raw = request.GET.get(name, "")
    try:
        return inputs.id_list(raw, name)
    except inputs.InputError:
        raise ApiError(
            400,
            "bad_parameter",
            f"{name} must be ids from 1 to {inputs.MAX_ID} separated by commas",
            {name: "not a list of ids"},
        ) from None


@view_config(
    route_name="api.jobtype.options", request_method="GET", permission=Permission.USE, renderer="json"
)
def options_for(request):
    """What a job type offers for a selection: whether it fits, the options whose
    conditions hold for every selected dataset, their defaults, the choice to make (one
    job or one per input), and the dataset parameters the conditions were judged on."""
    jt = _jobtype(request)
    ds_ids, df_ids = _id_list(request, "datasets"), _id_list(request, "datafiles")
    resolved = _catalog(
        request, lambda c, sid: resolve_selection(c, sid, request.datasettypes, ds_ids, df_ids)
    )
    if resolved.not_visible:
        raise _unseen(resolved.not_visible)
    sel = resolved.selection
    why_not = planning.incompatibility(jt, sel)
    shown = [] if why_not else planning.visible_options(jt, sel)
    return {
        "job_type": jt.name,
        "fits": why_not is None,
        "why_not": why_not,
        "choice": None if why_not else planning.choice_needed(jt, sel),
        "options": [o.to_ijp_json() for o in shown],
        "defaults": planning.default_values(shown),
        "parameters": {str(d.id): {k: _plain(v) for k, v in d.parameters.items()} for d in sel.datasets},
    }


@view_config(route_name="api.openapi", request_method="GET", renderer="json")
def openapi(request):
    return document(request.application_url + "/")

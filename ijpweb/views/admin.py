"""The operator's console as JSON, under /api/v1/admin, for staff (described in
ijpweb/openapi.py). Thin over ijpweb.console, as the pages (views/console.py) are; errors
are /api/v1's ``{"code", "message", "fields"?}``. Every action is a POST (with the CSRF
token when the login cookie authenticates it) and is audited."""

from __future__ import annotations

from pyramid.response import Response
from pyramid.view import view_config

from .. import console, inputs, paging
from ..jobs.actions import JobActionError
from ..models import as_utc
from ..security import Permission
from . import path_id
from .api import MAX_ASKED_PER_PAGE, ApiError, _json, job_json, list_page_json
from .console import job_filter

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = paging.MAX_PER_PAGE


def _int(request, name: str, default, low: int, high: int):
    raw = request.GET.get(name)
    return default if raw is None else inputs.whole_number(raw, name, low, high)


def _iso(value) -> str | None:
    return as_utc(value).isoformat() if value else None


def admin_job_json(job) -> dict:
    """A job as staff see it: with its owner; its inputs by id only (their names are the
    owner's catalog data, shown to the owner alone)."""
    unnamed = {"datasets": [{"id": i, "name": None} for i in job.dataset_ids],
               "datafiles": [{"id": i, "name": None, "dataset": None} for i in job.datafile_ids]}  # fmt: skip
    return job_json(job) | {"owner": job.owner, "inputs": unnamed}


def _failed_after_asking(status: int, code: str, message: str) -> Response:
    """The error of a staff action that failed after the backend was asked, answered (not
    raised, which would roll the transaction back) so that its audit row is committed
    (ijpweb.console: every staff action that may have changed something is audited)."""
    return Response(status=status, json_body={"code": code, "message": message})


def _job(request):
    try:
        return console.find_job(request.dbsession, request.identity.user_name, path_id(request, "job_id"))
    except console.ConsoleError as e:
        raise ApiError(e.status, e.code, str(e)) from None


def _per_page(request) -> tuple[int, bool]:
    """per_page (50 unless asked), capped at paging.MAX_PER_PAGE and whether it was, as /api/v1/jobs."""
    return paging.page_size(_int(request, "per_page", None, 1, MAX_ASKED_PER_PAGE), DEFAULT_PER_PAGE)


def _cursor(request) -> str:
    return inputs.text(request.GET.get("cursor", ""), "cursor", 2048)


@view_config(
    route_name="api.admin.jobs",
    request_method="GET",
    permission=Permission.STAFF,
    renderer="json",
    api_operation="adminListJobs",
)
def jobs(request):
    """Every user's jobs, newest first, filtered: a keyset followed with ``cursor`` (the
    ``next`` or ``previous`` of a page of this very list), as /api/v1/jobs."""
    per_page, capped = _per_page(request)
    found = console.jobs(request.dbsession, request.cursors, request.identity.user_name, job_filter(request.GET),
                         _cursor(request), per_page)  # fmt: skip
    return {"jobs": [admin_job_json(j) for j in found.jobs],
            **list_page_json(request, "api.admin.jobs", found, found.total, per_page, capped)}  # fmt: skip


@view_config(
    route_name="api.admin.job",
    request_method="GET",
    permission=Permission.STAFF,
    renderer="json",
    api_operation="adminGetJob",
)
def job(request):
    return admin_job_json(_job(request))


@view_config(
    route_name="api.admin.job.cancel",
    request_method="POST",
    permission=Permission.STAFF,
    renderer="json",
    api_operation="adminCancelJob",
)
def cancel(request):
    job = _job(request)
    try:
        console.cancel(request.dbsession, request.backends, request.identity.user_name, job)
    except JobActionError as e:
        if e.reached:
            return _failed_after_asking(409, "conflict", str(e))
        raise ApiError(409, "conflict", str(e)) from None
    return admin_job_json(job)


@view_config(
    route_name="api.admin.job.delete",
    request_method="POST",
    permission=Permission.STAFF,
    api_operation="adminDeleteJob",
)
def delete(request):
    job = _job(request)
    try:
        console.delete(request.dbsession, request.backends, request.identity.user_name, job)
    except JobActionError as e:
        if e.reached:
            return _failed_after_asking(409, "conflict", str(e))
        raise ApiError(409, "conflict", str(e)) from None
    return Response(status=204)


@view_config(
    route_name="api.admin.logins",
    request_method="GET",
    permission=Permission.STAFF,
    renderer="json",
    api_operation="adminListLogins",
)
def logins(request):
    """Live logins (web) and API tokens (api), by user; a handle names each, never its secret."""
    kind = inputs.text(request.GET.get("kind", ""), "kind", 8)
    if kind not in ("", "web", "api"):
        raise inputs.InputError("kind", "must be web or api")
    page = _int(request, "page", 1, 1, 1_000_000)
    per_page = _int(request, "per_page", 100, 1, MAX_PER_PAGE)
    user = inputs.text(request.GET.get("user", ""), "user", 255).strip()
    rows, total = console.logins(request.dbsession, user=user, kind=kind, page=page, per_page=per_page)
    return {
        "logins": [
            {
                "handle": x.handle,
                "user": x.user,
                "kind": x.kind,
                "created_at": _iso(x.created_at),
                "expires_at": _iso(x.expires_at),
            }
            for x in rows
        ],  # fmt: skip
        "total": total,
        "page": page,
        "per_page": per_page,
    }


@view_config(
    route_name="api.admin.logins.revoke",
    request_method="POST",
    permission=Permission.STAFF,
    renderer="json",
    api_operation="adminRevokeLogins",
)
def revoke(request):
    """Revoke one of a user's logins or API tokens (``handle``), or all of them (no handle)."""
    body = _json(request)
    user, handle = body.get("user"), body.get("handle", "")
    if not isinstance(user, str) or not user.strip():
        raise ApiError(400, "bad_request", "user is required: whose login to revoke", {"user": "required"})
    if not isinstance(handle, str):
        raise ApiError(400, "bad_request", "handle must be text", {"handle": "must be text"})
    user, handle = inputs.text(user, "user", 255).strip(), inputs.text(handle, "handle", 64).strip()
    try:
        done = console.revoke(request.dbsession, request.catalog, request.identity.user_name, user, handle)
    except console.ConsoleError as e:
        raise ApiError(e.status, e.code, str(e)) from None
    return {"revoked": done.logins, "waiting": done.waiting}


@view_config(
    route_name="api.admin.jobtypes",
    request_method="GET",
    permission=Permission.STAFF,
    renderer="json",
    api_operation="adminJobTypeProblems",
)
def jobtypes(request):
    """The job types that loaded, and every problem of the job type and dataset type files."""
    return {
        "job_types": [{"name": jt.name, "file": jt.source} for jt in request.jobtypes.all()],
        "problems": [
            {"kind": p.kind, "file": p.file, "line": p.line, "reason": p.reason}
            for p in console.problems(request.jobtypes, request.datasettypes)
        ],
    }


@view_config(
    route_name="api.admin.audit",
    request_method="GET",
    permission=Permission.STAFF,
    renderer="json",
    api_operation="adminAudit",
)
def audit(request):
    """What staff did, newest first: a keyset followed with ``cursor``, as the jobs."""
    per_page, capped = _per_page(request)
    page, total = console.audit(request.dbsession, request.cursors, request.identity.user_name, _cursor(request),
                                per_page)  # fmt: skip
    return {
        "entries": [
            {
                "id": e.id,
                "at": _iso(e.at),
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "detail": e.detail,
            }
            for e in page.rows
        ],  # fmt: skip
        **list_page_json(request, "api.admin.audit", page, total, per_page, capped),
    }


# --- backends --------------------------------------------------------------------------------


def backend_json(b) -> dict:
    return {
        "name": b.name,
        "kind": b.kind,
        "reachable": b.reachable,
        "checked_at": _iso(b.checked_at),
        "duration": b.duration,
        "last_error": b.last_error,
        "last_error_at": _iso(b.last_error_at),
        "error_since": _iso(b.error_since),
        "errors": b.errors,
        "paused": b.paused,
        "paused_by": b.paused_by,
        "paused_at": _iso(b.paused_at),
        "jobs": dict(b.jobs),
        "failed_last_hour": b.failed_last_hour,
        "backlog": b.backlog,
        "nodes": b.nodes,
    }


def _one_backend(request, name: str) -> dict:
    return next(
        backend_json(b) for b in console.backends(request.dbsession, request.backends) if b.name == name
    )


@view_config(
    route_name="api.admin.backends",
    request_method="GET",
    permission=Permission.STAFF,
    renderer="json",
    api_operation="adminListBackends",
)
def backends(request):
    """Every backend: health as the harvester last saw it, jobs, backlog, pause, SLURM nodes."""
    return {"backends": [backend_json(b) for b in console.backends(request.dbsession, request.backends)]}


@view_config(
    route_name="api.admin.backend.pause",
    request_method="POST",
    permission=Permission.STAFF,
    renderer="json",
    api_operation="adminPauseBackend",
)
@view_config(
    route_name="api.admin.backend.resume",
    request_method="POST",
    permission=Permission.STAFF,
    renderer="json",
    api_operation="adminResumeBackend",
)
def pause_backend(request):
    """Pause a backend (no new submission goes to it) or resume it; audited."""
    name = request.matchdict["name"]
    action = console.pause if request.matched_route.name == "api.admin.backend.pause" else console.resume
    try:
        action(request.dbsession, request.backends, request.identity.user_name, name)
    except console.ConsoleError as e:
        raise ApiError(e.status, e.code, str(e)) from None
    return _one_backend(request, name)


@view_config(
    route_name="api.admin.node.drain",
    request_method="POST",
    permission=Permission.STAFF,
    renderer="json",
    api_operation="adminDrainNode",
)
@view_config(
    route_name="api.admin.node.resume",
    request_method="POST",
    permission=Permission.STAFF,
    renderer="json",
    api_operation="adminResumeNode",
)
def node_action(request):
    """Drain (``reason`` required) or resume a SLURM node through scontrol; audited.
    SLURM's refusal is a 409 ``refused`` with its words."""
    verb = "drain" if request.matched_route.name == "api.admin.node.drain" else "resume"
    reason = ""
    if verb == "drain":
        reason = _json(request).get("reason")
        if not isinstance(reason, str):
            raise ApiError(400, "bad_request", "reason is required: SLURM records why a node is drained",
                           {"reason": "required"})  # fmt: skip
    m = request.matchdict
    try:
        console.node_action(request.dbsession, request.backends, request.identity.user_name, m["name"],
                            m["node"], verb, reason)  # fmt: skip
    except console.ConsoleError as e:
        if e.code == "refused":  # (scontrol was run: audited)
            return _failed_after_asking(e.status, e.code, str(e))
        raise ApiError(e.status, e.code, str(e)) from None
    return _one_backend(request, m["name"])

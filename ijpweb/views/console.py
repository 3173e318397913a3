"""The operator's console (pages): every user's jobs, logins and API tokens, job type
problems and the audit, for staff. Thin over ijpweb.console; every action is a POST with
CSRF (on everywhere, ijpweb.security) and is audited there."""

from __future__ import annotations

from pyramid.httpexceptions import HTTPNotFound, HTTPSeeOther
from pyramid.response import Response
from pyramid.view import view_config

from .. import console
from ..inputs import InputError
from ..jobs.actions import JobActionError
from ..paging import MAX_PER_PAGE, page_size
from ..security import Permission
from ..states import JobStatus
from . import HTMX, local_path, param_int, param_text, path_id, vary

# the console's routes: staff's alone, whatever the method (views/errors.py), as
# tests/functional/test_console.py checks for every route named so
STAFF_ROUTES = ("console.", "api.admin.", "staff.")
# the console's sections, in the order of its navigation and of its overview: a route
# name and a title each. A new section (the backends' health and pause, point 4's second
# part, goes after Jobs) adds its line here, a route under console. (and api.admin. for
# its JSON: test_console.py then checks it is staff's alone), its page extending
# console/base.jinja2, and a <section> with its summary in console/index.jinja2.
SECTIONS = (
    ("console.home", "Overview"),
    ("console.jobs", "Jobs"),
    ("console.backends", "Backends"),
    ("console.logins", "Logins"),
    ("console.jobtypes", "Job types"),
    ("console.audit", "Audit"),
)
PER_PAGE = 50
MAX_ASKED = 1_000_000  # a per_page beyond paging.MAX_PER_PAGE is capped (and the page says so)
LOGINS_PER_PAGE = 100


def _page(request, section: str, **values) -> dict:
    return {"sections": SECTIONS, "section": section, **values}


@view_config(route_name="console.home", request_method="GET", permission=Permission.STAFF,
             renderer="console/index.jinja2")  # fmt: skip
def home(request):
    db = request.dbsession
    _, logins = console.logins(db, per_page=1)
    recent, _ = console.audit(db, request.cursors, request.identity.user_name, per_page=10, count=False)
    return _page(
        request,
        "console.home",
        live=console.live_counts(db),
        backends=console.backends(db, request.backends),
        logins=logins,
        problems=len(console.problems(request.jobtypes, request.datasettypes)),
        recent=recent.rows,
    )


# --- jobs ---------------------------------------------------------------------------------


def job_filter(params) -> console.JobFilter:
    """The filter of the jobs page (and of /api/v1/admin/jobs): a bad value is a 400
    naming its field."""
    status = param_text(params, "status")
    if status and status != "live" and status not in {s.value for s in JobStatus}:
        raise InputError("status", "is not a job status (or live)")
    return console.JobFilter(
        user=param_text(params, "user", 255).strip(),
        status=status,
        job_type=param_text(params, "jobtype", 255),
        backend=param_text(params, "backend", 64),
        since=console.when(params.get("since"), "since"),
        until=console.when(params.get("until"), "until", end_of_day=True),
    )


def _per_page(request, default: int) -> tuple[int, bool, int | None]:
    """The page size (``default`` unless asked), whether it was capped at
    paging.MAX_PER_PAGE (the page says so), and what was asked (kept in the links)."""
    asked = param_int(request.GET, "per_page", None, 1, MAX_ASKED)
    return (*page_size(asked, default), asked)


def _jobs(request) -> dict:
    f = job_filter(request.GET)
    per_page, capped, asked = _per_page(request, PER_PAGE)
    found = console.jobs(request.dbsession, request.cursors, request.identity.user_name, f,
                         param_text(request.GET, "cursor", 2048), per_page)  # fmt: skip
    query = {k: request.GET.get(k, "") for k in ("user", "status", "jobtype", "backend", "since", "until")}
    query = {k: v for k, v in query.items() if v} | ({"per_page": per_page} if asked else {})
    return _page(
        request,
        "console.jobs",
        found=found,
        capped=capped,
        max_per_page=MAX_PER_PAGE,
        filter=f,
        query=query,
        here=request.path_qs,  # (where an action returns: a path on this site)
        refresh=request.route_url(
            "console.jobs", _query=query | ({"cursor": request.GET["cursor"]} if not found.first else {})
        ),
        statuses=[s.value for s in JobStatus],
        job_types=[jt.name for jt in request.jobtypes.all()],
        backends=sorted(request.backends),
    )


@view_config(route_name="console.jobs", request_method="GET", permission=Permission.STAFF,
             renderer="console/jobs.jinja2")  # fmt: skip
def jobs_page(request):
    vary(request)
    return _jobs(request)


@view_config(route_name="console.jobs", request_method="GET", header=HTMX, permission=Permission.STAFF,
             renderer="console/_jobs.jinja2")  # fmt: skip
def jobs_rows(request):
    vary(request)
    return _jobs(request)


def _job(request):
    """Any user's job in the URL (staff act on every job); none is not found."""
    try:
        return console.find_job(request.dbsession, request.identity.user_name, path_id(request, "job_id"))
    except console.ConsoleError:
        raise HTTPNotFound() from None


def _verb(request) -> str:
    return "cancel" if request.matched_route.name == "console.job.cancel" else "delete"


def _back(request) -> str:
    return local_path(request.params.get("next", ""), request.script_name) or request.route_url(
        "console.jobs"
    )


@view_config(route_name="console.job.cancel", request_method="GET", permission=Permission.STAFF,
             renderer="console/confirm.jinja2")  # fmt: skip
@view_config(route_name="console.job.delete", request_method="GET", permission=Permission.STAFF,
             renderer="console/confirm.jinja2")  # fmt: skip
def confirm(request):
    return _page(
        request, "console.jobs", job=_job(request), verb=_verb(request), error=None, back=_back(request)
    )


@view_config(route_name="console.job.cancel", request_method="POST", permission=Permission.STAFF,
             renderer="console/confirm.jinja2")  # fmt: skip
@view_config(route_name="console.job.delete", request_method="POST", permission=Permission.STAFF,
             renderer="console/confirm.jinja2")  # fmt: skip
def act(request):
    """Cancel or delete any user's job; back to the list it was done from."""
    job, verb, back = _job(request), _verb(request), _back(request)
    action = console.cancel if verb == "cancel" else console.delete
    try:
        action(request.dbsession, request.backends, request.identity.user_name, job)
    except JobActionError as e:
        request.response.status = 409
        if request.headers.get("HX-Request") == "true":  # in place of the row's button
            request.override_renderer = "console/_refused.jinja2"
        return _page(request, "console.jobs", job=job, verb=verb, error=str(e), back=back)
    if request.headers.get("HX-Request") == "true":
        return Response(status=204, headerlist=[("HX-Redirect", back)])
    return HTTPSeeOther(location=back)


# --- backends --------------------------------------------------------------------------------


def _backends(request, error: str | None = None, done: str = "") -> dict:
    return _page(request, "console.backends", backends=console.backends(request.dbsession, request.backends),
                 error=error, done=done)  # fmt: skip


@view_config(route_name="console.backends", request_method="GET", permission=Permission.STAFF,
             renderer="console/backends.jinja2")  # fmt: skip
def backends_page(request):
    """Each backend's health (as the harvester last saw it), jobs, backlog and pause; a
    SLURM backend's nodes."""
    done = param_text(request.GET, "done", 100)
    return _backends(request, done=DONE.get(done, ""))


# what the page says after an action (the redirect names one of these, never free text)
DONE = {
    "pause": "Paused: no new submission goes to it; jobs recorded for it wait until it is resumed.",
    "resume": "Resumed: it takes submissions again.",
    "drain": "Drained: the node finishes its jobs and takes no new ones.",
    "node-resume": "The node takes jobs again.",
}


def _done(request, verb: str) -> HTTPSeeOther:
    return HTTPSeeOther(location=request.route_url("console.backends", _query={"done": verb}))


@view_config(route_name="console.backend.pause", request_method="POST", permission=Permission.STAFF,
             renderer="console/backends.jinja2")  # fmt: skip
@view_config(route_name="console.backend.resume", request_method="POST", permission=Permission.STAFF,
             renderer="console/backends.jinja2")  # fmt: skip
def pause_backend(request):
    """Pause or resume a backend (audited)."""
    pausing = request.matched_route.name == "console.backend.pause"
    action = console.pause if pausing else console.resume
    try:
        action(request.dbsession, request.backends, request.identity.user_name, request.matchdict["name"])
    except console.ConsoleError as e:
        request.response.status = e.status
        return _backends(request, error=str(e))
    return _done(request, "pause" if pausing else "resume")


@view_config(route_name="console.node.drain", request_method="POST", permission=Permission.STAFF,
             renderer="console/backends.jinja2")  # fmt: skip
@view_config(route_name="console.node.resume", request_method="POST", permission=Permission.STAFF,
             renderer="console/backends.jinja2")  # fmt: skip
def node_action(request):
    """Drain (with a reason) or resume a SLURM node (audited); SLURM's refusal is shown."""
    verb = "drain" if request.matched_route.name == "console.node.drain" else "resume"
    m = request.matchdict
    try:
        reason = param_text(request.POST, "reason", 1000) if verb == "drain" else ""
        console.node_action(request.dbsession, request.backends, request.identity.user_name, m["name"],
                            m["node"], verb, reason)  # fmt: skip
    except InputError as e:
        request.response.status = e.status
        return _backends(request, error=str(e))
    except console.ConsoleError as e:
        request.response.status = e.status
        return _backends(request, error=str(e))
    return _done(request, "drain" if verb == "drain" else "node-resume")


# --- logins and API tokens -----------------------------------------------------------------


@view_config(route_name="console.logins", request_method="GET", permission=Permission.STAFF,
             renderer="console/logins.jinja2")  # fmt: skip
def logins_page(request):
    user = param_text(request.GET, "user", 255).strip()
    kind = param_text(request.GET, "kind")
    if kind not in ("", "web", "api"):
        kind = ""
    page = param_int(request.GET, "page", 1, 1, 1_000_000)
    rows, total = console.logins(request.dbsession, user=user, kind=kind, page=page, per_page=LOGINS_PER_PAGE)
    return _page(
        request,
        "console.logins",
        logins=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // LOGINS_PER_PAGE)),
        user=user,
        kind=kind,
        revoked=param_int(request.GET, "revoked", None, 0, 1_000_000),
        waiting=param_int(request.GET, "waiting", None, 0, 1_000_000),
        error=None,
    )


@view_config(route_name="console.logins.revoke", request_method="POST", permission=Permission.STAFF,
             renderer="console/logins.jinja2")  # fmt: skip
def revoke(request):
    """Revoke one login or API token (``handle``), or all of ``user``'s."""
    user = param_text(request.POST, "user", 255).strip()
    handle = param_text(request.POST, "handle", 64).strip()
    if not user:
        raise InputError("user", "is required: whose login to revoke")
    try:
        done = console.revoke(request.dbsession, request.catalog, request.identity.user_name, user, handle)
    except console.ConsoleError as e:
        request.response.status = e.status
        rows, total = console.logins(request.dbsession, user=user, per_page=LOGINS_PER_PAGE)
        return _page(request, "console.logins", logins=rows, total=total, page=1, pages=1, user=user,
                     kind="", revoked=None, waiting=None, error=str(e))  # fmt: skip
    target = request.route_url("console.logins", _query={"revoked": done.logins, "waiting": done.waiting})
    return HTTPSeeOther(location=target)


# --- job types, audit ---------------------------------------------------------------------------


@view_config(route_name="console.jobtypes", request_method="GET", permission=Permission.STAFF,
             renderer="console/jobtypes.jinja2")  # fmt: skip
def jobtypes_page(request):
    """What loaded and what did not, with file, line and reason."""
    return _page(
        request,
        "console.jobtypes",
        job_types=request.jobtypes.all(),
        problems=console.problems(request.jobtypes, request.datasettypes),
        directory=str(request.registry["ijp.jobtypes"].directory),
    )


@view_config(route_name="staff.jobtypes", request_method="GET", permission=Permission.STAFF)
def old_jobtypes_page(request):
    """The staff page's old address (bookmarks): now a section of the console."""
    return HTTPSeeOther(location=request.route_url("console.jobtypes"))


@view_config(route_name="console.audit", request_method="GET", permission=Permission.STAFF,
             renderer="console/audit.jinja2")  # fmt: skip
def audit_page(request):
    per_page, capped, asked = _per_page(request, PER_PAGE)
    page, total = console.audit(request.dbsession, request.cursors, request.identity.user_name,
                                param_text(request.GET, "cursor", 2048), per_page)  # fmt: skip
    return _page(request, "console.audit", page=page, total=total, capped=capped, max_per_page=MAX_PER_PAGE,
                 query={"per_page": per_page} if asked else {})  # fmt: skip

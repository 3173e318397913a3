"""An interactive job's desktop: the viewer page (noVNC, connected through the portal's
websocket proxy, ijpweb.desktop), End session, and /api/v1's end. The token the proxy
checks is minted here, when the owner opens the viewer, and travels only in an HttpOnly
cookie scoped to the job's websocket path: never in the page, a URL or a log."""

from __future__ import annotations

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.renderers import render_to_response
from pyramid.response import Response
from pyramid.view import view_config

from ..desktop.tokens import origin_of
from ..jobs.desktops import DesktopError, end_session, mint_token, openable
from ..models import WebSession
from ..models.desktops import Desktop
from ..models.jobs import as_utc, utcnow
from ..proxy import desktop_csp
from ..security import Permission, bearer_token

COOKIE = "ijp_desktop"


def ws_path(request, job_id: int) -> str:
    """Where the browser opens the job's websocket: the portal's public prefix (as its
    cookies have it) and /desktop/ws/{job_id}."""
    return f"{request.script_name}/desktop/ws/{int(job_id)}"


def ws_origin(request) -> str | None:
    """The proxy's origin when it is not the page's own (ijp.desktop.public_port: the page's
    host with that port, ws: or wss: by the page's scheme); None: the page's own origin."""
    port = request.registry.settings["ijp"].desktop.public_port
    if port is None:
        return None
    host = request.domain
    if ":" in host and not host.startswith("["):  # an IPv6 literal
        host = f"[{host}]"
    return f"{'wss' if request.scheme == 'https' else 'ws'}://{host}:{port}"


def desktop_url(request, job_id: int) -> str:
    return request.route_url("jobs.desktop", job_id=job_id)


def _refusal(request, status: int, message: str):
    response = render_to_response("error.jinja2", {"status": status, "message": message}, request=request)
    response.status = status
    return response


@view_config(route_name="jobs.desktop", request_method="GET", permission=Permission.USE)
def desktop_page(request):
    """The viewer, to the job's owner (another user's job is the 404 of any job they cannot
    see: job_factory). A batch job, an ended or ending session: a page saying so; a
    desktop still starting: a page that looks again every few seconds. Ready: a fresh
    token in the cookie, and the page."""
    job = request.context.job
    db = request.dbsession
    desktop = db.get(Desktop, job.id)
    try:
        openable(job, desktop)
    except DesktopError as e:
        return _refusal(request, e.status, str(e))
    if desktop.state != "ready" or not desktop.host or not desktop.port:
        response = render_to_response("jobs/desktop_wait.jinja2", {"job": job}, request=request)
        response.headers["Refresh"] = "3"
        return response
    if bearer_token(request) is not None:
        return _refusal(request, 403, "open the desktop in a browser where you are logged in to the portal")
    login = db.get(WebSession, request.identity.web_session)
    if login is None:  # (revoked during this request)
        return _refusal(request, 403, "your login has ended: log in again")
    page = origin_of(f"{request.scheme}://{request.host}")  # (through a trusted proxy's X-Forwarded-*)
    if page is None:
        return _refusal(request, 400, "the Host header of this request is not a host name")
    now = utcnow()
    token, expires = mint_token(db, job, login.id, login.expires_at, page, now)
    origin = ws_origin(request)
    response = render_to_response(
        "jobs/desktop.jinja2",
        {"job": job, "desktop": desktop, "ws_path": ws_path(request, job.id), "ws_origin": origin or ""},
        request=request,
    )
    response.set_cookie(
        COOKIE,
        token,
        max_age=max(1, int((as_utc(expires) - now).total_seconds())),
        path=ws_path(request, job.id),
        secure=request.scheme == "https",
        httponly=True,
        samesite="Strict",
    )
    response.headers["Content-Security-Policy"] = desktop_csp(origin)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@view_config(route_name="jobs.end", request_method="POST", permission=Permission.USE)
def end_page(request):
    """End session (the job page's button, the viewer's): the backend stops the job; the
    job page says "Ending…" until the harvest sees it end."""
    job = request.context.job
    try:
        end_session(request.dbsession, request.backends, job, request.dbsession.get(Desktop, job.id))
    except DesktopError as e:
        return _refusal(request, e.status, str(e))
    target = request.route_url("jobs.detail", job_id=job.id)
    if request.headers.get("HX-Request") == "true":
        return Response(status=204, headers={"HX-Redirect": target})
    return HTTPSeeOther(location=target)

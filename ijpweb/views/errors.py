import logging
from urllib.parse import urlsplit

from pyramid.csrf import BadCSRFToken
from pyramid.httpexceptions import HTTPException, HTTPForbidden, HTTPSeeOther
from pyramid.response import Response
from pyramid.view import exception_view_config, forbidden_view_config, notfound_view_config

from . import wants_json

log = logging.getLogger(__name__)


def _error(request, status: int, code: str, message: str):
    request.response.status = status
    if wants_json(request):
        request.override_renderer = "json"
        return {"code": code, "message": message}
    return {"status": status, "message": message}


@notfound_view_config(renderer="error.jinja2")
def notfound(request):
    return _error(request, 404, "not_found", "There is nothing here, or it is not yours to see.")


@forbidden_view_config(renderer="error.jinja2")
def forbidden(request):
    if request.identity is None:
        login = request.route_url("auth.login", _query={"next": request.path_qs})
        if request.headers.get("HX-Request") == "true":
            # An expired login during an htmx request: send the whole browser to the
            # login page instead of swapping it into the table.
            current = urlsplit(request.headers.get("HX-Current-URL", ""))
            back = current.path + (f"?{current.query}" if current.query else "")
            target = request.route_url("auth.login", _query={"next": back or "/"})
            return Response(status=401, headers={"HX-Redirect": target}, body=b"")
        if wants_json(request):
            return _error(request, 401, "unauthenticated", "log in first")
        return HTTPSeeOther(location=login)
    return _error(request, 403, "forbidden", "You may not do this.")


@exception_view_config(BadCSRFToken, renderer="error.jinja2")
def bad_csrf(request):
    return _error(
        request,
        400,
        "bad_csrf_token",
        "The form was out of date or did not come from this site; nothing was changed. "
        "Go back, reload the page and try again.",
    )


@exception_view_config(Exception, renderer="error.jinja2")
def failed(exc, request):
    if isinstance(exc, HTTPForbidden):
        return forbidden(request)
    if isinstance(exc, HTTPException):
        return exc
    log.exception("unexpected error on %s %s", request.method, request.path)
    return _error(request, 500, "internal_error", "Something went wrong on our side; it has been logged.")

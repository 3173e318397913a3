from pyramid.httpexceptions import HTTPSeeOther
from pyramid.security import forget
from pyramid.view import view_config

from ..catalog import AuthenticationError, CatalogError
from ..security import catalog_login, end_session, start_web_session
from ..throttle import LoginThrottled
from . import local_path, param_text


def _safe_next(request, target: str) -> str:
    """Only a path of the portal (that fits a Location header, below its prefix); anything
    else goes home."""
    return local_path(target or "", request.script_name) or request.route_url("home")


@view_config(route_name="auth.login", request_method="GET", renderer="login.jinja2")
def login_page(request):
    return {
        "next": _safe_next(request, request.params.get("next", "")),
        "authenticators": request.catalog.authenticators(),
        "username": "",
        "error": None,
    }


@view_config(route_name="auth.login", request_method="POST", renderer="login.jinja2")
def login(request):
    nxt = _safe_next(request, request.POST.get("next", ""))
    username = param_text(request.POST, "username", 1000).strip()
    authenticator = param_text(request.POST, "authenticator") or "db"
    param_text(request.POST, "password", 10_000)  # (a bad one is named; it is never shown)
    status = 400
    try:
        result = catalog_login(
            request, authenticator, {"username": username, "password": request.POST.get("password", "")}
        )
    except LoginThrottled as e:
        error = str(e)
        request.response.headers["Retry-After"] = str(e.seconds())
        status = 429
    except AuthenticationError as e:
        error = str(e)
    except CatalogError as e:
        error = f"the catalog cannot log you in now: {e}"
    else:
        headers = start_web_session(request, result.user_name, result.session_id, result.expires_at)
        return HTTPSeeOther(location=nxt, headers=headers)
    request.response.status = status
    return {
        "next": nxt,
        "authenticators": request.catalog.authenticators(),
        "username": username,
        "error": error,
    }


@view_config(route_name="auth.logout", request_method="POST")
def logout(request):
    """The login is forgotten at once; jobs that use its catalog session keep it."""
    end_session(request)
    return HTTPSeeOther(location=request.route_url("auth.login"), headers=forget(request))

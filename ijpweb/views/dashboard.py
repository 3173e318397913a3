"""The dashboard, the portal's home page after login (issue 13, point 2): a page, and the
fragment htmx polls every few seconds while any job is live (it leaves out its trigger
when none is, so polling stops). Thin: ijpweb.jobs.dashboard reads the database."""

from pyramid.view import view_config

from ..jobs.dashboard import ORDER, dashboard
from ..security import Permission
from ..states import LIVE
from . import HTMX, vary

POLL_SECONDS = 5


def _values(request) -> dict:
    d = dashboard(request.dbsession, request.identity.user_name)
    return {"d": d, "order": ORDER, "live_states": LIVE, "poll_seconds": POLL_SECONDS}


@view_config(route_name="home", request_method="GET", permission=Permission.USE, renderer="dashboard.jinja2")
def home(request):
    vary(request)
    return _values(request)


@view_config(
    route_name="home",
    request_method="GET",
    header=HTMX,
    permission=Permission.USE,
    renderer="dashboard/_body.jinja2",
)
def home_fragment(request):
    vary(request)
    return _values(request)

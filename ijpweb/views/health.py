"""``GET /healthz`` and ``GET /metrics``, for operators' monitoring (ijpweb.health,
ijpweb.metrics). /healthz needs no login and holds nothing secret or personal: names,
flags and times. /metrics wants ``ijp.metrics.token`` as a bearer token."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout

import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.view import view_config

from .. import health, outages
from ..metrics import Scrape, database_families
from ..models import utcnow
from ..security import bearer_token

log = logging.getLogger(__name__)

DATABASE_SECONDS = 5.0  # /healthz waits this long for the database
# the database is asked from here, so that a database that hangs costs /healthz its
# timeout, not a request thread for ever (two at most: further checks wait their turn)
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="healthz")


def _ping(engine) -> None:
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))


def _rows(request) -> dict | None:
    """The health table through the request's session; None (and the transaction
    doomed: nothing to commit) if the database fails."""
    try:
        return health.rows(request.dbsession)
    except Exception as e:  # noqa: BLE001
        log.warning("healthz: the health table could not be read: %s", outages.reason(e))
        request.tm.doom()
        return None


def _leadership(registry) -> dict[str, bool]:
    scheduler = registry.get("ijp.scheduler")
    leadership = getattr(scheduler, "leadership", None)
    if leadership is not None:
        return dict(leadership())
    # (a scheduler without leaders: one process runs every task where it was started)
    return dict.fromkeys(
        ("submit", "harvest", "keepalive", "purge"), getattr(scheduler, "_aps", None) is not None
    )


@view_config(
    route_name="healthz", request_method=("GET", "HEAD"), renderer="json", permission=NO_PERMISSION_REQUIRED
)
def healthz(request):
    """200 when the database answers and every backend answered at a recent harvest;
    503 otherwise; with each check's detail, and who runs the background work."""
    registry = request.registry
    settings = registry.settings["ijp"]
    now = utcnow()
    future = _POOL.submit(_ping, registry["dbengine"])
    try:
        future.result(timeout=DATABASE_SECONDS)
        rows = _rows(request)
        database = {"ok": True} if rows is not None else {"ok": False, "reason": "could not be read"}
    except FuturesTimeout:
        rows, database = None, {"ok": False, "reason": f"did not answer within {DATABASE_SECONDS:g} s"}
    except Exception as e:  # noqa: BLE001 - its text may name hosts: the log has it, not this page
        log.warning("healthz: the database did not answer: %s", outages.reason(e))
        rows, database = None, {"ok": False, "reason": "could not be reached"}
    rows = rows or {}
    backends = health.backend_checks(rows, list(request.backends), settings.harvest_seconds, now)
    leads = _leadership(registry)
    scheduler = {
        "this_process": leads,
        "some_process_harvests": leads.get("harvest", False)
        or health.some_process_harvests(rows, settings.harvest_seconds, now),
        "harvest_seconds": settings.harvest_seconds,
    }
    ok = database["ok"] and all(b["ok"] for b in backends.values())
    request.response.status = 200 if ok else 503
    request.response.cache_control = "no-store"
    return {
        "status": "ok" if ok else "failing",
        "database": database,
        "backends": backends,
        "scheduler": scheduler,
    }


@view_config(route_name="metrics", request_method=("GET", "HEAD"), permission=NO_PERMISSION_REQUIRED)
def metrics(request):
    """Prometheus's text format, for a scraper with the token (404 while none is set)."""
    m = request.registry["ijp.metrics"]
    if not m.token:
        return Response(text="metrics are off: set ijp.metrics.token (or IJP_METRICS_TOKEN)\n", status=404,
                        content_type="text/plain", charset="utf-8")  # fmt: skip
    if not m.allowed(bearer_token(request)):
        refused = Response(text="send ijp.metrics.token as Authorization: Bearer <token>\n", status=401,
                           content_type="text/plain", charset="utf-8")  # fmt: skip
        refused.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return refused
    families = database_families(request.dbsession, list(request.backends))
    if len(families) == 1:  # the database failed: nothing to commit
        request.tm.doom()
    response = Response(generate_latest(Scrape(families, m.registry)), cache_control="no-store")
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response

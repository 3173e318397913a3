"""What operators watch: ``/metrics`` in Prometheus's text format (prometheus_client).

- ``ijp_jobs{status,backend}``: every job in the database, by status and backend (one
  grouped query per scrape, an index scan: the same from every portal process);
- ``ijp_submit_backlog{backend}``: jobs recorded and not yet handed to their backend;
- ``ijp_backend_reachable``, ``ijp_backend_paused``, ``ijp_backend_harvest_duration_seconds``,
  ``ijp_backend_harvest_errors_total``, ``ijp_backend_last_harvest_timestamp_seconds``
  {backend}: from the health table the harvesting process writes (ijpweb.health);
- ``ijp_database_up``: whether those reads worked;
- ``ijp_request_duration_seconds{route,method}``: a histogram of this process's requests,
  by route name (never the raw path: one series per route, whatever ids the URLs hold).
  It is per process: scrape each portal process (its own port) to have them all.

Access: ``ijp.metrics.token`` (or IJP_METRICS_TOKEN): a scraper sends it as
``Authorization: Bearer <token>``; without the setting /metrics is off (404). /healthz
needs no login and tells nothing secret.
"""

from __future__ import annotations

import hmac
import logging
import os
import time

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from pyramid.tweens import INGRESS

from . import health, outages
from .models import as_utc
from .proxy import SettingError
from .states import JobStatus

log = logging.getLogger(__name__)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# request latency buckets, seconds: pages take milliseconds, a big submission seconds
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def database_families(db, backend_names) -> list:
    """The metrics read from the database at each scrape, through ``db`` (two reads: the
    jobs grouped by backend and status, and the health table). If the database cannot be
    read, only ``ijp_database_up 0``."""
    backend_names = list(backend_names)
    up = GaugeMetricFamily("ijp_database_up", "Whether the portal could read its database for this scrape")
    try:
        counts = health.jobs_by_status_and_backend(db)
        rows = health.rows(db)
    except Exception as e:  # noqa: BLE001 - a scrape says the database is down, never fails
        log.warning("metrics: the database could not be read: %s", outages.reason(e))
        up.add_metric([], 0)
        return [up]
    up.add_metric([], 1)
    names = sorted(set(backend_names) | {b for b, _, _ in counts})
    by = {(b, s): n for b, s, n in counts}
    jobs = GaugeMetricFamily(
        "ijp_jobs", "Jobs in the database by status and backend", labels=["status", "backend"]
    )
    backlog = GaugeMetricFamily(
        "ijp_submit_backlog",
        "Jobs recorded and not yet handed to their backend (Submitting)",
        labels=["backend"],
    )
    for b in names:
        for s in JobStatus:
            jobs.add_metric([s.value, b], by.get((b, s.value), 0))
        backlog.add_metric([b], by.get((b, JobStatus.SUBMITTING.value), 0))
    reachable = GaugeMetricFamily(
        "ijp_backend_reachable", "Whether the backend answered at the last harvest (absent: not asked yet)",
        labels=["backend"],
    )  # fmt: skip
    paused = GaugeMetricFamily("ijp_backend_paused", "Whether staff paused the backend", labels=["backend"])
    duration = GaugeMetricFamily(
        "ijp_backend_harvest_duration_seconds", "Seconds the last harvest spent asking the backend",
        labels=["backend"],
    )  # fmt: skip
    errors = CounterMetricFamily(
        "ijp_backend_harvest_errors", "Harvests in which the backend did not answer", labels=["backend"]
    )
    last = GaugeMetricFamily(
        "ijp_backend_last_harvest_timestamp_seconds", "When the backend was last harvested (Unix time)",
        labels=["backend"],
    )  # fmt: skip
    for b in backend_names:
        h = rows.get(b)
        paused.add_metric([b], 1 if h is not None and h.paused else 0)
        errors.add_metric([b], h.errors if h is not None else 0)
        if h is not None and h.reachable is not None:
            reachable.add_metric([b], 1 if h.reachable else 0)
        if h is not None and h.duration is not None:
            duration.add_metric([b], h.duration)
        if h is not None and h.checked_at is not None:
            last.add_metric([b], as_utc(h.checked_at).timestamp())
    return [up, jobs, backlog, reachable, paused, duration, errors, last]


class Scrape:
    """One scrape: the database's metrics (read for it) and this process's registry."""

    def __init__(self, families: list, registry: CollectorRegistry):
        self.families, self.registry = families, registry

    def collect(self):
        yield from self.families
        yield from self.registry.collect()


class Metrics:
    """This process's Prometheus registry: the database's metrics and request latency."""

    def __init__(self, token: str = ""):
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "ijp_request_duration_seconds", "Time to answer a request, by route name and method",
            ["route", "method"], buckets=BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.token = token

    def allowed(self, presented: str | None) -> bool:
        return (
            bool(self.token)
            and presented is not None
            and hmac.compare_digest(presented.encode(), self.token.encode())
        )


def latency_tween_factory(handler, registry):
    latency = registry["ijp.metrics"].latency

    def latency_tween(request):
        started = time.perf_counter()
        try:
            return handler(request)
        finally:
            route = getattr(request, "matched_route", None)
            method = request.method if request.method in METHODS else "other"
            latency.labels(route.name if route is not None else "(none)", method).observe(
                time.perf_counter() - started
            )

    return latency_tween


def includeme(config):
    """``registry["ijp.metrics"]``, and the tween that times every request (outermost)."""
    registry = config.registry
    raw = registry.settings
    token = (os.environ.get("IJP_METRICS_TOKEN") or raw.get("ijp.metrics.token") or "").strip()
    if token and len(token) < 16:
        raise SettingError("ijp.metrics.token (or IJP_METRICS_TOKEN) must be at least 16 characters")
    registry["ijp.metrics"] = Metrics(token)
    config.add_tween("ijpweb.metrics.latency_tween_factory", under=INGRESS)

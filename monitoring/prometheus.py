"""Prometheus metrics.

Two kinds:

- Events, counted where they happen by the module that owns them (``executions.metrics``: runs finished,
  retries, timeouts; ``scheduling.metrics``: dispatch latency, fire lateness, leadership, ticks). They live
  in the process that does the work: the scheduler serves them on its own port (``start_metrics_server``),
  the web workers on ``/metrics``.
- The database's state, read at scrape time by ``DatabaseCollector`` (executions by status, executors,
  leader present), so every node reports the same truth however the rows changed.

``/metrics`` (``metrics_view``): with ``PROMETHEUS_MULTIPROC_DIR`` set (several gunicorn workers), the
workers' values are merged from that directory by ``MultiProcessCollector``; otherwise this process's
default registry is exposed. The database gauges are added either way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from django.db import DatabaseError, connections
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from alerts import metrics as _alert_metrics  # noqa: F401  (registers the alert counters)
from core.clock import utc_now
from executions import metrics as _execution_metrics  # noqa: F401  (registers the executions' counters)
from executions.choices import ExecutionStatus
from executions.models import TaskExecution
from executors.choices import ExecutorStatus
from executors.models import Executor
from monitoring.selectors import current_leader
from scheduler_project.security import metrics_token_accepted
from scheduling import metrics as _engine_metrics  # noqa: F401  (registers the engine's instruments)

logger = logging.getLogger(__name__)

class DatabaseCollector(Collector):
    """Gauges read from the database at scrape time. A database that cannot be read yields only
    ``scheduler_database_up 0``, so the scrape itself still succeeds."""

    # Collaborator as an attribute (DRF style): tests swap the clock without patching.
    clock: Callable[[], datetime] = staticmethod(utc_now)

    def describe(self) -> Iterable[Metric]:
        # Names only: registering must not query the database (the default registry would collect).
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("scheduler_database_up", "1 if the database answered this scrape.")
        try:
            families = self._families()
            self._fill(*families, now=self.clock())
        except DatabaseError as exc:
            logger.warning("metrics: database unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily("scheduler_executions", "Executions by status.", labels=["status"]),
            GaugeMetricFamily("scheduler_executions_pending", "Executions waiting to be dispatched."),
            GaugeMetricFamily("scheduler_executions_running", "Executions running now."),
            GaugeMetricFamily("scheduler_executors", "Executors by status.", labels=["status"]),
            GaugeMetricFamily("scheduler_executors_healthy", "Online executors passing health checks."),
            GaugeMetricFamily("scheduler_executors_unhealthy", "Online executors failing health checks."),
            GaugeMetricFamily("scheduler_leader_present", "1 if a scheduler node leads (fresh heartbeat)."),
        )

    @staticmethod
    def _fill(by_status, pending, running, executors, healthy, unhealthy, leader, *, now: datetime) -> None:
        counts = dict(TaskExecution.objects.order_by().values_list("status").annotate(n=Count("id")))
        for status in ExecutionStatus.values:
            by_status.add_metric([status], counts.get(status, 0))
        pending.add_metric([], counts.get(ExecutionStatus.PENDING, 0))
        running.add_metric([], counts.get(ExecutionStatus.RUNNING, 0))
        row = Executor.objects.aggregate(
            healthy=Count("id", filter=Q(status=ExecutorStatus.ONLINE, is_healthy=True)),
            unhealthy=Count("id", filter=Q(status=ExecutorStatus.ONLINE, is_healthy=False)),
            **{status: Count("id", filter=Q(status=status)) for status in ExecutorStatus.values},
        )
        for status in ExecutorStatus.values:
            executors.add_metric([status], row[status])
        healthy.add_metric([], row["healthy"])
        unhealthy.add_metric([], row["unhealthy"])
        leader.add_metric([], 1 if current_leader(now) is not None else 0)


class _Sources:
    """What one exposition reads: several collectors (or registries) as one ``collect()``."""

    def __init__(self, *sources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            yield from source.collect()


def scrape_sources() -> _Sources:
    """The collectors behind ``/metrics`` for this process, chosen by ``PROMETHEUS_MULTIPROC_DIR``."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        merged = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(merged)
        return _Sources(merged, DatabaseCollector())
    return _Sources(REGISTRY, DatabaseCollector())


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: Prometheus text format; with METRICS_TOKEN set, only for its bearer."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
    if not metrics_token_accepted(request):
        return HttpResponse("metrics need Authorization: Bearer <METRICS_TOKEN>\n", status=401,
                            content_type="text/plain", headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return HttpResponse(generate_latest(scrape_sources()), content_type=CONTENT_TYPE_LATEST)


def start_metrics_server(port: int, addr: str = "0.0.0.0", *, include_database: bool = False):  # noqa: S104
    """Serve this process's metrics on ``http://addr:port/metrics`` from a daemon thread (the scheduler
    calls it). Returns ``(server, thread)``. The database gauges are left out unless asked for: the web's
    ``/metrics`` already has them, and two sources of the same series only confuse dashboards. When
    included, each scrape runs its queries on a connection of its own, closed after the scrape."""
    registry = REGISTRY
    if include_database:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_ScrapeConnection(_Sources(REGISTRY, DatabaseCollector())))
    return start_http_server(port, addr=addr, registry=registry)


class _ScrapeConnection(Collector):
    """Runs a collection with Django's connection handling, for threads outside request handling."""

    def __init__(self, inner: _Sources) -> None:
        self.inner = inner

    def collect(self) -> Iterator[Metric]:
        # The exposition server runs each scrape on a thread of its own: the connection it opens would
        # outlive the thread, so it is closed here.
        try:
            yield from list(self.inner.collect())
        finally:
            connections.close_all()

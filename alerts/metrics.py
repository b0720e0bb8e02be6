"""Prometheus counters of alert deliveries (exposed by ``monitoring.prometheus``)."""

from prometheus_client import Counter, Histogram

SENT = Counter("scheduler_alerts_sent_total", "Notifications a channel accepted, by channel kind.", ["kind"])
FAILED = Counter("scheduler_alerts_failed_total", "Failed notification attempts, by channel kind.", ["kind"])
LATENCY = Histogram("scheduler_alert_latency_seconds", "From the event to the channel accepting its notification.",
                    buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0))


def count_sent(kind: str, latency_seconds: float) -> None:
    SENT.labels(kind=kind).inc()
    LATENCY.observe(max(0.0, latency_seconds))


def count_failed(kind: str) -> None:
    FAILED.labels(kind=kind).inc()

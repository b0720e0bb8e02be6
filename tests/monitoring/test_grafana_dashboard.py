"""The Grafana dashboard shipped in deploy/grafana/ queries only metrics this project exports: every series
name in its PromQL expressions is one that /metrics (with the database gauges) or a scheduler node serves."""

import json
import re
from pathlib import Path

from django.conf import settings

from monitoring.prometheus import scrape_sources

DASHBOARD = Path(settings.BASE_DIR) / "deploy" / "grafana" / "scheduler.json"
SUFFIXES = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_count", "_sum", "_created"],
            "gauge": [""], "summary": ["", "_count", "_sum", "_created"], "info": ["_info"]}


def exported_series() -> set[str]:
    names = set()
    for family in scrape_sources().collect():
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, [""]))
    return names


def queried_series() -> set[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    expressions = [target["expr"] for panel in panels for target in panel.get("targets", [])]
    assert expressions, "the dashboard queries nothing"
    return {name for expr in expressions for name in re.findall(r"\bscheduler_[a-z0-9_]+", expr)}


def test_every_metric_the_dashboard_queries_is_exported(db):
    missing = queried_series() - exported_series()
    assert not missing, f"the dashboard queries series nobody exports: {sorted(missing)}"


def test_the_dashboard_covers_the_operators_questions():
    queried = queried_series()
    for series in ("scheduler_executions_finished_total", "scheduler_fire_lateness_seconds_bucket",
                   "scheduler_dispatch_latency_seconds_bucket", "scheduler_is_leader",
                   "scheduler_executors_unhealthy", "scheduler_timeouts_total"):
        assert series in queried, series

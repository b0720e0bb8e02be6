"""A scheduler node reports the port it listens on, and none when it listens on none (it used to say 8000)."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from tests.helpers import assert_ok

STATUS = "/api/v1/scheduler/status"


@pytest.fixture(autouse=True)
def no_port_in_the_environment(monkeypatch):
    monkeypatch.delenv("SCHEDULER_PORT", raising=False)
    monkeypatch.delenv("SCHEDULER_METRICS_PORT", raising=False)


def reported_port(api, instance_id: str):
    [row] = [row for row in assert_ok(*api.get(STATUS))["instances"] if row["instance_id"] == instance_id]
    return row["port"]


@pytest.mark.django_db(transaction=True)
def test_a_node_that_listens_on_no_port_reports_none(api):
    call_command("runscheduler", "--once", "--instance-id", "quiet-node")
    assert reported_port(api, "quiet-node") is None


@pytest.mark.django_db(transaction=True)
def test_a_node_reports_the_port_it_is_given(api):
    call_command("runscheduler", "--once", "--instance-id", "metrics-node", "--port", "9100")
    assert reported_port(api, "metrics-node") == 9100

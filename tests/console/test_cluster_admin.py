"""Read-only pages: scheduler instances (leader, heartbeat freshness) and load-balancing state."""

from __future__ import annotations

import html
from datetime import timedelta

from django.utils import timezone

from loadbalance.models import LoadBalanceState
from scheduling.models import SchedulerInstance
from tests.console.conftest import url


def test_instances_show_role_and_heartbeat_freshness(admin_client, db):
    SchedulerInstance.objects.create(instance_id="node-a", host="h1", port=1, is_leader=True,
                                     leader_since=timezone.now())
    stale = SchedulerInstance.objects.create(instance_id="node-b", host="h2", port=2)
    SchedulerInstance.objects.filter(pk=stale.pk).update(updated_at=timezone.now() - timedelta(hours=3))
    page = admin_client.get(url("scheduling_schedulerinstance_changelist")).content.decode()
    assert "badge-leader" in page and "badge-stale" in page and "3 h ago" in page
    assert admin_client.get(url("scheduling_schedulerinstance_add")).status_code == 403
    assert admin_client.get(url("scheduling_schedulerinstance_change", stale.pk)).status_code == 200


def test_load_balance_state_is_viewable(admin_client, make_task, make_executor):
    task = make_task(load_balance_strategy="weighted_round_robin")
    executor = make_executor()
    LoadBalanceState.objects.create(task=task, last_executor=executor, current_weights={executor.pk: 3})
    assert "Weighted round robin" in admin_client.get(url("loadbalance_loadbalancestate_changelist")).content.decode()
    page = html.unescape(admin_client.get(url("loadbalance_loadbalancestate_change", task.pk)).content.decode())
    assert f'"{executor.pk}": 3' in page


def test_assignments_overview_is_read_only_but_can_remove_one(admin_client, make_task, make_executor):
    from tasks.models import TaskExecutor

    assignment = TaskExecutor.objects.create(task=make_task(), executor=make_executor())
    assert admin_client.get(url("tasks_taskexecutor_changelist")).status_code == 200
    assert admin_client.get(url("tasks_taskexecutor_add")).status_code == 403
    response = admin_client.post(url("tasks_taskexecutor_delete", assignment.pk), {"post": "yes"})
    assert response.status_code == 302 and not TaskExecutor.objects.exists()

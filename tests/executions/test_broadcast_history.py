"""History and stats of broadcast tasks show both levels: the logical run (each fire once) and its shards."""

from datetime import timedelta

import pytest

from core.clock import utc_now
from executions.models import TaskExecution
from tasks.models import Task
from tests.helpers import assert_ok

pytestmark = pytest.mark.django_db


@pytest.fixture
def broadcast_fire():
    task = Task.objects.create(name="b", cron_expression="0 * * * * *", load_balance_strategy="broadcast")
    at = utc_now() - timedelta(minutes=5)
    parent = TaskExecution.objects.create(task=task, scheduled_time=at, status="failed", shard_total=3)
    shards = [TaskExecution.objects.create(task=task, scheduled_time=at, status=status,
                                           shard=k + 1, shard_total=3)
              for k, status in enumerate(["success", "success", "failed"])]
    return task, parent, shards


def test_executions_carry_their_shard_and_filter_by_level(api, broadcast_fire):
    task, parent, shards = broadcast_fire
    runs = assert_ok(*api.get(f"/api/v1/executions?task_id={task.pk}&level=run"))["data"]
    assert [(r["id"], r["shard_total"], r["shard_index"], r["parent_id"]) for r in runs] == [(parent.pk, 3, None,
                                                                                              None)]
    listed = assert_ok(*api.get(f"/api/v1/executions?parent_id={parent.pk}"))["data"]
    assert sorted((r["shard_index"], r["parent_id"]) for r in listed) == [(0, parent.pk), (1, parent.pk),
                                                                          (2, parent.pk)]
    assert len(assert_ok(*api.get(f"/api/v1/executions?task_id={task.pk}&level=shard"))["data"]) == 3
    detail = assert_ok(*api.get(f"/api/v1/executions/{shards[2].pk}"))
    assert (detail["shard_index"], detail["shard_total"], detail["parent_id"]) == (2, 3, parent.pk)


def test_task_stats_count_each_fire_once_and_the_shards_apart(api, broadcast_fire):
    task, _, _ = broadcast_fire
    stats = assert_ok(*api.get(f"/api/v1/tasks/{task.pk}/stats"))
    assert (stats["total_24h"], stats["success_24h"]) == (1, 0)
    assert stats["shards_24h"] == {"total": 3, "success": 2, "failed": 1, "timeout": 0}


def test_a_bad_level_is_400(api, broadcast_fire):
    status, _ = api.get("/api/v1/executions?level=everything")
    assert status == 400

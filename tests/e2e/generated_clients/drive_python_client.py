"""Drives a live scheduler with the Python client openapi-python-client generated from its schema.

Runs in the generator's own virtualenv (it has httpx and attrs): ``python drive_python_client.py
GENERATED_PARENT BASE_URL API_KEY EXECUTOR_ID``. Prints one JSON object of what it saw; any call that does not
parse into its generated model fails it.
"""

from __future__ import annotations

import json
import sys
import time

sys.path.insert(0, sys.argv[1])

from client import AuthenticatedClient  # noqa: E402 - the generated package, found through argv[1]
from client.api.v1 import (  # noqa: E402
    v1_executions_retrieve,
    v1_executions_stats_retrieve,
    v1_tasks_create,
    v1_tasks_executors_create,
    v1_tasks_list,
    v1_tasks_trigger_create,
    v1_tasks_update,
)
from client.models import (  # noqa: E402
    AssignCreateRequest,
    ExecutionDetailResponse,
    ExecutionStatsResponse,
    TaskCreatedResponse,
    TaskListResponse,
    TaskTriggeredResponse,
    TaskUpdateRequest,
    TaskWriteRequest,
    TriggerRequest,
    TriggerRequestParametersType0,
)


def parsed(answer, model):
    assert isinstance(answer, model), f"expected {model.__name__}, got {answer!r}"
    return answer


def main(base_url: str, api_key: str, executor_id: str) -> dict:
    client = AuthenticatedClient(base_url=base_url, token=api_key, raise_on_unexpected_status=True, timeout=10)
    body = TaskWriteRequest(name="echo", cron_expression="0 0 0 1 1 *")
    task = parsed(v1_tasks_create.sync(client=client, body=body), TaskCreatedResponse).data
    parsed(v1_tasks_update.sync(task.id, client=client, body=TaskUpdateRequest(timeout_seconds=45)), object)
    v1_tasks_executors_create.sync(task.id, client=client, body=AssignCreateRequest(executor_id=executor_id))
    listed = parsed(v1_tasks_list.sync(client=client, limit=5), TaskListResponse)
    parameters = TriggerRequestParametersType0.from_dict({"greeting": "from the generated client"})
    run = parsed(v1_tasks_trigger_create.sync(task.id, client=client, body=TriggerRequest(parameters=parameters)),
                 TaskTriggeredResponse).data
    deadline = time.monotonic() + 60
    while True:
        detail = parsed(v1_executions_retrieve.sync(run.id, client=client), ExecutionDetailResponse).data
        if detail.status.value in ("success", "failed", "timeout", "cancelled") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    stats = parsed(v1_executions_stats_retrieve.sync(client=client, task_id=task.id), ExecutionStatsResponse).data
    return {
        "task_timeout": v1_tasks_list.sync(client=client, name="echo").data[0].timeout_seconds,
        "listed_page_size": listed.page_size,
        "status": detail.status.value,
        "result": detail.result,
        "executor_instance": detail.executor.instance_id if detail.executor else None,
        "stats_total": stats.total,
        "stats_success": stats.success,
        "stats_end_time": stats.end_time.isoformat(),
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[2:5])))

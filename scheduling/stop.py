"""Telling an executor to stop a run (spec 000 §7.5: the system sends the executor a stop instruction)."""

from __future__ import annotations

import logging

from executions.models import TaskExecution
from executors.netguard import RefusedURL
from scheduling.config import tunable
from scheduling.executor_http import Unreachable, post_json

logger = logging.getLogger(__name__)


def notify_executor_stop(execution_id: str) -> bool:
    """POST {base_url}/stop; best effort, since the run is already final on our side. True if acknowledged."""
    execution = TaskExecution.objects.select_related("executor").filter(pk=execution_id).first()
    if execution is None or execution.executor is None:
        return False
    url = execution.executor.base_url.rstrip("/") + "/stop"
    try:
        response = post_json(execution.executor, url, {"execution_id": execution_id},
                             timeout=tunable("DISPATCH_TIMEOUT_SECONDS"))
    except RefusedURL as exc:
        logger.warning("stop of execution %s: not sent: %s", execution_id,
                       exc.reason, extra=execution.log_extra())
        return False
    except Unreachable as exc:
        logger.warning("stop of execution %s: executor %s unreachable: %s", execution_id, url, exc,
                       extra=execution.log_extra())
        return False
    if not response.ok:
        logger.warning("stop of execution %s: executor answered %s", execution_id, response.status_code,
                       extra=execution.log_extra())
    return response.ok

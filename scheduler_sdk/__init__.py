"""Python SDK for the distributed task scheduler: an API client and an executor runtime.

Standard library plus ``requests`` only; it does not import Django. Writing an executor::

    from scheduler_sdk import Executor

    executor = Executor("reports", "reports-1", "http://127.0.0.1:8000", port=9090,
                        tasks=[{"task_name": "daily_report", "cron": "0 0 6 * * *", "timeout": 300}])

    @executor.handler("daily_report")
    def daily_report(ctx):
        ctx.logger.info("building report for %s", ctx.scheduled_time)
        ctx.check_cancelled()                     # raises ExecutionCancelled after /stop or a timeout
        return {"rows": 42}                       # JSON-able; non-dicts are sent as {"value": x}

    executor.serve_forever()                      # registers, serves /execute, /stop, /health; Ctrl-C stops

Registration sends ``registration_key=`` (default: env SCHEDULER_REGISTRATION_KEY); the secret it returns
signs every message both ways (``scheduler_sdk.signing``), and unsigned calls to the executor get 401.
Talking to the API: ``SchedulerClient("http://127.0.0.1:8000", api_key=...).trigger_task(task_id, {"day": "mon"})``
(``api_key`` defaults to env SCHEDULER_API_KEY).
See ``python -m scheduler_sdk.demo --help`` for a runnable executor.
"""

from scheduler_sdk._version import __version__
from scheduler_sdk.client import SchedulerClient
from scheduler_sdk.context import ExecutionCancelled, ExecutionContext
from scheduler_sdk.errors import (
    ErrorCode,
    RegistrationRefused,
    SchedulerAPIError,
    SchedulerError,
    SchedulerUnavailable,
)
from scheduler_sdk.executor import Executor
from scheduler_sdk.outbox import RetryPolicy

__all__ = [
    "ErrorCode",
    "ExecutionCancelled",
    "ExecutionContext",
    "Executor",
    "RegistrationRefused",
    "RetryPolicy",
    "SchedulerAPIError",
    "SchedulerClient",
    "SchedulerError",
    "SchedulerUnavailable",
    "__version__",
]

"""Exceptions raised by the SDK and the scheduler's business error codes."""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ErrorCode(IntEnum):
    """Business codes carried in the ``code`` field of the scheduler's error body.

    Generic errors (validation, auth, method not allowed) use the plain HTTP status as their code.
    """

    TASK_DUPLICATE_NAME = 10001
    TASK_BAD_CRON = 10002
    TASK_NOT_FOUND = 10003
    TASK_STATE_FORBIDS = 10004
    EXECUTOR_NOT_FOUND = 20001
    EXECUTOR_INSTANCE_TAKEN = 20002
    EXECUTION_NOT_FOUND = 30001
    EXECUTION_STATE_FORBIDS = 30002


class SchedulerError(Exception):
    """Base class of every error the SDK raises when talking to the scheduler."""


class SchedulerUnavailable(SchedulerError):
    """The scheduler could not be reached (connection refused/reset, DNS failure, timeout).

    Whether the request was applied is unknown; only idempotent operations should be retried blindly.
    """


class SchedulerAPIError(SchedulerError):
    """The scheduler answered with a non-2xx status.

    ``code`` is the business code from the error body (see :class:`ErrorCode`), or the HTTP status
    when the body carries none (e.g. an HTML page from a proxy).
    """

    def __init__(
        self,
        http_status: int,
        code: int,
        message: str,
        error: str | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(f"HTTP {http_status} code {code}: {message}")
        self.http_status = http_status
        self.code = code
        self.message = message
        self.error = error
        self.details = details

    @property
    def retryable(self) -> bool:
        """True when the same request may succeed later without being changed.

        5xx, 408 and 429 are transient. 401/403 count too: a rotated key or a clock-skewed signature
        is fixed by configuration while a retrying caller keeps its data instead of dropping it.
        """
        return self.http_status >= 500 or self.http_status in (401, 403, 408, 429)

    def is_code(self, code: int) -> bool:
        """True when this error carries business code ``code``."""
        return self.code == code


class RegistrationRefused(SchedulerAPIError):
    """The scheduler refused this executor's registration key (401/403); the message says how to get one."""

    def __init__(self, refused: SchedulerAPIError, *, key_sent: bool) -> None:
        super().__init__(refused.http_status, refused.code, refused.message, refused.error, refused.details)
        sent = ("the key sent was refused" if key_sent
                else "no key was sent: SCHEDULER_REGISTRATION_KEY is not set in this executor's environment")
        self.args = (
            f"registration refused (HTTP {refused.http_status}): {sent}. Set SCHEDULER_REGISTRATION_KEY here "
            f"(or pass Executor(registration_key=...)) to the scheduler's own SCHEDULER_REGISTRATION_KEY, or to "
            f"an API key with the executor role: on the scheduler, `python manage.py create_api_key --name "
            f"my-executor --role executor` prints it on its last line (README: Executors: registration key)",
        )

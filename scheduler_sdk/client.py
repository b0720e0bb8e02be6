"""HTTP client for the scheduler's ``/api/v1`` API.

Every method returns the unwrapped ``data`` of the scheduler's ``{code, message, data}`` envelope.
A non-2xx answer raises :class:`SchedulerAPIError` carrying the business code; a scheduler that cannot be
reached raises :class:`SchedulerUnavailable`. Both derive from :class:`SchedulerError`.

Several web nodes: give the client their addresses (a list, or one string with commas). It talks to one
at a time and moves to the next when the one it uses cannot be reached. A request whose connection was
refused (or could not be opened in time) was never sent, so it is sent to the next address at once; one
that failed after it was sent (reset, read timeout) may have been applied, so it raises
SchedulerUnavailable and only the caller, which knows whether it is safe, sends it again (to the next
address, now current).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests
from requests.auth import AuthBase
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from scheduler_sdk.errors import SchedulerAPIError, SchedulerUnavailable

log = logging.getLogger("scheduler_sdk.client")

API_PREFIX = "/api/v1"
MAX_CALLBACK_BATCH = 500  # results the scheduler takes in one POST /executions/callbacks
API_KEY_ENV = "SCHEDULER_API_KEY"

# A header provider sees the fully prepared request (method, url, body) so it can sign it.
HeaderProvider = Callable[[requests.PreparedRequest], Mapping[str, str]]
Auth = AuthBase | HeaderProvider


class _HeaderProviderAuth(AuthBase):
    """Adapts a plain callable into requests' auth hook, which runs after the body is encoded."""

    def __init__(self, provider: HeaderProvider) -> None:
        self._provider = provider

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self._provider(request))
        return request


class _AuthChain(AuthBase):
    """Applies several auth hooks in order (a later one may replace a header an earlier one set)."""

    def __init__(self, *hooks: AuthBase) -> None:
        self.hooks = hooks

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        for hook in self.hooks:
            request = hook(request)
        return request


def _as_auth(auth: Auth | None) -> AuthBase | None:
    if auth is None or isinstance(auth, AuthBase):
        return auth
    if callable(auth):
        return _HeaderProviderAuth(auth)
    raise TypeError("auth must be a requests.auth.AuthBase or a callable(PreparedRequest) -> headers")


def _query_value(value: Any) -> Any:
    """Encodes one filter the way the API expects: lists comma-joined, booleans lowercase, times ISO 8601."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(str(item) for item in value)
    return value


def _clean_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    return {key: _query_value(value) for key, value in (params or {}).items() if value is not None}


def _segment(value: Any) -> str:
    # Ids are UUID strings today; quoting keeps an odd id from changing the path it is put into.
    return quote(str(value), safe="")


def _failure_reason(exc: requests.RequestException) -> str:
    """The useful part of a requests connection error (urllib3 nests it inside MaxRetryError)."""
    inner: Any = exc.args[0] if exc.args else exc
    return str(getattr(inner, "reason", inner))


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request cannot have reached the server: no connection was ever made (refused, no route,
    name not resolved, connect timeout). NewConnectionError covers the first three."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    inner: Any = exc.args[0] if exc.args else None
    return isinstance(getattr(inner, "reason", inner), (NewConnectionError, ConnectTimeoutError))


def base_urls(addresses: str | Sequence[str]) -> list[str]:
    """``"http://a:8000, http://b:8000"`` or a list of them -> the http(s) base URLs without a final slash."""
    items = addresses.split(",") if isinstance(addresses, str) else list(addresses)
    urls = [item.strip().rstrip("/") for item in items if item.strip()]
    if not urls:
        raise ValueError("no scheduler base URL given")
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"scheduler base_url must be http(s): {url!r}")
    return urls


def _error_from_response(response: requests.Response) -> SchedulerAPIError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = (response.text or response.reason or "").strip()
        return SchedulerAPIError(response.status_code, response.status_code, text[:500] or "HTTP error")
    code = body.get("code")
    return SchedulerAPIError(
        http_status=response.status_code,
        code=code if isinstance(code, int) else response.status_code,
        message=str(body.get("message") or response.reason or "HTTP error"),
        error=body.get("error"),
        details=body.get("details"),
    )


def _data_from_response(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        body = response.json()
    except ValueError:
        raise SchedulerAPIError(response.status_code, response.status_code, "response is not JSON") from None
    if isinstance(body, dict) and "code" in body and "message" in body:
        return body.get("data")
    return body


def callback_body(status: str, result: Mapping[str, Any] | None = None, logs: str = "",
                  end_time: datetime | str | None = None) -> dict[str, Any]:
    """The body of a callback (``end_time`` defaults to now, UTC); a batch item adds ``execution_id``."""
    if end_time is None:
        end_time = datetime.now(UTC)
    return {
        "status": status,
        "result": dict(result) if result is not None else None,
        "logs": logs,
        "end_time": end_time.isoformat() if isinstance(end_time, datetime) else end_time,
    }


class SchedulerClient:
    """Thin, typed access to the scheduler API.

    ``api_key`` (default: the SCHEDULER_API_KEY environment variable) is sent as ``Authorization: Bearer``.
    ``auth`` is either a ``requests.auth.AuthBase`` or a callable receiving the prepared request and
    returning headers to add; it is applied to every request, so request signing can be introduced
    without touching call sites. ``session`` lets callers share a connection pool or mount adapters.
    The client is safe to share between threads as far as ``requests.Session`` is.

    ``base_url`` may name several web nodes of one scheduler (a list, or commas): see the module's
    docstring for how the client moves between them. ``base_url`` (the attribute) is the one in use.
    """

    def __init__(
        self,
        base_url: str | Sequence[str],
        *,
        session: requests.Session | None = None,
        timeout: float = 10,
        headers: Mapping[str, str] | None = None,
        auth: Auth | None = None,
        api_key: str | None = None,
    ) -> None:
        self.base_urls = base_urls(base_url)
        self._current = 0
        self._moving = threading.Lock()
        self.timeout = timeout
        self._session = session or requests.Session()
        self._owns_session = session is None
        self._headers = {"Accept": "application/json", **dict(headers or {})}
        key = (api_key if api_key is not None else os.environ.get(API_KEY_ENV, "")).strip()
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._auth = _as_auth(auth)

    def __repr__(self) -> str:  # never the headers: they may hold the API key
        return f"SchedulerClient({', '.join(self.base_urls)!r})"

    @property
    def base_url(self) -> str:
        """The address requests go to now."""
        return self.base_urls[self._current]

    def _move_past(self, index: int, reason: str) -> None:
        # Compare-and-set: threads that saw the same address fail move on once, not once each.
        with self._moving:
            if self._current != index or len(self.base_urls) == 1:
                return
            self._current = (index + 1) % len(self.base_urls)
        log.warning("scheduler %s unreachable (%s); using %s", self.base_urls[index], reason, self.base_url)

    def with_auth(self, auth: Auth) -> SchedulerClient:
        """A client for the same scheduler, sharing this one's session and settings, that also applies
        ``auth`` (after this client's own). Closing it leaves the shared session open."""
        derived = SchedulerClient(self.base_urls, session=self._session, timeout=self.timeout,
                                  headers=self._headers, api_key="")
        extra = _as_auth(auth)
        derived._auth = _AuthChain(self._auth, extra) if self._auth is not None else extra
        return derived

    # -- plumbing -------------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """Absolute URL of an API path such as ``/tasks``."""
        return f"{self.base_url}{API_PREFIX}{path}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """Sends one request and returns the envelope's ``data``; raises SchedulerError subclasses."""
        for attempt in range(len(self.base_urls)):
            index = self._current
            url = f"{self.base_urls[index]}{API_PREFIX}{path}"
            try:
                response = self._session.request(
                    method,
                    url,
                    params=_clean_params(params),
                    json=json,
                    headers=self._headers,
                    auth=self._auth,  # runs per attempt: each address gets a fresh signature and nonce
                    timeout=self.timeout,
                )
                break
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                self._move_past(index, _failure_reason(exc))
                if not (_never_sent(exc) and attempt + 1 < len(self.base_urls)):
                    raise SchedulerUnavailable(f"{method} {url}: {_failure_reason(exc)}") from exc
        if not 200 <= response.status_code < 300:
            raise _error_from_response(response)
        return _data_from_response(response)

    def close(self) -> None:
        """Closes the session if this client created it."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> SchedulerClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- tasks ----------------------------------------------------------------------------------------

    def list_tasks(
        self,
        status: str | None = None,
        name: str | None = None,
        page: int | None = None,
        page_size: int | None = None,
        **filters: Any,
    ) -> Any:
        return self.request(
            "GET", "/tasks", params={"status": status, "name": name, "page": page, "page_size": page_size, **filters}
        )

    def create_task(self, **fields: Any) -> Any:
        return self.request("POST", "/tasks", json=fields)

    def get_task(self, task_id: str) -> Any:
        return self.request("GET", f"/tasks/{_segment(task_id)}")

    def update_task(self, task_id: str, **fields: Any) -> Any:
        return self.request("PUT", f"/tasks/{_segment(task_id)}", json=fields)

    def delete_task(self, task_id: str) -> Any:
        return self.request("DELETE", f"/tasks/{_segment(task_id)}")

    def trigger_task(self, task_id: str, parameters: Mapping[str, Any] | None = None) -> Any:
        body = {"parameters": dict(parameters)} if parameters is not None else {}
        return self.request("POST", f"/tasks/{_segment(task_id)}/trigger", json=body)

    def pause_task(self, task_id: str) -> Any:
        return self.request("POST", f"/tasks/{_segment(task_id)}/pause")

    def resume_task(self, task_id: str) -> Any:
        return self.request("POST", f"/tasks/{_segment(task_id)}/resume")

    def backfill_task(self, task_id: str, start_time: str, end_time: str) -> Any:
        """Runs for every fire time in [start_time, end_time] (ISO 8601); asking again adds only missing ones."""
        body = {"start_time": start_time, "end_time": end_time}
        return self.request("POST", f"/tasks/{_segment(task_id)}/backfill", json=body)

    def next_runs(self, task_id: str, count: int = 5) -> Any:
        return self.request("GET", f"/tasks/{_segment(task_id)}/next-runs", params={"count": count})

    # -- blackout calendars -------------------------------------------------------------------------------

    def list_calendars(self, **params: Any) -> Any:
        return self.request("GET", "/calendars", params=params)

    def create_calendar(self, name: str, *, entries: list[str], timezone: str = "UTC", **fields: Any) -> Any:
        return self.request("POST", "/calendars", json={"name": name, "entries": entries, "timezone": timezone,
                                                         **fields})

    def update_calendar(self, calendar_id: str, **fields: Any) -> Any:
        return self.request("PUT", f"/calendars/{_segment(calendar_id)}", json=fields)

    def delete_calendar(self, calendar_id: str) -> Any:
        return self.request("DELETE", f"/calendars/{_segment(calendar_id)}")

    def task_stats(self, task_id: str, **params: Any) -> Any:
        return self.request("GET", f"/tasks/{_segment(task_id)}/stats", params=params)

    def list_task_executors(self, task_id: str) -> Any:
        return self.request("GET", f"/tasks/{_segment(task_id)}/executors")

    def assign_executor(self, task_id: str, executor_id: str, priority: int = 0, weight: int = 1) -> Any:
        body = {"executor_id": executor_id, "priority": priority, "weight": weight}
        return self.request("POST", f"/tasks/{_segment(task_id)}/executors", json=body)

    def update_task_executor(self, task_id: str, executor_id: str, **fields: Any) -> Any:
        return self.request("PUT", f"/tasks/{_segment(task_id)}/executors/{_segment(executor_id)}", json=fields)

    def unassign_executor(self, task_id: str, executor_id: str) -> Any:
        return self.request("DELETE", f"/tasks/{_segment(task_id)}/executors/{_segment(executor_id)}")

    # -- executors ------------------------------------------------------------------------------------

    def register_executor(
        self,
        name: str,
        instance_id: str,
        base_url: str,
        *,
        health_check_url: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tasks: Iterable[Mapping[str, Any]] | None = None,
        held_executions: Iterable[Mapping[str, Any]] | None = None,
        held_as_of: datetime | None = None,
        execute_batch_limit: int | None = None,
    ) -> Any:
        """Registers (or re-registers, same instance_id) an executor; returns it, including its ``id``.

        ``held_executions`` (``{execution_id, attempt}`` each) with ``held_as_of`` (an instant of this host's
        clock) reconcile the runs it holds: the answer's ``stop_executions`` are not its to run any more.
        ``execute_batch_limit``: it also serves ``POST /execute/batch`` with up to that many runs."""
        body: dict[str, Any] = {"name": name, "instance_id": instance_id, "base_url": base_url}
        if execute_batch_limit:
            body["execute_batch_limit"] = execute_batch_limit
        if held_executions is not None:
            body["held_executions"] = [dict(run) for run in held_executions]
            body["held_as_of"] = (held_as_of or datetime.now(UTC)).isoformat()
        if health_check_url is not None:
            body["health_check_url"] = health_check_url
        if metadata is not None:
            body["metadata"] = dict(metadata)
        if tasks is not None:
            body["tasks"] = [dict(task) for task in tasks]
        return self.request("POST", "/executors/register", json=body)

    def list_executors(
        self,
        status: str | None = None,
        include_tasks: bool | None = None,
        page: int | None = None,
        page_size: int | None = None,
    ) -> Any:
        params = {"status": status, "include_tasks": include_tasks, "page": page, "page_size": page_size}
        return self.request("GET", "/executors", params=params)

    def get_executor(self, executor_id: str) -> Any:
        return self.request("GET", f"/executors/{_segment(executor_id)}")

    def update_executor(self, executor_id: str, **fields: Any) -> Any:
        return self.request("PUT", f"/executors/{_segment(executor_id)}", json=fields)

    def delete_executor(self, executor_id: str) -> Any:
        return self.request("DELETE", f"/executors/{_segment(executor_id)}")

    def set_executor_status(self, executor_id: str, status: str, reason: str | None = None) -> Any:
        body = {"status": status, "reason": reason} if reason is not None else {"status": status}
        return self.request("PUT", f"/executors/{_segment(executor_id)}/status", json=body)

    # -- executions -----------------------------------------------------------------------------------

    def list_executions(self, **filters: Any) -> Any:
        """One page: ``{data: [...], total, page, page_size, total_pages}``.

        Filters: task_id, executor_id, status (str or list, sent comma-separated), start_time, end_time
        (datetime or ISO string), page, page_size.
        """
        return self.request("GET", "/executions", params=filters)

    def iter_executions(self, *, page_size: int = 100, **filters: Any) -> Iterator[dict[str, Any]]:
        """Yields every execution matching ``filters``, fetching page after page.

        Pages are fetched lazily; rows inserted while iterating may shift pages (offset paging), so use
        a ``end_time`` bound when an exact snapshot matters.
        """
        page = int(filters.pop("page", 1) or 1)
        while True:
            body = self.list_executions(page=page, page_size=page_size, **filters) or {}
            rows = body.get("data") or []
            yield from rows
            total_pages = body.get("total_pages")
            if not rows or (total_pages is not None and page >= int(total_pages)):
                return
            page += 1

    def execution_stats(self, **params: Any) -> Any:
        return self.request("GET", "/executions/stats", params=params)

    def get_execution(self, execution_id: str) -> Any:
        return self.request("GET", f"/executions/{_segment(execution_id)}")

    def stop_execution(self, execution_id: str) -> Any:
        return self.request("POST", f"/executions/{_segment(execution_id)}/stop")

    def callback(
        self,
        execution_id: str,
        status: str,
        result: Mapping[str, Any] | None = None,
        logs: str = "",
        end_time: datetime | str | None = None,
    ) -> Any:
        """Reports an execution's outcome (success/failed/timeout/cancelled).

        ``end_time`` defaults to now (UTC). Raises SchedulerAPIError 409/30002 when the execution is
        already final and 404/30001 when the scheduler does not know it.
        """
        body = callback_body(status, result, logs, end_time)
        return self.request("POST", f"/executions/{_segment(execution_id)}/callback", json=body)

    def callback_batch(self, results: Iterable[Mapping[str, Any]]) -> Any:
        """Reports several outcomes in one request (1 to MAX_CALLBACK_BATCH, each execution once).

        Each item is ``{"execution_id": ..., **callback_body(...)}``. Returns ``{applied, already_final,
        not_found, not_yours, results: [{execution_id, outcome, status}, ...]}``, one verdict per item in
        order. A malformed batch is refused whole (400) and nothing of it is applied.
        """
        return self.request("POST", "/executions/callbacks", json={"results": [dict(item) for item in results]})

    def renew_leases(self, executions: Iterable[Mapping[str, Any]]) -> Any:
        """Renews the leases of the runs this executor holds (``{execution_id, attempt}`` each), signed by the
        executor; returns ``{renewed, revoked, lease_seconds, renew_seconds}``: stop the revoked ones."""
        return self.request("POST", "/executions/leases", json={"executions": [dict(run) for run in executions]})

    def executor_shutdown(self) -> Any:
        """Tells the scheduler this (signing) executor is stopping: it is marked offline at once."""
        return self.request("POST", "/executors/shutdown")

    def append_logs(self, execution_id: str, lines: Iterable[str]) -> Any:
        """Appends 1 to 1000 lines (each at most 8 KiB) to a pending or running execution's logs;
        returns ``{appended, total_chars, truncated}``. 409/30002 once the execution is final."""
        return self.request("POST", f"/executions/{_segment(execution_id)}/logs", json={"lines": list(lines)})

    def tail_logs(self, execution_id: str, lines: int | None = None) -> Any:
        """The last ``lines`` lines (default 100): ``{execution_id, status, lines, total_lines, truncated}``."""
        return self.request("GET", f"/executions/{_segment(execution_id)}/logs", params={"lines": lines})

    def report_progress(self, execution_id: str, percent: float, step: str | None = None) -> Any:
        """Records progress (0-100) and, if given, the current step; returns the stored progress."""
        body: dict[str, Any] = {"percent": percent}
        if step is not None:
            body["step"] = step
        return self.request("POST", f"/executions/{_segment(execution_id)}/progress", json=body)

    # -- scheduler ------------------------------------------------------------------------------------

    def health(self) -> Any:
        return self.request("GET", "/health")

    def scheduler_status(self) -> Any:
        return self.request("GET", "/scheduler/status")

    def running_executions(self, page: int | None = None, page_size: int | None = None) -> Any:
        """One page of running executions with progress: ``{data: [...], total, page, page_size, total_pages}``."""
        return self.request("GET", "/scheduler/running", params={"page": page, "page_size": page_size})

    def scheduler_metrics(self) -> Any:
        """Node CPU/memory/disk, pending/running counts, executions completed today, the leader."""
        return self.request("GET", "/scheduler/metrics")

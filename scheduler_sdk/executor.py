"""The executor runtime: an HTTP endpoint the scheduler dispatches to, a bounded pool of handler threads,
deadlines, cooperative cancellation and reliable result delivery.

Life of an execution::

    POST /execute  -> validated, refused after its accept_by or when superseded (409), else a worker slot
                      reserved, 202 sent, then the handler thread starts; its lease is renewed meanwhile
    handler ends   -> success / failed / cancelled        \\
    deadline hits  -> timeout (the handler is abandoned)    > first outcome wins, the others are discarded
    POST /stop     -> cancel event set; cancelled         /
    lease revoked  -> cancel event set; cancelled        /
    outcome        -> queued in the outbox (a file, with ``outbox_path``), re-sent until the scheduler
                      acknowledges or refuses it

``POST /execute/batch`` carries many dispatches at once (up to ``execute_batch_limit``, declared when
registering): each is decided as its own ``/execute`` would be, and answered with its own status.

Results always go to the configured ``scheduler_url``; the ``callback_url`` of a dispatch body is not
used, so credentials added by an ``auth`` hook are never sent to an address taken from a request. Several
web nodes' addresses (a list, or commas) make the executor move to the next node when one goes down
(``SchedulerClient``); results are re-sent there.

Authentication (``scheduler_sdk.credentials``): registration carries the registration key
(``registration_key=`` or SCHEDULER_REGISTRATION_KEY) and returns this executor's secret. Every request
from the scheduler must be signed with it (401 otherwise, and always before the first registration); every
result, log batch and progress report is signed with it.

A worker slot is held until the handler *thread* returns, even after a timeout was reported: an abandoned
handler still occupies a thread, and admitting more work than threads would only queue it invisibly.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from scheduler_sdk._http import ExecutorHTTPServer, Reply, RequestVerifier, error_reply
from scheduler_sdk._version import __version__
from scheduler_sdk.client import MAX_CALLBACK_BATCH, Auth, SchedulerClient
from scheduler_sdk.context import (
    DEFAULT_MAX_LOG_BYTES,
    ExecutionCancelled,
    ExecutionContext,
    LogTail,
    new_execution_logger,
)
from scheduler_sdk.credentials import ExecutorCredentials, SecretFile, default_secret_path
from scheduler_sdk.errors import RegistrationRefused, SchedulerAPIError, SchedulerError, SchedulerUnavailable
from scheduler_sdk.leases import LeaseKeeper
from scheduler_sdk.live import LiveStream
from scheduler_sdk.outbox import CallbackOutbox, Report, RetryPolicy
from scheduler_sdk.registration import RegistrationLoop
from scheduler_sdk.timers import Timers

log = logging.getLogger("scheduler_sdk.executor")

Handler = Callable[[ExecutionContext], Any]

SUCCESS, FAILED, TIMEOUT, CANCELLED = "success", "failed", "timeout", "cancelled"
# How many finished execution ids are remembered to answer a re-sent /execute idempotently.
RECENT_LIMIT = 4096
# Runs one POST /execute/batch may carry (declared when registering); the scheduler sends the runs due together
# in as few of them as this allows. 0 declares no batches: one run per POST /execute.
DEFAULT_EXECUTE_BATCH = 100
MAX_EXECUTE_BATCH = 1000
_WILDCARD_HOSTS = {"", "0.0.0.0", "::"}  # noqa: S104 - compared against, not bound


class BadRequest(ValueError):
    """An /execute or /stop body that does not follow the dispatch contract."""


@dataclass(frozen=True)
class ExecuteRequest:
    """The scheduler's dispatch body, validated."""

    execution_id: str
    task_id: str
    task_name: str
    parameters: dict[str, Any]
    timeout_seconds: float | None
    retry_count: int
    scheduled_time: datetime | None
    # The lease protocol (README "Leases"); absent from an older scheduler's dispatches.
    attempt: int | None = None
    accept_by: datetime | None = None
    renew_seconds: float | None = None
    lease_seconds: float | None = None
    shard_index: int | None = None  # broadcast: this executor's shard, 0-based, of shard_total
    shard_total: int | None = None


def _parse_shard(body: Mapping[str, Any]) -> tuple[int | None, int | None]:
    index, total = body.get("shard_index"), body.get("shard_total")
    if index is None and total is None:
        return None, None
    if any(isinstance(v, bool) or not isinstance(v, int) for v in (index, total)) or not 0 <= index < total:
        raise BadRequest("shard_index and shard_total must be integers with 0 <= shard_index < shard_total")
    return index, total


def show_sdk_logs() -> None:
    """An executor that prints nothing while healthy looks dead to a newcomer: when the application has set
    up no logging at all, the SDK's own INFO lines (registered, unreachable, reachable again) go to stderr."""
    sdk = logging.getLogger("scheduler_sdk")
    if logging.getLogger().handlers or sdk.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    sdk.addHandler(handler)
    if sdk.level == logging.NOTSET:
        sdk.setLevel(logging.INFO)


def _parse_time(value: Any, name: str = "scheduled_time") -> datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} is not ISO 8601: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_attempt(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest("attempt must be a non-negative integer")
    return value


def _parse_timeout(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest("timeout_seconds must be a number")
    return float(value) if value > 0 else None  # 0 or less: no limit


def _required_id(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
        raise BadRequest(f"{name} is required (string)")
    return str(value)


def parse_execute_request(body: Any) -> ExecuteRequest:
    """Validates a dispatch body; raises BadRequest with a reason the scheduler can log."""
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    parameters = body.get("parameters")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise BadRequest("parameters must be an object")
    retry_count = body.get("retry_count") or 0
    if isinstance(retry_count, bool) or not isinstance(retry_count, int):
        raise BadRequest("retry_count must be an integer")
    task_id = body.get("task_id")
    return ExecuteRequest(
        execution_id=_required_id(body, "execution_id"),
        task_id="" if task_id is None else str(task_id),
        task_name=_required_id(body, "task_name"),
        parameters=parameters,
        timeout_seconds=_parse_timeout(body.get("timeout_seconds")),
        retry_count=retry_count,
        scheduled_time=_parse_time(body.get("scheduled_time")),
        attempt=_parse_attempt(body.get("attempt")),
        accept_by=_parse_time(body.get("accept_by"), "accept_by"),
        renew_seconds=_parse_timeout(body.get("renew_seconds")),
        lease_seconds=_parse_timeout(body.get("lease_seconds")),
        **dict(zip(("shard_index", "shard_total"), _parse_shard(body), strict=True)),
    )


def normalise_result(value: Any) -> dict[str, Any] | None:
    """The callback's ``result`` object for a handler's return value.

    Non-dict values are wrapped as ``{"value": x}``. The value is copied through JSON so a handler thread
    that keeps running cannot mutate what is being sent, and so an unserialisable value fails the
    execution here, with a clear message, rather than in the sender much later.
    """
    if value is None:
        return None
    result = value if isinstance(value, dict) else {"value": value}
    try:
        return json.loads(json.dumps(result, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"handler result is not JSON-serializable: {exc}") from exc


def failure_result(exc: BaseException) -> dict[str, Any]:
    return {"error": f"{type(exc).__name__}: {exc}", "error_type": type(exc).__name__, "error_message": str(exc)}


class _Run:
    """Mutable state of one accepted execution. ``status`` is set once, by whichever outcome comes first."""

    def __init__(self, request: ExecuteRequest, handler: Handler, ctx: ExecutionContext, capture: LogTail,
                 accepted_at: float) -> None:
        self.request = request
        self.handler = handler
        self.ctx = ctx
        self.capture = capture
        self.accepted_at = accepted_at
        self.status: str | None = None
        self.stop_reason: str | None = None
        self.attempt = request.attempt
        self.accepted_wall = 0.0  # wall-clock time of the acceptance (the lease counts from it)
        self._lock = threading.Lock()

    @property
    def key(self) -> str:
        return self.request.execution_id

    def held(self) -> dict[str, Any] | None:
        """What a lease renewal says of this run while it runs (None once final, or without an attempt)."""
        if self.status is not None or self.attempt is None:
            return None
        return {"execution_id": self.key, "attempt": self.attempt}

    def claim(self, status: str) -> bool:
        """Records the final status; False if another outcome got there first."""
        with self._lock:
            if self.status is not None:
                return False
            self.status = status
            return True

    def request_stop(self, reason: str) -> bool:
        """Marks the run as stopping; False if it already was or is already final."""
        with self._lock:
            if self.status is not None or self.stop_reason is not None:
                return False
            self.stop_reason = reason
        self.ctx.cancelled.set()
        return True


def _start_all(starts: list[Callable[[], None]]) -> None:
    """Start every run a batch accepted, even if starting one of them fails (each holds a worker slot)."""
    for start in starts:
        try:
            start()
        except Exception:
            log.exception("could not start an accepted run")


class Executor:
    """A task executor process: register handlers, then ``start()`` or ``serve_forever()``.

    ``port=0`` binds an ephemeral port; ``url`` (the advertised base URL, ``advertise_url`` if given)
    is known once started. ``tasks`` are task specs sent with the registration
    (``{task_name, cron, execution_mode?, load_balance_strategy?, timeout?, max_retry?, parameters?}``).
    ``callback_retry`` is a :class:`RetryPolicy` or ``(initial, maximum[, factor])``; results are re-sent
    until acknowledged or the executor stops; those due together go in one request of at most
    ``callback_batch`` results (one callback each to a scheduler without batches). ``stop_grace`` is how
    long a handler asked to stop may keep running before ``cancelled`` is reported without it.
    ``client``/``auth`` configure the calls to the scheduler. ``registration_key`` (default: env
    SCHEDULER_REGISTRATION_KEY) is sent when registering; the secret the scheduler answers with signs
    everything afterwards, both ways, and is kept in ``secret_file`` (mode 0600; default: env
    SCHEDULER_SECRET_FILE, else ``~/.local/state/scheduler-sdk/{instance_id}.json``; ``{instance_id}`` is
    replaced) so that the executor can prove it when it registers again after a restart. Incoming calls
    must be signed with it; ``verify_request`` can refuse more of them (False -> 401), never accept
    unsigned ones.

    While a handler runs, its log lines are streamed to the scheduler every ``live_flush_interval``
    seconds (``stream_logs=False``: they only travel with the result) and ``ctx.progress()`` reports at
    most every ``progress_interval`` seconds; lines not streamed still go with the result.

    ``execute_batch_limit`` (default 100; 0: none) is declared when registering: the scheduler may then send
    up to that many runs in one ``POST /execute/batch``, each decided as its own ``/execute`` would be.
    """

    def __init__(
        self,
        name: str,
        instance_id: str,
        scheduler_url: str | Sequence[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        advertise_url: str | None = None,
        max_workers: int = 4,
        tasks: Iterable[Mapping[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        callback_retry: RetryPolicy | tuple[float, ...] | None = None,
        callback_batch: int = MAX_CALLBACK_BATCH,
        clock: Callable[[], float] = time.monotonic,
        heartbeat_interval: float = 10.0,
        stop_grace: float = 5.0,
        max_log_bytes: int = DEFAULT_MAX_LOG_BYTES,
        log_level: int = logging.INFO,
        client: SchedulerClient | None = None,
        auth: Auth | None = None,
        verify_request: RequestVerifier | None = None,
        registration_key: str | None = None,
        secret_file: str | os.PathLike | None = None,
        stream_logs: bool = True,
        live_flush_interval: float = 0.5,
        progress_interval: float = 1.0,
        outbox_path: str | os.PathLike | None = None,
        lease_renew_interval: float = 5.0,
        wall_clock: Callable[[], float] = time.time,
        execute_batch_limit: int = DEFAULT_EXECUTE_BATCH,
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        if not 0 <= execute_batch_limit <= MAX_EXECUTE_BATCH:
            raise ValueError(f"execute_batch_limit must be between 0 and {MAX_EXECUTE_BATCH}")
        self.execute_batch_limit = execute_batch_limit
        self.name = name
        self.instance_id = instance_id
        self.host = host
        self.port = port
        self.max_workers = max_workers
        self._extra_verify = verify_request
        self.secret_file = SecretFile(default_secret_path(instance_id, None if secret_file is None else
                                                          str(secret_file)))
        self._credentials = ExecutorCredentials(registration_key, secret_file=self.secret_file)
        self.executor_id: str | None = None
        self._advertise_url = advertise_url.rstrip("/") if advertise_url else None
        self._tasks = [dict(task) for task in tasks or ()]
        self._metadata = dict(metadata or {})
        self._retry = RetryPolicy.coerce(callback_retry)
        self._clock = clock
        self._stop_grace = stop_grace
        self._max_log_bytes = max_log_bytes
        self._log_level = log_level
        self._owns_client = client is None
        self._base_client = client or SchedulerClient(scheduler_url, auth=auth)
        self._client = self._base_client.with_auth(self._credentials)
        self._handlers: dict[str, Handler] = {}
        self._state = threading.Condition()  # guards _active, _recent, _started, _stopping
        self._active: dict[str, _Run] = {}
        self._recent: OrderedDict[str, str] = OrderedDict()  # finished execution -> its status
        self._ended: dict[str, tuple[datetime, int | None]] = {}  # ... -> its end and attempt (as _recent)
        self._attempts: OrderedDict[str, int] = OrderedDict()  # the highest attempt seen per execution
        self._wall = wall_clock
        self._started = self._stopping = False
        self._stop_requested = threading.Event()
        self._stopped = threading.Event()
        self._server: ExecutorHTTPServer | None = None
        self._timers = Timers(clock)
        self._stream_logs = stream_logs
        self._live = LiveStream(self._client, flush_interval=live_flush_interval,
                                progress_interval=progress_interval)
        outbox_path = outbox_path or os.environ.get("SCHEDULER_SDK_OUTBOX") or None
        self._outbox = CallbackOutbox(self._client, retry=self._retry, clock=clock,
                                      on_unreachable=self._on_scheduler_unreachable,
                                      on_unauthorized=self._on_signature_refused, max_batch=callback_batch,
                                      path=outbox_path)
        self._registration = RegistrationLoop(
            self._register_once, self._client.health, heartbeat_interval=heartbeat_interval,
            retry=self._retry, on_recovered=self._outbox.retry_now, clock=clock,
        )
        self._leases = LeaseKeeper(
            self._client.renew_leases, self._held, self._revoked, interval=lease_renew_interval,
            retry=self._retry, on_unreachable=self._on_scheduler_unreachable,
            on_unauthorized=self._on_signature_refused, clock=clock,
        )

    # -- handlers -------------------------------------------------------------------------------------

    def handler(self, task_name: str) -> Callable[[Handler], Handler]:
        """Decorator registering ``fn(ctx) -> JSON-able`` for dispatches whose task_name is ``task_name``."""

        def decorator(fn: Handler) -> Handler:
            self.add_handler(task_name, fn)
            return fn

        return decorator

    def add_handler(self, task_name: str, fn: Handler) -> None:
        if task_name in self._handlers:
            raise ValueError(f"a handler for {task_name!r} is already registered")
        self._handlers[task_name] = fn

    @property
    def task_names(self) -> list[str]:
        return sorted(self._handlers)

    # -- state ----------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL the scheduler is told to call."""
        if self._advertise_url:
            return self._advertise_url
        if self._server is None:
            raise RuntimeError("the executor is not started: its port is not known yet")
        host = socket.gethostname() if self.host in _WILDCARD_HOSTS else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self._server.server_address[1]}"

    @property
    def running(self) -> int:
        """Handler threads alive, including abandoned ones whose timeout was already reported."""
        with self._state:
            return len(self._active)

    @property
    def registered(self) -> bool:
        """True once registered, until an outage is detected (then until re-registered)."""
        return self._registration.registered

    @property
    def scheduler_reachable(self) -> bool:
        """False from a failed health probe or callback until a probe succeeds again."""
        return self._registration.reachable

    @property
    def pending_callbacks(self) -> int:
        """Results not yet acknowledged by the scheduler."""
        return self._outbox.pending()

    @property
    def callback_stats(self) -> dict[str, int]:
        """Delivery attempts by outcome (delivered, already_final, dropped, retry) plus ``pending``."""
        return {**{outcome.value: n for outcome, n in self._outbox.counts.items()}, "pending": self.pending_callbacks}

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> Executor:
        """Binds the server, starts the background threads and registers with the scheduler.

        A scheduler that is down (or answers 5xx) does not fail the start: registration is retried in
        the background. A registration the scheduler rejects (4xx: bad task spec, instance id taken)
        raises SchedulerAPIError, because retrying cannot fix a configuration error.
        """
        with self._state:
            if self._started:
                raise RuntimeError("executor already started")
            self._started = True
        try:
            self._server = ExecutorHTTPServer((self.host, self.port), self)
        except OSError:  # e.g. port in use: leave the executor startable again
            with self._state:
                self._started = False
            raise
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         name="scheduler-sdk-http", daemon=True).start()
        self._timers.start()
        self._outbox.start()
        self._live.start()
        self._leases.start()
        self._warn_unhandled_tasks()
        show_sdk_logs()
        log.info("executor %s (%s) listening on %s; registering with %s", self.name, self.instance_id, self.url,
                 self._base_client.base_url)
        try:
            registered = self._initial_registration()
        except SchedulerAPIError:
            self.stop(timeout=0)
            raise
        self._registration.start(registered=registered)
        return self

    def serve_forever(self, *, install_signal_handlers: bool = True) -> None:
        """Starts (unless started) and blocks until ``stop()`` is called, SIGINT or SIGTERM; then stops."""
        if not self._started:
            self.start()
        restore = self._install_signal_handlers() if install_signal_handlers else {}
        try:
            while not self._stop_requested.wait(0.5):
                pass
        finally:
            for signum, previous in restore.items():
                signal.signal(signum, previous)
            self.stop()

    def request_stop(self) -> None:
        """Asks ``serve_forever`` to return (safe from signal handlers and other threads)."""
        self._stop_requested.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stops accepting work, cancels running handlers and flushes pending results.

        Handlers get up to half of ``timeout`` to notice cancellation; those still running are reported
        ``cancelled`` without waiting. The rest of the time is spent delivering results; any left are
        logged as lost. Idempotent; later calls wait for the first to finish.
        """
        with self._state:
            if not self._started or self._stopping:
                first = False
            else:
                self._stopping = first = True
            runs = list(self._active.values())
        self._stop_requested.set()
        if not first:
            if self._started:
                self._stopped.wait(timeout)
            return
        end = time.monotonic() + timeout
        self._say_shutting_down()
        self._registration.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._drain(runs, timeout / 2)
        self._outbox.flush(max(0.0, end - time.monotonic()))
        self._outbox.close(timeout=1.0)
        self._leases.close()
        self._live.close()
        self._timers.close()
        if self._owns_client:
            self._base_client.close()
        self._stopped.set()

    def __enter__(self) -> Executor:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def register(self) -> Any:
        """Registers (or re-registers) now; returns the scheduler's executor object (without the secret,
        which the executor keeps to itself). Raises SchedulerError."""
        data = self._register_once()
        self._registration.mark_registered()
        self._outbox.retry_now()
        return data

    # -- registration ---------------------------------------------------------------------------------

    def _register_once(self) -> Any:
        """Registers, saying which runs this executor holds right now (reconciliation): the scheduler loses
        the runs it has here that are not among them, and answers those held here that are not ours to run
        any more (stopped)."""
        as_of = datetime.fromtimestamp(self._wall(), UTC)  # before listing: anything accepted later is newer
        try:
            data = self._client.register_executor(
                self.name, self.instance_id, self.url, health_check_url=f"{self.url}/health",
                metadata=self._registration_metadata(), tasks=self._tasks or None,
                held_executions=self._held(), held_as_of=as_of, execute_batch_limit=self.execute_batch_limit,
            )
        except SchedulerAPIError as exc:
            if exc.http_status in (401, 403):
                raise RegistrationRefused(exc, key_sent=self._credentials.has_registration_key) from None
            raise
        data = self._credentials.accept_registration(data)
        if isinstance(data, dict) and data.get("id") is not None:
            self.executor_id = str(data["id"])
        log.info("registered as %s (instance %s, executor id %s) with %s, listening on %s; handlers: %s",
                 self.name, self.instance_id, self.executor_id, self._base_client.base_url, self.url,
                 ", ".join(self.task_names) or "none")
        if isinstance(data, dict) and data.get("stop_executions"):
            self._revoked([str(pk) for pk in data["stop_executions"]])
        return data

    def _say_shutting_down(self) -> None:
        """Tell the scheduler at once that no more work should come here (offline until registered again)."""
        if not self._credentials.has_secret:
            return
        try:
            self._client.executor_shutdown()
        except SchedulerError as exc:
            log.info("could not tell the scheduler this executor is stopping: %s", exc)

    def _held(self) -> list[dict[str, Any]]:
        """The runs this executor holds: running, or finished with a result the scheduler has not taken yet
        (their leases are kept until it has: the work is done and must not be given to anyone else)."""
        with self._state:
            runs = list(self._active.values())
        held = {run.key: entry for run in runs if (entry := run.held()) is not None}
        for report in self._outbox.unsettled():
            if report.attempt is not None:
                held.setdefault(report.execution_id, {"execution_id": report.execution_id, "attempt": report.attempt})
        return list(held.values())

    def _revoked(self, execution_ids: list[str]) -> None:
        """The scheduler took these runs away (lost, timed out, stopped, given to another executor)."""
        with self._state:
            runs = [self._active[pk] for pk in execution_ids if pk in self._active]
        for run in runs:
            self._cancel(run, "the scheduler took this run's lease away")

    def _registration_metadata(self) -> dict[str, Any]:
        defaults = {"sdk": "scheduler_sdk", "sdk_version": __version__, "capacity": self.max_workers,
                    "handlers": self.task_names, "hostname": socket.gethostname()}
        return {**defaults, **self._metadata}

    def _initial_registration(self) -> bool:
        try:
            self.register()
        except SchedulerAPIError as exc:
            if not exc.retryable:
                raise
            self._registration.failed_at_start(exc)
            return False
        except SchedulerUnavailable as exc:
            self._registration.failed_at_start(exc)
            return False
        return True

    def _warn_unhandled_tasks(self) -> None:
        for task in self._tasks:
            if task.get("task_name") not in self._handlers:
                log.warning("task %r is registered but has no handler: its dispatches will get 404",
                            task.get("task_name"))

    def _on_scheduler_unreachable(self) -> None:
        self._registration.mark_unreachable()

    def _on_signature_refused(self) -> None:
        # The scheduler no longer accepts our secret (an operator rotated it): registering again fetches it.
        self._registration.request_reregistration()

    # -- authentication of incoming calls (the HTTP server calls this before routing) -----------------

    def authenticate_request(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> bool:
        if not self._credentials.verify_request(method, target, headers, body):
            return False
        return self._extra_verify is None or self._extra_verify(method, target, headers, body)

    def _install_signal_handlers(self) -> dict[int, Any]:
        # signal.signal only works in the main thread; elsewhere the caller stops us with stop().
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("signal %s received, stopping", signal.Signals(signum).name)
            self.request_stop()

        return {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}

    # -- HTTP endpoints (called by the server's request threads) --------------------------------------

    def http_execute(self, body: Any) -> Reply:
        try:
            request = parse_execute_request(body)
        except BadRequest as exc:
            return error_reply(400, "bad_request", str(exc))
        handler = self._handlers.get(request.task_name)
        if handler is None:
            return error_reply(404, "unknown_task", f"no handler for task {request.task_name!r}",
                               task_name=request.task_name)
        with self._state:
            if self._stopping:
                return error_reply(503, "stopping", "executor is shutting down")
            refusal = self._lease_refusal(request)
            if refusal is not None:
                return refusal
            self._note_attempt(request)
            if request.execution_id in self._active or request.execution_id in self._recent:
                return Reply(200, self._duplicate_body(request.execution_id))
            if len(self._active) >= self.max_workers:
                reply = error_reply(503, "busy", f"all {self.max_workers} workers are busy",
                                    running=len(self._active), capacity=self.max_workers)
                reply.headers["Retry-After"] = "1"
                return reply
            run = self._new_run(request, handler)
            self._active[run.key] = run
        return Reply(202, {"accepted": True, "execution_id": run.key}, after=lambda: self._launch(run))

    def http_execute_batch(self, body: Any) -> Reply:
        """Many dispatches in one request (declared with ``execute_batch_limit`` when registering): each is
        decided exactly as its own ``/execute`` would be, and the answer gives each its status and body, in
        order. The runs accepted start once the answer is on the wire."""
        items = body.get("executions") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            return error_reply(400, "bad_request", "executions must be a non-empty list of /execute bodies")
        if len(items) > max(1, self.execute_batch_limit):
            return error_reply(400, "bad_request", f"at most {self.execute_batch_limit} executions per batch")
        results, starts = [], []
        for item in items:
            reply = self.http_execute(item)
            execution_id = item.get("execution_id") if isinstance(item, dict) else None
            results.append({**reply.body, "execution_id": execution_id, "status": reply.status})
            if reply.after is not None:
                starts.append(reply.after)
        return Reply(200, {"results": results}, after=functools.partial(_start_all, starts))

    def _lease_refusal(self, request: ExecuteRequest) -> Reply | None:
        """A dispatch read after its accept_by, or of an attempt older than one seen, is refused and never
        started: the scheduler may already have given the run to another executor (README "Leases")."""
        if request.accept_by is not None and self._wall() > request.accept_by.timestamp():
            log.warning("execution %s: dispatch refused, read after its accept_by %s", request.execution_id,
                        request.accept_by.isoformat())
            return error_reply(409, "expired", "dispatch read after its accept_by",
                               execution_id=request.execution_id, accept_by=request.accept_by.isoformat())
        seen = self._attempts.get(request.execution_id)
        if request.attempt is not None and seen is not None and request.attempt < seen:
            log.warning("execution %s: dispatch of attempt %s refused, attempt %s was seen", request.execution_id,
                        request.attempt, seen)
            return error_reply(409, "superseded", f"attempt {request.attempt} was superseded by attempt {seen}",
                               execution_id=request.execution_id)
        return None

    def _note_attempt(self, request: ExecuteRequest) -> None:
        """Remember the newest attempt of each execution (the caller holds the state lock)."""
        if request.renew_seconds:
            self._leases.interval = request.renew_seconds
        if request.attempt is None:
            return
        self._attempts[request.execution_id] = max(request.attempt, self._attempts.get(request.execution_id, 0))
        self._attempts.move_to_end(request.execution_id)
        while len(self._attempts) > RECENT_LIMIT:
            self._attempts.popitem(last=False)
        run = self._active.get(request.execution_id)
        if run is not None and (run.attempt or 0) < request.attempt:  # sent to us again: we hold the new one
            run.attempt = request.attempt

    def http_status(self, body: Any) -> Reply:
        """What this executor knows of the runs the scheduler asks about, from its own journal: running (with
        the attempt it holds), finished (with the result, if the scheduler has not acknowledged it yet), or
        unknown. Asked before the scheduler declares a run timed out or lost."""
        items = body.get("executions") if isinstance(body, dict) else None
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            return error_reply(400, "bad_request", "executions must be a list of {execution_id, attempt}")
        return Reply(200, {"executions": [self._run_state(str(item.get("execution_id"))) for item in items]})

    def _run_state(self, execution_id: str) -> dict[str, Any]:
        with self._state:
            run = self._active.get(execution_id)
        if run is not None and run.status is None:
            return {"execution_id": execution_id, "state": "running", "attempt": run.attempt}
        report = self._outbox.find(execution_id)
        if report is None:
            return self._settled_state(execution_id)
        return {"execution_id": execution_id, "state": "finished", "status": report.status, "result": report.result,
                "logs": report.logs, "end_time": report.end_time.isoformat(), "attempt": report.attempt}

    def _settled_state(self, execution_id: str) -> dict[str, Any]:
        """A run finished here whose result left the outbox (delivered, refused, or lost on the way): its
        status and end, without the result; unknown if it never ran here (or is long forgotten)."""
        with self._state:
            status, ended = self._recent.get(execution_id), self._ended.get(execution_id)
        if status is None or ended is None:
            return {"execution_id": execution_id, "state": "unknown"}
        return {"execution_id": execution_id, "state": "finished", "status": status,
                "end_time": ended[0].isoformat(), "attempt": ended[1]}

    def http_stop(self, body: Any) -> Reply:
        try:
            execution_id = _required_id(body if isinstance(body, dict) else {}, "execution_id")
        except BadRequest as exc:
            return error_reply(400, "bad_request", str(exc))
        with self._state:
            run = self._active.get(execution_id)
            final = self._recent.get(execution_id)
        if run is None and final is None:
            return error_reply(404, "unknown_execution", f"execution {execution_id} is not known here")
        if run is None or run.status is not None:
            return Reply(200, {"execution_id": execution_id, "stopping": False, "status": final or run.status})
        self._cancel(run, "stop requested by the scheduler")
        return Reply(200, {"execution_id": execution_id, "stopping": True})

    def http_health(self) -> Reply:
        with self._state:
            running, stopping = len(self._active), self._stopping
        body = {
            "status": "stopping" if stopping else "healthy",
            "running": running,
            "capacity": self.max_workers,
            "name": self.name,
            "instance_id": self.instance_id,
            "registered": self._registration.registered,
            "scheduler_reachable": self.scheduler_reachable,
            "pending_callbacks": self._outbox.pending(),
            "tasks": self.task_names,
        }
        return Reply(503 if stopping else 200, body)

    def _duplicate_body(self, execution_id: str) -> dict[str, Any]:
        run = self._active.get(execution_id)
        status = self._recent.get(execution_id) or (run.status if run else None) or "running"
        return {"accepted": True, "duplicate": True, "execution_id": execution_id, "status": status}

    # -- running --------------------------------------------------------------------------------------

    def _new_run(self, request: ExecuteRequest, handler: Handler) -> _Run:
        now = self._clock()
        capture = LogTail(self._max_log_bytes)
        ctx = ExecutionContext(
            execution_id=request.execution_id,
            task_id=request.task_id,
            task_name=request.task_name,
            parameters=request.parameters,
            timeout_seconds=request.timeout_seconds,
            retry_count=request.retry_count,
            scheduled_time=request.scheduled_time,
            shard_index=request.shard_index,
            shard_total=request.shard_total,
            logger=new_execution_logger(request.execution_id, capture, self._log_level),
            cancelled=threading.Event(),
            deadline=None if request.timeout_seconds is None else now + request.timeout_seconds,
            clock=self._clock,
            progress_sink=self._live.progress,
        )
        run = _Run(request, handler, ctx, capture, accepted_at=now)
        run.accepted_wall = self._wall()
        return run

    def _launch(self, run: _Run) -> None:
        self._live.attach(run.key, run.capture, stream_logs=self._stream_logs)
        if run.ctx.deadline is not None:
            self._timers.call_at(run.ctx.deadline, lambda: self._on_deadline(run))
        thread = threading.Thread(target=self._work, args=(run,), daemon=True,
                                  name=f"scheduler-sdk-exec-{run.key[:12]}")
        thread.start()

    def _lease_lapsed(self, run: _Run) -> bool:
        """Whether the run's lease ran out between its acceptance and now, unrenewed (this process was frozen):
        the scheduler has declared it lost and retried it, so it must not start here."""
        lease = run.request.lease_seconds
        return lease is not None and self._wall() - run.accepted_wall > lease

    def _work(self, run: _Run) -> None:
        if self._lease_lapsed(run):
            log.warning("execution %s: not started, its lease ran out before its handler could start", run.key)
            self._finish(run, CANCELLED, {"error": "not started: the lease ran out before the handler started"})
            with self._state:
                self._active.pop(run.key, None)
                self._state.notify_all()
            return
        try:
            run.ctx.logger.info("started %s (task %s, retry %d)", run.request.task_name,
                                run.request.task_id or "-", run.request.retry_count)
            status, result = self._call_handler(run)
            self._finish(run, status, result)
        finally:
            if run.status is None:  # BaseException escaped: still tell the scheduler something
                self._finish(run, FAILED, {"error": "handler exited abnormally"})
            with self._state:
                self._active.pop(run.key, None)
                self._state.notify_all()

    def _call_handler(self, run: _Run) -> tuple[str, dict[str, Any] | None]:
        ctx = run.ctx
        try:
            result = normalise_result(run.handler(ctx))
        except ExecutionCancelled:
            ctx.logger.info("handler stopped on cancellation")
            return CANCELLED, {"error": "cancelled", "reason": run.stop_reason or "cancelled by the handler"}
        except Exception as exc:
            ctx.logger.exception("handler raised %s: %s", type(exc).__name__, exc)
            if run.stop_reason is not None:  # interrupted while stopping: the stop is what the scheduler asked
                return CANCELLED, {**failure_result(exc), "reason": run.stop_reason}
            return FAILED, failure_result(exc)
        if run.stop_reason is not None:
            return CANCELLED, result
        return SUCCESS, result

    def _on_deadline(self, run: _Run) -> None:
        timeout = run.ctx.timeout_seconds
        run.ctx.cancelled.set()  # tell a cooperative handler to give up; its result is discarded anyway
        self._finish(run, TIMEOUT, {"error": f"timed out after {timeout:g} s", "timeout_seconds": timeout},
                     note=f"timed out after {timeout:g} s; the handler's later result will be discarded")

    def _cancel(self, run: _Run, reason: str) -> None:
        if not run.request_stop(reason):
            return
        run.ctx.logger.warning("cancellation requested: %s", reason)
        self._timers.call_later(self._stop_grace, lambda: self._finish(
            run, CANCELLED, {"error": "cancelled", "reason": reason},
            note=f"handler did not stop within {self._stop_grace:g} s of the cancellation"))

    def _finish(self, run: _Run, status: str, result: dict[str, Any] | None, *, note: str | None = None) -> None:
        """Reports ``status`` unless another outcome was reported first (then this one is dropped)."""
        if not run.claim(status):
            log.debug("execution %s: late %s outcome discarded (already %s)", run.key, status, run.status)
            return
        if note:
            run.ctx.logger.warning(note)
        run.ctx.logger.info("finished: %s in %.3f s", status, self._clock() - run.accepted_at)
        self._live.seal(run.key)  # from here on the capture is what the scheduler has not received
        with self._state:
            self._recent[run.key] = status
            self._ended[run.key] = (datetime.now(UTC), run.attempt)
            self._recent.move_to_end(run.key)
            while len(self._recent) > RECENT_LIMIT:
                self._ended.pop(self._recent.popitem(last=False)[0], None)
        self._outbox.put(Report(run.key, status, result, run.capture.text(), datetime.now(UTC), run.attempt))

    def _drain(self, runs: list[_Run], timeout: float) -> None:
        for run in runs:
            self._cancel(run, "executor shutting down")
        end = time.monotonic() + timeout
        with self._state:
            while self._active and (remaining := end - time.monotonic()) > 0:
                self._state.wait(remaining)
            leftover = list(self._active.values())
        for run in leftover:
            self._finish(run, CANCELLED, {"error": "cancelled", "reason": "executor shutting down"},
                         note="executor shut down before the handler stopped")

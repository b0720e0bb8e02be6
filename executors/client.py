"""HTTP to executors: every request is checked by the address guard, sent to the address that was checked,
signed with the target executor's secret, and never follows a redirect (one could carry it elsewhere).

Pinning the address: the URL's host is resolved and checked once (``executors.netguard``); the request then
goes to that IP, with the original name in the Host header and, for https, as the TLS server name and the
name the certificate must match.

The requests themselves run on aiohttp, on one asyncio event loop per process (a daemon thread), with
kept-alive connections per executor address: a burst's dispatch is bound by the CPU each POST costs the
leader. On this 2-core machine urllib3 from 16 threads managed ~1,400 loopback POSTs/s (``requests`` fewer,
PITFALLS §HTTP); this loop several times that (``bench/http_client.py``).
``post_soon`` starts a batch and returns at once with futures (the dispatcher's fast path);
``send``/``post_json``/``get`` wait for the answer (health checks, stop instructions, failover).
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import json as jsonlib
import logging
import os
import ssl
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import certifi
from yarl import URL

from executors.models import Executor
from executors.netguard import RefusedURL, Target, check_url
from scheduler_project.config import tunable
from scheduler_sdk.signing import signature_headers

# Concurrent connections per executor address; further requests wait for one (inside aiohttp).
CONNECTIONS_PER_EXECUTOR = 32
# How much longer than its own timeout a waiting caller gives a request (the loop thread may be busy).
WAIT_MARGIN_SECONDS = 1.0

logger = logging.getLogger(__name__)


class Unreachable(Exception):
    """The request was sent (or tried) and got no HTTP answer: connection refused or reset, timeout.

    ``maybe_received``: whether the executor may have the request all the same (a timeout, a reset after
    sending), as opposed to never having been reached (connection refused, no connection free in time)."""

    def __init__(self, message: str = "", *, maybe_received: bool = True) -> None:
        super().__init__(message)
        self.maybe_received = maybe_received


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300


@dataclass(frozen=True)
class Prepared:
    """A checked, signed request, ready to go to ``url`` (the pinned address)."""

    method: str
    url: URL
    headers: dict[str, str]
    body: bytes
    server_name: str | None  # https: the name TLS presents and verifies


def encoded(payload: Any) -> bytes:
    """A JSON body as the scheduler sends it (compact)."""
    return jsonlib.dumps(payload, separators=(",", ":")).encode()


def prepare(executor: Executor, method: str, url: str, payload: Any = None, *,
            checked: dict[str, Target] | None = None, body: bytes | None = None) -> Prepared:
    """Check and sign a request to ``url`` of ``executor``. Raises netguard.RefusedURL if the address guard
    refuses it or the executor has no secret: nothing is sent then. ``checked`` lets a batch of requests
    check each executor address once (scheme and host:port -> the checked target). ``body``: the JSON body
    already encoded (``payload`` is then ignored)."""
    if not executor.secret:  # never send an unsigned request: fail closed
        raise RefusedURL(f"executor {executor.instance_id} has no signing secret (it must register)")
    parts = urlsplit(url)
    where = f"{parts.scheme}://{parts.netloc}"
    target = checked.get(where) if checked is not None else None
    if target is None:
        target = check_url(url)
        if checked is not None:
            checked[where] = target
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if body is None:
        body = b"" if payload is None else encoded(payload)
    headers = {"Host": target.host_header, "Accept": "application/json",
               **signature_headers(executor.secret, method, path, body)}
    if body:
        headers["Content-Type"] = "application/json"
    # encoded=True: the path goes out exactly as signed, never re-quoted.
    return Prepared(method, URL(target.pinned_url(path), encoded=True), headers, body,
                    target.host if target.scheme == "https" else None)


class HttpLoop:
    """The process's event loop thread and its aiohttp sessions: one for plain http, one per TLS server name
    (a connection verified for one name is never reused for another)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._sessions: dict[str | None, aiohttp.ClientSession] = {}  # per TLS server name; None: plain http
        # Per executor address (loop thread only): requests waiting for a sender, and the senders running.
        self._queues: dict[tuple, collections.deque] = {}
        self._senders: collections.Counter = collections.Counter()
        self._tls = ssl.create_default_context(cafile=certifi.where())
        threading.Thread(target=self.loop.run_forever, name="executor-http", daemon=True).start()
        atexit.register(self.close)

    def close(self) -> None:
        """Close the sessions (their connections) before the interpreter goes; the daemon loop dies with it."""
        async def close_all() -> None:
            for session in list(self._sessions.values()):
                await session.close()
            self._sessions.clear()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close_all(), self.loop).result(2)

    def submit(self, request: Prepared, timeout: float) -> Future[Answer]:
        return self.submit_many([request], timeout)[0]

    def submit_many(self, requests: list[Prepared], timeout: float) -> list[Future[Answer]]:
        """Start many requests with one wake-up of the loop (not one cross-thread hand-off each)."""
        futures: list[Future[Answer]] = [Future() for _ in requests]

        def start() -> None:
            deadline = self.loop.time() + timeout
            for request, future in zip(requests, futures, strict=True):
                self._queue(request).append((request, future, deadline))
            for key in {_address(request) for request in requests}:
                self._staff(key)

        self.loop.call_soon_threadsafe(start)
        return futures

    def _queue(self, request: Prepared) -> collections.deque:
        return self._queues.setdefault(_address(request), collections.deque())

    def _staff(self, key: tuple) -> None:
        """Up to CONNECTIONS_PER_EXECUTOR senders per executor address, each taking the next request as it
        finishes one: a burst costs a few coroutines, not a task and a semaphore wait per request (a burst
        of a thousand waiting in aiohttp's own connection queue went out several times slower still)."""
        queue = self._queues[key]
        while self._senders[key] < min(CONNECTIONS_PER_EXECUTOR, len(queue)):
            self._senders[key] += 1
            self.loop.create_task(self._send_queued(key, queue))

    async def _send_queued(self, key: tuple, queue: collections.deque) -> None:
        try:
            while queue:
                request, future, deadline = queue.popleft()
                if not future.set_running_or_notify_cancel():
                    continue  # cancelled by a caller that stopped waiting
                try:
                    future.set_result(await self._fetch(request, deadline - self.loop.time()))
                except Exception as exc:  # noqa: BLE001 - the caller's future carries it
                    future.set_exception(exc)
        finally:
            self._senders[key] -= 1

    def _session(self, server_name: str | None) -> aiohttp.ClientSession:
        session = self._sessions.get(server_name)
        if session is None:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=CONNECTIONS_PER_EXECUTOR,
                                             use_dns_cache=False, ssl=self._tls if server_name else False)
            session = self._sessions[server_name] = aiohttp.ClientSession(
                connector=connector, trust_env=False, skip_auto_headers=("User-Agent",),
                cookie_jar=aiohttp.DummyCookieJar())
        return session

    async def _fetch(self, request: Prepared, timeout: float) -> Answer:
        """``timeout`` is what is left of the caller's: the wait in the queue counted too."""
        if timeout <= 0:
            raise Unreachable("no connection to the executor came free in time", maybe_received=False)
        try:
            async with asyncio.timeout(timeout):
                async with self._session(request.server_name).request(
                        request.method, request.url, data=request.body or None, headers=request.headers,
                        allow_redirects=False, server_hostname=request.server_name) as response:
                    return Answer(response.status, await response.read())
        except aiohttp.ClientConnectorError as exc:  # no connection: the request never left
            raise Unreachable(what_failed(exc), maybe_received=False) from exc
        except (aiohttp.ClientError, TimeoutError, OSError, EOFError) as exc:
            raise Unreachable(what_failed(exc)) from exc


def what_failed(exc: BaseException) -> str:
    """A failed exchange in the scheduler's own words: these texts end up in execution logs that viewers read,
    so they never carry bytes the peer sent (a parser's error quotes them: a Redis or SMTP banner, a
    password in it). The exception's type, or the system's error for a connection."""
    name = type(exc).__name__
    if isinstance(exc, aiohttp.ClientConnectorError):
        exc = exc.os_error
    if isinstance(exc, OSError) and not isinstance(exc, aiohttp.ClientError) and exc.errno:
        return f"{name}: {os.strerror(exc.errno)}"
    return name


def _address(request: Prepared) -> tuple:
    return request.url.host, request.url.port, request.server_name


_http: HttpLoop | None = None
_http_lock = threading.Lock()


def http_loop() -> HttpLoop:
    global _http
    if _http is None:
        with _http_lock:
            if _http is None:
                _http = HttpLoop()
    return _http


def prepare_post(executor: Executor, url: str, payload: dict[str, Any], *,
                 checked: dict[str, Target] | None = None) -> Prepared:
    return prepare(executor, "POST", url, payload, checked=checked)


def prepare_batch(executor: Executor, url: str, items: list[bytes], *,
                  checked: dict[str, Target] | None = None) -> Prepared:
    """One signed POST whose body is ``{"executions": [...]}`` made of the already encoded ``items``."""
    return prepare(executor, "POST", url, checked=checked, body=b'{"executions":[' + b",".join(items) + b"]}")


def post_soon(requests: list[Prepared], *, timeout: float) -> list[Future[Answer]]:
    """Send prepared requests without waiting, with one wake-up of the HTTP loop. Each future holds the
    Answer or raises Unreachable."""
    return http_loop().submit_many(requests, timeout)


def send(executor: Executor, method: str, url: str, *, json: Any = None, timeout: float) -> Answer:
    """One signed request, waiting for its answer. Raises RefusedURL (nothing sent) or Unreachable."""
    future = http_loop().submit(prepare(executor, method, url, json), timeout)
    try:
        return future.result(timeout + WAIT_MARGIN_SECONDS)
    except TimeoutError as exc:
        future.cancel()
        raise Unreachable(f"no answer within {timeout:g}s") from exc


def post_json(executor: Executor, url: str, payload: dict[str, Any], *, timeout: float) -> Answer:
    return send(executor, "POST", url, json=payload, timeout=timeout)


def get(executor: Executor, url: str, *, timeout: float) -> Answer:
    return send(executor, "GET", url, timeout=timeout)


def request_stop(executor, execution_id: str, *, log_extra: dict | None = None) -> bool:
    """POST {base_url}/stop (spec 000 §7.5); best effort, since the run is already final on our side. True if
    acknowledged."""
    url = executor.endpoint("/stop")
    try:
        response = post_json(executor, url, {"execution_id": execution_id},
                             timeout=tunable("DISPATCH_TIMEOUT_SECONDS"))
    except RefusedURL as exc:
        logger.warning("stop of execution %s: not sent: %s", execution_id, exc.reason, extra=log_extra)
        return False
    except Unreachable as exc:
        logger.warning("stop of execution %s: executor %s unreachable: %s", execution_id, url, exc, extra=log_extra)
        return False
    if not response.ok:
        logger.warning("stop of execution %s: executor answered %s", execution_id, response.status_code,
                       extra=log_extra)
    return response.ok

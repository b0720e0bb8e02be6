"""The executor's HTTP face: ``POST /execute``, ``POST /execute/batch``, ``POST /stop``, ``POST /status`` and
``GET /health`` on the standard library."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

log = logging.getLogger("scheduler_sdk.http")

MAX_BODY_BYTES = 1024 * 1024
# A client that has not sent its whole request within this many seconds is cut off (the scheduler sends
# each request at once), and at most MAX_CONNECTIONS are served at a time (the rest are closed unanswered):
# 300 half-open connections held 301 threads before.
READ_TIMEOUT_SECONDS = 10.0
MAX_CONNECTIONS = 64

# verify_request(method, target, headers, body) -> True to serve the request, False to answer 401.
# ``target`` is the request target exactly as received (path and query): what the scheduler signed.
RequestVerifier = Callable[[str, str, Mapping[str, str], bytes], bool]


@dataclass
class Reply:
    """What to answer, plus work to start only once the answer is on the wire."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    after: Callable[[], None] | None = None


def error_reply(status: int, error: str, message: str, **extra: Any) -> Reply:
    return Reply(status, {"code": status, "error": error, "message": message, **extra})


class Endpoints(Protocol):
    def authenticate_request(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> bool:
        """Called before routing every request; False answers 401."""

    def http_execute(self, body: Any) -> Reply: ...

    def http_execute_batch(self, body: Any) -> Reply: ...

    def http_stop(self, body: Any) -> Reply: ...

    def http_status(self, body: Any) -> Reply: ...

    def http_health(self) -> Reply: ...


_POSTS = {"/execute": "http_execute", "/execute/batch": "http_execute_batch", "/stop": "http_stop",
          "/status": "http_status"}


class ExecutorHTTPServer(ThreadingHTTPServer):
    # Connection threads must not keep a stopping process alive.
    daemon_threads = True

    def __init__(self, address: tuple[str, int], endpoints: Endpoints, *,
                 read_timeout: float = READ_TIMEOUT_SECONDS, max_connections: int = MAX_CONNECTIONS) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.endpoints = endpoints
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, ExecutorRequestHandler)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("refused a connection from %s: %s already open", client_address[0], self.max_connections)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()  # no thread was started to release it
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class ExecutorRequestHandler(BaseHTTPRequestHandler):
    server: ExecutorHTTPServer
    server_version = "scheduler-sdk"

    def setup(self) -> None:
        self.timeout = self.server.read_timeout  # every read of the request; a stalled client is dropped
        super().setup()

    def do_GET(self) -> None:
        self._dispatch("GET", b"")

    def do_POST(self) -> None:
        length = self._content_length()
        if length is None:
            return
        self._dispatch("POST", self.rfile.read(length))

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def _content_length(self) -> int | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._send(error_reply(400, "bad_request", "invalid Content-Length"))
            return None
        if length > MAX_BODY_BYTES:
            self._send(error_reply(413, "payload_too_large", f"body exceeds {MAX_BODY_BYTES} bytes"))
            return None
        return length

    def _dispatch(self, method: str, raw: bytes) -> None:
        endpoints = self.server.endpoints
        path = urlsplit(self.path).path.rstrip("/") or "/"
        if not endpoints.authenticate_request(method, self.path, self.headers, raw):  # case-insensitive get()
            self._send(error_reply(401, "unauthorized", "request not authenticated"))
            return
        try:
            reply = self._route(endpoints, method, path, raw)
        except Exception:  # answer 500 rather than dropping the connection; details stay in our log
            log.exception("error serving %s %s", method, path)
            reply = error_reply(500, "internal_error", "executor failed to handle the request")
        try:
            self._send(reply)
        finally:  # a reserved worker slot must be used (and so released) even if the reply failed
            if reply.after is not None:
                reply.after()

    def _route(self, endpoints: Endpoints, method: str, path: str, raw: bytes) -> Reply:
        if (method, path) == ("GET", "/health"):
            return endpoints.http_health()
        if method == "POST" and path in _POSTS:
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                return error_reply(400, "bad_request", "body is not valid JSON")
            return getattr(endpoints, _POSTS[path])(body)
        if path in ("/health", *_POSTS):
            return error_reply(405, "method_not_allowed", f"{method} not allowed on {path}")
        return error_reply(404, "not_found", f"no route {path}")

    def _send(self, reply: Reply) -> None:
        payload = json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
        except OSError as exc:  # the caller went away; what was accepted still runs
            log.debug("could not send the reply: %s", exc)

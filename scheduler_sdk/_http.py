"""The executor's HTTP face: ``POST /execute``, ``POST /stop`` and ``GET /health`` on the standard library."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

log = logging.getLogger("scheduler_sdk.http")

MAX_BODY_BYTES = 1024 * 1024

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

    def http_stop(self, body: Any) -> Reply: ...

    def http_health(self) -> Reply: ...


class ExecutorHTTPServer(ThreadingHTTPServer):
    # Connection threads must not keep a stopping process alive.
    daemon_threads = True

    def __init__(self, address: tuple[str, int], endpoints: Endpoints) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.endpoints = endpoints
        super().__init__(address, ExecutorRequestHandler)


class ExecutorRequestHandler(BaseHTTPRequestHandler):
    server: ExecutorHTTPServer
    server_version = "scheduler-sdk"

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
        if method == "POST" and path in ("/execute", "/stop"):
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                return error_reply(400, "bad_request", "body is not valid JSON")
            return endpoints.http_execute(body) if path == "/execute" else endpoints.http_stop(body)
        if path in ("/health", "/execute", "/stop"):
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

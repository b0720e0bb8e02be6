"""A stand-in for the scheduler's HTTP API: records requests, answers as scripted, restarts on its port.

Like the real server it hands the executor a secret at registration and accepts results, log lines and
progress only when signed with it by that executor (401 otherwise).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from scheduler_sdk.signing import HEADER_EXECUTOR, MemoryNonceStore, SignatureError, header, verify

Answer = tuple[int, Any]  # (HTTP status, JSON body)

SECRET = "fake-scheduler-secret-for-tests-0123456789"  # what the fake hands every executor at registration
EXECUTOR_ID = "executor-1"
_EXECUTOR_POSTS = ("/callback", "/logs", "/progress")


def ok(data: Any = None, status: int = 200) -> Answer:
    return status, {"code": status, "message": "ok", "data": data}


def api_error(status: int, code: int, message: str = "error", details: Any = None) -> Answer:
    body = {"code": code, "message": message, "error": "ERR", "details": details,
            "timestamp": "2024-01-01T00:00:00Z", "path": "/"}
    return status, body


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]
    refusal: str | None = None  # why the signature check refused it (answered 401), None if accepted


class FakeScheduler:
    """Scripted answers: ``script(method, path, *answers)`` queues answers for one route (then defaults).

    Defaults: registration 201 (then 200) echoing the executor with an id, callbacks 200, health 200,
    anything else 404.
    """

    def __init__(self) -> None:
        self.secret = SECRET
        self.port = 0
        self._nonces = MemoryNonceStore()
        self.requests: list[Recorded] = []
        self._scripts: dict[tuple[str, str], deque[Answer]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- control --------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeScheduler:
        """Starts listening, on the same port as before after a stop (to simulate a restart)."""
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _make_handler(self))
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def script(self, method: str, path: str, *answers: Answer) -> None:
        with self._lock:
            self._scripts.setdefault((method, path), deque()).extend(answers)

    # -- what was seen --------------------------------------------------------------------------------

    def seen(self, method: str | None = None, path_prefix: str = "") -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests
                    if (method is None or r.method == method) and r.path.startswith(path_prefix)]

    @property
    def registrations(self) -> list[dict[str, Any]]:
        return [r.body for r in self.seen("POST", "/api/v1/executors/register")]

    @property
    def callbacks(self) -> list[tuple[str, dict[str, Any]]]:
        """Accepted (signed) callbacks: (execution id, body)."""
        return [(r.path.split("/")[4], r.body) for r in self.seen("POST", "/api/v1/executions/")
                if r.path.endswith("/callback") and r.refusal is None]

    @property
    def refused(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.refusal is not None]

    def callbacks_for(self, execution_id: str) -> list[dict[str, Any]]:
        return [body for eid, body in self.callbacks if eid == execution_id]

    # -- serving --------------------------------------------------------------------------------------

    def check_signature(self, recorded: Recorded, target: str, raw: bytes) -> None:
        """Sets ``recorded.refusal`` for an executor request that is not signed by the registered executor."""
        if recorded.method != "POST" or not recorded.path.startswith("/api/v1/executions/") \
                or not recorded.path.endswith(_EXECUTOR_POSTS):
            return
        if header(recorded.headers, HEADER_EXECUTOR) != EXECUTOR_ID:
            recorded.refusal = f"{HEADER_EXECUTOR} is not {EXECUTOR_ID}"
            return
        try:
            verify(self.secret, recorded.method, target, raw, recorded.headers, remember_nonce=self._nonces)
        except SignatureError as exc:
            recorded.refusal = exc.reason

    def answer(self, recorded: Recorded) -> Answer:
        with self._lock:
            self.requests.append(recorded)
            if recorded.refusal is not None:
                return api_error(401, 401, "未授权", {"reason": recorded.refusal})
            queue = self._scripts.get((recorded.method, recorded.path))
            if queue:
                return queue.popleft()
        return self._default(recorded)

    def _default(self, recorded: Recorded) -> Answer:
        if recorded.path == "/api/v1/executors/register":
            first = len(self.registrations) == 1
            return ok({"id": EXECUTOR_ID, "status": "online", **recorded.body, "secret": self.secret},
                      201 if first else 200)
        if recorded.path.endswith("/callback"):
            return ok({"status": recorded.body.get("status")})
        if recorded.path == "/api/v1/health":
            return ok({"status": "healthy"})
        return api_error(404, 404, f"no route {recorded.path}")


def _make_handler(fake: FakeScheduler) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PUT(self) -> None:
            self._handle("PUT")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            recorded = Recorded(method, parts.path, parse_qs(parts.query), json.loads(raw) if raw else None,
                                dict(self.headers.items()))
            fake.check_signature(recorded, self.path, raw)
            status, body = fake.answer(recorded)
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if not isinstance(body, bytes) else "text/html")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler

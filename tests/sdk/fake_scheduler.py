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
_EXECUTOR_POSTS = ("/callback", "/callbacks", "/logs", "/progress")
BATCH_PATH = "/api/v1/executions/callbacks"


def ok(data: Any = None, status: int = 200) -> Answer:
    return status, {"code": status, "message": "ok", "data": data}


def api_error(status: int, code: int, message: str = "error", details: Any = None, error: str = "ERR") -> Answer:
    body = {"code": code, "message": message, "error": error, "details": details,
            "timestamp": "2024-01-01T00:00:00Z", "path": "/"}
    return status, body


# What a scheduler from before the batch endpoint answers a signed POST /executions/callbacks: its router takes
# "callbacks" for an execution id and asks for API credentials.
OLDER_SCHEDULER = api_error(401, 401, "未授权", error="Authentication credentials were not provided.")


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]
    refusal: str | None = None  # why the signature check refused it (answered 401), None if accepted
    routed: bool = True  # False: a batch sent while the fake plays a scheduler without the endpoint


class FakeScheduler:
    """Scripted answers: ``script(method, path, *answers)`` queues answers for one route (then defaults).

    Defaults: registration 201 (then 200) echoing the executor with an id, callbacks 200, a batch of callbacks
    200 with the verdicts queued by ``verdict()`` ("applied" otherwise), health 200, anything else 404.
    ``batch_answer`` set: every batch gets that answer instead (a scheduler without the endpoint).
    """

    def __init__(self) -> None:
        self.secret = SECRET
        self.port = 0
        self._nonces = MemoryNonceStore()
        self.requests: list[Recorded] = []
        self._scripts: dict[tuple[str, str], deque[Answer]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._verdicts: dict[str, deque[str]] = {}
        self.batch_answer: Answer | None = None

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

    def verdict(self, execution_id: str, *outcomes: str) -> None:
        """Queues the outcomes the next batches give ``execution_id`` (then "applied")."""
        with self._lock:
            self._verdicts.setdefault(execution_id, deque()).extend(outcomes)

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
        """Accepted (signed) callbacks, single or in batches: (execution id, body without the id)."""
        sent = []
        for r in self.seen("POST", "/api/v1/executions/"):
            if r.refusal is not None:
                continue
            if r.path.endswith("/callback"):
                sent.append((r.path.split("/")[4], r.body))
            elif r.path == BATCH_PATH and r.routed:
                sent.extend((item["execution_id"], {k: v for k, v in item.items() if k != "execution_id"})
                            for item in r.body["results"])
        return sent

    @property
    def batches(self) -> list[list[str]]:
        """The execution ids of each signed batch request, in order."""
        return [[item["execution_id"] for item in r.body["results"]] for r in self.seen("POST", BATCH_PATH)
                if r.refusal is None and r.routed]

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
                return api_error(401, 401, "未授权", {"reason": recorded.refusal},
                                 error=f"signature not valid: {recorded.refusal}")
            if recorded.path == BATCH_PATH and self.batch_answer is not None:
                recorded.routed = False
                return self.batch_answer
            queue = self._scripts.get((recorded.method, recorded.path))
            if queue:
                return queue.popleft()
            if recorded.path == BATCH_PATH:
                return self._batch(recorded.body["results"])
        return self._default(recorded)

    def _batch(self, items: list[dict[str, Any]]) -> Answer:
        verdicts = []
        for item in items:
            queued = self._verdicts.get(item["execution_id"])
            outcome = queued.popleft() if queued else "applied"
            verdicts.append({"execution_id": item["execution_id"], "outcome": outcome,
                             "status": item["status"] if outcome == "applied" else None})
        counts = {name: sum(v["outcome"] == name for v in verdicts)
                  for name in ("applied", "already_final", "not_found", "not_yours")}
        return ok({**counts, "results": verdicts})

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

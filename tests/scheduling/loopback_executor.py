"""A stand-in executor on loopback that records what the scheduler sends it (headers and raw body)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from scheduler_sdk.signing import MemoryNonceStore, SignatureError, verify


@dataclass
class Received:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    def signature_problem(self, secret: str) -> str | None:
        """None if signed with ``secret`` (as the SDK checks it), else the reason it is not."""
        try:
            verify(secret, self.method, self.target, self.body, self.headers, remember_nonce=MemoryNonceStore())
        except SignatureError as exc:
            return exc.reason
        return None


class LoopbackExecutor:
    """Answers every request with ``status`` (and ``location`` for redirects)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.status = 202
        self.location = ""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(owner: LoopbackExecutor) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._record("GET")

        def do_POST(self) -> None:
            self._record("POST")

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _record(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            owner.received.append(Received(method, self.path, dict(self.headers.items()), body))
            self.send_response(owner.status)
            if owner.location:
                self.send_header("Location", owner.location)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    return Handler

"""The one stub executor every system in the bench posts to: it records when each fire arrived.

    .venv/bin/python -m bench.stub --port 9300

One asyncio process, HTTP/1.1 keep-alive, no framework, so that it is never the bottleneck (the bench
measures its capacity alone). Endpoints:

- ``POST /execute`` (our scheduler's dispatch): records (``ours``, task id, scheduled time, receipt time),
  answers 200 at once, then POSTs a ``success`` callback to the execution's ``callback_url`` over a small
  pool of persistent connections, signed with the executor's secret when ``scheduler_sdk.signing`` exists.
- ``POST /fire`` (APScheduler's and Celery's job function): body ``{"system", "job", "scheduled"}``; records.
  System ``selftest`` is counted but not stored (capacity measurements).
- ``POST /stop``, ``GET /health``: 200.
- ``POST /configure`` ``{"executor_id", "secret"}``: what callbacks are signed with.
- ``GET /records?system=S``: ``[[job, scheduled, received], ...]`` (epoch seconds); ``GET /stats``: counters.
- ``POST /reset``: forget records, counters and callbacks not sent yet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import defaultdict
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

try:  # the signed executor channel (CHANNEL helper); without it callbacks go unsigned
    from scheduler_sdk import signing
except ImportError:  # pragma: no cover - depends on the tree the bench runs against
    signing = None

CALLBACK_CONNECTIONS = 8


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class Recorder:
    def __init__(self) -> None:
        self.reset()
        self.executor_id = ""
        self.secret = ""

    def reset(self) -> None:
        self.records: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
        self.counts: dict[str, int] = defaultdict(int)

    def record(self, system: str, job: str, scheduled: float, received: float) -> None:
        self.counts[system] += 1
        if system != "selftest":
            self.records[system].append((job, scheduled, received))


class CallbackSender:
    """Posts callbacks to the web server over CALLBACK_CONNECTIONS keep-alive connections."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.outcomes: dict[str, int] = defaultdict(int)
        self.errors: list[str] = []
        self.workers: list[asyncio.Task] = []  # asyncio keeps only weak references to tasks

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.workers = [loop.create_task(self._worker()) for _ in range(CALLBACK_CONNECTIONS)]

    def submit(self, url: str, body: bytes) -> None:
        self.queue.put_nowait((url, body))

    async def _worker(self) -> None:
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        address = None
        while True:
            url, body = await self.queue.get()
            parts = urlsplit(url)
            wanted = (parts.hostname, parts.port or 80)
            for attempt in range(3):
                try:
                    if connection is None or address != wanted:
                        if connection is not None:
                            connection[1].close()
                        connection = await asyncio.open_connection(*wanted)
                        address = wanted
                    status, text, closing = await self._post(connection, parts, body)
                    if closing:
                        connection[1].close()
                        connection = None
                    self.outcomes[str(status)] += 1
                    if status >= 300 and len(self.errors) < 20:
                        self.errors.append(f"{status} {parts.path}: {text[:300]}")
                    break
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    connection = None  # the server closed a keep-alive connection; reconnect and resend
                    if attempt == 2:
                        self.outcomes["error"] += 1
                        if len(self.errors) < 20:
                            self.errors.append(f"{type(exc).__name__}: {exc}")

    async def _post(self, connection, parts, body: bytes) -> tuple[int, str, bool]:
        reader, writer = connection
        headers = {"Host": parts.netloc, "Content-Type": "application/json", "Content-Length": str(len(body))}
        if signing is not None and self.recorder.secret:
            headers.update(signing.signature_headers(self.recorder.secret, "POST", parts.path, body,
                                                     executor_id=self.recorder.executor_id))
        head = f"POST {parts.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(head.encode() + body)
        await writer.drain()
        status_line = await reader.readline()
        if not status_line:
            raise ValueError("connection closed")
        status = int(status_line.split()[1])
        response_headers = await read_headers(reader)
        text = await read_body(reader, response_headers)
        closing = response_headers.get("connection", "").lower() == "close"
        return status, text.decode(errors="replace"), closing


async def read_headers(reader: asyncio.StreamReader) -> dict[str, str]:
    headers = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            return headers
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return b"".join(chunks)
            chunks.append(chunk[:-2])
    return b""


class StubServer:
    def __init__(self) -> None:
        self.recorder = Recorder()
        self.callbacks = CallbackSender(self.recorder)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    break
                received = time.time()
                method, target, _ = request_line.decode("latin-1").split(" ", 2)
                headers = await read_headers(reader)
                body = await read_body(reader, headers)
                status, payload = self.route(method, target, body, received)
                data = json.dumps(payload).encode()
                writer.write(b"HTTP/1.1 %d OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                             % (status, len(data)) + data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    def route(self, method: str, target: str, body: bytes, received: float) -> tuple[int, object]:
        parts = urlsplit(target)
        path = parts.path.rstrip("/")
        if method == "POST" and path == "/execute":
            job = json.loads(body)
            self.recorder.record("ours", job["task_id"], epoch(job["scheduled_time"]), received)
            result = json.dumps({"status": "success", "result": {"stub": True}}).encode()
            self.callbacks.submit(job["callback_url"], result)
            return 200, {"code": 200, "message": "accepted", "data": {"execution_id": job["execution_id"]}}
        if method == "POST" and path == "/fire":
            job = json.loads(body)
            self.recorder.record(job["system"], str(job["job"]), float(job["scheduled"]), received)
            return 200, {"ok": True}
        if path in ("/health", "/stop"):
            return 200, {"code": 200, "message": "healthy"}
        if method == "POST" and path == "/configure":
            config = json.loads(body)
            self.recorder.executor_id = config.get("executor_id", "")
            self.recorder.secret = config.get("secret", "")
            return 200, {"signing": signing is not None}
        if method == "GET" and path == "/records":
            system = parse_qs(parts.query).get("system", ["ours"])[0]
            return 200, self.recorder.records.get(system, [])
        if method == "GET" and path == "/stats":
            return 200, {"counts": self.recorder.counts, "callbacks": self.callbacks.outcomes,
                         "callback_errors": self.callbacks.errors, "callback_queue": self.callbacks.queue.qsize(),
                         "signing": signing is not None}
        if method == "POST" and path == "/reset":
            self.recorder.reset()
            while not self.callbacks.queue.empty():  # a previous workload's backlog, to a server now gone
                self.callbacks.queue.get_nowait()
            self.callbacks.outcomes.clear()
            self.callbacks.errors.clear()
            return 200, {"ok": True}
        return 404, {"error": f"no route {method} {path}"}


async def serve(port: int) -> None:
    stub = StubServer()
    stub.callbacks.start()
    server = await asyncio.start_server(stub.handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description="bench stub executor")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()

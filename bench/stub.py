"""The one stub executor every system in the bench posts to: it records when each fire arrived.

    .venv/bin/python -m bench.stub --port 9300

One asyncio process, HTTP/1.1 keep-alive, no framework, so that it is never the bottleneck (the bench
measures its capacity alone). Endpoints:

- ``POST /execute`` (our scheduler's dispatch): records (``ours``, task id, scheduled time, receipt time),
  answers 200 at once, then reports ``success`` to the scheduler that sent the ``callback_url``: the results
  queued meanwhile go together (up to CALLBACK_BATCH) to ``POST /api/v1/executions/callbacks`` over one
  persistent connection, signed with the executor's secret when ``scheduler_sdk.signing`` exists.
- ``POST /execute/batch``: the same for each run of ``{"executions": [...]}`` (the stub registers with
  ``execute_batch_limit``, as the SDK does by default), answered ``{"results": [{"execution_id", "status"}]}``.
- ``POST /fire`` (APScheduler's and Celery's job function): body ``{"system", "job", "scheduled"}``; records.
  System ``selftest`` is counted but not stored (capacity measurements).
- ``POST /stop``, ``GET /health``: 200.
- ``POST /configure`` ``{"executor_id", "secret"}``: what callbacks are signed with.
- ``GET /records?system=S``: ``[[job, scheduled, received], ...]`` (epoch seconds); ``GET /stats``: counters
  (``callbacks``: results by the HTTP status of the batch that carried them, ``callback_verdicts``: the
  scheduler's verdict per result, ``callback_batches``: requests sent).
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

# One sender, one batch in flight, as the SDK's outbox reports (scheduler_sdk/outbox.py): the stub stands for
# one SDK executor. (With 8 concurrent batches a burst's results came back in many small requests, whose
# fixed cost on the web server competed with the dispatch being measured.)
CALLBACK_CONNECTIONS = 1
CALLBACK_BATCH = 500  # the scheduler's cap on results per POST /api/v1/executions/callbacks
STUB_RESULT = {"status": "success", "result": {"stub": True}}


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
    """Reports results in batches over CALLBACK_CONNECTIONS keep-alive connection(s): each takes whatever
    is queued (up to CALLBACK_BATCH) into one request, so batches grow with the backlog."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        # (host, port, batch path, execution id)
        self.queue: asyncio.Queue[tuple[str, int, str, str]] = asyncio.Queue()
        self.outcomes: dict[str, int] = defaultdict(int)  # results, by the HTTP status of their batch
        self.verdicts: dict[str, int] = defaultdict(int)  # results, by the scheduler's verdict
        self.batches = 0
        self.errors: list[str] = []
        self.workers: list[asyncio.Task] = []  # asyncio keeps only weak references to tasks

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.workers = [loop.create_task(self._worker()) for _ in range(CALLBACK_CONNECTIONS)]

    def submit(self, callback_url: str, execution_id: str) -> None:
        parts = urlsplit(callback_url)  # .../executions/{id}/callback -> .../executions/callbacks
        self.queue.put_nowait((parts.hostname, parts.port or 80, parts.path.rsplit("/", 2)[0] + "/callbacks",
                               execution_id))

    def _take_batch(self, first: tuple[str, int, str, str]) -> tuple[tuple[str, int, str], list[str]]:
        """``first`` and whatever else is queued for the same scheduler, up to CALLBACK_BATCH ids."""
        target, ids, others = first[:3], [first[3]], []
        while len(ids) < CALLBACK_BATCH and not self.queue.empty():
            item = self.queue.get_nowait()
            if item[:3] == target:
                ids.append(item[3])
            else:
                others.append(item)
        for item in others:  # another scheduler's (never in the bench): back for the next batch
            self.queue.put_nowait(item)
        return target, ids

    async def _worker(self) -> None:
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        address = None
        while True:
            (host, port, path), ids = self._take_batch(await self.queue.get())
            body = json.dumps({"results": [{"execution_id": eid, **STUB_RESULT} for eid in ids]}).encode()
            for attempt in range(3):
                try:
                    if connection is None or address != (host, port):
                        if connection is not None:
                            connection[1].close()
                        connection = await asyncio.open_connection(host, port)
                        address = (host, port)
                    status, text, closing = await self._post(connection, f"{host}:{port}", path, body)
                    if closing:
                        connection[1].close()
                        connection = None
                    self._count(status, text, path, len(ids))
                    break
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    connection = None  # the server closed a keep-alive connection; reconnect and resend
                    if attempt == 2:
                        self.outcomes["error"] += len(ids)
                        if len(self.errors) < 20:
                            self.errors.append(f"{type(exc).__name__}: {exc}")

    def _count(self, status: int, text: str, path: str, results: int) -> None:
        self.batches += 1
        self.outcomes[str(status)] += results
        if status >= 300:
            if len(self.errors) < 20:
                self.errors.append(f"{status} {path}: {text[:300]}")
            return
        try:  # counted, never raised: the batch was applied, it must not be sent again
            verdicts = json.loads(text)["data"]["results"]
        except (ValueError, KeyError, TypeError):
            verdicts = [{"outcome": "unreadable answer"}] * results
        for verdict in verdicts:
            self.verdicts[verdict.get("outcome", "?")] += 1

    async def _post(self, connection, netloc: str, path: str, body: bytes) -> tuple[int, str, bool]:
        reader, writer = connection
        headers = {"Host": netloc, "Content-Type": "application/json", "Content-Length": str(len(body))}
        if signing is not None and self.recorder.secret:
            headers.update(signing.signature_headers(self.recorder.secret, "POST", path, body,
                                                     executor_id=self.recorder.executor_id))
        head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
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

    def accept(self, job: dict, received: float) -> None:
        self.recorder.record("ours", job["task_id"], epoch(job["scheduled_time"]), received)
        self.callbacks.submit(job["callback_url"], job["execution_id"])

    def route(self, method: str, target: str, body: bytes, received: float) -> tuple[int, object]:
        parts = urlsplit(target)
        path = parts.path.rstrip("/")
        if method == "POST" and path == "/execute":
            job = json.loads(body)
            self.accept(job, received)
            return 200, {"code": 200, "message": "accepted", "data": {"execution_id": job["execution_id"]}}
        if method == "POST" and path == "/execute/batch":
            jobs = json.loads(body)["executions"]
            for job in jobs:
                self.accept(job, received)
            return 200, {"results": [{"execution_id": job["execution_id"], "status": 202} for job in jobs]}
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
                         "callback_verdicts": self.callbacks.verdicts, "callback_batches": self.callbacks.batches,
                         "callback_errors": self.callbacks.errors, "callback_queue": self.callbacks.queue.qsize(),
                         "signing": signing is not None}
        if method == "POST" and path == "/reset":
            self.recorder.reset()
            while not self.callbacks.queue.empty():  # a previous workload's backlog, to a server now gone
                self.callbacks.queue.get_nowait()
            self.callbacks.outcomes.clear()
            self.callbacks.verdicts.clear()
            self.callbacks.batches = 0
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

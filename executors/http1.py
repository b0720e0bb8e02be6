"""A lean HTTP/1.1 client on asyncio streams for plain-http executors, with kept-alive connections.

A burst's dispatch is bound by the CPU each POST costs the leader's HTTP loop: through aiohttp 1,000
loopback POSTs took 0.175 s of it, written as one buffer each with only the status, the framing headers and
the body read back 0.079 s. It speaks what an executor
answers: a status line, headers, a body framed by Content-Length, chunked encoding or the connection's end.
It never follows a redirect (the caller sees the 3xx), and sends no header it was not given but
Content-Length. https stays on aiohttp (``executor_http``).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field

MAX_HEAD_BYTES = 64 * 1024  # status line and headers of an answer
MAX_BODY_BYTES = 1024 * 1024  # an executor's answer is a short JSON document
# A kept connection idle longer than this is closed rather than reused: servers drop idle connections, and
# a request written into one they are closing is lost.
IDLE_SECONDS = 10.0


class ProtocolError(Exception):
    """The answer is not HTTP/1.x as this client reads it (or too large), or the request cannot be encoded."""


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = field(default_factory=time.monotonic)

    def reusable(self) -> bool:
        return (not self.reader.at_eof() and not self.writer.is_closing()
                and time.monotonic() - self.idle_since < IDLE_SECONDS)


class ConnectionPool:
    """Kept-alive connections per (host, port). Used from one event loop only."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[_Connection]] = defaultdict(list)

    async def request(self, host: str, port: int, method: str, target: str, headers: dict[str, str],
                      body: bytes) -> tuple[int, bytes]:
        """Send one request and read its answer: (status, body). A connection that fails, or whose answer
        leaves it unusable, is closed; cancellation (the caller's timeout) closes it too."""
        raw = encode_request(method, target, headers, body)
        connection = self._take(host, port) or _Connection(*await asyncio.open_connection(
            host, port, limit=MAX_HEAD_BYTES))
        try:
            connection.writer.write(raw)
            status, answer, keep = await read_response(connection.reader, head_only=method == "HEAD")
        except BaseException:
            connection.writer.close()
            raise
        if keep:
            connection.idle_since = time.monotonic()
            self._idle[(host, port)].append(connection)
        else:
            connection.writer.close()
        return status, answer

    def _take(self, host: str, port: int) -> _Connection | None:
        idle = self._idle.get((host, port))
        while idle:
            connection = idle.pop()
            if connection.reusable():
                return connection
            connection.writer.close()
        return None

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.writer.close()
        self._idle.clear()


def encode_request(method: str, target: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", *(f"{name}: {value}" for name, value in headers.items())]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    for line in lines:
        if "\r" in line or "\n" in line or "\0" in line:
            raise ProtocolError(f"a line break in the request line or a header: {line[:80]!r}")
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body
    except UnicodeEncodeError as exc:
        raise ProtocolError(f"a request line or header that is not ASCII: {exc}") from None


async def read_response(reader: asyncio.StreamReader, *, head_only: bool = False) -> tuple[int, bytes, bool]:
    """(status, body, whether the connection may carry another request)."""
    version, status, headers = await _read_head(reader)
    while 100 <= status < 200:  # an interim answer (100 Continue): the final one follows
        version, status, headers = await _read_head(reader)
    keep = version == b"HTTP/1.1" and b"close" not in _tokens(headers.get(b"connection", b""))
    if head_only or status in (204, 304):
        return status, b"", keep
    if b"chunked" in _tokens(headers.get(b"transfer-encoding", b"")):
        return status, await _read_chunked(reader), keep
    if b"content-length" in headers:
        return status, await reader.readexactly(_content_length(headers[b"content-length"])), keep
    return status, await _read_to_end(reader), False


async def _read_head(reader: asyncio.StreamReader) -> tuple[bytes, int, dict[bytes, bytes]]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise ProtocolError(f"an answer head longer than {MAX_HEAD_BYTES} bytes") from None
    status_line, *lines = head[:-4].split(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0") or not (
            len(parts[1]) == 3 and parts[1].isdigit()):
        raise ProtocolError(f"not an HTTP/1.x status line ({len(status_line)} bytes)")
    headers: dict[bytes, bytes] = {}
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise ProtocolError(f"a malformed header line ({len(line)} bytes)")
        name, value = name.lower(), value.strip()
        if name in headers:
            if name == b"content-length" and headers[name] != value:
                raise ProtocolError("conflicting Content-Length headers")
            value = headers[name] + b"," + value if name != b"content-length" else value
        headers[name] = value
    return parts[0], int(parts[1]), headers


def _tokens(value: bytes) -> set[bytes]:
    return {token.strip().lower() for token in value.split(b",")}


def _content_length(value: bytes) -> int:
    if not value.isdigit():
        raise ProtocolError(f"a malformed Content-Length ({len(value)} bytes)")
    length = int(value)
    if length > MAX_BODY_BYTES:
        raise ProtocolError(f"an answer of {length} bytes (at most {MAX_BODY_BYTES})")
    return length


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = (await reader.readuntil(b"\r\n"))[:-2].split(b";", 1)[0].strip()
        if not size_line or size_line.strip(b"0123456789abcdefABCDEF"):
            raise ProtocolError(f"a malformed chunk size ({len(size_line)} bytes)")
        size = int(size_line, 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, ignored
                pass
            return bytes(body)
        if len(body) + size > MAX_BODY_BYTES:
            raise ProtocolError(f"a chunked answer over {MAX_BODY_BYTES} bytes")
        chunk = await reader.readexactly(size + 2)
        if chunk[-2:] != b"\r\n":
            raise ProtocolError("a chunk not followed by CRLF")
        body += chunk[:-2]


async def _read_to_end(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while chunk := await reader.read(64 * 1024):
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ProtocolError(f"an answer over {MAX_BODY_BYTES} bytes")
    return bytes(body)

"""executors.http1 against scripted servers on loopback: framing, keep-alive, and what it refuses."""

from __future__ import annotations

import asyncio

import pytest

from executors import http1
from executors.http1 import ConnectionPool, ProtocolError


class Scripted:
    """A server that reads each request (head and Content-Length body) and writes the next scripted answer
    as raw bytes; ``close_after`` closes the connection after that answer. Counts connections."""

    def __init__(self, *answers: bytes, close_after: bool = False) -> None:
        self.answers = list(answers)
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []

    async def __aenter__(self) -> Scripted:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                self.requests.append(head + await reader.readexactly(length))
                writer.write(self.answers.pop(0))
                await writer.drain()
                if self.close_after:
                    break
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()


def post(pool: ConnectionPool, server: Scripted, body: bytes = b'{"n":1}', **headers: str):
    return pool.request("127.0.0.1", server.port, "POST", "/execute?x=1", {"Host": "executor", **headers}, body)


OK = b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}"


def run(coroutine):
    return asyncio.run(coroutine)


def test_a_request_goes_out_as_given_and_its_connection_is_kept_for_the_next():
    async def scenario():
        async with Scripted(OK, OK) as server:
            pool = ConnectionPool()
            assert await post(pool, server) == (202, b"{}")
            assert await post(pool, server, X_Signature="abc") == (202, b"{}")
            pool.close()
            return server

    server = run(scenario())
    assert server.connections == 1
    assert server.requests[0] == (b"POST /execute?x=1 HTTP/1.1\r\nHost: executor\r\nContent-Length: 7\r\n\r\n"
                                  b'{"n":1}')


def test_a_chunked_answer_is_put_together():
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nabcd\r\n3\r\nefg\r\n0\r\nT: x\r\n\r\n"

    async def scenario():
        async with Scripted(chunked, OK) as server:
            pool = ConnectionPool()
            answers = [await post(pool, server), await post(pool, server)]
            pool.close()
            return answers, server.connections

    assert run(scenario()) == ([(200, b"abcdefg"), (202, b"{}")], 1)


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\n\r\nthe rest of the stream",  # framed by the connection's end
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 22\r\n\r\nthe rest of the stream",
    b"HTTP/1.0 200 OK\r\nContent-Length: 22\r\n\r\nthe rest of the stream",
])
def test_an_answer_that_ends_its_connection_is_read_whole_and_the_next_request_opens_another(answer):
    async def scenario():
        async with Scripted(answer, close_after=True) as server:
            pool = ConnectionPool()
            first = await post(pool, server)
            server.answers.append(OK)
            second = await post(pool, server)
            pool.close()
            return first, second, server.connections

    assert run(scenario()) == ((200, b"the rest of the stream"), (202, b"{}"), 2)


def test_an_interim_answer_is_skipped():
    async def scenario():
        async with Scripted(b"HTTP/1.1 100 Continue\r\n\r\n" + OK) as server:
            pool = ConnectionPool()
            answer = await post(pool, server)
            pool.close()
            return answer

    assert run(scenario()) == (202, b"{}")


def test_a_kept_connection_the_server_closed_is_not_written_into():
    async def scenario():
        async with Scripted(OK, close_after=True) as server:
            pool = ConnectionPool()
            await post(pool, server)
            await asyncio.sleep(0.05)  # the server's FIN arrives while the connection is idle in the pool
            server.answers.append(OK)
            answer = await post(pool, server)
            pool.close()
            return answer, server.connections

    assert run(scenario()) == ((202, b"{}"), 2)


@pytest.mark.parametrize("answer", [
    b"ICY 200 OK\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (http1.MAX_BODY_BYTES + 1),
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x10\r\n",
    b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * http1.MAX_HEAD_BYTES + b"\r\n\r\n",
])
def test_an_answer_that_is_not_http_as_read_here_is_refused(answer):
    async def scenario():
        async with Scripted(answer) as server:
            pool = ConnectionPool()
            with pytest.raises(ProtocolError):
                await post(pool, server)
            assert not pool._idle.get(("127.0.0.1", server.port))  # never reused

    run(scenario())


@pytest.mark.parametrize("headers", [{"X-Evil": "a\r\nInjected: 1"}, {"X-Evil": "caf\u00e9"}])
def test_a_header_that_would_break_the_request_is_refused_before_anything_is_sent(headers):
    async def scenario():
        async with Scripted(OK) as server:
            pool = ConnectionPool()
            with pytest.raises(ProtocolError):
                await post(pool, server, **headers)
            return server.connections

    assert run(scenario()) == 0

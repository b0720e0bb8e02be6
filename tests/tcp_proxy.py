"""A TCP forwarder in a process of its own, standing for a database server in fault tests:

    python -m tests.tcp_proxy --port 40001 --target 127.0.0.1:3306

SIGSTOP it and the database "freezes" (connections stay open, nothing answers); SIGKILL it and every
connection drops, and new ones are refused until it is started again on the same port. Prints ``listening``
once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def serve(port: int, host: str, target_port: int) -> None:
    async def forward(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(host, target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))

    server = await asyncio.start_server(forward, "127.0.0.1", port, reuse_address=True)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", required=True, help="HOST:PORT")
    args = parser.parse_args()
    host, _, target_port = args.target.rpartition(":")
    asyncio.run(serve(args.port, host, int(target_port)))


if __name__ == "__main__":
    main()

"""The benchmarks' lean HTTP client against a real TCP server that closes idle connections."""

from __future__ import annotations

import asyncio

from switchyard.bench.http_load import LoadClient


async def test_a_stale_keep_alive_connection_is_replaced_not_reported() -> None:
    connections = 0
    closed = asyncio.Event()

    async def one_answer_then_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal connections
        connections += 1
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        body = await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()  # like a keep-alive timeout: no "Connection: close" warning
        await writer.wait_closed()
        closed.set()

    server = await asyncio.start_server(one_answer_then_close, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = LoadClient("127.0.0.1", port, connections=1)
    try:
        first = await client.post("/x", b"one", {})
        await asyncio.wait_for(closed.wait(), timeout=5)  # the idle connection is now dead
        second = await client.post("/x", b"two", {})
    finally:
        await client.close()
        server.close()
        await server.wait_closed()
    assert (first, second) == ((200, b"one"), (200, b"two"))
    assert connections == 2

"""A TCP proxy whose link a test can cut and restore: one gateway's uplink, not the broker."""

from __future__ import annotations

import asyncio
import contextlib

from switchyard.procs import free_port


class TcpProxy:
    """Forwards 127.0.0.1:port to a target; `cut()` drops every connection and refuses new ones."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._cutting = False
        self.connections = 0

    async def start(self) -> TcpProxy:
        """Listen (again) on the same port."""
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        return self

    async def cut(self) -> None:
        """Stop listening and sever every open connection, like a pulled cable."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self._cutting = True
        pipes = set(self._pipes)
        for pipe in pipes:
            pipe.cancel()
        if pipes:
            await asyncio.wait(pipes)
        self._cutting = False

    async def restore(self) -> None:
        """Take connections again."""
        await self.start()

    async def close(self) -> None:
        """Cut for good."""
        await self.cut()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        self.connections += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            self._pipes.discard(task)
            return
        try:
            await _pipe_both_ways(reader, writer, upstream_reader, upstream_writer)
        except asyncio.CancelledError:
            # Only cut() cancels; ending quietly spares Python 3.11's stream callback a
            # spurious traceback about a cancelled handler.
            if not self._cutting:
                raise
        finally:
            self._pipes.discard(task)
            for side in (writer, upstream_writer):
                side.close()


async def _pipe_both_ways(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    upstream_reader: asyncio.StreamReader,
    upstream_writer: asyncio.StreamWriter,
) -> None:
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(_pump(reader, upstream_writer))
            group.create_task(_pump(upstream_reader, writer))
    except* (OSError, ConnectionError):
        pass


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    with contextlib.suppress(OSError):
        writer.write_eof()

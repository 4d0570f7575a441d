"""A lean HTTP/1.1 client for load generation: keep-alive connections and pre-built requests.

httpx costs about a millisecond of CPU per request; on a 2-core machine the load generator
would then take the CPU the system under test needs. This one does only what the benchmarks
need: POST a body, read the status and the body back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping


class HttpLoadError(ConnectionError):
    """The server closed the connection or answered something we cannot read."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, _, header_block = head.partition(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise HttpLoadError(f"bad status line {status_line!r}")
        length = 0
        closing = False
        for line in header_block.split(b"\r\n"):
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"content-length":
                length = int(value.strip())
            elif lowered == b"connection" and value.strip().lower() == b"close":
                closing = True
        body = await self.reader.readexactly(length) if length else b""
        if closing:
            raise _Closing(int(parts[1]), body)
        return int(parts[1]), body

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self.writer.close()


class _StaleConnection(Exception):
    """A reused connection the server had already closed."""


class _Closing(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class LoadClient:
    """POSTs over a pool of keep-alive connections to one host."""

    def __init__(self, host: str, port: int, *, connections: int = 32) -> None:
        self._host = host
        self._port = port
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(connections)

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        """Send one POST; returns (status, body)."""
        lines = [f"POST {path} HTTP/1.1", f"Host: {self._host}:{self._port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        async with self._slots:
            if self._idle:
                try:
                    return await self._send(self._idle.pop(), request)
                except _StaleConnection:
                    # The server closed this idle keep-alive connection as we reused it: the
                    # request never reached it (nothing came back), so send it on a fresh one.
                    pass
            return await self._send(await self._connect(), request, fresh=True)

    async def _send(
        self, connection: _Connection, request: bytes, *, fresh: bool = False
    ) -> tuple[int, bytes]:
        try:
            answer = await connection.exchange(request)
        except _Closing as closing:
            connection.close()
            return closing.status, closing.body
        except asyncio.IncompleteReadError as exc:
            connection.close()
            if not fresh and not exc.partial:
                raise _StaleConnection from exc
            raise HttpLoadError(f"connection closed mid-answer: {exc}") from exc
        except (OSError, asyncio.LimitOverrunError) as exc:
            connection.close()
            if not fresh and isinstance(exc, ConnectionResetError):
                raise _StaleConnection from exc
            raise HttpLoadError(str(exc) or type(exc).__name__) from exc
        self._idle.append(connection)
        return answer

    async def close(self) -> None:
        """Close every idle connection."""
        for connection in self._idle:
            connection.close()
        self._idle.clear()

    async def _connect(self) -> _Connection:
        reader, writer = await asyncio.open_connection(self._host, self._port)
        return _Connection(reader, writer)

"""A fault-injecting TCP proxy for tests and benchmarks: latency, refused connections, resets
and a blackhole between a client (gateway, cloud) and its server (the broker)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

log = logging.getLogger(__name__)

_CHUNK_BYTES = 65536
T = TypeVar("T")


@dataclass
class Faults:
    """What the proxy does to traffic right now."""

    latency_ms: float = 0.0
    refuse_new: bool = False
    blackhole: bool = False
    # Only what the server sends is dropped: publishes arrive, their acks are lost.
    blackhole_down: bool = False


@dataclass(eq=False)
class _Pipe:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class FaultProxy:
    """Forwards 127.0.0.1:listen_port to target; faults change at run time from any thread."""

    def __init__(self, target_host: str, target_port: int, listen_port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.faults = Faults()
        self.connections_accepted = 0
        self.connections_reset = 0
        self._listen_port = listen_port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy")
        self._server: asyncio.Server | None = None
        self._pipes: set[_Pipe] = set()

    @property
    def port(self) -> int:
        """The port clients connect to."""
        assert self._server is not None, "proxy not started"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def start(self) -> FaultProxy:
        """Start listening (in a background thread with its own event loop)."""
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        """Close every connection and stop the thread."""
        self._call(self._close_all())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def set_faults(self, **changes: float | bool) -> None:
        """Change faults, e.g. `set_faults(latency_ms=200)` or `set_faults(blackhole=True)`."""
        for name, value in changes.items():
            if not hasattr(self.faults, name):
                raise ValueError(f"unknown fault {name!r}")
            setattr(self.faults, name, value)

    def heal(self) -> None:
        """Back to a clean pass-through."""
        self.faults = Faults()

    def reset_connections(self) -> int:
        """Abort every open connection with a TCP RST; returns how many were reset."""
        return self._call(self._reset_all())

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self._listen_port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.faults.refuse_new:
            _abort(writer)
            return
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError as exc:
            log.info("proxy: target %s:%s unreachable: %s", *self.target, exc)
            _abort(writer)
            return
        self.connections_accepted += 1
        pipe = _Pipe(writer, server_writer)
        self._pipes.add(pipe)
        pipe.tasks = [
            asyncio.create_task(self._pump(reader, server_writer, down=False), name="proxy-up"),
            asyncio.create_task(self._pump(server_reader, writer, down=True), name="proxy-down"),
        ]
        await asyncio.gather(*pipe.tasks, return_exceptions=True)
        self._pipes.discard(pipe)
        for end in (writer, server_writer):
            with contextlib.suppress(OSError, RuntimeError):
                end.close()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, down: bool
    ) -> None:
        # Chunks keep their order; each is released `latency_ms` after it arrived.
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        sender = asyncio.create_task(self._send(queue, writer), name="proxy-send")
        try:
            while data := await reader.read(_CHUNK_BYTES):
                if self.faults.blackhole or (down and self.faults.blackhole_down):
                    continue
                due = time.monotonic() + self.faults.latency_ms / 1000
                queue.put_nowait((due, data))
        except (ConnectionError, OSError):
            pass
        finally:
            await queue.put((0.0, b""))
            with contextlib.suppress(ConnectionError, OSError):
                await sender
            with contextlib.suppress(OSError, RuntimeError):
                writer.write_eof()

    async def _send(
        self, queue: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter
    ) -> None:
        while True:
            due, data = await queue.get()
            if not data:
                return
            delay_s = due - time.monotonic()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            writer.write(data)
            await writer.drain()

    async def _reset_all(self) -> int:
        pipes = list(self._pipes)
        for pipe in pipes:
            _abort(pipe.client)
            _abort(pipe.server)
            for task in pipe.tasks:
                task.cancel()
        self.connections_reset += len(pipes)
        return len(pipes)

    async def _close_all(self) -> None:
        await self._reset_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        # Let the cancelled pumps and their connection handlers finish before the loop stops,
        # or they are destroyed pending.
        others = asyncio.all_tasks() - {asyncio.current_task()}
        if others:
            await asyncio.wait(others, timeout=5)


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0, so the peer sees a reset rather than a clean FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()

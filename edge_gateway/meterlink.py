"""Asyncio client of the meter link (wire.meterlink): one pipelined TCP connection, kept up."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol

from edge_gateway.errors import MeterLinkRefused, MeterUnreachable
from edge_gateway.metrics import GatewayMetrics
from wire import LoadProfileBlock, MalformedMessage, Reading
from wire.meterlink import (
    MAX_FRAME_BYTES,
    LinkEvent,
    LinkOp,
    LinkRequest,
    LinkResponse,
    MeterStatus,
    decode_response,
    encode_frame,
    read_frame,
)

log = logging.getLogger(__name__)


class MeterLink(Protocol):
    """What the executor needs from the meters: read and switch relays, read their event logs."""

    @property
    def roster(self) -> frozenset[str]:
        """Meter ids on this DCU's link as of the last hello."""
        ...

    async def read(self, meter_id: str) -> MeterStatus:
        """Read one meter's Disconnect-control object."""
        ...

    async def disconnect(self, meter_id: str) -> MeterStatus:
        """Invoke remote_disconnect and return the status read after it."""
        ...

    async def reconnect(self, meter_id: str) -> MeterStatus:
        """Invoke remote_reconnect and return the status read after it."""
        ...

    async def events(self, meter_id: str, since_seq: int) -> list[LinkEvent]:
        """The meter's event log from `since_seq` on."""
        ...


class _Connection:
    """One TCP connection and the requests waiting for an answer on it."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.pending: dict[int, asyncio.Future[LinkResponse]] = {}

    def fail_pending(self) -> None:
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionResetError("connection lost"))
        self.pending.clear()


# Every request has a deadline that covers the wait for a connection too, so a short link outage
# delays requests instead of failing them. A timeout raises MeterUnreachable: the request may
# still have been carried out, which is why relay operations read the meter before retrying.
class LinkClient:
    """The gateway's side of the meter link; run `maintain()` as a task, then make requests."""

    def __init__(
        self,
        host: str,
        port: int,
        dcu_id: str,
        *,
        timeout_s: float,
        known_roster: Iterable[str] = (),
        on_hello: Callable[[Sequence[MeterStatus]], Awaitable[None]] | None = None,
        metrics: GatewayMetrics | None = None,
        reconnect_max_s: float = 5.0,
    ) -> None:
        self._host = host
        self._port = port
        self._dcu_id = dcu_id
        self._timeout_s = timeout_s
        self._roster = frozenset(known_roster)
        self._on_hello = on_hello
        self._metrics = metrics or GatewayMetrics()
        self._reconnect_max_s = reconnect_max_s
        self._request_ids = itertools.count(1)
        self._connection: _Connection | None = None
        self._ready = asyncio.Event()
        self._outage_reported = False

    @property
    def roster(self) -> frozenset[str]:
        """Meter ids on this DCU's link as of the last hello (or as stored, before one)."""
        return self._roster

    @property
    def connected(self) -> bool:
        """Whether a bound connection is up right now."""
        return self._ready.is_set()

    async def wait_connected(self) -> None:
        """Wait until a connection is up and bound to this DCU."""
        await self._ready.wait()

    async def maintain(self) -> None:
        """Keep a bound connection up, reconnecting with capped, jittered backoff; never returns."""
        delay_s = 0.1
        while True:
            try:
                reader, writer = await asyncio.open_connection(
                    self._host, self._port, limit=MAX_FRAME_BYTES
                )
            except OSError as exc:
                self._report_outage(f"cannot connect: {exc}")
            else:
                delay_s = await self._serve(reader, writer, delay_s)
            await asyncio.sleep(random.uniform(0, delay_s))
            delay_s = min(delay_s * 2, self._reconnect_max_s)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float
    ) -> float:
        connection = _Connection(writer)
        receiver = asyncio.create_task(self._receive(reader, connection), name="link-receive")
        try:
            hello = await self._exchange(connection, LinkOp.HELLO, None, dcu_id=self._dcu_id)
            meters = hello.meters or []
            self._roster = frozenset(meter.meter_id for meter in meters)
            if self._on_hello is not None:
                await self._on_hello(meters)
            log.info("meter link up: %d meters on DCU %s", len(meters), self._dcu_id)
            self._outage_reported = False
            self._connection = connection
            self._ready.set()
            await receiver
            delay_s = 0.1  # a connection that worked resets the backoff
            self._report_outage("connection lost")
        except (MeterUnreachable, MeterLinkRefused) as exc:
            self._report_outage(f"hello failed: {exc}")
        finally:
            self._ready.clear()
            self._connection = None
            receiver.cancel()
            # asyncio.wait, unlike awaiting the task, cannot swallow our own cancellation.
            await asyncio.wait({receiver})
            connection.fail_pending()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        return delay_s

    def _report_outage(self, reason: str) -> None:
        """Warn once per outage; the retries that follow are only worth a debug line."""
        level = logging.DEBUG if self._outage_reported else logging.WARNING
        log.log(level, "meter link %s:%d down: %s", self._host, self._port, reason)
        self._outage_reported = True

    async def _receive(self, reader: asyncio.StreamReader, connection: _Connection) -> None:
        try:
            await self._dispatch_answers(reader, connection)
        finally:
            # Requests in flight will never be answered on this connection: fail them now.
            connection.fail_pending()

    async def _dispatch_answers(
        self, reader: asyncio.StreamReader, connection: _Connection
    ) -> None:
        while True:
            try:
                line = await read_frame(reader)
            except (MalformedMessage, OSError) as exc:
                log.warning("meter link read failed: %s", exc)
                return
            if line is None:
                return
            try:
                response = decode_response(line)
            except MalformedMessage as exc:
                self._metrics.link_malformed_frames += 1
                log.warning("meter link sent a malformed frame: %s", exc)
                continue
            future = connection.pending.pop(response.id, None)
            if future is None:
                # A late answer to a request that already timed out, or a bad_request with id 0.
                log.debug("unmatched meter link answer id=%d error=%s", response.id, response.error)
            elif not future.done():
                future.set_result(response)

    async def _exchange(
        self, connection: _Connection, op: LinkOp, meter_id: str | None, **fields: Any
    ) -> LinkResponse:
        request_id = next(self._request_ids)
        future: asyncio.Future[LinkResponse] = asyncio.get_running_loop().create_future()
        connection.pending[request_id] = future
        try:
            async with asyncio.timeout(self._timeout_s):
                request = LinkRequest(id=request_id, op=op, meter_id=meter_id, **fields)
                connection.writer.write(encode_frame(request))
                await connection.writer.drain()
                response = await future
        except TimeoutError as exc:
            self._metrics.link_timeouts += 1
            reason = f"no answer to {op} within {self._timeout_s}s"
            raise MeterUnreachable(meter_id, reason) from exc
        except OSError as exc:
            raise MeterUnreachable(meter_id, f"meter link: {exc}") from exc
        finally:
            connection.pending.pop(request_id, None)
        if not response.ok:
            raise MeterLinkRefused(meter_id, str(response.error), response.message)
        return response

    async def _request(self, op: LinkOp, meter_id: str | None, **fields: Any) -> LinkResponse:
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._ready.wait()
        except TimeoutError as exc:
            self._metrics.link_timeouts += 1
            raise MeterUnreachable(meter_id, "meter link is down") from exc
        connection = self._connection
        if connection is None:
            raise MeterUnreachable(meter_id, "meter link is down")
        return await self._exchange(connection, op, meter_id, **fields)

    async def _status(self, op: LinkOp, meter_id: str) -> MeterStatus:
        response = await self._request(op, meter_id)
        if response.status is None:
            raise MeterLinkRefused(meter_id, "bad_response", f"{op} answered without a status")
        return response.status

    async def read(self, meter_id: str) -> MeterStatus:
        """Read one meter's Disconnect-control object."""
        return await self._status(LinkOp.READ, meter_id)

    async def disconnect(self, meter_id: str) -> MeterStatus:
        """Invoke remote_disconnect and return the status read after it."""
        return await self._status(LinkOp.DISCONNECT, meter_id)

    async def reconnect(self, meter_id: str) -> MeterStatus:
        """Invoke remote_reconnect and return the status read after it."""
        return await self._status(LinkOp.RECONNECT, meter_id)

    async def events(self, meter_id: str, since_seq: int) -> list[LinkEvent]:
        """The meter's event log from `since_seq` on."""
        response = await self._request(LinkOp.EVENTS, meter_id, since_seq=since_seq)
        return response.events or []

    async def profile(self, meter_id: str, since_ms: int) -> list[LoadProfileBlock]:
        """Load-profile blocks of one meter starting at or after `since_ms`, oldest first."""
        response = await self._request(LinkOp.PROFILE, meter_id, since_ms=since_ms)
        return response.profile or []

    async def readings(self, meter_ids: Sequence[str] | None = None) -> list[Reading]:
        """Instantaneous registers of these meters (default: every meter on the link)."""
        ids = list(meter_ids) if meter_ids is not None else None
        response = await self._request(LinkOp.READINGS, None, meter_ids=ids)
        return response.readings or []

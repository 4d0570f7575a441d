"""Server side of the meter link (`wire.meterlink`): one DCU per connection, answers pipelined."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from firmware_sim.faults import FaultDice, LinkFaults
from firmware_sim.fleet import Fleet
from firmware_sim.link_ops import Job, error_answer, perform, salvage_id
from firmware_sim.meter import SimMeter
from wire.errors import MalformedMessage
from wire.meterlink import (
    MAX_FRAME_BYTES,
    LinkError,
    LinkOp,
    LinkRequest,
    LinkResponse,
    MeterStatus,
    decode_request,
    encode_frame,
    read_frame,
)

log = logging.getLogger(__name__)

# Answers a connection may have waiting (on latency or a slow reader) before its requests stall.
MAX_IN_FLIGHT_PER_CONNECTION = 10_000
_SINGLE_METER_OPS = frozenset(
    {LinkOp.READ, LinkOp.DISCONNECT, LinkOp.RECONNECT, LinkOp.PROFILE, LinkOp.EVENTS, LinkOp.BUTTON}
)


@dataclass(slots=True)
class LinkStats:
    """Counters of what the link did, for logs and tests."""

    connections: int = 0
    requests: int = 0
    answered: int = 0
    lost: int = 0
    unreachable: int = 0
    bad_frames: int = 0
    failures: int = 0


class _Session:
    """One gateway connection: where answers go and which DCU it speaks for."""

    __slots__ = ("_room", "dcu_id", "in_flight", "meters", "peer", "writer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.peer = _peer_name(writer)
        self.dcu_id: str | None = None
        self.meters: Mapping[str, SimMeter] | None = None
        self.in_flight = 0
        self._room = asyncio.Event()

    async def reserve(self) -> None:
        """Wait until one more answer may be in flight, and count it."""
        # A counter and an event: asyncio.Semaphore costs several microseconds per acquire.
        while self.in_flight >= MAX_IN_FLIGHT_PER_CONNECTION:
            self._room.clear()
            await self._room.wait()
        self.in_flight += 1

    def release(self) -> None:
        """One answer is no longer in flight."""
        self.in_flight -= 1
        self._room.set()

    def send(self, response: LinkResponse) -> None:
        """Queue one answer; a connection already closing gets nothing."""
        if not self.writer.is_closing():
            self.writer.write(encode_frame(response))


class LinkServer:
    """The meters of a fleet, reachable over TCP the way `wire.meterlink` defines."""

    def __init__(
        self, fleet: Fleet, faults: LinkFaults | None = None, *, seed: int | None = None
    ) -> None:
        self.fleet = fleet
        self.faults = faults or LinkFaults()
        self.stats = LinkStats()
        self._dice = FaultDice(seed)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._address: tuple[str, int] | None = None
        self._closing = False

    @property
    def address(self) -> tuple[str, int]:
        """The host and port the server listens on."""
        if self._address is None:
            raise RuntimeError("link server is not listening")
        return self._address

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen on host:port (0 picks a free port) and answer the bound address."""
        self._server = await asyncio.start_server(
            self._serve_connection, host, port, limit=MAX_FRAME_BYTES
        )
        bound_host, bound_port = self._server.sockets[0].getsockname()[:2]
        self._address = (str(bound_host), int(bound_port))
        return self._address

    async def close(self) -> None:
        """Stop listening, drop every connection and wait until they are gone."""
        if self._server is None:
            return
        self._closing = True
        self._server.close()
        connections = set(self._connections)
        for task in connections:
            task.cancel()
        if connections:
            await asyncio.wait(connections)
        await self._server.wait_closed()
        self._server = None
        self._closing = False

    async def __aenter__(self) -> Self:
        if self._server is None:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """One gateway's connection, from accept to hang-up or server close."""
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self.stats.connections += 1
        session = _Session(writer)
        log.debug("link: connection from %s", session.peer)
        try:
            await self._converse(reader, session)
        except asyncio.CancelledError:
            # Only close() cancels a connection. Ending quietly spares Python 3.11's stream
            # callback, which calls task.exception() on a cancelled task, a spurious traceback.
            if not self._closing:
                raise
        finally:
            self._connections.discard(task)
            writer.close()
        log.info("link: %s (DCU %s) closed", session.peer, session.dcu_id)

    async def _converse(self, reader: asyncio.StreamReader, session: _Session) -> None:
        """Read frames until the gateway hangs up; every admitted request gets its own task."""
        try:
            async with asyncio.TaskGroup() as answers:
                while (line := await self._next_frame(reader, session)) is not None:
                    job = self._admit(session, line)
                    if job is not None:
                        await session.reserve()
                        answers.create_task(
                            self._answer(session, job), name=f"link-answer-{job.request.id}"
                        )
                    # Stop reading while the gateway is not reading our answers.
                    await session.writer.drain()
        except* ConnectionError as group:
            log.info(
                "link: %s (DCU %s) dropped: %s", session.peer, session.dcu_id, group.exceptions[0]
            )

    async def _next_frame(self, reader: asyncio.StreamReader, session: _Session) -> bytes | None:
        """The next frame line, answering over-long ones with bad_request; None at end of stream."""
        while True:
            try:
                return await read_frame(reader)
            except MalformedMessage as exc:
                self.stats.bad_frames += 1
                session.send(error_answer(0, LinkError.BAD_REQUEST, exc.reason))
                if not await _discard_line(reader):
                    return None

    def _admit(self, session: _Session, line: bytes) -> Job | None:
        """Parse, validate and apply faults; answer at once what does not travel to a meter."""
        self.stats.requests += 1
        try:
            request = decode_request(line)
        except MalformedMessage as exc:
            self.stats.bad_frames += 1
            session.send(error_answer(salvage_id(line), LinkError.BAD_REQUEST, exc.reason))
            return None
        if request.op is LinkOp.FAULT:
            session.send(self._change_faults(request))
            return None
        if request.op is LinkOp.HELLO:
            session.send(self._hello(session, request))
            return None
        reached = self._meters_reached(session, request)
        if isinstance(reached, LinkResponse):
            session.send(reached)
            return None
        if request.op is not LinkOp.READINGS and not reached:
            self.stats.unreachable += 1
            return None
        if self._dice.lost(self.faults):
            self.stats.lost += 1
            return None
        # The delay is drawn on arrival, under the faults in force when the request was sent.
        return Job(request, reached, self._dice.delay_s(self.faults))

    def _meters_reached(
        self, session: _Session, request: LinkRequest
    ) -> tuple[SimMeter, ...] | LinkResponse:
        """The reachable meters a request addresses, or the error answer if it cannot be served."""
        meters = session.meters
        if meters is None:
            return error_answer(request.id, LinkError.NOT_BOUND, "send hello first")
        if request.op in _SINGLE_METER_OPS:
            # The hot path (one meter, one request) allocates no lists on the way.
            if request.meter_id is None:
                message = f"{request.op} needs meter_id"
                return error_answer(request.id, LinkError.BAD_REQUEST, message)
            meter = meters.get(request.meter_id)
            if meter is None:
                return _unknown_meter(request, session, request.meter_id)
            return (meter,) if self._reachable(meter) else ()
        if request.meter_ids is None:
            return tuple(meter for meter in meters.values() if self._reachable(meter))
        addressed = []
        for meter_id in request.meter_ids:
            meter = meters.get(meter_id)
            if meter is None:
                return _unknown_meter(request, session, meter_id)
            if self._reachable(meter):
                addressed.append(meter)
        return tuple(addressed)

    def _reachable(self, meter: SimMeter) -> bool:
        # A meter without supply is dark: it cannot answer either.
        return meter.supplied and meter.meter_id not in self.faults.unreachable

    async def _answer(self, session: _Session, job: Job) -> None:
        """Wait out the link delay, let the meter act, send its answer."""
        try:
            if job.delay_s:
                await asyncio.sleep(job.delay_s)
            response = perform(job)
        except Exception:
            # One request's failure must not take the gateway's other requests down with it.
            self.stats.failures += 1
            log.exception("link: %s failed for DCU %s", job.request.op, session.dcu_id)
            return
        finally:
            session.release()
        self.stats.answered += 1
        session.send(response)

    def _hello(self, session: _Session, request: LinkRequest) -> LinkResponse:
        """Bind the connection to a DCU and answer its roster."""
        if request.dcu_id is None:
            return error_answer(request.id, LinkError.BAD_REQUEST, "hello needs dcu_id")
        meters = self.fleet.on_dcu(request.dcu_id)
        if not meters:
            return error_answer(
                request.id, LinkError.BAD_REQUEST, f"no meters on DCU {request.dcu_id}"
            )
        session.dcu_id = request.dcu_id
        session.meters = meters
        log.info("link: %s bound to DCU %s (%d meters)", session.peer, request.dcu_id, len(meters))
        roster = [self._roster_entry(meter) for meter in meters.values()]
        return LinkResponse(id=request.id, ok=True, meters=roster)

    def _roster_entry(self, meter: SimMeter) -> MeterStatus:
        if self._reachable(meter):
            return meter.status
        return meter.status.model_copy(update={"reachable": False})

    def _change_faults(self, request: LinkRequest) -> LinkResponse:
        """The simulator's `fault` op: swap in new link faults."""
        self.faults = self.faults.changed_by(request)
        log.info("link faults now %s", self.faults.describe())
        return LinkResponse(id=request.id, ok=True, message=self.faults.describe())


def _peer_name(writer: asyncio.StreamWriter) -> str:
    peername = writer.get_extra_info("peername")
    if isinstance(peername, tuple):
        return f"{peername[0]}:{peername[1]}"
    return str(peername)


def _unknown_meter(request: LinkRequest, session: _Session, meter_id: str) -> LinkResponse:
    message = f"meter {meter_id} is not on DCU {session.dcu_id}"
    return error_answer(request.id, LinkError.UNKNOWN_METER, message)


async def _discard_line(reader: asyncio.StreamReader) -> bool:
    """Skip the rest of an over-long frame; False when the stream ends first."""
    while True:
        try:
            await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as exc:
            # The buffer holds `consumed` bytes of the same line; drop them and keep looking.
            await reader.readexactly(exc.consumed)
        except asyncio.IncompleteReadError:
            return False
        else:
            return True

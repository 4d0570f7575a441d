"""The meter-link server over real TCP: binding, errors, pipelining, faults, relay operations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from firmware_sim.clock import ScaledClock
from firmware_sim.faults import LinkFaults
from firmware_sim.fleet import Fleet, FleetSpec, MeterSpec, generate_fleet
from firmware_sim.link_server import LinkServer
from tests.support.wait import wait_for_async
from wire.messages import EventCode, RelayState
from wire.meterlink import (
    MAX_FRAME_BYTES,
    LinkError,
    LinkOp,
    LinkRequest,
    LinkResponse,
    decode_response,
    encode_frame,
)

ANSWER_DEADLINE_S = 5.0
SILENCE_S = 0.5

FLEET = FleetSpec(
    meters=[
        MeterSpec(meter_id="MTR1", dcu_id="DCU01", control_mode=2),
        MeterSpec(meter_id="MTR2", dcu_id="DCU01", control_mode=1),
        MeterSpec(meter_id="MTR3", dcu_id="DCU01", control_mode=0),
        MeterSpec(meter_id="MTR4", dcu_id="DCU02"),
    ]
)


class LinkClient:
    """The gateway's side, minimal: numbered requests, answers matched by id."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._next_id = 1
        self._stashed: dict[int, LinkResponse] = {}

    @classmethod
    async def connect(cls, address: tuple[str, int]) -> LinkClient:
        reader, writer = await asyncio.open_connection(*address, limit=MAX_FRAME_BYTES)
        return cls(reader, writer)

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()

    async def send(self, op: LinkOp, **fields: Any) -> int:
        request_id = self._next_id
        self._next_id += 1
        await self.send_raw(encode_frame(LinkRequest(id=request_id, op=op, **fields)))
        return request_id

    async def send_raw(self, frame: bytes) -> None:
        self._writer.write(frame)
        await self._writer.drain()

    async def next_answer(self, timeout_s: float = ANSWER_DEADLINE_S) -> LinkResponse:
        line = await asyncio.wait_for(self._reader.readline(), timeout_s)
        assert line, "the server closed the connection"
        return decode_response(line)

    async def answer_to(self, request_id: int) -> LinkResponse:
        while request_id not in self._stashed:
            answer = await self.next_answer()
            self._stashed[answer.id] = answer
        return self._stashed.pop(request_id)

    async def call(self, op: LinkOp, **fields: Any) -> LinkResponse:
        return await self.answer_to(await self.send(op, **fields))

    async def hello(self, dcu_id: str = "DCU01") -> LinkResponse:
        answer = await self.call(LinkOp.HELLO, dcu_id=dcu_id)
        assert answer.ok, answer
        return answer

    async def assert_silent(self) -> None:
        with pytest.raises(TimeoutError):
            answer = await self.next_answer(timeout_s=SILENCE_S)
            pytest.fail(f"expected no answer, got {answer}")


@pytest.fixture
async def link() -> AsyncIterator[LinkServer]:
    fleet = Fleet.from_spec(FLEET, ScaledClock(), seed=1)
    async with LinkServer(fleet, seed=1) as server:
        yield server


@pytest.fixture
async def client(link: LinkServer) -> AsyncIterator[LinkClient]:
    connected = await LinkClient.connect(link.address)
    yield connected
    await connected.close()


async def test_hello_binds_the_connection_to_its_dcu(client: LinkClient) -> None:
    before = await client.call(LinkOp.READ, meter_id="MTR1")
    assert (before.ok, before.error) == (False, LinkError.NOT_BOUND)

    roster = (await client.hello("DCU01")).meters
    assert roster is not None
    assert [m.meter_id for m in roster] == ["MTR1", "MTR2", "MTR3"]
    assert [m.control_mode for m in roster] == [2, 1, 0]
    assert all(m.relay is RelayState.CONNECTED and m.reachable for m in roster)

    after = await client.call(LinkOp.READ, meter_id="MTR1")
    assert after.ok and after.status is not None
    assert after.status.meter_id == "MTR1"


async def test_meter_of_another_dcu_is_unknown(link: LinkServer, client: LinkClient) -> None:
    await client.hello("DCU01")
    single = await client.call(LinkOp.DISCONNECT, meter_id="MTR4")
    batch = await client.call(LinkOp.READINGS, meter_ids=["MTR1", "MTR4"])
    assert (single.ok, single.error) == (False, LinkError.UNKNOWN_METER)
    assert (batch.ok, batch.error) == (False, LinkError.UNKNOWN_METER)
    assert "MTR4" in single.message

    other_dcu = await LinkClient.connect(link.address)
    await other_dcu.hello("DCU02")
    status = (await other_dcu.call(LinkOp.READ, meter_id="MTR4")).status
    assert status is not None and status.relay is RelayState.CONNECTED  # untouched
    await other_dcu.close()


async def test_hello_for_a_dcu_without_meters_is_refused(client: LinkClient) -> None:
    answer = await client.call(LinkOp.HELLO, dcu_id="DCU99")
    assert (answer.ok, answer.error) == (False, LinkError.BAD_REQUEST)


async def test_pipelined_requests_are_answered_out_of_order(
    link: LinkServer, client: LinkClient
) -> None:
    await client.hello()
    await client.call(LinkOp.FAULT, latency_ms=300)
    slow = await client.send(LinkOp.READ, meter_id="MTR1")
    speed_up = await client.send(LinkOp.FAULT, latency_ms=0)
    fast = await client.send(LinkOp.READ, meter_id="MTR2")

    order = [(await client.next_answer()).id for _ in range(3)]

    assert order == [speed_up, fast, slow]
    assert link.faults.latency_ms == 0


async def test_many_gateways_pipelining_at_once() -> None:
    fleet = Fleet.from_spec(generate_fleet(2000, 20, seed=3), ScaledClock(), seed=3)
    async with LinkServer(fleet, LinkFaults(latency_ms=20), seed=3) as server:
        gateways = [await LinkClient.connect(server.address) for _ in fleet.dcu_ids]
        for gateway, dcu_id in zip(gateways, fleet.dcu_ids, strict=True):
            await gateway.hello(dcu_id)

        async def read_all(gateway: LinkClient, dcu_id: str) -> set[str]:
            ids = [await gateway.send(LinkOp.READ, meter_id=m) for m in fleet.on_dcu(dcu_id)]
            answers = [await gateway.answer_to(request_id) for request_id in ids]
            return {a.status.meter_id for a in answers if a.ok and a.status is not None}

        async with asyncio.TaskGroup() as group:
            reads = [
                group.create_task(read_all(gateway, dcu_id))
                for gateway, dcu_id in zip(gateways, fleet.dcu_ids, strict=True)
            ]
        for gateway in gateways:
            await gateway.close()

    assert set().union(*(task.result() for task in reads)) == {m.meter_id for m in fleet}
    assert server.stats.answered == len(fleet)


async def test_malformed_frames_get_bad_request_and_the_connection_lives_on(
    link: LinkServer, client: LinkClient
) -> None:
    await client.hello()
    await client.send_raw(b"this is not json\n")
    not_json = await client.next_answer()
    await client.send_raw(b'{"id": 7, "op": "explode"}\n')
    unknown_op = await client.next_answer()
    await client.send_raw(b'{"id": 8, "op": "read"}\n')
    no_meter = await client.next_answer()
    await client.send_raw(b"x" * (MAX_FRAME_BYTES + 100) + b"\n")
    too_long = await client.next_answer()

    assert (not_json.id, not_json.error) == (0, LinkError.BAD_REQUEST)
    assert (unknown_op.id, unknown_op.error) == (7, LinkError.BAD_REQUEST)
    assert (no_meter.id, no_meter.error) == (8, LinkError.BAD_REQUEST)
    assert (too_long.id, too_long.error) == (0, LinkError.BAD_REQUEST)
    assert link.stats.bad_frames == 3  # the third parses; it only lacks a field
    still_working = await client.call(LinkOp.READ, meter_id="MTR1")
    assert still_working.ok


async def test_lost_requests_are_never_answered(link: LinkServer, client: LinkClient) -> None:
    await client.hello()
    await client.call(LinkOp.FAULT, loss=1.0)
    await client.send(LinkOp.DISCONNECT, meter_id="MTR1")
    await client.assert_silent()

    await client.call(LinkOp.FAULT, loss=0.0)
    status = (await client.call(LinkOp.READ, meter_id="MTR1")).status
    assert status is not None and status.relay is RelayState.CONNECTED  # the lost one never acted
    assert link.stats.lost == 1


async def test_unreachable_meters_never_answer(link: LinkServer, client: LinkClient) -> None:
    await client.hello()
    await client.call(LinkOp.FAULT, unreachable=["MTR1"])
    await client.send(LinkOp.READ, meter_id="MTR1")
    await client.assert_silent()

    readings = (await client.call(LinkOp.READINGS)).readings
    assert readings is not None
    assert [r.meter_id for r in readings] == ["MTR2", "MTR3"]
    roster = (await client.hello()).meters
    assert roster is not None
    assert {m.meter_id: m.reachable for m in roster} == {"MTR1": False, "MTR2": True, "MTR3": True}

    await client.call(LinkOp.FAULT, unreachable=[])
    assert (await client.call(LinkOp.READ, meter_id="MTR1")).ok
    assert link.stats.unreachable == 1


async def test_faults_configured_at_start_and_changed_at_run_time() -> None:
    fleet = Fleet.from_spec(FLEET, ScaledClock(), seed=1)
    faults = LinkFaults(latency_ms=200, unreachable=frozenset({"MTR2"}))
    async with LinkServer(fleet, faults, seed=1) as server:
        client = await LinkClient.connect(server.address)
        await client.hello()
        loop = asyncio.get_running_loop()
        started_s = loop.time()
        assert (await client.call(LinkOp.READ, meter_id="MTR1")).ok
        assert loop.time() - started_s >= 0.2
        await client.send(LinkOp.READ, meter_id="MTR2")
        await client.assert_silent()

        changed = await client.call(LinkOp.FAULT, latency_ms=0, unreachable=[])
        assert changed.ok and "latency_ms=0" in changed.message
        assert server.faults == LinkFaults()
        assert (await client.call(LinkOp.READ, meter_id="MTR2")).ok
        await client.close()


async def test_mode_1_reconnection_waits_for_the_button(client: LinkClient) -> None:
    await client.hello()
    disconnected = (await client.call(LinkOp.DISCONNECT, meter_id="MTR2")).status
    armed = (await client.call(LinkOp.RECONNECT, meter_id="MTR2")).status
    pressed = (await client.call(LinkOp.BUTTON, meter_id="MTR2")).status
    events = (await client.call(LinkOp.EVENTS, meter_id="MTR2", since_seq=0)).events

    assert disconnected is not None and disconnected.relay is RelayState.DISCONNECTED
    assert armed is not None and armed.relay is RelayState.READY_FOR_RECONNECTION
    assert not armed.output_state
    assert pressed is not None and pressed.relay is RelayState.CONNECTED and pressed.output_state
    assert events is not None
    assert [e.code for e in events] == [
        EventCode.LOAD_SWITCH_DISCONNECTED,
        EventCode.LOAD_SWITCH_CONNECTED,
    ]
    assert pressed.last_event_seq == events[-1].seq == 2


async def test_refused_method_answers_the_unchanged_state_and_why(client: LinkClient) -> None:
    await client.hello()
    answer = await client.call(LinkOp.DISCONNECT, meter_id="MTR3")  # mode 0: no disconnector
    assert answer.ok and answer.status is not None
    assert answer.status.relay is RelayState.CONNECTED
    assert "not allowed in this control mode" in answer.message


async def test_readings_show_an_open_relay_drawing_nothing(client: LinkClient) -> None:
    await client.hello()
    await client.call(LinkOp.DISCONNECT, meter_id="MTR1")
    readings = (await client.call(LinkOp.READINGS, meter_ids=["MTR1", "MTR2"])).readings
    assert readings is not None
    by_meter = {r.meter_id: r for r in readings}
    assert by_meter["MTR1"].relay is RelayState.DISCONNECTED
    assert by_meter["MTR1"].current_a == 0.0
    assert by_meter["MTR2"].current_a > 0.0
    assert 200.0 < by_meter["MTR1"].voltage_v < 250.0


async def test_profile_blocks_come_over_the_link() -> None:
    # An hour of meter time per wall second, so 15-minute blocks close within the test.
    fleet = Fleet.from_spec(FLEET, ScaledClock(3600.0), seed=1)
    async with LinkServer(fleet) as server:
        client = await LinkClient.connect(server.address)
        await client.hello()

        async def two_blocks() -> list[Any] | None:
            answer = await client.call(LinkOp.PROFILE, meter_id="MTR1", since_ms=0)
            blocks = list(answer.profile or [])
            return blocks if len(blocks) >= 2 else None

        profile = await wait_for_async("two blocks", two_blocks, timeout_s=ANSWER_DEADLINE_S)
        await client.close()
    assert profile[1].block_start_ms - profile[0].block_start_ms == 15 * 60 * 1000
    assert profile[1].import_wh > 0

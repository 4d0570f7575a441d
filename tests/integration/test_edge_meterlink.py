"""The gateway's meter-link client against the real simulator link server over TCP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from edge_gateway.errors import MeterLinkRefused, MeterUnreachable
from edge_gateway.meterlink import LinkClient
from edge_gateway.metrics import GatewayMetrics
from firmware_sim.clock import ScaledClock
from firmware_sim.faults import LinkFaults
from firmware_sim.fleet import Fleet, FleetSpec, MeterSpec
from firmware_sim.link_server import LinkServer
from wire import EventCode, RelayState
from wire.meterlink import MeterStatus

pytestmark = pytest.mark.integration

TIMEOUT_S = 0.3
DEADLINE_S = 10.0

FLEET = FleetSpec(
    meters=[
        MeterSpec(meter_id="MTR1", dcu_id="DCU01", control_mode=2),
        MeterSpec(meter_id="MTR2", dcu_id="DCU01", control_mode=1, relay=RelayState.DISCONNECTED),
        MeterSpec(meter_id="MTR9", dcu_id="DCU02"),
    ]
)


@pytest.fixture
async def server() -> AsyncIterator[LinkServer]:
    fleet = Fleet.from_spec(FLEET, ScaledClock(), seed=1)
    async with LinkServer(fleet, seed=1) as running:
        yield running


class Hellos:
    """Records every roster a hello answered."""

    def __init__(self) -> None:
        self.rosters: list[list[str]] = []

    async def __call__(self, meters: Sequence[MeterStatus]) -> None:
        self.rosters.append([meter.meter_id for meter in meters])


@pytest.fixture
async def hellos() -> Hellos:
    return Hellos()


@pytest.fixture
async def client(server: LinkServer, hellos: Hellos) -> AsyncIterator[LinkClient]:
    host, port = server.address
    link = LinkClient(host, port, "DCU01", timeout_s=TIMEOUT_S, on_hello=hellos)
    maintaining = asyncio.create_task(link.maintain(), name="meter-link")
    async with asyncio.timeout(DEADLINE_S):
        await link.wait_connected()
    yield link
    maintaining.cancel()


async def test_hello_binds_the_dcu_and_learns_its_roster(
    client: LinkClient, hellos: Hellos
) -> None:
    assert client.roster == {"MTR1", "MTR2"}
    assert hellos.rosters == [["MTR1", "MTR2"]]


async def test_relay_operations_read_back_the_status_and_log_events(
    client: LinkClient, server: LinkServer
) -> None:
    before = await client.read("MTR1")
    off = await client.disconnect("MTR1")
    on = await client.reconnect("MTR1")
    ready = await client.reconnect("MTR2")  # mode 1 stops at ready_for_reconnection

    assert (before.relay, off.relay, on.relay) == (
        RelayState.CONNECTED,
        RelayState.DISCONNECTED,
        RelayState.CONNECTED,
    )
    assert ready.relay is RelayState.READY_FOR_RECONNECTION
    events = await client.events("MTR1", before.last_event_seq + 1)
    assert [event.code for event in events] == [
        EventCode.LOAD_SWITCH_DISCONNECTED,
        EventCode.LOAD_SWITCH_CONNECTED,
    ]


async def test_pipelined_requests_are_matched_to_their_answers(client: LinkClient) -> None:
    statuses = await asyncio.gather(*(client.read(m) for m in ["MTR1", "MTR2"] * 50))
    assert [status.meter_id for status in statuses] == ["MTR1", "MTR2"] * 50


async def test_unreachable_meter_times_out_as_meter_unreachable(
    client: LinkClient, server: LinkServer
) -> None:
    server.faults = LinkFaults(unreachable=frozenset({"MTR1"}))
    with pytest.raises(MeterUnreachable) as caught:
        await client.disconnect("MTR1")
    assert caught.value.meter_id == "MTR1"
    assert (await client.read("MTR2")).meter_id == "MTR2"  # the others still answer


async def test_meter_of_another_dcu_is_refused(client: LinkClient) -> None:
    with pytest.raises(MeterLinkRefused) as caught:
        await client.read("MTR9")
    assert caught.value.code == "unknown_meter"


async def test_client_reconnects_and_binds_again_after_the_link_drops(
    server: LinkServer, hellos: Hellos
) -> None:
    host, port = server.address
    metrics = GatewayMetrics()
    link = LinkClient(host, port, "DCU01", timeout_s=TIMEOUT_S, on_hello=hellos, metrics=metrics)
    maintaining = asyncio.create_task(link.maintain(), name="meter-link")
    try:
        async with asyncio.timeout(DEADLINE_S):
            await link.wait_connected()
        await server.close()
        with pytest.raises(MeterUnreachable):
            await link.read("MTR1")  # no connection within the request's deadline
        await server.start(host, port)
        async with asyncio.timeout(DEADLINE_S):
            await link.wait_connected()
        assert (await link.read("MTR1")).meter_id == "MTR1"
        assert len(hellos.rosters) == 2
    finally:
        maintaining.cancel()

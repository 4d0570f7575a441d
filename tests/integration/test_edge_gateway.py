"""A real gateway process between a real Mosquitto and the simulator's meter link."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware_sim.clock import ScaledClock
from firmware_sim.faults import LinkFaults
from firmware_sim.fleet import Fleet, FleetSpec, MeterSpec
from firmware_sim.link_server import LinkServer
from switchyard.broker import Broker
from switchyard.procs import ManagedProcess
from tests.support.wait import wait_for_async
from wire import (
    Ack,
    AckStatus,
    Action,
    Command,
    CommandSigner,
    EventCode,
    GatewayState,
    MeterEvent,
    RelayState,
    TelemetryBatch,
    decode,
    encode,
)
from wire import topics as wire_topics
from wire.clock import now_ms
from wire.ids import new_command_id
from wire.meterlink import ControlState
from wire.signing import generate_private_key_b64, public_key_b64

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
DCU = "DCU01"
DEADLINE_S = 20.0
HOUR_MS = 3_600_000
T = TypeVar("T")

FLEET = FleetSpec(
    meters=[
        MeterSpec(meter_id="MTR1", dcu_id=DCU, control_mode=2),
        MeterSpec(meter_id="MTR2", dcu_id=DCU, control_mode=1, relay=RelayState.DISCONNECTED),
        MeterSpec(meter_id="MTR3", dcu_id=DCU, control_mode=2),
        MeterSpec(meter_id="MTR9", dcu_id="DCU02"),
    ]
)


class CloudProbe:
    """Stands in for the cloud: publishes signed commands, records acks, events and states."""

    def __init__(self, broker: Broker) -> None:
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._subscribed = asyncio.Event()
        self.received: list[tuple[str, bytes]] = []
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"probe-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.connect(broker.host, broker.port)
        self._client.subscribe(
            [
                (wire_topics.cloud_filter(wire_topics.TopicKind.ACK), 1),
                (wire_topics.cloud_filter(wire_topics.TopicKind.EVENT), 1),
                (wire_topics.cloud_filter(wire_topics.TopicKind.STATE), 1),
                (wire_topics.cloud_filter(wire_topics.TopicKind.TELEMETRY), 1),
            ]
        )
        self._client.loop_start()

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        self._loop.call_soon_threadsafe(self._record, message.topic, bytes(message.payload))

    def _on_subscribe(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._subscribed.set)

    async def ready(self) -> CloudProbe:
        async with asyncio.timeout(DEADLINE_S):
            await self._subscribed.wait()
        return self

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _record(self, topic: str, payload: bytes) -> None:
        self.received.append((topic, payload))
        self._changed.set()

    def send(self, command: Command, *, topic: str | None = None) -> None:
        """Publish like the cloud: QoS 1, with a message expiry matching the command's."""
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.MessageExpiryInterval = max(1, (command.expires_at_ms - now_ms()) // 1000)
        topic = topic or wire_topics.command_topic(command.dcu_id, command.meter_id)
        self._client.publish(topic, encode(command), qos=1, properties=properties)

    def acks(self, command_id: str) -> list[Ack]:
        acks = [decode(Ack, p) for t, p in self.received if t.endswith("/ack")]
        return [ack for ack in acks if ack.command_id == command_id]

    def events(self, meter_id: str) -> list[MeterEvent]:
        events = [decode(MeterEvent, p) for t, p in self.received if t.endswith("/event")]
        return [event for event in events if event.meter_id == meter_id]

    def telemetry(self) -> list[TelemetryBatch]:
        return [decode(TelemetryBatch, p) for t, p in self.received if t.endswith("/telemetry")]

    def states(self) -> list[GatewayState]:
        return [decode(GatewayState, p) for t, p in self.received if t.endswith("/state")]

    async def wait_for(self, found: Callable[[], T | None], what: str) -> T:
        """Wait until `found()` answers something, looking again on every message received."""
        return await wait_for_async(what, found, timeout_s=DEADLINE_S, changed=self._changed)

    async def final_ack(self, command_id: str) -> Ack:
        """The first ack of this command other than `received`."""

        def final() -> Ack | None:
            done = [ack for ack in self.acks(command_id) if ack.status is not AckStatus.RECEIVED]
            return done[0] if done else None

        return await self.wait_for(final, f"final ack of {command_id}")

    async def birth(self, boot_seq: int) -> GatewayState:
        def born() -> GatewayState | None:
            births = [s for s in self.states() if s.online and s.boot_seq == boot_seq]
            return births[-1] if births else None

        return await self.wait_for(born, f"birth with boot_seq {boot_seq}")


@dataclass
class GatewayRunner:
    """Starts `python -m edge_gateway` processes for DCU01 sharing one state directory."""

    broker: Broker
    link: LinkServer
    workdir: Path
    trusted_keys: dict[str, str]
    starts: int = 0

    def start(self, *, crash_point: str | None = None, **settings: str) -> ManagedProcess:
        """Start one more gateway process; `settings` override SWITCHYARD_* by lowercase name."""
        self.starts += 1
        env = {key: value for key, value in os.environ.items() if not key.startswith("SWITCHYARD_")}
        link_host, link_port = self.link.address
        env |= {
            # A plain broker without passwords or TLS: allowed only in development mode.
            "SWITCHYARD_DEV_MODE": "true",
            "SWITCHYARD_DCU_ID": DCU,
            "SWITCHYARD_MQTT_HOST": self.broker.host,
            "SWITCHYARD_MQTT_PORT": str(self.broker.port),
            "SWITCHYARD_LINK_HOST": link_host,
            "SWITCHYARD_LINK_PORT": str(link_port),
            "SWITCHYARD_LINK_TIMEOUT_S": "1.0",
            "SWITCHYARD_TRUSTED_KEYS": json.dumps(self.trusted_keys),
            "SWITCHYARD_STATE_DIR": str(self.workdir / "state"),
            "SWITCHYARD_TELEMETRY_INTERVAL_S": "0",
            "SWITCHYARD_LOG_LEVEL": "DEBUG",
        }
        if crash_point is not None:
            env["SWITCHYARD_CRASH_POINT"] = crash_point
        env |= {f"SWITCHYARD_{name.upper()}": value for name, value in settings.items()}
        log_path = self.workdir / f"gateway-{self.starts}.log"
        argv = [sys.executable, "-m", "edge_gateway"]
        return ManagedProcess("edge-gateway", argv, log_path, env=env, cwd=REPO_ROOT).start()


@pytest.fixture
async def fleet() -> Fleet:
    return Fleet.from_spec(FLEET, ScaledClock(), seed=7)


@pytest.fixture
async def link(fleet: Fleet) -> AsyncIterator[LinkServer]:
    async with LinkServer(fleet, seed=7) as server:
        yield server


@pytest.fixture
def signer() -> CommandSigner:
    return CommandSigner.from_b64("k1", generate_private_key_b64())


@pytest.fixture
async def probe(broker: Broker) -> AsyncIterator[CloudProbe]:
    cloud = await CloudProbe(broker).ready()
    yield cloud
    cloud.close()


@pytest.fixture
def runner(
    broker: Broker, link: LinkServer, tmp_path: Path, signer: CommandSigner
) -> Iterator[GatewayRunner]:
    gateways = GatewayRunner(broker, link, tmp_path, {"k1": public_key_b64(signer.private_key)})
    yield gateways


@pytest.fixture
async def gateway(runner: GatewayRunner, probe: CloudProbe) -> AsyncIterator[ManagedProcess]:
    process = runner.start()
    try:
        await probe.birth(boot_seq=1)
        yield process
    finally:
        await asyncio.to_thread(process.stop)


def sign(
    signer: CommandSigner,
    action: Action,
    meter_id: str = "MTR1",
    *,
    version: int = 1,
    dcu_id: str = DCU,
    expires_at_ms: int | None = None,
) -> Command:
    issued = now_ms()
    return signer.sign(
        command_id=new_command_id(),
        meter_id=meter_id,
        dcu_id=dcu_id,
        action=action,
        version=version,
        reason="integration test",
        issued_at_ms=issued,
        expires_at_ms=issued + HOUR_MS if expires_at_ms is None else expires_at_ms,
    )


def relay_events(fleet: Fleet, meter_id: str) -> list[int]:
    meter = fleet.get(meter_id)
    assert meter is not None
    relay_codes = {EventCode.LOAD_SWITCH_DISCONNECTED, EventCode.LOAD_SWITCH_CONNECTED}
    return [event.code for event in meter.events_since(0) if event.code in relay_codes]


def control_state(fleet: Fleet, meter_id: str) -> ControlState:
    meter = fleet.get(meter_id)
    assert meter is not None
    return meter.control_state


async def test_signed_command_is_received_then_executed_and_switches_the_relay(
    gateway: ManagedProcess, probe: CloudProbe, fleet: Fleet, signer: CommandSigner
) -> None:
    disconnect = sign(signer, Action.DISCONNECT)
    probe.send(disconnect)
    executed = await probe.final_ack(disconnect.command_id)

    assert [ack.status for ack in probe.acks(disconnect.command_id)] == [
        AckStatus.RECEIVED,
        AckStatus.EXECUTED,
    ]
    assert (executed.relay, executed.event_code) == (RelayState.DISCONNECTED, 301)
    assert control_state(fleet, "MTR1") is ControlState.DISCONNECTED
    event = await probe.wait_for(lambda: next(iter(probe.events("MTR1")), None), "301 event")
    assert (event.code, event.relay) == (301, RelayState.DISCONNECTED)


async def test_refused_commands_are_acked_and_leave_every_relay_untouched(
    gateway: ManagedProcess, probe: CloudProbe, fleet: Fleet, signer: CommandSigner
) -> None:
    current = sign(signer, Action.CONNECT, "MTR3", version=5)  # already connected: no operation
    probe.send(current)
    assert (await probe.final_ack(current.command_id)).status is AckStatus.EXECUTED

    stranger = CommandSigner.from_b64("k1", generate_private_key_b64())  # same id, wrong key
    refused = {
        "forged": sign(stranger, Action.DISCONNECT),
        "unsigned": sign(signer, Action.DISCONNECT).model_copy(update={"signature": "AAAA"}),
        "other DCU's meter": sign(signer, Action.DISCONNECT, "MTR9"),
        "for another DCU": sign(signer, Action.DISCONNECT, dcu_id="DCU02"),
        "expired": sign(signer, Action.DISCONNECT, expires_at_ms=now_ms() - 60_000),
        "old version": sign(signer, Action.DISCONNECT, "MTR3", version=4),
    }
    for command in refused.values():
        probe.send(command, topic=wire_topics.command_topic(DCU, command.meter_id))
    answers = {case: await probe.final_ack(c.command_id) for case, c in refused.items()}

    assert {case: (ack.status, ack.reason) for case, ack in answers.items()} == {
        "forged": (AckStatus.REJECTED, "bad signature: signature does not verify"),
        "unsigned": (AckStatus.REJECTED, "bad signature: signature does not verify"),
        "other DCU's meter": (AckStatus.REJECTED, "meter not on this DCU"),
        "for another DCU": (AckStatus.REJECTED, "command for DCU DCU02, this is DCU01"),
        "expired": (AckStatus.EXPIRED, answers["expired"].reason),
        "old version": (AckStatus.REJECTED, "stale version 4 (last applied 5)"),
    }
    assert answers["expired"].reason.startswith("expired ")
    for meter_id in ("MTR1", "MTR3", "MTR9"):
        assert control_state(fleet, meter_id) is ControlState.CONNECTED
        assert relay_events(fleet, meter_id) == []


async def test_gateway_killed_after_the_inbox_write_finishes_the_command_once_on_restart(
    runner: GatewayRunner, probe: CloudProbe, fleet: Fleet, signer: CommandSigner
) -> None:
    doomed = runner.start(crash_point="after_inbox_write")
    try:
        await probe.birth(boot_seq=1)
        disconnect = sign(signer, Action.DISCONNECT)
        probe.send(disconnect)
        assert doomed.popen is not None
        returncode = await asyncio.to_thread(doomed.popen.wait, DEADLINE_S)
    finally:
        await asyncio.to_thread(doomed.stop)
    assert returncode == -signal.SIGKILL
    assert control_state(fleet, "MTR1") is ControlState.CONNECTED  # died before the relay
    will = await probe.wait_for(
        lambda: next((s for s in probe.states() if not s.online), None), "the Will"
    )
    assert will.boot_seq == 1

    restarted = runner.start()
    try:
        await probe.birth(boot_seq=2)
        executed = await probe.final_ack(disconnect.command_id)
    finally:
        await asyncio.to_thread(restarted.stop)

    assert (executed.status, executed.relay) == (AckStatus.EXECUTED, RelayState.DISCONNECTED)
    assert executed.event_code == EventCode.LOAD_SWITCH_DISCONNECTED
    assert AckStatus.RECEIVED in {ack.status for ack in probe.acks(disconnect.command_id)}
    assert relay_events(fleet, "MTR1") == [EventCode.LOAD_SWITCH_DISCONNECTED]


async def test_birth_lists_the_roster_telemetry_flows_and_a_clean_stop_goes_offline(
    runner: GatewayRunner, probe: CloudProbe, broker: Broker
) -> None:
    process = runner.start(telemetry_interval_s="0.2")
    try:
        await probe.birth(boot_seq=1)
        late_subscriber = await CloudProbe(broker).ready()  # sees only the retained state
        birth = await late_subscriber.birth(boot_seq=1)
        late_subscriber.close()
        batch = await probe.wait_for(lambda: next(iter(probe.telemetry()), None), "telemetry")
    finally:
        returncode = await asyncio.to_thread(process.stop)

    assert [(m.meter_id, m.reachable, m.relay, m.control_mode) for m in birth.meters] == [
        ("MTR1", True, RelayState.CONNECTED, 2),
        ("MTR2", True, RelayState.DISCONNECTED, 1),
        ("MTR3", True, RelayState.CONNECTED, 2),
    ]
    assert sorted(reading.meter_id for reading in batch.readings) == ["MTR1", "MTR2", "MTR3"]
    assert returncode == 0, process.tail()
    offline = await probe.wait_for(
        lambda: next((s for s in probe.states() if not s.online), None), "offline state"
    )
    assert offline.boot_seq == 1


async def test_command_sent_while_the_gateway_is_down_waits_in_its_session(
    runner: GatewayRunner, probe: CloudProbe, fleet: Fleet, signer: CommandSigner
) -> None:
    first = runner.start()
    await probe.birth(boot_seq=1)
    await asyncio.to_thread(first.stop)

    reconnect = sign(signer, Action.CONNECT, "MTR2")
    probe.send(reconnect)
    second = runner.start()
    try:
        ready = await probe.final_ack(reconnect.command_id)
    finally:
        await asyncio.to_thread(second.stop)

    assert (ready.status, ready.relay) == (AckStatus.EXECUTED, RelayState.READY_FOR_RECONNECTION)
    assert control_state(fleet, "MTR2") is ControlState.READY_FOR_RECONNECTION


class UplinkCable:
    """A TCP relay between the gateway and the broker that a test can cut and mend."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._cut = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        """Drop every connection and refuse new ones, like a dead cellular uplink."""
        self._cut = True
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    def mend(self) -> None:
        self._cut = False

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(self._broker.host, self._broker.port)
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._copy(reader, up_writer), self._copy(up_reader, writer), return_exceptions=True
        )

    async def _copy(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        finally:
            sink.close()


def stored_outbound(state_dir: Path, like: str) -> int:
    """Rows of the gateway's outbound table whose payload contains `like` (read-only peek)."""
    database = state_dir / f"edge-{DCU}.sqlite3"
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        query = "SELECT count(*) FROM outbound WHERE CAST(payload AS TEXT) LIKE ?"
        count: int = db.execute(query, (f"%{like}%",)).fetchone()[0]
        return count


async def test_acks_and_events_made_during_an_uplink_outage_arrive_after_it(
    runner: GatewayRunner,
    probe: CloudProbe,
    fleet: Fleet,
    link: LinkServer,
    broker: Broker,
    signer: CommandSigner,
) -> None:
    cable = UplinkCable(broker)
    process = runner.start(
        mqtt_port=str(await cable.start()),
        mqtt_reconnect_max_s="1",
        link_timeout_s="5",
        event_poll_s="0.2",
    )
    try:
        await probe.birth(boot_seq=1)
        link.faults = LinkFaults(latency_ms=500)  # slow meters: time to cut the uplink mid-command
        disconnect = sign(signer, Action.DISCONNECT)
        probe.send(disconnect)
        await probe.wait_for(lambda: probe.acks(disconnect.command_id) or None, "received ack")
        cable.cut()
        tripped = fleet.get("MTR3")
        assert tripped is not None
        tripped.trip_load_limit()  # logs 303 and 301 while the gateway cannot publish

        state_dir = runner.workdir / "state"
        # Polled: the gateway's store offers no change notification.
        await wait_for_async(
            "executed ack stored",
            lambda: stored_outbound(state_dir, '"status":"executed"') == 1,
            timeout_s=DEADLINE_S,
        )
        await wait_for_async(
            "trip stored",
            lambda: stored_outbound(state_dir, '"code":303') == 1,
            timeout_s=DEADLINE_S,
        )
        assert [ack.status for ack in probe.acks(disconnect.command_id)] == [AckStatus.RECEIVED]
        link.faults = LinkFaults()
        cable.mend()

        executed = await probe.final_ack(disconnect.command_id)
        # The trip's two events are replayed one publish each: wait for both.
        trip_codes = await probe.wait_for(
            lambda: codes if len(codes := [e.code for e in probe.events("MTR3")]) >= 2 else None,
            "MTR3's two trip events",
        )
        rebirths = await probe.wait_for(
            lambda: [s for s in probe.states() if s.online][1:] or None, "birth after reconnect"
        )
    finally:
        await asyncio.to_thread(process.stop)
        await cable.close()

    assert (executed.status, executed.relay) == (AckStatus.EXECUTED, RelayState.DISCONNECTED)
    assert trip_codes == [EventCode.OVERLOAD_TRIP, EventCode.LOAD_SWITCH_DISCONNECTED]
    assert rebirths[0].boot_seq == 1
    assert any(not state.online for state in probe.states())  # the Will marked the outage

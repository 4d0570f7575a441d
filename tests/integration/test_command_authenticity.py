"""Only a genuine, current command switches a relay: a real gateway process in production mode
(TLS, its own password and certificate, trusted keys) on the secured broker, real meters behind
the simulator's link, and commands published with the cloud's own broker rights."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from firmware_sim.clock import ScaledClock
from firmware_sim.fleet import Fleet, FleetSpec, MeterSpec
from firmware_sim.link_server import LinkServer
from switchyard.broker import Broker
from switchyard.broker_credentials import CLOUD_USER, BrokerCredentials
from switchyard.procs import ManagedProcess
from tests.support.mqtt_client import Identity, MqttTestClient, connected_client
from wire import Ack, AckStatus, Action, Command, CommandSigner, EventCode, GatewayState, decode
from wire import topics as wire_topics
from wire.clock import now_ms
from wire.ids import new_command_id
from wire.meterlink import ControlState
from wire.signing import generate_private_key_b64, public_key_b64

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
DCU = "DCU01"
HOUR_MS = 3_600_000

FLEET = FleetSpec(
    meters=[
        MeterSpec(meter_id="MTR11", dcu_id=DCU, control_mode=2),
        MeterSpec(meter_id="MTR12", dcu_id=DCU, control_mode=2),
    ]
)


@dataclass
class Keys:
    """The cloud's signing keys: k1 (being retired) and k2 (current)."""

    k1: CommandSigner
    k2: CommandSigner

    def trusted(self, *key_ids: str) -> str:
        signers = {"k1": self.k1, "k2": self.k2}
        return json.dumps({k: public_key_b64(signers[k].private_key) for k in key_ids})


@pytest.fixture
def keys() -> Keys:
    return Keys(
        CommandSigner.from_b64("k1", generate_private_key_b64()),
        CommandSigner.from_b64("k2", generate_private_key_b64()),
    )


@pytest.fixture
async def fleet() -> Fleet:
    return Fleet.from_spec(FLEET, ScaledClock(), seed=11)


@pytest.fixture
async def link(fleet: Fleet) -> AsyncIterator[LinkServer]:
    async with LinkServer(fleet, seed=11) as server:
        yield server


@pytest.fixture
async def cloud(
    secure_broker: Broker, broker_credentials: BrokerCredentials
) -> AsyncIterator[MqttTestClient]:
    """Publishes commands with the cloud's broker rights and hears the gateway's answers."""
    client = await connected_client(secure_broker, Identity.of(broker_credentials, CLOUD_USER))
    await client.subscribe(
        wire_topics.cloud_filter(wire_topics.TopicKind.ACK),
        wire_topics.cloud_filter(wire_topics.TopicKind.STATE),
    )
    yield client
    client.close()


def start_gateway(
    broker: Broker, creds: BrokerCredentials, link: LinkServer, workdir: Path, trusted: str
) -> ManagedProcess:
    """A gateway configured as in production: no development mode, so every secret is real."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SWITCHYARD_")}
    link_host, link_port = link.address
    env |= {
        "SWITCHYARD_DCU_ID": DCU,
        "SWITCHYARD_MQTT_HOST": broker.host,
        "SWITCHYARD_MQTT_PORT": str(broker.port),
        # No user name: it defaults to the DCU id, which is what the broker's ACL expects.
        "SWITCHYARD_MQTT_PASSWORD": creds.password(DCU),
        "SWITCHYARD_MQTT_TLS_CA_FILE": str(creds.ca_cert),
        "SWITCHYARD_MQTT_TLS_CERT_FILE": str(creds.client_cert(DCU)),
        "SWITCHYARD_MQTT_TLS_KEY_FILE": str(creds.client_key(DCU)),
        "SWITCHYARD_LINK_HOST": link_host,
        "SWITCHYARD_LINK_PORT": str(link_port),
        "SWITCHYARD_TRUSTED_KEYS": trusted,
        "SWITCHYARD_STATE_DIR": str(workdir / "state"),
        "SWITCHYARD_TELEMETRY_INTERVAL_S": "0",
    }
    log_path = workdir / f"gateway-{len(list(workdir.glob('gateway-*.log')))}.log"
    argv = [sys.executable, "-m", "edge_gateway"]
    return ManagedProcess("edge-gateway", argv, log_path, env=env, cwd=REPO_ROOT).start()


async def wait_birth(cloud: MqttTestClient, boot_seq: int) -> None:
    def born() -> bool:
        states = [decode(GatewayState, p) for t, p in cloud.received if t.endswith("/state")]
        return any(s.online and s.boot_seq == boot_seq for s in states)

    await cloud.wait_for(born, f"birth {boot_seq}")


def sign(
    signer: CommandSigner,
    action: Action,
    meter_id: str = "MTR11",
    *,
    version: int,
    expires_at_ms: int | None = None,
    command_id: str | None = None,
) -> Command:
    issued = now_ms()
    return signer.sign(
        command_id=command_id or new_command_id(),
        meter_id=meter_id,
        dcu_id=DCU,
        action=action,
        version=version,
        reason="authenticity test",
        issued_at_ms=issued,
        expires_at_ms=issued + HOUR_MS if expires_at_ms is None else expires_at_ms,
    )


async def send(cloud: MqttTestClient, command: Command | bytes, meter_id: str = "MTR11") -> None:
    payload = command if isinstance(command, bytes) else command.model_dump_json().encode()
    topic = wire_topics.command_topic(DCU, meter_id)
    assert await cloud.publish(topic, payload, expiry_s=3600) == "Success"


def acks(cloud: MqttTestClient, command_id: str) -> list[Ack]:
    found = [decode(Ack, p) for t, p in cloud.received if t.endswith("/ack")]
    return [ack for ack in found if ack.command_id == command_id]


async def final_ack(cloud: MqttTestClient, command_id: str, *, nth: int = 1) -> Ack:
    def final() -> Ack | None:
        done = [a for a in acks(cloud, command_id) if a.status is not AckStatus.RECEIVED]
        return done[nth - 1] if len(done) >= nth else None

    return await cloud.wait_for(final, f"final ack {nth} of {command_id}")


def relay_events(fleet: Fleet, meter_id: str) -> list[int]:
    meter = fleet.get(meter_id)
    assert meter is not None
    codes = {EventCode.LOAD_SWITCH_DISCONNECTED, EventCode.LOAD_SWITCH_CONNECTED}
    return [event.code for event in meter.events_since(0) if event.code in codes]


def control_state(fleet: Fleet, meter_id: str) -> ControlState:
    meter = fleet.get(meter_id)
    assert meter is not None
    return meter.control_state


async def test_forged_unsigned_unknown_key_retired_key_expired_and_replayed_commands_switch_nothing(
    secure_broker: Broker,
    broker_credentials: BrokerCredentials,
    link: LinkServer,
    fleet: Fleet,
    cloud: MqttTestClient,
    keys: Keys,
    tmp_path: Path,
) -> None:
    # k1 is retired: the gateway trusts only the current key k2.
    gateway = start_gateway(secure_broker, broker_credentials, link, tmp_path, keys.trusted("k2"))
    try:
        await wait_birth(cloud, 1)
        # A genuine history on MTR12: disconnect (v1), then connect (v2).
        history = [sign(keys.k2, Action.DISCONNECT, "MTR12", version=1)]
        history.append(sign(keys.k2, Action.CONNECT, "MTR12", version=2))
        for command in history:
            await send(cloud, command, "MTR12")
            assert (await final_ack(cloud, command.command_id)).status is AckStatus.EXECUTED
        baseline = relay_events(fleet, "MTR12")

        genuine = sign(keys.k2, Action.DISCONNECT, version=1)
        stranger = CommandSigner.from_b64("k9", generate_private_key_b64())
        impostor = CommandSigner.from_b64("k2", generate_private_key_b64())  # a trusted key id
        unsigned = sign(keys.k2, Action.DISCONNECT, version=1).model_dump(mode="json")
        del unsigned["signature"]
        attacks: dict[str, tuple[Command | bytes, str]] = {
            "forged": (
                genuine.model_copy(update={"reason": "cut them all off"}),
                "bad signature: signature does not verify",
            ),
            "unsigned": (
                json.dumps(unsigned).encode(),
                "malformed command: signature: Field required",
            ),
            "re-signed with an unknown key": (
                sign(stranger, Action.DISCONNECT, version=1),
                "unknown signing key 'k9'",
            ),
            "signed by an impostor as k2": (
                sign(impostor, Action.DISCONNECT, version=1),
                "bad signature: signature does not verify",
            ),
            "signed with the retired key": (
                sign(keys.k1, Action.DISCONNECT, version=1),
                "unknown signing key 'k1'",
            ),
            "expired": (
                sign(keys.k2, Action.DISCONNECT, version=1, expires_at_ms=now_ms() - 60_000),
                "expired",
            ),
        }
        ids = {}
        for case, (attack, _) in attacks.items():
            await send(cloud, attack)
            ids[case] = (
                attack.command_id
                if isinstance(attack, Command)
                else json.loads(attack)["command_id"]
            )
        answers = {case: await final_ack(cloud, command_id) for case, command_id in ids.items()}
        # The replay: v1 (disconnect) again after v2 (connect) — answered, never executed again.
        await send(cloud, history[0], "MTR12")
        replay = await final_ack(cloud, history[0].command_id, nth=2)
    finally:
        await asyncio.to_thread(gateway.stop)

    for case, (_, reason) in attacks.items():
        expected = AckStatus.EXPIRED if case == "expired" else AckStatus.REJECTED
        assert answers[case].status is expected, case
        assert answers[case].reason.startswith(reason), (case, answers[case].reason)
    assert control_state(fleet, "MTR11") is ControlState.CONNECTED
    assert relay_events(fleet, "MTR11") == []
    assert replay.status is AckStatus.EXECUTED  # the stored answer of v1, not a new operation
    assert relay_events(fleet, "MTR12") == baseline
    assert control_state(fleet, "MTR12") is ControlState.CONNECTED


async def test_a_forged_copy_arriving_first_does_not_block_the_genuine_command(
    secure_broker: Broker,
    broker_credentials: BrokerCredentials,
    link: LinkServer,
    fleet: Fleet,
    cloud: MqttTestClient,
    keys: Keys,
    tmp_path: Path,
) -> None:
    gateway = start_gateway(secure_broker, broker_credentials, link, tmp_path, keys.trusted("k2"))
    try:
        await wait_birth(cloud, 1)
        genuine = sign(keys.k2, Action.DISCONNECT, version=1)
        forged = genuine.model_copy(update={"action": Action.CONNECT})
        await send(cloud, forged)
        refused = await final_ack(cloud, genuine.command_id)
        await send(cloud, genuine)
        executed = await final_ack(cloud, genuine.command_id, nth=2)
    finally:
        await asyncio.to_thread(gateway.stop)

    assert (executed.status, executed.relay) == (AckStatus.EXECUTED, "disconnected")
    assert relay_events(fleet, "MTR11") == [EventCode.LOAD_SWITCH_DISCONNECTED]
    # The refusal of the forged copy tells the cloud its own copy is still worth sending.
    assert (refused.status, refused.retryable) == (AckStatus.REJECTED, True)


async def test_key_rotation_both_keys_during_the_overlap_then_only_the_new_one(
    secure_broker: Broker,
    broker_credentials: BrokerCredentials,
    link: LinkServer,
    fleet: Fleet,
    cloud: MqttTestClient,
    keys: Keys,
    tmp_path: Path,
) -> None:
    overlap = start_gateway(
        secure_broker, broker_credentials, link, tmp_path, keys.trusted("k1", "k2")
    )
    try:
        await wait_birth(cloud, 1)
        old_key = sign(keys.k1, Action.DISCONNECT, version=1)
        new_key = sign(keys.k2, Action.CONNECT, version=2)
        for command in (old_key, new_key):
            await send(cloud, command)
        during = [await final_ack(cloud, c.command_id) for c in (old_key, new_key)]
    finally:
        await asyncio.to_thread(overlap.stop)

    retired = start_gateway(secure_broker, broker_credentials, link, tmp_path, keys.trusted("k2"))
    try:
        await wait_birth(cloud, 2)
        late_old_key = sign(keys.k1, Action.DISCONNECT, version=3)
        await send(cloud, late_old_key)
        after = await final_ack(cloud, late_old_key.command_id)
    finally:
        await asyncio.to_thread(retired.stop)

    assert [ack.status for ack in during] == [AckStatus.EXECUTED, AckStatus.EXECUTED]
    assert (after.status, after.reason) == (AckStatus.REJECTED, "unknown signing key 'k1'")
    assert relay_events(fleet, "MTR11") == [
        EventCode.LOAD_SWITCH_DISCONNECTED,
        EventCode.LOAD_SWITCH_CONNECTED,
    ]
    assert control_state(fleet, "MTR11") is ControlState.CONNECTED

"""The project's broker security on a real Mosquitto: who gets in (TLS with a certificate from
our CA, and a password), and what a gateway may say and hear (its own DCU only) — proven at the
broker and at a real cloud runtime, which never sees what the broker refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from cloud.commands.operator import issue_manual_command
from cloud.db.models import Command, Gateway, MeterEventRecord
from cloud.runtime import CloudRuntime
from switchyard.broker import Broker
from switchyard.broker_credentials import CLOUD_USER, BrokerCredentials, ensure_credentials
from tests.support.mqtt_client import Identity, MqttTestClient, connected_client
from tests.support.secure_cloud import DEADLINE_S, CloudSecrets, cloud_settings, seed
from tests.support.wait import wait_for_async
from wire import (
    Ack,
    AckStatus,
    Action,
    GatewayState,
    MeterEvent,
    MeterReport,
    RelayState,
    TelemetryBatch,
    decode,
    encode,
)
from wire import (
    Command as WireCommand,
)
from wire import topics as wire_topics
from wire.clock import now_ms
from wire.ids import gateway_client_id

pytestmark = pytest.mark.integration


async def _attempt(broker: Broker, identity: Identity) -> str:
    client = MqttTestClient(broker, identity)
    try:
        return await client.connect()
    finally:
        client.close()


async def test_the_right_user_with_its_certificate_and_password_gets_in(
    secure_broker: Broker, broker_credentials: BrokerCredentials
) -> None:
    for user in (CLOUD_USER, "DCU01"):
        assert await _attempt(secure_broker, Identity.of(broker_credentials, user)) == "Success"


async def test_anonymous_and_wrong_password_are_refused(
    secure_broker: Broker, broker_credentials: BrokerCredentials
) -> None:
    good = Identity.of(broker_credentials, "DCU01")
    anonymous = replace(good, user=None, password=None)
    wrong_password = replace(good, password="not-the-password")
    someone_elses = replace(good, password=broker_credentials.password("DCU02"))
    unknown_user = replace(good, user="DCU99", client_id=gateway_client_id("DCU99"))

    for identity in (anonymous, wrong_password, someone_elses, unknown_user):
        assert await _attempt(secure_broker, identity) == "Not authorized", identity.user


def _tls(identity: Identity) -> tuple[Path | None, Path | None, Path | None]:
    return identity.ca_file, identity.cert_file, identity.key_file


async def test_a_certificate_from_another_ca_or_none_at_all_is_refused(
    secure_broker: Broker, broker_credentials: BrokerCredentials, tmp_path: Path
) -> None:
    other_ca = ensure_credentials(tmp_path / "other-ca", ["DCU01"])
    password = broker_credentials.password("DCU01")
    ca = broker_credentials.ca_cert
    foreign_cert = Identity(
        "DCU01", password, ca, other_ca.client_cert("DCU01"), other_ca.client_key("DCU01")
    )
    no_cert = Identity("DCU01", password, ca)
    no_tls = Identity("DCU01", password)

    for case, identity in {"foreign": foreign_cert, "none": no_cert, "plain": no_tls}.items():
        outcome = await _attempt(secure_broker, identity)
        assert outcome != "Success", case
        assert "Not authorized" not in outcome, f"{case}: refused before any password check"


# Filters a stolen gateway (DCU01) might try: the cloud's groups, everything, another DCU.
FOREIGN_FILTERS = (
    wire_topics.shared(wire_topics.cloud_filter(wire_topics.TopicKind.ACK)),
    wire_topics.shared(wire_topics.cloud_filter(wire_topics.TopicKind.EVENT)),
    wire_topics.shared(wire_topics.gateway_command_filter("DCU01")),
    "#",
    "sy/v1/#",
    "$share/x/sy/v1/#",
    wire_topics.cloud_filter(wire_topics.TopicKind.ACK),
    wire_topics.gateway_command_filter("DCU02"),
    "sy/v1/dcu/+/meter/+/cmd",
)


async def test_a_gateway_may_subscribe_only_to_its_own_commands(
    secure_broker: Broker, broker_credentials: BrokerCredentials
) -> None:
    cloud = await connected_client(secure_broker, Identity.of(broker_credentials, CLOUD_USER))
    gateway_a = await connected_client(secure_broker, Identity.of(broker_credentials, "DCU01"))
    try:
        refused = await gateway_a.subscribe(*FOREIGN_FILTERS)
        assert refused == ["Not authorized"] * len(FOREIGN_FILTERS)
        assert await gateway_a.subscribe(wire_topics.gateway_command_filter("DCU01")) == [
            "Granted QoS 1"
        ]
        for topic in (
            wire_topics.command_topic("DCU02", "MTR21"),
            wire_topics.ack_topic("DCU02", "MTR21"),
            wire_topics.state_topic("DCU02"),
        ):
            # Nobody may hear these: the broker says so, or refuses the cloud's own publish.
            assert await cloud.publish(topic, b"for DCU02 only") in (
                "No matching subscribers",
                "Not authorized",
            )
        own = wire_topics.command_topic("DCU01", "MTR11")
        assert await cloud.publish(own, b"marker") == "Success"
        # The marker was published last: once it arrives, anything before it would have too.
        await gateway_a.wait_for(lambda: gateway_a.payloads(own), "its own command")
        assert {topic for topic, _ in gateway_a.received} == {own}
    finally:
        gateway_a.close()
        cloud.close()


async def test_a_gateway_may_not_publish_commands_not_even_to_its_own_meters(
    secure_broker: Broker, broker_credentials: BrokerCredentials
) -> None:
    gateway_a = await connected_client(secure_broker, Identity.of(broker_credentials, "DCU01"))
    try:
        for topic in (
            wire_topics.command_topic("DCU01", "MTR11"),
            wire_topics.command_topic("DCU02", "MTR21"),
        ):
            assert await gateway_a.publish(topic, b"{}") == "Not authorized", topic
    finally:
        gateway_a.close()


@pytest.fixture
async def cloud(
    secure_broker: Broker, broker_credentials: BrokerCredentials, database_url: str
) -> AsyncIterator[CloudRuntime]:
    """A real cloud runtime in this event loop, on the secured broker, with FLEET seeded."""
    await seed(database_url)
    settings = cloud_settings(
        secure_broker, broker_credentials, database_url, CloudSecrets.generate()
    )
    runtime = CloudRuntime(settings)
    async with runtime.running():
        async with asyncio.timeout(15):
            await runtime.mqtt.wait_connected()
        yield runtime


def _birth(dcu_id: str, meters: list[str], boot_seq: int = 1) -> bytes:
    reports = [MeterReport(meter_id=m, reachable=True, relay=RelayState.CONNECTED) for m in meters]
    return encode(
        GatewayState(dcu_id=dcu_id, online=True, boot_seq=boot_seq, at_ms=now_ms(), meters=reports)
    )


async def _gateway_online(cloud: CloudRuntime, client: MqttTestClient, dcu: str) -> None:
    meters = [f"MTR{dcu[-1]}1", f"MTR{dcu[-1]}2"]
    assert await client.publish(wire_topics.state_topic(dcu), _birth(dcu, meters), retain=True) == (
        "Success"
    )

    async def online() -> bool:
        async with cloud.db.read() as session:
            gateway = await session.get(Gateway, dcu)
            return gateway is not None and gateway.online

    await wait_for_async(f"{dcu} online in the cloud", online, timeout_s=DEADLINE_S)


async def _command_state(cloud: CloudRuntime, command_id: str) -> str:
    async with cloud.db.read() as session:
        command = await session.get(Command, command_id)
        assert command is not None
        return command.state


async def _sent_command(
    cloud: CloudRuntime,
    gateway: MqttTestClient,
    meter_id: str,
    dcu_id: str,
    action: Action = Action.DISCONNECT,
) -> WireCommand:
    """An operator's command for the meter, as the gateway received it from the cloud."""
    row = await issue_manual_command(
        cloud.db,
        cloud.factory,
        meter_id=meter_id,
        action=action,
        reason="security test",
        actor="tester",
    )
    cloud.dispatcher.wake()
    topic = wire_topics.command_topic(dcu_id, meter_id)
    payload = await gateway.wait_for(
        lambda: [p for p in gateway.payloads(topic) if row.command_id.encode() in p],
        f"command for {meter_id}",
    )
    command = decode(WireCommand, payload[-1])
    assert command.command_id == row.command_id
    return command


def _ack(command: WireCommand, status: AckStatus, *, dcu_id: str | None = None) -> bytes:
    return encode(
        Ack(
            command_id=command.command_id,
            meter_id=command.meter_id,
            dcu_id=dcu_id or command.dcu_id,
            status=status,
            relay=RelayState.DISCONNECTED if status is AckStatus.EXECUTED else None,
            version=command.version,
            at_ms=now_ms(),
        )
    )


async def test_gateway_a_cannot_speak_for_dcu_b_and_the_cloud_never_sees_it(
    cloud: CloudRuntime, secure_broker: Broker, broker_credentials: BrokerCredentials
) -> None:
    gateway_a = await connected_client(secure_broker, Identity.of(broker_credentials, "DCU01"))
    gateway_b = await connected_client(secure_broker, Identity.of(broker_credentials, "DCU02"))
    # A second pair of ears with the cloud's own rights: what reaches the cloud, reaches it.
    witness = await connected_client(secure_broker, Identity.of(broker_credentials, CLOUD_USER))
    try:
        await gateway_a.subscribe(wire_topics.gateway_command_filter("DCU01"))
        await gateway_b.subscribe(wire_topics.gateway_command_filter("DCU02"))
        await witness.subscribe(*(wire_topics.cloud_filter(k) for k in wire_topics.TopicKind))
        await _gateway_online(cloud, gateway_a, "DCU01")
        await _gateway_online(cloud, gateway_b, "DCU02")
        b_command = await _sent_command(cloud, gateway_b, "MTR21", "DCU02")
        a_command = await _sent_command(cloud, gateway_a, "MTR11", "DCU01")
        assert not gateway_a.payloads(wire_topics.command_topic("DCU02", "MTR21"))

        b_event = MeterEvent(meter_id="MTR21", dcu_id="DCU02", code=302, seq=99, at_ms=now_ms())
        b_batch = TelemetryBatch(dcu_id="DCU02", batch_id="forged")
        b_will = GatewayState(dcu_id="DCU02", online=False, boot_seq=1, at_ms=now_ms())
        forged = {
            wire_topics.ack_topic("DCU02", "MTR21"): _ack(b_command, AckStatus.EXECUTED),
            wire_topics.event_topic("DCU02", "MTR21"): encode(b_event),
            wire_topics.telemetry_topic("DCU02"): encode(b_batch),
            wire_topics.state_topic("DCU02"): encode(b_will),
        }
        for topic, payload in forged.items():
            assert await gateway_a.publish(topic, payload) == "Not authorized", topic
        # A's own ack goes last; the cloud commits acks in arrival order.
        own_ack = wire_topics.ack_topic("DCU01", "MTR11")
        assert await gateway_a.publish(own_ack, _ack(a_command, AckStatus.RECEIVED)) == "Success"

        async def a_delivered() -> bool:
            return await _command_state(cloud, a_command.command_id) == "DELIVERED"

        await wait_for_async("A's own ack applied", a_delivered, timeout_s=DEADLINE_S)
        await witness.wait_for(lambda: witness.payloads(own_ack), "A's ack at the witness")
    finally:
        for client in (gateway_a, gateway_b, witness):
            client.close()

    assert not set(forged.items()) & set(witness.received)
    assert await _command_state(cloud, b_command.command_id) == "SENT"
    async with cloud.db.read() as session:
        gateway = await session.get(Gateway, "DCU02")
        assert gateway is not None and gateway.online
        assert await session.get(MeterEventRecord, ("MTR21", 99)) is None
    # Nothing foreign or malformed even reached the cloud's consumers.
    assert _metric(cloud, "switchyard_foreign_messages_total") == 0
    for kind in wire_topics.TopicKind:
        assert _metric(cloud, "switchyard_malformed_messages_total", kind=kind.value) == 0


def _metric(cloud: CloudRuntime, name: str, **labels: str) -> float:
    value = cloud.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_an_ack_on_a_gateways_own_topic_about_another_dcus_meter_is_ignored(
    cloud: CloudRuntime, secure_broker: Broker, broker_credentials: BrokerCredentials
) -> None:
    gateway_a = await connected_client(secure_broker, Identity.of(broker_credentials, "DCU01"))
    gateway_b = await connected_client(secure_broker, Identity.of(broker_credentials, "DCU02"))
    try:
        await gateway_b.subscribe(wire_topics.gateway_command_filter("DCU02"))
        await _gateway_online(cloud, gateway_a, "DCU01")
        await _gateway_online(cloud, gateway_b, "DCU02")
        b_command = await _sent_command(cloud, gateway_b, "MTR21", "DCU02")
        # The ACL lets A write under its own DCU; the cloud checks what the payload claims.
        claims = [
            # On A's topic for A's meter, naming B's meter and DCU: dropped by the router.
            (wire_topics.ack_topic("DCU01", "MTR11"), _ack(b_command, AckStatus.EXECUTED)),
            # On A's topic naming B's meter, signed as A: B's command is not A's to answer.
            (
                wire_topics.ack_topic("DCU01", "MTR21"),
                _ack(b_command, AckStatus.EXECUTED, dcu_id="DCU01"),
            ),
        ]
        for topic, payload in claims:
            assert await gateway_a.publish(topic, payload) == "Success"

        async def both_refused() -> bool:
            return _metric(cloud, "switchyard_foreign_messages_total") >= 2

        await wait_for_async("both claims counted as foreign", both_refused, timeout_s=DEADLINE_S)
    finally:
        gateway_a.close()
        gateway_b.close()

    assert _metric(cloud, "switchyard_foreign_messages_total") == 2
    assert await _command_state(cloud, b_command.command_id) == "SENT"


async def test_a_rotated_or_removed_password_stops_working_after_a_reload(
    secure_broker: Broker, broker_credentials: BrokerCredentials
) -> None:
    old = Identity.of(broker_credentials, "DCU01")
    connected = await connected_client(secure_broker, old)
    try:
        rotated = ensure_credentials(
            broker_credentials.directory,
            [CLOUD_USER, "DCU01", "DCU02"],
            rotate_passwords=["DCU01"],
            remove=["DCU02"],
        )
        secure_broker.reload()
        # Mosquitto re-checks connected clients on reload: the old session is ended too.
        await connected.wait_for(lambda: connected.disconnected, "the old session to end")
        assert await _attempt(secure_broker, old) == "Not authorized"
        assert await _attempt(secure_broker, Identity.of(rotated, "DCU01")) == "Success"
        # Its certificate is gone with it: present A's, with B's user, password and client id.
        removed = replace(
            old,
            user="DCU02",
            password=broker_credentials.password("DCU02"),
            client_id=gateway_client_id("DCU02"),
        )
        assert await _attempt(secure_broker, removed) == "Not authorized"
    finally:
        connected.close()


def _executed(command: WireCommand, relay: RelayState) -> bytes:
    return encode(
        Ack(
            command_id=command.command_id,
            meter_id=command.meter_id,
            dcu_id=command.dcu_id,
            status=AckStatus.EXECUTED,
            relay=relay,
            version=command.version,
            at_ms=now_ms(),
        )
    )


async def test_a_gateway_cannot_join_the_clouds_groups_or_take_another_gateways_id(
    cloud: CloudRuntime, secure_broker: Broker, broker_credentials: BrokerCredentials
) -> None:
    attacker = Identity.of(broker_credentials, "DCU01")
    gateway_b = await connected_client(secure_broker, Identity.of(broker_credentials, "DCU02"))
    # One session with its own id: a second one would replace it, not add a group member.
    intruder = await connected_client(secure_broker, attacker)
    try:
        await gateway_b.subscribe(wire_topics.gateway_command_filter("DCU02"))
        await _gateway_online(cloud, gateway_b, "DCU02")
        assert await intruder.subscribe(*FOREIGN_FILTERS) == ["Not authorized"] * len(
            FOREIGN_FILTERS
        )
        # DCU01's credentials with DCU02's gateway id (and with the cloud's): refused, and the
        # victim's session goes on.
        for client_id in (gateway_client_id("DCU02"), f"switchyard-{cloud.settings.instance_id}"):
            assert await _attempt(secure_broker, replace(attacker, client_id=client_id)) == (
                "Not authorized"
            )
        assert gateway_b.disconnected is None

        relays = {Action.DISCONNECT: RelayState.DISCONNECTED, Action.CONNECT: RelayState.CONNECTED}
        commands = []
        for action in (Action.DISCONNECT, Action.CONNECT) * 2:
            for meter_id in ("MTR21", "MTR22"):
                command = await _sent_command(cloud, gateway_b, meter_id, "DCU02", action)
                assert command.action is action
                topic = wire_topics.ack_topic("DCU02", meter_id)
                assert await gateway_b.publish(topic, _executed(command, relays[action])) == (
                    "Success"
                )

                async def succeeded(command_id: str = command.command_id) -> bool:
                    return await _command_state(cloud, command_id) == "SUCCEEDED"

                await wait_for_async(
                    f"{action} of {meter_id} SUCCEEDED", succeeded, timeout_s=DEADLINE_S
                )
                commands.append(command.command_id)
        assert gateway_b.disconnected is None
    finally:
        for client in (intruder, gateway_b):
            client.close()

    async with cloud.db.read() as session:
        attempts = [(await session.get(Command, c)) for c in commands]
    assert len(commands) == 8
    assert [row.attempts for row in attempts if row is not None] == [1] * 8

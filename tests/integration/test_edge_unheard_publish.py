"""A real Mosquitto restarted from its persistence forgets shared subscriptions: what a gateway
publishes before the cloud resubscribes is PUBACKed as matching no subscriber, and the gateway's
client must report it as not delivered (its callers keep and resend it), not as delivered."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_gateway.errors import NotDelivered
from edge_gateway.mqtt import MqttClient, WillMessage
from edge_gateway.settings import GatewaySettings
from switchyard.broker import Broker
from tests.support.wait import wait_for_async
from wire import topics as wire_topics

pytestmark = pytest.mark.integration

DCU = "DCU01"
CLOUD_CLIENT_ID = "switchyard-cloud-test"
DEADLINE_S = 10.0


class Cloud:
    """A cloud stand-in: a persistent session with the cloud's shared subscription."""

    def __init__(self, broker: Broker) -> None:
        self.received: list[bytes] = []
        self._broker = broker
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=CLOUD_CLIENT_ID,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self._client.on_message = lambda _c, _u, message: self.received.append(message.payload)

    def connect_and_subscribe(self) -> None:
        connected, granted = threading.Event(), threading.Event()
        self._client.on_connect = lambda *_args: connected.set()
        self._client.on_subscribe = lambda *_args: granted.set()
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 3600
        self._client.connect(
            self._broker.host, self._broker.port, clean_start=False, properties=properties
        )
        self._client.loop_start()
        assert connected.wait(DEADLINE_S), "the cloud stand-in could not connect"
        telemetry = wire_topics.cloud_filter(wire_topics.TopicKind.TELEMETRY)
        self._client.subscribe(wire_topics.shared(telemetry), qos=1)
        assert granted.wait(DEADLINE_S), "no SUBACK for the shared subscription"

    def go_quiet(self) -> None:
        """Stop the network loop: the session stays, nothing reconnects it."""
        self._client.loop_stop()

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@pytest.fixture
def cloud(broker: Broker) -> Iterator[Cloud]:
    stand_in = Cloud(broker)
    yield stand_in
    stand_in.close()


async def _gateway_client(broker: Broker, tmp_path: Path) -> MqttClient:
    settings = GatewaySettings(
        dcu_id=DCU,
        dev_mode=True,  # the plain test broker: no TLS, no password, no commands to verify
        mqtt_host=broker.host,
        mqtt_port=broker.port,
        state_dir=tmp_path / "edge",
        mqtt_reconnect_min_s=0.2,
        mqtt_reconnect_max_s=1,
    )
    will = WillMessage(wire_topics.state_topic(DCU), b"{}")
    client = MqttClient(settings, will=will)
    client.start()
    async with asyncio.timeout(DEADLINE_S):
        await client.wait_connected()
    return client


def _saved_since(broker: Broker, since_s: float) -> bool:
    """Whether Mosquitto has written its persistence file since `since_s` (epoch seconds)."""
    saved = broker.workdir / "mosquitto.db"
    return saved.exists() and saved.stat().st_mtime > since_s


async def test_a_publish_nobody_is_subscribed_to_after_a_broker_restart_is_not_delivered(
    broker: Broker, cloud: Cloud, tmp_path: Path
) -> None:
    cloud.connect_and_subscribe()
    subscribed_at_s = time.time()
    gateway = await _gateway_client(broker, tmp_path)
    topic = wire_topics.telemetry_topic(DCU)
    try:
        async with asyncio.timeout(DEADLINE_S):
            await gateway.publish(topic, b"before the restart", qos=1)
        await wait_for_async("the cloud got the first batch", lambda: cloud.received or None)

        # The cloud's session (and its subscription) is saved; then the broker is SIGKILLed
        # and restarted from that save, while the cloud has not reconnected yet.
        await wait_for_async(
            "a save after the subscription", lambda: _saved_since(broker, subscribed_at_s)
        )
        cloud.go_quiet()
        broker.process.kill()
        broker.restart()
        async with asyncio.timeout(DEADLINE_S):
            await gateway.wait_connected()

        with pytest.raises(NotDelivered):
            async with asyncio.timeout(DEADLINE_S):
                await gateway.publish(topic, b"while nobody listens", qos=1)
        # A retained message is kept by the broker whoever listens: that is delivered.
        async with asyncio.timeout(DEADLINE_S):
            await gateway.publish(wire_topics.state_topic(DCU), b"{}", qos=1, retain=True)

        cloud.connect_and_subscribe()  # the cloud resubscribes on its CONNACK
        async with asyncio.timeout(DEADLINE_S):
            await gateway.publish(topic, b"after the cloud resubscribed", qos=1)
        await wait_for_async(
            "the cloud got the batch sent after it resubscribed",
            lambda: b"after the cloud resubscribed" in cloud.received,
        )
        assert b"while nobody listens" not in cloud.received
    finally:
        await gateway.stop()

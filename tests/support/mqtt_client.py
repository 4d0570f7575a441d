"""A paho MQTT 5 client for tests, driven from asyncio: connect as any user (or none), with or
without TLS and a client certificate, and see exactly what the broker answers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from switchyard.broker import Broker
from switchyard.broker_credentials import CLOUD_USER, BrokerCredentials
from tests.support.wait import wait_for_async
from wire.ids import gateway_client_id

DEADLINE_S = 15.0
T = TypeVar("T")


@dataclass(frozen=True)
class Identity:
    """What a client presents: user and password, the CA it trusts, its certificate."""

    user: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    # None: a random one (the broker binds a gateway's user to its own id, not the cloud's).
    client_id: str | None = None

    @classmethod
    def of(cls, creds: BrokerCredentials, user: str) -> Identity:
        """The full, correct identity of one user of a credentials directory."""
        return cls(
            user,
            creds.password(user),
            creds.ca_cert,
            creds.client_cert(user),
            creds.client_key(user),
            None if user == CLOUD_USER else gateway_client_id(user),
        )


class MqttTestClient:
    """One connection; records what it receives, SUBACK and PUBACK reason codes."""

    def __init__(self, broker: Broker, identity: Identity) -> None:
        self._broker = broker
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self.received: list[tuple[str, bytes]] = []
        self.connack: str | None = None
        self.disconnected: str | None = None
        self._subacks: dict[int, asyncio.Future[list[str]]] = {}
        self._pubacks: dict[int, asyncio.Future[str]] = {}
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=identity.client_id or f"test-{uuid.uuid4().hex[:10]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        if identity.user is not None:
            client.username_pw_set(identity.user, identity.password)
        if identity.ca_file is not None:
            client.tls_set(
                ca_certs=str(identity.ca_file),
                certfile=str(identity.cert_file) if identity.cert_file else None,
                keyfile=str(identity.key_file) if identity.key_file else None,
            )
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        self._client = client

    async def connect(self) -> str:
        """Connect and return "Success", or what went wrong (refusal, TLS error, hang-up)."""
        self._client.reconnect_delay_set(60, 60)  # one attempt: a refusal must stay a refusal
        try:
            await asyncio.to_thread(self._client.connect, self._broker.host, self._broker.port)
        except OSError as exc:  # ssl.SSLError is an OSError
            self.disconnected = f"connect failed: {exc!r}"
            return self.disconnected
        self._client.loop_start()
        outcome = await self.wait_for(
            lambda: self.connack or self.disconnected, "CONNACK or disconnection"
        )
        return outcome

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()

    async def subscribe(self, *topic_filters: str) -> list[str]:
        """Subscribe at QoS 1; the SUBACK's reason code for each filter."""
        result, mid = self._client.subscribe([(f, 1) for f in topic_filters])
        assert result == paho.MQTT_ERR_SUCCESS, result
        future = self._subacks.setdefault(mid, self._loop.create_future())
        async with asyncio.timeout(DEADLINE_S):
            return await future

    async def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, expiry_s: int | None = None
    ) -> str:
        """Publish at QoS 1; the PUBACK's reason code ("Success", "Not authorized", ...)."""
        properties = None
        if expiry_s is not None:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.MessageExpiryInterval = expiry_s
        info = self._client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        future = self._pubacks.setdefault(info.mid, self._loop.create_future())
        async with asyncio.timeout(DEADLINE_S):
            return await future

    def payloads(self, topic: str) -> list[bytes]:
        """Payloads received on one topic, in order."""
        return [payload for t, payload in self.received if t == topic]

    async def wait_for(self, found: Callable[[], T | None], what: str) -> T:
        """Wait until `found()` answers something not empty, looking again on every change."""
        return await wait_for_async(
            what, lambda: found() or None, timeout_s=DEADLINE_S, changed=self._changed
        )

    # paho's network thread calls these; each only hops to the event loop.

    def _notify(self, update: Callable[[], None]) -> None:
        def apply() -> None:
            update()
            self._changed.set()

        self._loop.call_soon_threadsafe(apply)

    def _on_connect(self, c: Any, u: Any, f: Any, reason: ReasonCode, p: Any) -> None:
        self._notify(lambda: setattr(self, "connack", str(reason)))

    def _on_connect_fail(self, c: Any, u: Any) -> None:
        self._notify(lambda: setattr(self, "disconnected", "connection failed"))

    def _on_disconnect(self, c: Any, u: Any, f: Any, reason: ReasonCode, p: Any) -> None:
        self._notify(lambda: setattr(self, "disconnected", f"disconnected: {reason}"))

    def _on_message(self, c: Any, u: Any, message: paho.MQTTMessage) -> None:
        item = (message.topic, bytes(message.payload))
        self._notify(lambda: self.received.append(item))

    def _on_subscribe(self, c: Any, u: Any, mid: int, codes: list[ReasonCode], p: Any) -> None:
        reasons = [str(code) for code in codes]
        self._loop.call_soon_threadsafe(self._resolve, self._subacks, mid, reasons)

    def _on_publish(self, c: Any, u: Any, mid: int, reason: ReasonCode, p: Any) -> None:
        self._loop.call_soon_threadsafe(self._resolve, self._pubacks, mid, str(reason))

    def _resolve(self, pending: dict[int, asyncio.Future[Any]], mid: int, value: object) -> None:
        future = pending.setdefault(mid, self._loop.create_future())
        if not future.done():
            future.set_result(value)


async def connected_client(broker: Broker, identity: Identity) -> MqttTestClient:
    """A client that the broker has accepted (fails the test otherwise)."""
    client = MqttTestClient(broker, identity)
    outcome = await client.connect()
    assert outcome == "Success", f"{identity.user} could not connect: {outcome}"
    return client

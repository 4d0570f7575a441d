"""The gateway's only paho-mqtt import: a small typed MQTT 5 client driven from asyncio."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_gateway.errors import MqttError, NotDelivered, PublishError
from edge_gateway.ports import InboundMessage, MessageHandler
from edge_gateway.settings import GatewaySettings
from wire.limits import MAX_PACKET_BYTES

log = logging.getLogger(__name__)

_QUEUED = (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN)


@dataclass(frozen=True, slots=True)
class WillMessage:
    """What the broker publishes for us if we vanish without a clean DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True, slots=True)
class _Subscription:
    qos: int
    handler: MessageHandler


# PUBACK reason 0x10: the broker took the message, but no subscription matched it.
_NO_MATCHING_SUBSCRIBERS = 0x10


@dataclass(frozen=True, slots=True)
class _PendingPuback:
    topic: str
    retain: bool
    puback: asyncio.Future[None]


# paho's network thread does the I/O; every paho callback only hops to the event loop with
# call_soon_threadsafe. Received QoS 1 messages are acknowledged by the application
# (`InboundMessage.puback()`), so the broker keeps a command until the gateway has stored it, and
# its Receive Maximum bounds how many wait in memory. `publish()` answers a PUBACK future.
class MqttClient:
    """MQTT 5 client with a persistent session, a retained Will and resubscription on CONNACK."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        will: WillMessage,
        on_connect: Callable[[bool], None] | None = None,
    ) -> None:
        self._settings = settings
        self._loop = asyncio.get_running_loop()
        self._on_connect_hook = on_connect
        self._subscriptions: dict[str, _Subscription] = {}
        self._pubacks: dict[int, _PendingPuback] = {}
        self._connected = asyncio.Event()
        # Bumped by paho's thread on each CONNACK: a PUBACK owed to a message from an earlier
        # connection is not sent, because the broker redelivers such messages anyway.
        self._connection_epoch = 0
        self._stopping = False
        self._client = self._build_client(will)

    def _build_client(self, will: WillMessage) -> paho.Client:
        settings = self._settings
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        if settings.mqtt_username is not None or settings.mqtt_password is not None:
            password = settings.mqtt_password
            client.username_pw_set(
                settings.mqtt_user, password.get_secret_value() if password else None
            )
        if settings.mqtt_tls_ca_file is not None:
            cert, key = settings.mqtt_tls_cert_file, settings.mqtt_tls_key_file
            client.tls_set(
                ca_certs=str(settings.mqtt_tls_ca_file),
                certfile=str(cert) if cert else None,
                keyfile=str(key) if key else None,
            )
        client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        client.max_inflight_messages_set(settings.mqtt_max_inflight)
        self._set_reconnect_delay(client)
        client.on_connect = self._paho_on_connect
        client.on_disconnect = self._paho_on_disconnect
        client.on_publish = self._paho_on_publish
        client.on_subscribe = self._paho_on_subscribe
        client.on_message = self._paho_on_unexpected_message
        client.on_socket_open = _disable_nagle
        return client

    def _set_reconnect_delay(self, client: paho.Client) -> None:
        # paho doubles the delay up to the cap; a random start per outage spreads the gateways
        # of a whole city apart when a broker restarts. paho annotates int but computes in float.
        first_s = self._settings.mqtt_reconnect_min_s * random.uniform(1.0, 2.0)
        client.reconnect_delay_set(
            min_delay=cast(int, first_s), max_delay=cast(int, self._settings.mqtt_reconnect_max_s)
        )

    @property
    def connected(self) -> bool:
        """Whether the broker has accepted the current connection."""
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        """Wait until the broker has accepted a connection."""
        await self._connected.wait()

    def start(self) -> None:
        """Connect in the background and keep reconnecting until `stop()`."""
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self._settings.mqtt_session_expiry_s
        properties.ReceiveMaximum = self._settings.mqtt_receive_maximum
        # The broker drops, rather than sends us, anything larger.
        properties.MaximumPacketSize = MAX_PACKET_BYTES
        self._client.connect_async(
            self._settings.mqtt_host,
            self._settings.mqtt_port,
            keepalive=self._settings.mqtt_keepalive_s,
            clean_start=False,
            properties=properties,
        )
        rc = self._client.loop_start()
        if rc is not MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttError("cannot start the MQTT network thread", rc=rc)

    async def stop(self) -> None:
        """Disconnect cleanly (the broker then drops our Will) and stop the network thread."""
        self._stopping = True
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)
        self._connected.clear()
        for pending in self._pubacks.values():
            pending.puback.cancel()
        self._pubacks.clear()

    def subscribe(self, topic_filter: str, handler: MessageHandler, *, qos: int = 1) -> None:
        """Register a subscription; it is (re)made on every CONNACK."""
        self._subscriptions[topic_filter] = _Subscription(qos, handler)
        self._client.message_callback_add(topic_filter, partial(self._paho_on_message, handler))
        if self.connected:
            self._client.subscribe(topic_filter, qos=qos)

    def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> asyncio.Future[None]:
        """Queue one message; the future resolves on PUBACK, or fails if the broker refuses it."""
        try:
            info = self._client.publish(topic, payload, qos=qos, retain=retain)
        except ValueError as exc:
            raise PublishError(topic, str(exc)) from exc
        # NO_CONN is fine: paho keeps QoS 1 messages and sends them after the next CONNACK.
        if info.rc not in _QUEUED:
            raise PublishError(topic, paho.error_string(info.rc), rc=info.rc)
        puback: asyncio.Future[None] = self._loop.create_future()
        if qos == 0:
            puback.set_result(None)
        else:
            self._pubacks[info.mid] = _PendingPuback(topic, retain, puback)
        return puback

    # paho's network thread calls the methods below; each one only hops to the event loop.

    def _paho_on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if not reason_code.is_failure:
            self._connection_epoch += 1
        self._loop.call_soon_threadsafe(
            self._connack, reason_code.is_failure, str(reason_code), flags.session_present
        )

    def _paho_on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._set_reconnect_delay(client)
        self._loop.call_soon_threadsafe(self._disconnected, str(reason_code))

    def _paho_on_publish(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        self._loop.call_soon_threadsafe(
            self._puback,
            mid,
            reason_code.is_failure,
            reason_code.value == _NO_MATCHING_SUBSCRIBERS,
            str(reason_code),
        )

    def _paho_on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            self._loop.call_soon_threadsafe(log.error, "broker refused subscription: %s", refused)

    def _paho_on_message(
        self, handler: MessageHandler, client: paho.Client, userdata: Any, message: paho.MQTTMessage
    ) -> None:
        inbound = InboundMessage(
            topic=message.topic,
            payload=bytes(message.payload),
            qos=message.qos,
            dup=bool(message.dup),
            on_puback=partial(self._send_puback, message.mid, message.qos, self._connection_epoch),
        )
        self._loop.call_soon_threadsafe(handler, inbound)

    def _paho_on_unexpected_message(
        self, client: paho.Client, userdata: Any, message: paho.MQTTMessage
    ) -> None:
        # Nothing we subscribe to lands here; acknowledge it so it does not hold a flow slot.
        self._loop.call_soon_threadsafe(log.warning, "unexpected message on %s", message.topic)
        if message.qos > 0:
            client.ack(message.mid, message.qos)

    # Event-loop side.

    def _connack(self, refused: bool, reason: str, session_present: bool) -> None:
        if refused:
            log.error("broker %s refused the connection: %s", self._settings.mqtt_host, reason)
            return
        log.info(
            "connected to broker %s (session present: %s)",
            self._settings.mqtt_host,
            session_present,
        )
        self._connected.set()
        for topic_filter, subscription in self._subscriptions.items():
            self._client.subscribe(topic_filter, qos=subscription.qos)
        if self._on_connect_hook is not None:
            self._on_connect_hook(session_present)

    def _disconnected(self, reason: str) -> None:
        if self._connected.is_set() and not self._stopping:
            log.warning("disconnected from broker %s: %s", self._settings.mqtt_host, reason)
        self._connected.clear()

    def _puback(self, mid: int, refused: bool, unheard: bool, reason: str) -> None:
        pending = self._pubacks.pop(mid, None)
        if pending is None:
            return
        puback = pending.puback
        if puback.done():
            return
        if refused:
            puback.set_exception(PublishError(pending.topic, f"broker answered {reason}"))
        elif unheard and not pending.retain:
            # Not kept anywhere: e.g. Mosquitto restarted from its persistence without the
            # cloud's shared subscriptions, which it does not save, until the cloud resubscribes.
            puback.set_exception(NotDelivered(pending.topic))
        else:
            puback.set_result(None)

    def _send_puback(self, mid: int, qos: int, epoch: int) -> None:
        if qos == 0 or epoch != self._connection_epoch:
            return
        self._client.ack(mid, qos)


def _disable_nagle(client: paho.Client, userdata: Any, sock: Any) -> None:
    # paho leaves Nagle on: a small ack would wait ~40 ms for the broker's delayed TCP ACK.
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

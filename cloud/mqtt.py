"""The cloud's MQTT transport: the only gmqtt import. Flow-controlled QoS 1 publishing, PUBACK
futures, shared subscriptions restored on every CONNACK, PUBACK of inbound messages only after
their handler has finished (so nothing acknowledged to the broker is lost on a crash)."""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from gmqtt import Client, Subscription
from gmqtt.mqtt.constants import MQTTv50, PubRecReasonCode
from gmqtt.storage import PersistentStorage

from cloud.errors import BrokerUnavailable
from wire.limits import MAX_PACKET_BYTES

log = logging.getLogger(__name__)

InboundHandler = Callable[[str, bytes, bool], Awaitable[None]]


def tls_context(ca_file: Path, cert_file: Path | None, key_file: Path | None) -> ssl.SSLContext:
    """A client TLS context that trusts only our CA and, if given, presents our certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None:
        context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    return context


class _FlowWindow:
    """Counts QoS 1 publishes awaiting PUBACK against the broker's receive-maximum."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_flight = 0
        self._changed = asyncio.Condition()

    async def acquire(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.in_flight < self.capacity)
            self.in_flight += 1

    def release(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        asyncio.get_running_loop().create_task(self._notify(), name="mqtt-flow-notify")

    async def resize(self, capacity: int) -> None:
        async with self._changed:
            self.capacity = capacity
            self._changed.notify_all()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


class _AckTrackingStorage(PersistentStorage):  # type: ignore[misc]
    """gmqtt's in-flight store, taught to resolve a future when a message's PUBACK arrives."""

    def __init__(self, on_acked: Callable[[asyncio.Future[None]], None]) -> None:
        super().__init__()
        self._on_acked = on_acked
        self._by_mid: dict[int, asyncio.Future[None]] = {}
        self.next_future: asyncio.Future[None] | None = None

    def push_message(self, mid: int, raw_package: bytes) -> None:
        super().push_message(mid, raw_package)
        # gmqtt pushes synchronously inside publish(): this is the message just published.
        if self.next_future is not None:
            self._by_mid[mid] = self.next_future
            self.next_future = None

    def remove_message_by_mid(self, mid: int) -> None:
        super().remove_message_by_mid(mid)
        future = self._by_mid.pop(mid, None)
        if future is not None:
            self._on_acked(future)

    def clear(self) -> None:
        # The broker has no session for us: these publishes are gone, callers must retry.
        super().clear()
        pending, self._by_mid = self._by_mid, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(BrokerUnavailable("session lost before PUBACK"))
            self._on_acked(future)


class MqttTransport:
    """One gmqtt client: connect with retry, subscribe, publish QoS 1 with flow control."""

    def __init__(
        self,
        *,
        client_id: str,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        session_expiry_s: int = 3600,
        inbound_receive_maximum: int = 1000,
        keepalive_s: int = 30,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._keepalive_s = keepalive_s
        self._reconnect_min_s = reconnect_min_s
        self._reconnect_max_s = reconnect_max_s
        self._reconnect_s = reconnect_min_s
        self._ssl = ssl_context
        self._window = _FlowWindow(capacity=20)
        self._storage = _AckTrackingStorage(self._on_puback)
        self._client = Client(
            client_id,
            clean_session=False,
            optimistic_acknowledgement=False,
            persistent_storage=self._storage,
            session_expiry_interval=session_expiry_s,
            receive_maximum=inbound_receive_maximum,
            # The broker drops, rather than sends us, anything larger.
            maximum_packet_size=MAX_PACKET_BYTES,
        )
        if username:
            self._client.set_auth_credentials(username, password)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.reconnect_delay = reconnect_min_s
        self._subscriptions: list[Subscription] = []
        self._handler: InboundHandler | None = None
        self._connected = asyncio.Event()
        self._stopping = False

    @property
    def connected(self) -> bool:
        """Whether a CONNACK has been received on the current connection."""
        return self._connected.is_set()

    @property
    def in_flight(self) -> int:
        """QoS 1 publishes still waiting for their PUBACK."""
        return self._window.in_flight

    async def wait_connected(self) -> None:
        """Wait until the client is connected to the broker."""
        await self._connected.wait()

    def set_handler(self, handler: InboundHandler) -> None:
        """Route every inbound message (topic, payload, retained) to this coroutine."""
        self._handler = handler

    def add_subscriptions(self, topic_filters: Sequence[str]) -> None:
        """Register QoS 1 subscriptions; they are (re)made on every CONNACK."""
        self._subscriptions.extend(Subscription(f, qos=1) for f in topic_filters)
        if self.connected:
            self._client.subscribe(list(self._subscriptions))

    async def connect_forever(self) -> None:
        """Connect, retrying with capped jittered backoff; gmqtt reconnects after that."""
        delay_s = 0.2
        while not self._stopping:
            try:
                await self._client.connect(
                    self._host,
                    self._port,
                    ssl=self._ssl or False,
                    version=MQTTv50,
                    keepalive=self._keepalive_s,
                )
                return
            except (TimeoutError, OSError, ConnectionError) as exc:
                log.warning("broker %s:%s unreachable (%s); retrying", self._host, self._port, exc)
            except Exception as exc:  # noqa: BLE001 - gmqtt raises its own connect errors
                log.warning("broker %s:%s refused us (%s); retrying", self._host, self._port, exc)
            await asyncio.sleep(delay_s * (0.5 + random.random()))
            delay_s = min(delay_s * 2, 10.0)

    async def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, expiry_s: int | None = None
    ) -> asyncio.Future[None]:
        """Publish at QoS 1 once the flow window allows; the returned future ends on PUBACK."""
        if not self.connected:
            raise BrokerUnavailable("not connected to the broker")
        await self._window.acquire()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        properties: dict[str, Any] = {}
        if expiry_s is not None:
            properties["message_expiry_interval"] = max(1, expiry_s)
        while True:
            self._storage.next_future = future
            try:
                self._client.publish(topic, payload, qos=1, retain=retain, **properties)
                return future
            except OverflowError:
                # gmqtt ran out of packet ids (the broker's window shrank): wait for a PUBACK.
                self._storage.next_future = None
                await asyncio.sleep(0.005)
            except Exception as exc:
                self._storage.next_future = None
                self._window.release()
                raise BrokerUnavailable(f"publish failed: {exc}") from exc

    async def disconnect(self) -> None:
        """Disconnect cleanly, keeping the broker-side session for the next start."""
        self._stopping = True
        if self.connected:
            await self._client.disconnect()
        self._connected.clear()

    def _on_puback(self, future: asyncio.Future[None]) -> None:
        if not future.done():
            future.set_result(None)
        self._window.release()

    def _on_connect(self, client: Client, flags: int, rc: int, properties: Any) -> None:
        window = self._broker_receive_maximum()
        asyncio.get_running_loop().create_task(self._window.resize(window), name="mqtt-window")
        if self._subscriptions:
            client.subscribe(list(self._subscriptions))
        self._connected.set()
        self._reconnect_s = self._reconnect_min_s
        log.info("connected to broker %s:%s (receive-maximum %s)", self._host, self._port, window)

    def _broker_receive_maximum(self) -> int:
        props = self._client._package_handler._connack_properties
        values = props.get("receive_maximum") if props else None
        receive_maximum = int(values[0]) if values else 65535
        # gmqtt refuses the last id of the window; subscribe packets share the id space.
        return max(1, min(receive_maximum, 65535) - 2)

    def _on_disconnect(self, client: Client, packet: Any, exc: Any = None) -> None:
        self._connected.clear()
        # gmqtt waits a fixed delay before each reconnect: make it a capped, jittered backoff so
        # a fleet of cloud processes does not stampede a restarted broker.
        client.reconnect_delay = self._reconnect_s * random.uniform(0.5, 1.0)
        self._reconnect_s = min(self._reconnect_s * 2, self._reconnect_max_s)
        if not self._stopping:
            log.warning("lost the broker connection; gmqtt is reconnecting")

    async def _on_message(
        self, client: Client, topic: str, payload: bytes, qos: int, properties: Any
    ) -> int:
        if self._handler is None:
            return int(PubRecReasonCode.UNSPECIFIED_ERROR)
        retained = bool(properties.get("retain")) if isinstance(properties, dict) else False
        await self._handler(topic, payload, retained)
        return int(PubRecReasonCode.SUCCESS)

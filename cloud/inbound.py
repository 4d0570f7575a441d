"""Routes inbound MQTT messages to their consumers: validate, check ownership, commit, and
only then let the transport PUBACK. Malformed payloads are counted and dropped, never retried."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import BaseModel

from cloud.batching import BatchCommitter
from cloud.commands.presence import PresenceTracker
from cloud.commands.reports import GatewayReport
from cloud.metrics import CloudMetrics
from wire import Ack, GatewayState, MalformedMessage, MeterEvent, TelemetryBatch, TopicError, decode
from wire.topics import ParsedTopic, TopicKind, parse

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

TelemetrySink = Callable[[TelemetryBatch], Awaitable[None]]

_RETRY_CAP_S = 5.0


class InboundRouter:
    """The transport's message handler."""

    def __init__(
        self,
        *,
        reports: BatchCommitter[GatewayReport],
        presence: PresenceTracker,
        metrics: CloudMetrics,
        telemetry: TelemetrySink | None = None,
    ) -> None:
        self._reports = reports
        self._presence = presence
        self._metrics = metrics
        self._telemetry = telemetry

    async def __call__(self, topic: str, payload: bytes, retained: bool) -> None:
        """Handle one message; returns once its effect is committed (or it was dropped)."""
        try:
            parsed = parse(topic)
        except TopicError as exc:
            self._malformed("topic", topic, exc)
            return
        if parsed.kind is TopicKind.ACK:
            ack = self._decode(Ack, parsed, topic, payload)
            if ack is not None and self._owned(parsed, ack.dcu_id, ack.meter_id, topic):
                await self._until_committed("acks", self._reports.submit, ack)
        elif parsed.kind is TopicKind.EVENT:
            event = self._decode(MeterEvent, parsed, topic, payload)
            if event is not None and self._owned(parsed, event.dcu_id, event.meter_id, topic):
                await self._until_committed("events", self._reports.submit, event)
        elif parsed.kind is TopicKind.STATE:
            state = self._decode(GatewayState, parsed, topic, payload)
            if state is not None and self._owned(parsed, state.dcu_id, None, topic):
                await self._until_committed("presence", self._presence.handle, state)
        elif parsed.kind is TopicKind.TELEMETRY and self._telemetry is not None:
            batch = self._decode(TelemetryBatch, parsed, topic, payload)
            if batch is not None and self._owned(parsed, batch.dcu_id, None, topic):
                await self._until_committed("telemetry", self._telemetry, batch)

    def _decode(self, model: type[M], parsed: ParsedTopic, topic: str, payload: bytes) -> M | None:
        try:
            return decode(model, payload)
        except MalformedMessage as exc:
            self._malformed(parsed.kind.value, topic, exc)
            return None

    def _owned(self, parsed: ParsedTopic, dcu_id: str, meter_id: str | None, topic: str) -> bool:
        # A gateway may only speak for its own DCU and, per meter topic, for that meter.
        if dcu_id == parsed.dcu_id and (meter_id is None or meter_id == parsed.meter_id):
            return True
        self._metrics.foreign_acks.inc()
        log.warning("payload on %s names DCU %s / meter %s; dropped", topic, dcu_id, meter_id)
        return False

    def _malformed(self, kind: str, topic: str, exc: Exception) -> None:
        self._metrics.malformed_messages.labels(kind).inc()
        log.warning("malformed message on %r dropped: %s", topic, exc)

    async def _until_committed(
        self, loop_name: str, apply: Callable[[T], Awaitable[None]], item: T
    ) -> None:
        # A database outage holds the PUBACK back: the broker keeps the message for us.
        delay_s = 0.1
        while True:
            try:
                await apply(item)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self._metrics.loop_errors.labels(loop_name).inc()
                log.exception("%s: could not commit; retrying in %.1fs", loop_name, delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, _RETRY_CAP_S)

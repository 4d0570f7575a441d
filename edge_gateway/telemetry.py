"""Periodic readings of every meter, stored and published as telemetry batches."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import Protocol

from edge_gateway.errors import MeterLinkError
from edge_gateway.metrics import GatewayMetrics
from edge_gateway.ports import OutboundQueue
from edge_gateway.store import OutboundKind, OutboundMessage, Store
from wire import Reading, TelemetryBatch, encode
from wire import topics as wire_topics

log = logging.getLogger(__name__)

# Readings of this many meters per link request keep each answer frame well under its limit.
_METERS_PER_REQUEST = 200


class ReadingsSource(Protocol):
    """Where instantaneous readings come from."""

    @property
    def roster(self) -> frozenset[str]:
        """Meter ids on this DCU's link."""
        ...

    async def readings(self, meter_ids: Sequence[str] | None = None) -> list[Reading]:
        """Instantaneous registers of these meters."""
        ...


async def run_telemetry(
    source: ReadingsSource,
    store: Store,
    outbound: OutboundQueue,
    *,
    dcu_id: str,
    interval_s: float,
    metrics: GatewayMetrics,
) -> None:
    """Every `interval_s`, read every meter and queue one telemetry batch; never returns."""
    topic = wire_topics.telemetry_topic(dcu_id)
    while True:
        await asyncio.sleep(interval_s)
        readings = await _read_all(source)
        if not readings:
            continue
        batch = TelemetryBatch(dcu_id=dcu_id, batch_id=uuid.uuid4().hex, readings=readings)
        await store.save(None, [OutboundMessage(OutboundKind.TELEMETRY, topic, encode(batch))])
        metrics.telemetry_batches += 1
        outbound.notify()


async def _read_all(source: ReadingsSource) -> list[Reading]:
    meter_ids = sorted(source.roster)
    readings: list[Reading] = []
    for start in range(0, len(meter_ids), _METERS_PER_REQUEST):
        chunk = meter_ids[start : start + _METERS_PER_REQUEST]
        try:
            readings.extend(await source.readings(chunk))
        except MeterLinkError as exc:
            log.info("readings of %d meters skipped: %s", len(chunk), exc.reason)
    return readings

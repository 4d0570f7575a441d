"""Gateways' drop totals: kept only when they grow, even when batches are handled concurrently."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from cloud.db.migrate import upgrade_to_head
from cloud.db.models import Gateway
from cloud.db.session import Database
from cloud.telemetry import DropTracker, TelemetryMetrics
from wire import TelemetryBatch


def _batch(dropped: int, dcu_id: str = "DCU07") -> TelemetryBatch:
    return TelemetryBatch(dcu_id=dcu_id, batch_id=f"b{dropped}", dropped_readings=dropped)


async def test_an_older_smaller_total_never_overtakes_a_newer_one(database_url: str) -> None:
    db = Database.from_url(database_url)
    await upgrade_to_head(db.engine)
    registry = CollectorRegistry()
    tracker = DropTracker(db, TelemetryMetrics(registry))
    try:
        await asyncio.gather(tracker.observe(_batch(28)), tracker.observe(_batch(24)))
        await tracker.observe(_batch(12))
        async with db.read() as session:
            gateway = await session.get(Gateway, "DCU07")  # created: no birth seen yet
        assert gateway is not None and gateway.telemetry_dropped_readings == 28
        gauge = registry.get_sample_value(
            "switchyard_telemetry_gateway_dropped_readings", {"dcu_id": "DCU07"}
        )
        assert gauge == 28
    finally:
        await db.close()

"""Readings kept in the cloud's own database when no InfluxDB is configured, for a few days,
each batch once: its id is remembered in the same transaction as its readings."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from cloud.clock import Clock, utcnow
from cloud.db.models import MeterReadingRecord
from cloud.db.raw import RawSql
from cloud.db.session import Database
from cloud.telemetry.kept import batch_key, claim_in
from cloud.telemetry.metrics import TelemetryMetrics
from cloud.telemetry.retention import prune_every
from wire import TelemetryBatch
from wire.clock import ms_to_datetime

_INSERT_READING = """
INSERT INTO meter_readings (meter_id, at, dcu_id, relay, voltage_v, current_a, active_power_w,
    power_factor, frequency_hz, import_wh, export_wh, import_vah, historical, received_at)
VALUES (:meter_id, :at, :dcu_id, :relay, :voltage_v, :current_a, :active_power_w,
    :power_factor, :frequency_hz, :import_wh, :export_wh, :import_vah, :historical, :received_at)
ON CONFLICT DO NOTHING"""


class ReadingStore:
    """Writes batches of readings once (by batch id, and by meter and time) and prunes old ones."""

    def __init__(
        self,
        db: Database,
        metrics: TelemetryMetrics,
        *,
        retention_days: float,
        clock: Clock = utcnow,
    ) -> None:
        self._db = db
        self._metrics = metrics
        self._retention = timedelta(days=retention_days)
        self._clock = clock

    async def apply_batches(self, batches: Sequence[TelemetryBatch]) -> None:
        """Store the readings of many batches, and their ids, in one transaction; a batch kept
        before (or twice in `batches`) is skipped."""
        received_at = self._clock()
        async with self._db.write() as session:
            # Ten thousand rows a minute for a city: straight to the driver (SQLAlchemy's
            # per-row parameter handling held SQLite's one write lock for a second a round).
            await session.execute(select(1))  # begins the transaction the rows join
            raw = await RawSql.of(session)
            fresh = await claim_in(raw, (batch_key(b) for b in batches), received_at)
            new_batches = []
            for batch in batches:
                if batch_key(batch) in fresh:
                    fresh.discard(batch_key(batch))
                    new_batches.append(batch)
            await raw.executemany(_INSERT_READING, _reading_rows(new_batches, received_at))
        if len(new_batches) < len(batches):
            self._metrics.repeated_batches.inc(len(batches) - len(new_batches))
        for batch in new_batches:
            self._metrics.batches.labels("true" if batch.historical else "false").inc()
            self._metrics.readings.inc(len(batch.readings))

    async def prune(self) -> int:
        """Delete readings older than the retention period; answer how many."""
        cutoff = self._clock() - self._retention
        async with self._db.write() as session:
            result = await session.execute(
                delete(MeterReadingRecord).where(MeterReadingRecord.at < cutoff)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def run_retention(self, interval_s: float) -> None:
        """Prune now and then every `interval_s`, until cancelled."""
        await prune_every(interval_s, self.prune, f"readings (older than {self._retention})")

    async def readings(
        self, meter_id: str, start: datetime, end: datetime, *, limit: int
    ) -> list[MeterReadingRecord]:
        """A meter's readings with start <= at < end, oldest first, at most `limit`."""
        async with self._db.read() as session:
            rows = await session.execute(
                select(MeterReadingRecord)
                .where(
                    MeterReadingRecord.meter_id == meter_id,
                    MeterReadingRecord.at >= start,
                    MeterReadingRecord.at < end,
                )
                .order_by(MeterReadingRecord.at)
                .limit(limit)
            )
            return list(rows.scalars())


def _reading_rows(batches: Sequence[TelemetryBatch], received_at: datetime) -> list[dict[str, Any]]:
    return [
        {
            "meter_id": reading.meter_id,
            "at": ms_to_datetime(reading.at_ms),
            "dcu_id": batch.dcu_id,
            "relay": reading.relay.value,
            "voltage_v": reading.voltage_v,
            "current_a": reading.current_a,
            "active_power_w": reading.active_power_w,
            "power_factor": reading.power_factor,
            "frequency_hz": reading.frequency_hz,
            "import_wh": reading.import_wh,
            "export_wh": reading.export_wh,
            "import_vah": reading.import_vah,
            "historical": batch.historical,
            "received_at": received_at,
        }
        for batch in batches
        for reading in batch.readings
    ]

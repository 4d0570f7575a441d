"""Each gateway batch is kept once, by its id, in the real cloud database: a repeat (a replay after
a lost PUBACK) is acknowledged without a write, also after a restart and from a second process."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select

from cloud.db.migrate import upgrade_to_head
from cloud.db.models import MeterReadingRecord, TelemetryBatchRecord
from cloud.db.session import Database
from cloud.telemetry import (
    DropTracker,
    EmbeddedTelemetry,
    InfluxTelemetry,
    KeptBatches,
    OncePerKey,
    PipelinePolicy,
    ReadingStore,
    TelemetryMetrics,
    build_influx,
)
from wire import Reading, RelayState, TelemetryBatch

DEADLINE_S = 10.0
POLICY = PipelinePolicy(flush_interval_s=0.01, retry_s=0.05, shutdown_grace_s=DEADLINE_S)


class Tsdb:
    """A PointWriter keeping every line it is sent; `gate` holds writes back when cleared."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.gate = threading.Event()
        self.gate.set()
        self.writing = threading.Event()

    def write(self, chunk: bytes) -> None:
        self.writing.set()
        self.gate.wait(DEADLINE_S)
        self.lines += chunk.splitlines()

    def close(self) -> None:
        """Nothing to release."""

    def readings(self) -> list[bytes]:
        return [line for line in self.lines if line.startswith(b"meter_reading,")]


def _batch(
    batch_id: str, *, at_ms: int = 1_700_000_000_000, historical: bool = False
) -> TelemetryBatch:
    readings = [
        Reading(
            meter_id=f"MTR{m:04d}",
            at_ms=at_ms,
            relay=RelayState.CONNECTED,
            voltage_v=231.0,
            current_a=1.0,
            active_power_w=230.0,
            power_factor=0.95,
            frequency_hz=50.0,
            import_wh=1000,
            export_wh=0,
            import_vah=1050,
        )
        for m in range(3)
    ]
    return TelemetryBatch(
        dcu_id="DCU07", batch_id=batch_id, readings=readings, at_ms=at_ms, historical=historical
    )


def _kept(db: Database) -> KeptBatches:
    return KeptBatches(db, max_age_s=3600.0, max_count=1000)


@asynccontextmanager
async def _influx_cloud(
    database_url: str, tsdb: Tsdb, spool: Path
) -> AsyncIterator[tuple[InfluxTelemetry, CollectorRegistry]]:
    """One run of the time-series path of a cloud process, on its own engine."""
    db = Database.from_url(database_url)
    await upgrade_to_head(db.engine)
    registry = CollectorRegistry()
    telemetry = build_influx(
        db,
        TelemetryMetrics(registry),
        tsdb,
        spool_dir=spool,
        spool_max_bytes=1 << 20,
        policy=POLICY,
        kept=_kept(db),
        prune_s=3600.0,
    )
    running = asyncio.create_task(telemetry.run())
    try:
        yield telemetry, registry
    finally:
        await telemetry.close()
        await running
        await db.close()


async def test_a_repeat_is_written_once_also_after_a_restart(
    database_url: str, tmp_path: Path
) -> None:
    tsdb = Tsdb()
    async with asyncio.timeout(DEADLINE_S):
        async with _influx_cloud(database_url, tsdb, tmp_path / "spool") as (telemetry, registry):
            # A redelivery while the first copy is still being written, then a replay after.
            await asyncio.gather(
                telemetry.handle_batch(_batch("b1")), telemetry.handle_batch(_batch("b1"))
            )
            await telemetry.handle_batch(_batch("b1", historical=True))
            assert registry.get_sample_value("switchyard_telemetry_repeated_batches_total") == 2
        assert len(tsdb.readings()) == 3
        async with _influx_cloud(database_url, tsdb, tmp_path / "spool") as (telemetry, registry):
            await telemetry.handle_batch(_batch("b1", historical=True))  # after a restart
            await telemetry.handle_batch(_batch("b2", at_ms=1_700_000_060_000))
            assert registry.get_sample_value("switchyard_telemetry_repeated_batches_total") == 1
    assert len(tsdb.readings()) == 6 == len(set(tsdb.readings()))


async def test_a_copy_arriving_at_a_second_process_mid_write_waits_and_is_not_written(
    database_url: str, tmp_path: Path
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("one cloud process per SQLite database: copies meet in OncePerKey")
    first_tsdb, second_tsdb = Tsdb(), Tsdb()
    first_tsdb.gate.clear()
    async with (
        asyncio.timeout(DEADLINE_S),
        _influx_cloud(database_url, first_tsdb, tmp_path / "a") as (first, _),
        _influx_cloud(database_url, second_tsdb, tmp_path / "b") as (second, registry),
    ):
        writing = asyncio.create_task(first.handle_batch(_batch("b1")))
        await asyncio.to_thread(first_tsdb.writing.wait, DEADLINE_S)
        copy = asyncio.create_task(second.handle_batch(_batch("b1")))
        await asyncio.sleep(0.2)  # time for the copy to reach the claim held by the first
        assert not copy.done(), "the copy was acknowledged before the first write ended"
        first_tsdb.gate.set()
        await asyncio.gather(writing, copy)
        assert registry.get_sample_value("switchyard_telemetry_repeated_batches_total") == 1
    assert len(first_tsdb.readings()) == 3 and second_tsdb.readings() == []


async def test_a_claim_that_is_not_kept_leaves_the_batch_new(database_url: str) -> None:
    first_db, second_db = Database.from_url(database_url), Database.from_url(database_url)
    await upgrade_to_head(first_db.engine)
    try:
        async with asyncio.timeout(DEADLINE_S):
            async with _kept(first_db).claim([("DCU07", "b1")]) as claim:
                assert claim.fresh == {("DCU07", "b1")}  # nothing kept: rolled back
            async with _kept(second_db).claim([("DCU07", "b1")]) as claim:
                assert claim.fresh == {("DCU07", "b1")}
                claim.keep()
            async with _kept(first_db).claim([("DCU07", "b1"), ("DCU07", "b2")]) as claim:
                assert claim.fresh == {("DCU07", "b2")}
    finally:
        await first_db.close()
        await second_db.close()


async def test_ids_are_forgotten_by_age_and_beyond_the_count(database_url: str) -> None:
    db = Database.from_url(database_url)
    await upgrade_to_head(db.engine)
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    try:
        for minutes in range(10):  # one id a minute, the last one now
            at = now - timedelta(minutes=9 - minutes)
            kept = KeptBatches(db, max_age_s=3600.0, max_count=1000, clock=lambda at=at: at)
            await kept.remember([("DCU07", f"b{minutes}")])
        by_age = KeptBatches(db, max_age_s=150.0, max_count=1000, clock=lambda: now)
        assert await by_age.prune() == 7  # older than 2.5 minutes: b0..b6
        by_count = KeptBatches(db, max_age_s=3600.0, max_count=2, clock=lambda: now)
        assert await by_count.prune() == 1
        async with db.read() as session:
            left = set(await session.scalars(select(TelemetryBatchRecord.batch_id)))
        assert left == {"b8", "b9"}
    finally:
        await db.close()


async def test_the_embedded_store_keeps_a_batch_once_with_its_id(database_url: str) -> None:
    db = Database.from_url(database_url)
    await upgrade_to_head(db.engine)
    metrics = TelemetryMetrics(CollectorRegistry())
    telemetry = EmbeddedTelemetry(
        ReadingStore(db, metrics, retention_days=7.0),
        _kept(db),
        DropTracker(db, metrics),
        metrics,
        batch_max=50,
        retention_check_s=3600.0,
        prune_s=3600.0,
    )
    running = asyncio.create_task(telemetry.run())
    try:
        async with asyncio.timeout(DEADLINE_S):
            await asyncio.gather(
                telemetry.handle_batch(_batch("b1")), telemetry.handle_batch(_batch("b1"))
            )
            # The same id again with other reading times: a repeat by its id, not its rows.
            await telemetry.handle_batch(_batch("b1", at_ms=1_700_000_001_000, historical=True))
        async with db.read() as session:
            readings = await session.scalar(select(func.count()).select_from(MeterReadingRecord))
            ids = list(await session.scalars(select(TelemetryBatchRecord.batch_id)))
        assert readings == 3 and ids == ["b1"]
    finally:
        running.cancel()
        await db.close()


async def test_once_per_key_survives_cancelled_copies() -> None:
    once = OncePerKey()
    key = ("DCU07", "b1")
    release = asyncio.Event()
    calls: list[str] = []

    async def keep(name: str) -> bool:
        calls.append(name)
        await release.wait()
        return True

    async with asyncio.timeout(DEADLINE_S):
        first = asyncio.create_task(once.run(key, lambda: keep("first")))
        await asyncio.sleep(0)
        impatient = asyncio.create_task(once.run(key, lambda: keep("impatient")))
        patient = asyncio.create_task(once.run(key, lambda: keep("patient")))
        await asyncio.sleep(0)
        impatient.cancel()  # a waiter that goes away must not disturb the others
        first.cancel()  # the first copy never finishes: a waiter takes over
        await asyncio.sleep(0)
        release.set()
        assert await patient is True
        assert await once.run(key, lambda: keep("later")) is True  # nothing in flight now
    assert first.cancelled() and impatient.cancelled()
    assert calls == ["first", "patient", "later"]

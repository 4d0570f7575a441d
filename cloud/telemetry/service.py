"""Telemetry in the cloud: gateway batches, relay events, command latencies and gateway presence,
to InfluxDB when one is configured, else readings into the cloud's own database."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from cloud.batching import BatchCommitter
from cloud.commands.lifecycle import CommandState, Origin
from cloud.commands.reported import ReadingCorrector
from cloud.db.models import Command, Gateway
from cloud.db.session import Database
from cloud.db.upsert import insert_ignoring_duplicates
from cloud.telemetry.embedded import ReadingStore
from cloud.telemetry.kept import KeptBatches, OncePerKey, batch_key
from cloud.telemetry.lines import batch_lines, command_line, event_line, gateway_state_line
from cloud.telemetry.metrics import TelemetryMetrics
from cloud.telemetry.pipeline import PipelinePolicy, TelemetryPipeline
from cloud.telemetry.retention import prune_every
from cloud.telemetry.spool import Spool
from cloud.telemetry.writer import InfluxWriter, PointWriter
from wire import Action, GatewayState, MeterEvent, TelemetryBatch

log = logging.getLogger(__name__)

_PENDING_LINES = "switchyard.telemetry.lines"


class TelemetryService(Protocol):
    """What the rest of the cloud hands telemetry to."""

    async def handle_batch(self, batch: TelemetryBatch) -> None:
        """Take one validated batch; return once it is durably kept (then it may be PUBACKed)."""
        ...

    async def record_events(self, events: Sequence[MeterEvent]) -> None:
        """Meter events just committed to the database."""
        ...

    async def on_command_final(self, session: AsyncSession, commands: Sequence[Command]) -> None:
        """Commands reached their final state in this (uncommitted) transaction."""
        ...

    def on_gateway_state(self, state: GatewayState) -> None:
        """A birth or Will was applied."""
        ...

    async def run(self) -> None:
        """Background work until cancelled or closed."""
        ...

    async def close(self) -> None:
        """Keep everything accepted (flush or spool) and take nothing more."""
        ...


class DropTracker:
    """Records each gateway's running total of dropped readings, when it grows."""

    def __init__(self, db: Database, metrics: TelemetryMetrics) -> None:
        self._db = db
        self._metrics = metrics
        self._known: dict[str, int] = {}

    @property
    def db(self) -> Database:
        """The cloud database."""
        return self._db

    async def observe(self, batch: TelemetryBatch) -> None:
        """Note the batch's drop total; the database is written only when it has grown."""
        dcu_id, dropped = batch.dcu_id, batch.dropped_readings
        previous = self._known.get(dcu_id, -1)
        if dropped <= previous:
            return
        # Claimed before the first await: batches of one gateway are handled concurrently, and
        # an older, smaller total must not overtake a newer one.
        self._known[dcu_id] = dropped
        self._metrics.gateway_dropped.labels(dcu_id).set(dropped)
        try:
            async with self._db.write() as session:
                if dropped > 0:
                    # Telemetry may come in before the gateway's first birth has been applied.
                    await insert_ignoring_duplicates(
                        session,
                        Gateway,
                        [{"dcu_id": dcu_id, "online": False, "boot_seq": 0, "meter_count": 0}],
                    )
                result = await session.execute(
                    update(Gateway)
                    .where(Gateway.dcu_id == dcu_id, Gateway.telemetry_dropped_readings < dropped)
                    .values(telemetry_dropped_readings=dropped)
                )
        except BaseException:
            if self._known.get(dcu_id) == dropped:
                self._known[dcu_id] = previous  # the batch is retried: write it then
            raise
        if dropped > 0 and int(getattr(result, "rowcount", 0) or 0):
            log.warning("gateway %s has dropped %d readings in all", dcu_id, dropped)


class InfluxTelemetry:
    """Everything to the time-series database through the cloud's own buffer, each gateway
    batch once (a repeat of a batch kept before is acknowledged, not written)."""

    def __init__(
        self,
        pipeline: TelemetryPipeline,
        kept: KeptBatches,
        drops: DropTracker,
        metrics: TelemetryMetrics,
        *,
        prune_s: float,
    ) -> None:
        self.pipeline = pipeline
        self._kept = kept
        self._once = OncePerKey()
        self._drops = drops
        self._relays = ReadingCorrector(drops.db)
        self._metrics = metrics
        self._prune_s = prune_s

    async def handle_batch(self, batch: TelemetryBatch) -> None:
        """Take one validated batch; return once it is written or spooled, or known as kept."""
        await self._drops.observe(batch)
        await self._relays.correct(batch)
        entries = len(batch.readings) + len(batch.profile)
        points = entries + (1 if batch.at_ms else 0)
        key = batch_key(batch)

        async def keep() -> bool:
            return await self.pipeline.submit(batch_lines(batch), points, key)

        if await self._once.run(key, keep):
            self._metrics.batches.labels("true" if batch.historical else "false").inc()
            self._metrics.readings.inc(entries)
        else:
            self._metrics.repeated_batches.inc()

    async def record_events(self, events: Sequence[MeterEvent]) -> None:
        """Meter events just committed to the database."""
        if events:
            self.pipeline.offer(b"".join(event_line(e) for e in events), len(events))

    async def on_command_final(self, session: AsyncSession, commands: Sequence[Command]) -> None:
        """Write the commands' points once their transaction commits (never for a rollback)."""
        pending: list[bytes] | None = session.info.get(_PENDING_LINES)
        if pending is None:
            pending = session.info[_PENDING_LINES] = []
            lines = pending

            def committed(_: Session) -> None:
                self.pipeline.offer(b"".join(lines), len(lines))

            event.listen(session.sync_session, "after_commit", committed, once=True)
        pending.extend(_command_point(command) for command in commands)

    def on_gateway_state(self, state: GatewayState) -> None:
        """A birth or Will was applied."""
        self.pipeline.offer(gateway_state_line(state), 1)

    async def run(self) -> None:
        """Flush and replay until closed; forget old batch ids now and then."""
        async with asyncio.TaskGroup() as tasks:
            pruning = tasks.create_task(
                prune_every(self._prune_s, self._kept.prune, "telemetry batch ids"),
                name="telemetry-batch-ids",
            )
            await self.pipeline.run()
            pruning.cancel()

    async def close(self) -> None:
        """Flush or spool everything accepted."""
        await self.pipeline.close()


class EmbeddedTelemetry:
    """No InfluxDB: readings go to the cloud database for a few days; the rest is there already."""

    def __init__(
        self,
        store: ReadingStore,
        kept: KeptBatches,
        drops: DropTracker,
        metrics: TelemetryMetrics,
        *,
        batch_max: int,
        retention_check_s: float,
        prune_s: float,
    ) -> None:
        self.store = store
        self._kept = kept
        self._prune_s = prune_s
        self._drops = drops
        self._relays = ReadingCorrector(drops.db)
        self._metrics = metrics
        self._retention_check_s = retention_check_s
        self._committer: BatchCommitter[TelemetryBatch] = BatchCommitter(
            "readings", store.apply_batches, max_items=batch_max, window_s=0.005
        )

    async def handle_batch(self, batch: TelemetryBatch) -> None:
        """Take one validated batch; return once its readings are committed (or were before)."""
        await self._drops.observe(batch)
        await self._relays.correct(batch)
        await self._committer.submit(batch)

    async def record_events(self, events: Sequence[MeterEvent]) -> None:
        """Events are in the database already."""

    async def on_command_final(self, session: AsyncSession, commands: Sequence[Command]) -> None:
        """Commands and their transitions are in the database already."""

    def on_gateway_state(self, state: GatewayState) -> None:
        """Presence is in the database already."""

    async def run(self) -> None:
        """Commit readings and prune old ones until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._committer.run(), name="reading-batches")
            tasks.create_task(
                self.store.run_retention(self._retention_check_s), name="reading-retention"
            )
            tasks.create_task(
                prune_every(self._prune_s, self._kept.prune, "telemetry batch ids"),
                name="telemetry-batch-ids",
            )

    async def close(self) -> None:
        """Nothing is held in memory: a batch is acknowledged only once committed."""


def _command_point(command: Command) -> bytes:
    finished_at = command.updated_at
    power_ms: float | None = None
    if (
        command.state == CommandState.SUCCEEDED.value
        and command.origin == Origin.PAYMENT.value
        and command.action == Action.CONNECT.value
    ):
        power_ms = (finished_at - command.requested_at).total_seconds() * 1000
    return command_line(
        dcu_id=command.dcu_id,
        meter_id=command.meter_id,
        action=command.action,
        origin=command.origin,
        outcome=command.state,
        created_at=command.created_at,
        finished_at=finished_at,
        attempts=command.attempts,
        payment_to_power_ms=power_ms,
    )


def build_influx(
    db: Database,
    metrics: TelemetryMetrics,
    writer: PointWriter,
    *,
    spool_dir: Path,
    spool_max_bytes: int,
    policy: PipelinePolicy,
    kept: KeptBatches,
    prune_s: float,
) -> InfluxTelemetry:
    """The time-series path, with any PointWriter (tests and benchmarks pass their own)."""
    spool = Spool(spool_dir, max_bytes=spool_max_bytes)
    pipeline = TelemetryPipeline(writer, spool, policy, metrics, kept)
    return InfluxTelemetry(pipeline, kept, DropTracker(db, metrics), metrics, prune_s=prune_s)


def influx_writer(
    url: str, token: str, org: str, bucket: str, *, timeout_s: float, gzip_level: int = 6
) -> InfluxWriter:
    """The production writer: influxdb-client, gzip, synchronous writes."""
    return InfluxWriter(url, token, org, bucket, timeout_s=timeout_s, gzip_level=gzip_level)

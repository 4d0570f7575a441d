"""Periodic readings and load-profile blocks of every meter, stored as telemetry batches."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Protocol

from edge_gateway.errors import MeterLinkError
from edge_gateway.metrics import GatewayMetrics
from edge_gateway.telemetry_buffer import TelemetryBuffer
from edge_gateway.telemetry_publisher import TelemetryPublisher
from wire import LoadProfileBlock, Reading, TelemetryBatch, encode
from wire.clock import now_ms
from wire.limits import MAX_ENTRIES
from wire.messages import PROFILE_BLOCK_MS

log = logging.getLogger(__name__)

# Readings of this many meters per link request, and per batch: each answer frame and each
# MQTT message stays well under its size limit (about 60 KB of JSON).
METERS_PER_BATCH = 200
# Profile blocks of one meter per batch (6 hours): a batch stays within wire.limits.MAX_ENTRIES,
# and a meter back after a long outage catches up over the next intervals, nothing skipped.
PROFILE_BLOCKS_PER_METER = (MAX_ENTRIES - METERS_PER_BATCH) // METERS_PER_BATCH


class TelemetrySource(Protocol):
    """Where readings and load profiles come from: the meter link."""

    @property
    def roster(self) -> frozenset[str]:
        """Meter ids on this DCU's link."""
        ...

    async def readings(self, meter_ids: Sequence[str] | None = None) -> list[Reading]:
        """Instantaneous registers of these meters."""
        ...

    async def profile(self, meter_id: str, since_ms: int) -> list[LoadProfileBlock]:
        """Load-profile blocks of one meter starting at or after `since_ms`."""
        ...


class TelemetryCollector:
    """Reads every meter each interval; stores batches, then offers them for live publishing."""

    def __init__(
        self,
        source: TelemetrySource,
        buffer: TelemetryBuffer,
        publisher: TelemetryPublisher,
        *,
        dcu_id: str,
        metrics: GatewayMetrics,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._source = source
        self._buffer = buffer
        self._publisher = publisher
        self._dcu_id = dcu_id
        self._metrics = metrics
        self._clock = clock
        self._cursors: dict[str, int] | None = None

    async def run(self, interval_s: float) -> None:
        """Collect every `interval_s` until cancelled, from a random phase within the interval.

        The phase spreads a city's gateways over the interval, as DCUs' read schedules are:
        started together, they would otherwise all read and report in the same second.
        """
        await asyncio.sleep(random.uniform(0, interval_s))
        while True:
            started = time.monotonic()
            await self.collect_once()
            await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - started)))

    async def collect_once(self) -> int:
        """Read every meter once and store what was read; answer how many batches were stored."""
        if self._cursors is None:
            self._cursors = await self._buffer.profile_cursors()
            totals = await self._buffer.totals()
            self._metrics.telemetry_dropped_batches = totals.batches
            self._metrics.telemetry_dropped_entries = totals.entries
        meter_ids = sorted(self._source.roster)
        stored = 0
        for start in range(0, len(meter_ids), METERS_PER_BATCH):
            chunk = meter_ids[start : start + METERS_PER_BATCH]
            read_ms = self._clock()  # before the read: see docs/design.md, reported relay state
            try:
                readings = await self._source.readings(chunk)
            except MeterLinkError as exc:
                log.info("readings of %d meters skipped: %s", len(chunk), exc.reason)
                continue
            profile, cursors = await self._profiles(readings)
            if readings or profile:
                await self._store(readings, profile, cursors, read_ms)
                stored += 1
        return stored

    async def _profiles(
        self, readings: Sequence[Reading]
    ) -> tuple[list[LoadProfileBlock], dict[str, int]]:
        """Closed load-profile blocks not yet collected, and each meter's cursor after them."""
        assert self._cursors is not None
        due = [r for r in readings if _block_due(self._cursors.get(r.meter_id, 0), r.at_ms)]
        answers = await asyncio.gather(
            *(self._source.profile(r.meter_id, self._cursors.get(r.meter_id, 0)) for r in due),
            return_exceptions=True,
        )
        profile: list[LoadProfileBlock] = []
        cursors: dict[str, int] = {}
        for reading, answer in zip(due, answers, strict=True):
            if isinstance(answer, MeterLinkError):
                continue  # asked again next time: the cursor has not moved
            if isinstance(answer, BaseException):
                raise answer
            cursor = self._cursors.get(reading.meter_id, 0)
            answer = answer[:PROFILE_BLOCKS_PER_METER]
            if answer:
                profile.extend(answer)
                cursors[reading.meter_id] = answer[-1].block_start_ms + PROFILE_BLOCK_MS
            elif cursor == 0:
                # Nothing captured yet: the block now open is the first one to collect.
                cursors[reading.meter_id] = reading.at_ms - reading.at_ms % PROFILE_BLOCK_MS
        return profile, cursors

    async def _store(
        self,
        readings: list[Reading],
        profile: list[LoadProfileBlock],
        cursors: dict[str, int],
        read_ms: int,
    ) -> None:
        batch_id = uuid.uuid4().hex
        at_ms = self._clock()

        def build(dropped_entries: int) -> bytes:
            batch = TelemetryBatch(
                dcu_id=self._dcu_id,
                batch_id=batch_id,
                readings=readings,
                profile=profile,
                at_ms=at_ms,
                read_ms=read_ms,
                dropped_readings=dropped_entries,
            )
            return encode(batch)

        appended = await self._buffer.append(
            build,
            entries=len(readings) + len(profile),
            profile_cursors=cursors,
            keep=self._publisher.in_flight,
            readings=len(readings),
        )
        assert self._cursors is not None
        self._cursors.update(cursors)
        metrics = self._metrics
        metrics.telemetry_batches += 1
        metrics.telemetry_entries += len(readings) + len(profile)
        metrics.telemetry_dropped_batches = appended.totals.batches
        metrics.telemetry_dropped_entries = appended.totals.entries
        if appended.dropped_now.batches:
            log.warning(
                "telemetry backlog full: dropped the %d oldest batches (%d readings), %d in all",
                appended.dropped_now.batches,
                appended.dropped_now.entries,
                appended.totals.entries,
            )
        self._publisher.offer(appended.row)


def _block_due(cursor_ms: int, meter_now_ms: int) -> bool:
    """Whether a block at or after the cursor has closed by meter time `meter_now_ms`."""
    return cursor_ms == 0 or meter_now_ms >= cursor_ms + PROFILE_BLOCK_MS

"""The cloud's own telemetry buffer: bounded, flushed in chunks, spooled to disk while the
time-series database is down and replayed after, flushed on shutdown."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from cloud.telemetry.errors import (
    KeptBatchesUnavailable,
    PointsRejected,
    SpoolFull,
    TsdbUnavailable,
)
from cloud.telemetry.kept import BatchClaims, BatchKey
from cloud.telemetry.metrics import TelemetryMetrics
from cloud.telemetry.spool import Spool, SpoolFile
from cloud.telemetry.writer import PointWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelinePolicy:
    """Sizes and timings of the buffer."""

    max_pending_points: int = 200_000
    flush_points: int = 10_000
    flush_interval_s: float = 0.2
    retry_s: float = 2.0
    shutdown_grace_s: float = 10.0
    # Chunks written at once: compression and the database's parsing overlap.
    write_concurrency: int = 2


@dataclass(slots=True)
class _Chunk:
    lines: bytes
    points: int
    # True once kept, False if a copy was kept before; None: nobody waits (points from hooks).
    accepted: asyncio.Future[bool] | None
    key: BatchKey | None = None  # a gateway's batch; None for derived points


@dataclass
class PipelineStats:
    """Running totals, in points, of where the points went."""

    written: int = 0
    spooled: int = 0
    replayed: int = 0
    rejected: int = 0
    repeated_batches: int = 0  # kept before: acknowledged, not written
    write_seconds: float = 0.0


# A caller of `submit` is released only when its lines are in the database or in the spool on
# disk: the MQTT PUBACK waits for that, so a crash loses nothing the broker has forgotten. After
# one failed write, chunks go straight to the spool until a replay gets through again, so a
# database outage costs one timeout, not one per chunk. A gateway's batch is claimed by its key
# just before its chunk is written (`BatchClaims`), and acknowledged only once the key is
# remembered: a copy kept before is released as a repeat, never written twice.
class TelemetryPipeline:
    """From many producers to the database, in chunks, one write at a time."""

    def __init__(
        self,
        writer: PointWriter,
        spool: Spool,
        policy: PipelinePolicy,
        metrics: TelemetryMetrics,
        claims: BatchClaims,
    ) -> None:
        self._writer = writer
        self._claims = claims
        self._spool = spool
        self._policy = policy
        self._metrics = metrics
        self.stats = PipelineStats()
        self._pending: deque[_Chunk] = deque()
        self._queued_points = 0  # in `_pending`, not yet taken by a write
        self._pending_points = 0  # queued or being written
        self._room = asyncio.Event()
        self._room.set()
        self._has_data = asyncio.Event()
        self._full = asyncio.Event()
        self._replay_wake = asyncio.Event()
        self._tsdb_up = True
        self._closing = False
        self._closed = asyncio.Event()
        self._rejected_dir = spool.directory / "rejected"
        metrics.spool_bytes.set(spool.size_bytes)

    @property
    def pending_points(self) -> int:
        """Points accepted into memory and not yet written or spooled."""
        return self._pending_points

    @property
    def tsdb_up(self) -> bool:
        """False from a failed write until a replay succeeds."""
        return self._tsdb_up

    async def submit(self, lines: bytes, points: int, key: BatchKey | None = None) -> bool:
        """Queue lines, waiting for room; return once they are written or spooled (True), or
        found kept before under the same batch key (False)."""
        while self._pending_points >= self._policy.max_pending_points or self._closing:
            if self._closing:
                # Shutting down: never acknowledged, so the broker redelivers it next time.
                await asyncio.Event().wait()
            self._room.clear()
            await self._room.wait()
        accepted: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._enqueue(_Chunk(lines, points, accepted, key))
        return await accepted

    def offer(self, lines: bytes, points: int) -> None:
        """Queue derived points (events, commands) without waiting: the command path never
        blocks on the time-series database; these few points may pass the bound."""
        if not self._closing:
            self._enqueue(_Chunk(lines, points, None))

    async def run(self) -> None:
        """Flush and replay until closed."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._replay_loop(), name="telemetry-replay")
            await self._flush_loop()
        self._closed.set()

    async def close(self) -> None:
        """Stop taking points, write or spool every accepted one, then stop the loops."""
        self._closing = True
        self._has_data.set()
        self._full.set()
        self._replay_wake.set()
        held = self._pending_points
        before = (self.stats.written, self.stats.spooled)
        try:
            async with asyncio.timeout(self._policy.shutdown_grace_s):
                await self._closed.wait()
        except TimeoutError:
            log.error("telemetry: %d points not flushed at shutdown", self._pending_points)
        log.info(
            "telemetry: %d points held at shutdown: %d written, %d spooled; messages arriving"
            " from now on stay unacknowledged and the broker delivers them again",
            held,
            self.stats.written - before[0],
            self.stats.spooled - before[1],
        )
        self._writer.close()

    def _enqueue(self, chunk: _Chunk) -> None:
        self._pending.append(chunk)
        self._pending_points += chunk.points
        self._queued_points += chunk.points
        self._metrics.pending_points.set(self._pending_points)
        self._has_data.set()
        if self._queued_points >= self._policy.flush_points:
            self._full.set()

    async def _flush_loop(self) -> None:
        slots = asyncio.Semaphore(self._policy.write_concurrency)
        async with asyncio.TaskGroup() as deliveries:
            while True:
                if not self._pending:
                    if self._closing:
                        return  # the TaskGroup waits for the deliveries still running
                    self._has_data.clear()
                    await self._has_data.wait()
                    continue
                if not self._closing and self._queued_points < self._policy.flush_points:
                    # Let a chunk fill up a little: fewer, larger writes.
                    self._full.clear()
                    await _wait_or_timeout(self._full, self._policy.flush_interval_s)
                await slots.acquire()
                chunks = self._take()
                write = self._deliver_and_free(chunks, slots)
                deliveries.create_task(write, name="telemetry-write")

    async def _deliver_and_free(self, chunks: list[_Chunk], slots: asyncio.Semaphore) -> None:
        slot = _Slot(slots)
        try:
            await self._deliver(chunks, slot)
        finally:
            slot.free()
            self._pending_points -= sum(chunk.points for chunk in chunks)
            self._metrics.pending_points.set(self._pending_points)
            if self._pending_points < self._policy.max_pending_points:
                self._room.set()

    def _take(self) -> list[_Chunk]:
        chunks = [self._pending.popleft()]
        points = chunks[0].points
        while self._pending and points + self._pending[0].points <= self._policy.flush_points:
            chunk = self._pending.popleft()
            chunks.append(chunk)
            points += chunk.points
        self._queued_points -= points
        return chunks

    async def _deliver(self, chunks: list[_Chunk], slot: _Slot) -> None:
        """Claim the chunks' batches, then keep the new ones; retry while the claim cannot be
        made (callers keep waiting: without it a write might repeat a batch). The write slot is
        freed once the points are kept: the next write need not wait for the ids' commit."""
        keys = [chunk.key for chunk in chunks if chunk.key is not None]
        if not keys:
            if await self._keep(chunks):
                _release(chunks, kept=True)
            return
        while True:
            try:
                async with self._claims.claim(keys) as claim:
                    fresh = self._release_repeats(chunks, claim.fresh)
                    if fresh and await self._keep(fresh):
                        claim.keep()
                    else:
                        fresh = []
                    slot.free()
            except KeptBatchesUnavailable as exc:
                log.error("telemetry: cannot tell which batches are kept (%s); holding them", exc)
                self._metrics.errors.labels("claim").inc()
                if self._closing:
                    return  # callers stay unacknowledged: the broker keeps their messages
                await asyncio.sleep(self._policy.retry_s)
                continue
            _release(fresh, kept=True)  # after the claim ended: their keys are remembered
            return

    def _release_repeats(self, chunks: list[_Chunk], fresh: frozenset[BatchKey]) -> list[_Chunk]:
        """Release the chunks of batches kept before (or twice in this list); answer the rest."""
        keeping: list[_Chunk] = []
        seen: set[BatchKey] = set()
        repeats: list[_Chunk] = []
        for chunk in chunks:
            if chunk.key is None or (chunk.key in fresh and chunk.key not in seen):
                keeping.append(chunk)
                if chunk.key is not None:
                    seen.add(chunk.key)
            else:
                repeats.append(chunk)
        if repeats:
            self.stats.repeated_batches += len(repeats)
            _release(repeats, kept=False)
        return keeping

    async def _keep(self, chunks: list[_Chunk]) -> bool:
        """Write the chunks, else spool them; retry while neither works; False only if closing
        leaves them neither written nor spooled."""
        body = b"".join(chunk.lines for chunk in chunks)
        points = sum(chunk.points for chunk in chunks)
        while True:
            if self._tsdb_up and await self._write(body, points):
                return True
            try:
                await asyncio.to_thread(self._spool.append, body)
            except (SpoolFull, OSError) as exc:
                log.error("telemetry: cannot spool %d points (%s); holding them", points, exc)
                self._metrics.errors.labels("spool").inc()
                if self._closing:
                    return False  # callers stay unacknowledged: the broker keeps their messages
                await asyncio.sleep(self._policy.retry_s)
                continue
            self.stats.spooled += points
            self._metrics.points.labels("spooled").inc(points)
            self._metrics.spool_bytes.set(self._spool.size_bytes)
            self._replay_wake.set()
            return True

    async def _write(self, body: bytes, points: int) -> bool:
        """Write to the database; False if it is unavailable (the caller spools)."""
        started = time.perf_counter()
        try:
            await asyncio.to_thread(self._writer.write, body)
        except TsdbUnavailable as exc:
            self._mark_down(exc)
            return False
        except PointsRejected as exc:
            await self._reject(body, points, exc)
        except Exception as exc:
            # Boundary of a third-party client: whatever else it raises, keep the points safe.
            log.exception("telemetry: unexpected error from the database client")
            self._mark_down(exc)
            return False
        else:
            self.stats.written += points
            self.stats.write_seconds += time.perf_counter() - started
            self._metrics.points.labels("written").inc(points)
        return True

    def _mark_down(self, exc: Exception) -> None:
        if self._tsdb_up:
            log.warning("telemetry: time-series database unavailable (%s); spooling to disk", exc)
        self._tsdb_up = False
        self._metrics.tsdb_up.set(0)
        self._metrics.errors.labels("write").inc()

    async def _reject(self, body: bytes, points: int, exc: PointsRejected) -> None:
        """Keep a refused chunk aside for a person to look at; it would be refused again."""
        self.stats.rejected += points
        self._metrics.points.labels("rejected").inc(points)
        log.error("telemetry: database refused %d points: %s", points, exc)
        await asyncio.to_thread(_keep_rejected, self._rejected_dir, body)

    async def _replay_loop(self) -> None:
        while not self._closing:
            files = await asyncio.to_thread(self._spool.files)
            if not files:
                self._replay_wake.clear()
                await self._replay_wake.wait()
                continue
            if not await self._replay(files):
                await _wait_or_timeout(self._replay_wake, self._policy.retry_s)
                self._replay_wake.clear()

    async def _replay(self, files: list[SpoolFile]) -> bool:
        """Send spooled chunks oldest first; False at the first one the database refuses."""
        for spooled in files:
            if self._closing:
                return True
            body = await asyncio.to_thread(self._spool.read, spooled)
            points = body.count(b"\n")
            try:
                await asyncio.to_thread(self._writer.write, body)
            except TsdbUnavailable as exc:
                log.debug("telemetry replay: database still unavailable: %s", exc)
                return False
            except PointsRejected as exc:
                await self._reject(body, points, exc)
            except Exception:
                # Boundary of a third-party client: the chunk stays spooled for the next try.
                log.exception("telemetry replay: unexpected error from the database client")
                self._metrics.errors.labels("replay").inc()
                return False
            else:
                self.stats.replayed += points
                self._metrics.points.labels("replayed").inc(points)
            await asyncio.to_thread(self._spool.remove, spooled)
            self._metrics.spool_bytes.set(self._spool.size_bytes)
            if not self._tsdb_up:
                log.info("telemetry: time-series database is back; replaying the spool")
                self._tsdb_up = True
                self._metrics.tsdb_up.set(1)
        return True


class _Slot:
    """One of the pipeline's concurrent writes, freed once."""

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self._slots = slots
        self._held = True

    def free(self) -> None:
        if self._held:
            self._held = False
            self._slots.release()


def _release(chunks: list[_Chunk], *, kept: bool) -> None:
    for chunk in chunks:
        if chunk.accepted is not None and not chunk.accepted.done():
            chunk.accepted.set_result(kept)


def _keep_rejected(directory: Path, body: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{time.time_ns()}.lp").write_bytes(body)


async def _wait_or_timeout(event: asyncio.Event, timeout_s: float) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        pass

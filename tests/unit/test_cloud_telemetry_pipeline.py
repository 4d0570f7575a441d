"""The cloud's telemetry buffer behind the PointWriter seam: backpressure, spool, replay, close."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from cloud.telemetry.errors import PointsRejected, TsdbUnavailable
from cloud.telemetry.kept import BatchKey, Claim
from cloud.telemetry.metrics import TelemetryMetrics
from cloud.telemetry.pipeline import PipelinePolicy, TelemetryPipeline
from cloud.telemetry.spool import Spool
from tests.support.wait import wait_for_async

DEADLINE_S = 5.0


class FakeDatabase:
    """A PointWriter that keeps what it is sent, and can be down, slow or refusing."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.down = False
        self.refuse = False
        self.gate = threading.Event()
        self.gate.set()
        self.closed = False

    def write(self, chunk: bytes) -> None:
        self.gate.wait(DEADLINE_S)
        if self.down:
            raise TsdbUnavailable("connection refused")
        if self.refuse:
            raise PointsRejected(400, "field type conflict")
        self.lines += chunk.splitlines()

    def close(self) -> None:
        self.closed = True


class MemoryClaims:
    """BatchClaims in memory: the keys of every claim that ended kept."""

    def __init__(self) -> None:
        self.kept: set[BatchKey] = set()

    @asynccontextmanager
    async def claim(self, keys: Iterable[BatchKey]) -> AsyncIterator[Claim]:
        claim = Claim(frozenset(set(keys) - self.kept))
        yield claim
        if claim.kept:
            self.kept |= claim.fresh


def _lines(start: int, count: int) -> bytes:
    return b"".join(b"m,meter_id=M f=%di %d\n" % (n, n) for n in range(start, start + count))


def _pipeline(
    db: FakeDatabase,
    spool_dir: Path,
    *,
    max_pending: int = 1000,
    flush: int = 100,
    claims: MemoryClaims | None = None,
    spool_max_bytes: int = 1 << 20,
) -> TelemetryPipeline:
    policy = PipelinePolicy(
        max_pending_points=max_pending,
        flush_points=flush,
        flush_interval_s=0.01,
        retry_s=0.02,
        shutdown_grace_s=DEADLINE_S,
    )
    spool = Spool(spool_dir, max_bytes=spool_max_bytes)
    metrics = TelemetryMetrics(CollectorRegistry())
    return TelemetryPipeline(db, spool, policy, metrics, claims or MemoryClaims())


@pytest.fixture
def db() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture
async def running(db: FakeDatabase, tmp_path: Path) -> AsyncIterator[TelemetryPipeline]:
    pipeline = _pipeline(db, tmp_path / "spool")
    task = asyncio.create_task(pipeline.run())
    yield pipeline
    await pipeline.close()
    await task


async def test_submit_returns_once_written(running: TelemetryPipeline, db: FakeDatabase) -> None:
    async with asyncio.timeout(DEADLINE_S):
        await asyncio.gather(*(running.submit(_lines(n * 10, 10), 10) for n in range(30)))
    assert len(db.lines) == 300 == running.stats.written
    assert len(set(db.lines)) == 300


async def test_a_full_buffer_holds_producers_back(db: FakeDatabase, tmp_path: Path) -> None:
    pipeline = _pipeline(db, tmp_path / "spool", max_pending=50, flush=20)
    task = asyncio.create_task(pipeline.run())
    db.gate.clear()  # the database is slow: the first write hangs
    producers = [asyncio.create_task(pipeline.submit(_lines(n * 10, 10), 10)) for n in range(10)]
    for _ in range(20):
        await asyncio.sleep(0)
    assert pipeline.pending_points <= 50 + 10  # bounded: the rest wait for room
    assert not any(p.done() for p in producers)
    db.gate.set()
    async with asyncio.timeout(DEADLINE_S):
        await asyncio.gather(*producers)
    await pipeline.close()
    await task
    assert len(db.lines) == 100


async def test_outage_spools_to_disk_then_replays_everything_once(
    running: TelemetryPipeline, db: FakeDatabase, tmp_path: Path
) -> None:
    db.down = True
    async with asyncio.timeout(DEADLINE_S):
        await asyncio.gather(*(running.submit(_lines(n * 10, 10), 10) for n in range(5)))
    assert running.stats.spooled == 50 and not running.tsdb_up
    assert list((tmp_path / "spool").glob("*.lp"))
    await running.submit(_lines(50, 10), 10)  # straight to the spool, no write attempt first

    db.down = False
    await wait_for_async(
        "the spool replayed",
        lambda: not list((tmp_path / "spool").glob("*.lp")) and running.tsdb_up,
        timeout_s=DEADLINE_S,
    )
    assert sorted(db.lines) == sorted(_lines(0, 60).splitlines())
    assert running.stats.replayed == 60


async def test_spool_left_by_a_previous_run_is_replayed(db: FakeDatabase, tmp_path: Path) -> None:
    Spool(tmp_path / "spool", max_bytes=1 << 20).append(_lines(0, 7))
    pipeline = _pipeline(db, tmp_path / "spool")
    task = asyncio.create_task(pipeline.run())
    await wait_for_async("7 lines written", lambda: len(db.lines) >= 7, timeout_s=DEADLINE_S)
    await pipeline.close()
    await task
    assert db.lines == _lines(0, 7).splitlines()


async def test_close_flushes_what_was_accepted_and_takes_nothing_more(
    db: FakeDatabase, tmp_path: Path
) -> None:
    pipeline = _pipeline(db, tmp_path / "spool", flush=10_000)  # only time or close flushes
    task = asyncio.create_task(pipeline.run())
    db.gate.clear()
    first = asyncio.create_task(pipeline.submit(_lines(0, 10), 10))
    await asyncio.sleep(0.05)  # the flusher has taken it and waits on the slow database
    accepted = asyncio.create_task(pipeline.submit(_lines(10, 10), 10))
    await asyncio.sleep(0)
    closing = asyncio.create_task(pipeline.close())
    await asyncio.sleep(0)
    late = asyncio.create_task(pipeline.submit(_lines(20, 10), 10))
    db.gate.set()
    async with asyncio.timeout(DEADLINE_S):
        await asyncio.gather(first, accepted, closing, task)
    assert sorted(db.lines) == sorted(_lines(0, 20).splitlines())
    assert not late.done()  # never acknowledged: the broker will deliver it again
    late.cancel()
    assert db.closed


async def test_close_with_the_database_down_spools(db: FakeDatabase, tmp_path: Path) -> None:
    pipeline = _pipeline(db, tmp_path / "spool", flush=10_000)
    task = asyncio.create_task(pipeline.run())
    db.down = True
    accepted = asyncio.create_task(pipeline.submit(_lines(0, 10), 10))
    await asyncio.sleep(0)
    async with asyncio.timeout(DEADLINE_S):
        await pipeline.close()
        await asyncio.gather(accepted, task)
    spooled = b"".join(p.read_bytes() for p in sorted((tmp_path / "spool").glob("*.lp")))
    assert spooled == _lines(0, 10)


async def test_refused_points_are_kept_aside_not_retried_forever(
    running: TelemetryPipeline, db: FakeDatabase, tmp_path: Path
) -> None:
    db.refuse = True
    async with asyncio.timeout(DEADLINE_S):
        await running.submit(_lines(0, 5), 5)
    assert running.stats.rejected == 5
    kept = list((tmp_path / "spool" / "rejected").glob("*.lp"))
    assert [p.read_bytes() for p in kept] == [_lines(0, 5)]
    db.refuse = False
    await running.submit(_lines(5, 5), 5)
    assert db.lines == _lines(5, 5).splitlines()


async def test_derived_points_never_block(running: TelemetryPipeline, db: FakeDatabase) -> None:
    db.gate.clear()
    for n in range(2000):  # past the bound: offer() still returns at once
        running.offer(_lines(n, 1), 1)
    assert running.pending_points >= 1000
    db.gate.set()
    await wait_for_async("2000 lines written", lambda: len(db.lines) >= 2000, timeout_s=DEADLINE_S)


async def test_a_batch_kept_before_is_acknowledged_not_written(
    db: FakeDatabase, tmp_path: Path
) -> None:
    claims = MemoryClaims()
    pipeline = _pipeline(db, tmp_path / "spool", flush=10_000, claims=claims)
    task = asyncio.create_task(pipeline.run())
    async with asyncio.timeout(DEADLINE_S):
        # Two copies in one chunk, then one more after the first is kept.
        first, second = await asyncio.gather(
            pipeline.submit(_lines(0, 10), 10, ("DCU01", "b1")),
            pipeline.submit(_lines(0, 10), 10, ("DCU01", "b1")),
        )
        third = await pipeline.submit(_lines(0, 10), 10, ("DCU01", "b1"))
        other = await pipeline.submit(_lines(10, 10), 10, ("DCU02", "b1"))
    await pipeline.close()
    await task
    assert (first, second, third, other) == (True, False, False, True)
    assert db.lines == _lines(0, 20).splitlines()
    assert pipeline.stats.repeated_batches == 2
    assert claims.kept == {("DCU01", "b1"), ("DCU02", "b1")}


async def test_a_spooled_batch_counts_as_kept(db: FakeDatabase, tmp_path: Path) -> None:
    claims = MemoryClaims()
    pipeline = _pipeline(db, tmp_path / "spool", claims=claims)
    task = asyncio.create_task(pipeline.run())
    db.down = True
    async with asyncio.timeout(DEADLINE_S):
        assert await pipeline.submit(_lines(0, 5), 5, ("DCU01", "b1"))
        assert claims.kept == {("DCU01", "b1")}
        assert not await pipeline.submit(_lines(0, 5), 5, ("DCU01", "b1"))
    db.down = False
    await wait_for_async(
        "the spool replayed",
        lambda: not list((tmp_path / "spool").glob("*.lp")),
        timeout_s=DEADLINE_S,
    )
    await pipeline.close()
    await task
    assert db.lines == _lines(0, 5).splitlines()


async def test_closing_with_nowhere_to_keep_a_batch_forgets_its_claim(
    db: FakeDatabase, tmp_path: Path
) -> None:
    claims = MemoryClaims()
    # A full disk: nothing can be spooled.
    pipeline = _pipeline(db, tmp_path / "spool", flush=10_000, claims=claims, spool_max_bytes=0)
    task = asyncio.create_task(pipeline.run())
    db.down = True
    held = asyncio.create_task(pipeline.submit(_lines(0, 5), 5, ("DCU01", "b1")))
    await asyncio.sleep(0.05)
    async with asyncio.timeout(DEADLINE_S):
        await pipeline.close()
        await task
    assert not held.done()  # never acknowledged: the broker delivers it again
    held.cancel()
    assert claims.kept == set()  # so that redelivery is written, not taken for a repeat

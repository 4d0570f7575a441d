"""Which gateway telemetry batches the cloud has kept (written or spooled), remembered in its
database by (DCU, batch id), so a repeat — a batch replayed after its PUBACK was lost — is
acknowledged without being written again, also after a restart."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.clock import Clock, utcnow
from cloud.db.models import TelemetryBatchRecord
from cloud.db.raw import RawSql
from cloud.db.session import Database
from cloud.telemetry.errors import KeptBatchesUnavailable
from wire import TelemetryBatch

log = logging.getLogger(__name__)

BatchKey = tuple[str, str]  # (dcu_id, batch_id): batch ids are unique per gateway

_CLAIM = """
INSERT INTO telemetry_batches (dcu_id, batch_id, kept_at) VALUES (:dcu_id, :batch_id, :kept_at)
ON CONFLICT DO NOTHING RETURNING batch_id"""
_REMEMBER = """
INSERT INTO telemetry_batches (dcu_id, batch_id, kept_at) VALUES (:dcu_id, :batch_id, :kept_at)
ON CONFLICT DO NOTHING"""
_REMEMBER_RETRY_CAP_S = 5.0


def batch_key(batch: TelemetryBatch) -> BatchKey:
    """What identifies a batch across its repeats."""
    return (batch.dcu_id, batch.batch_id)


async def claim_in(raw: RawSql, keys: Iterable[BatchKey], kept_at: datetime) -> set[BatchKey]:
    """Remember keys in the caller's transaction; answer those that were not remembered before.

    On PostgreSQL an insert of a key another open transaction has just inserted waits for that
    transaction, then sees its outcome: two copies of a batch are never both new. Keys go in
    sorted, so two transactions cannot wait on each other.
    """
    fresh: set[BatchKey] = set()
    for dcu_id, batch_id in sorted(set(keys)):
        row = await raw.fetchone(_CLAIM, dcu_id=dcu_id, batch_id=batch_id, kept_at=kept_at)
        if row is not None:
            fresh.add((dcu_id, batch_id))
    return fresh


@dataclass
class Claim:
    """The keys of a claim that were new; `keep()` once their points are written or spooled."""

    fresh: frozenset[BatchKey] = frozenset()
    kept: bool = field(default=False, init=False)

    def keep(self) -> None:
        """The points are kept: remember the keys when the claim ends."""
        self.kept = True


class BatchClaims(Protocol):
    """What the telemetry pipeline asks before writing batches."""

    def claim(self, keys: Iterable[BatchKey]) -> AbstractAsyncContextManager[Claim]:
        """Which keys are new; they are remembered when the block ends after `keep()`."""
        ...


class KeptBatches:
    """The kept batches' keys in the cloud database, bounded by age and count."""

    def __init__(
        self, db: Database, *, max_age_s: float, max_count: int, clock: Clock = utcnow
    ) -> None:
        self._db = db
        self._max_age = timedelta(seconds=max_age_s)
        self._max_count = max_count
        self._clock = clock

    @asynccontextmanager
    async def claim(self, keys: Iterable[BatchKey]) -> AsyncIterator[Claim]:
        """Which keys are new; remembered when the block ends after `keep()`, else forgotten."""
        wanted = set(keys)
        if self._db.is_sqlite:
            async with self._looked_up(wanted) as claim:
                yield claim
        else:
            async with self._held(wanted) as claim:
                yield claim

    @asynccontextmanager
    async def _looked_up(self, keys: set[BatchKey]) -> AsyncIterator[Claim]:
        # SQLite: one cloud process (copies within it are kept apart by OncePerKey) and one
        # writer, which must not wait on the time-series database: look up now, insert after.
        try:
            async with self._db.read() as session:
                known = await _known(session, keys)
        except (SQLAlchemyError, OSError) as exc:
            raise KeptBatchesUnavailable(str(exc)) from exc
        claim = Claim(frozenset(keys - known))
        yield claim
        if claim.kept and claim.fresh:
            await self.remember(claim.fresh)

    @asynccontextmanager
    async def _held(self, keys: set[BatchKey]) -> AsyncIterator[Claim]:
        # PostgreSQL: the keys are inserted now and the transaction stays open while the points
        # are written, so another cloud process's copy waits and then sees them kept.
        claim: Claim | None = None
        body_done = False
        try:
            async with self._db.write() as session:
                raw = await _raw(session)
                claim = Claim(frozenset(await claim_in(raw, keys, self._clock())))
                yield claim
                body_done = True
                if not claim.kept:
                    raise _NotKept
        except _NotKept:
            return
        except (SQLAlchemyError, OSError) as exc:
            if claim is None:
                raise KeptBatchesUnavailable(str(exc)) from exc
            if not (body_done and claim.kept):
                raise
            # The points are kept but the commit failed: remember the keys in a new transaction.
            log.warning("telemetry: commit of %d batch ids failed (%s)", len(claim.fresh), exc)
            await self.remember(claim.fresh)

    async def remember(self, keys: Iterable[BatchKey]) -> None:
        """Insert kept keys, retrying while the database is unavailable (callers wait)."""
        kept_at = self._clock()
        rows = [{"dcu_id": d, "batch_id": b, "kept_at": kept_at} for d, b in sorted(set(keys))]
        delay_s = 0.1
        while True:
            try:
                async with self._db.write() as session:
                    # On the driver: SQLite's one write lock is held for as short as can be.
                    await (await _raw(session)).executemany(_REMEMBER, rows)
                return
            except (SQLAlchemyError, OSError) as exc:
                log.warning("telemetry: cannot remember %d batch ids: %s", len(rows), exc)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, _REMEMBER_RETRY_CAP_S)

    async def prune(self) -> int:
        """Forget keys older than the age bound and beyond the newest `max_count`; how many."""
        cutoff = self._clock() - self._max_age
        table = TelemetryBatchRecord
        async with self._db.write() as session:
            removed = await session.execute(delete(table).where(table.kept_at < cutoff))
            count = int(getattr(removed, "rowcount", 0) or 0)
            oldest_kept = await session.scalar(
                select(table.kept_at)
                .order_by(table.kept_at.desc())
                .offset(self._max_count - 1)
                .limit(1)
            )
            if oldest_kept is not None:
                removed = await session.execute(delete(table).where(table.kept_at < oldest_kept))
                count += int(getattr(removed, "rowcount", 0) or 0)
        return count


class _NotKept(Exception):
    """Ends a held claim whose points were not kept: its keys are rolled back."""


async def _raw(session: AsyncSession) -> RawSql:
    await session.execute(select(1))  # begins the transaction the statements join
    return await RawSql.of(session)


async def _known(session: AsyncSession, keys: set[BatchKey]) -> set[BatchKey]:
    if not keys:
        return set()
    table = TelemetryBatchRecord
    rows = await session.execute(
        select(table.dcu_id, table.batch_id).where(table.batch_id.in_({b for _, b in keys}))
    )
    return {(dcu_id, batch_id) for dcu_id, batch_id in rows} & keys


@dataclass
class _InFlight:
    done: asyncio.Event = field(default_factory=asyncio.Event)
    kept: bool = False


# An Event, not a shared Future: a waiter that is cancelled must not cancel the outcome the
# first copy is about to set, and the first copy's end always wakes its waiters.
class OncePerKey:
    """Lets one copy of a batch through at a time; a later copy waits for the first's outcome."""

    def __init__(self) -> None:
        self._in_flight: dict[BatchKey, _InFlight] = {}

    async def run(self, key: BatchKey, keep: Callable[[], Awaitable[bool]]) -> bool:
        """`keep()` unless a copy of this key is kept meanwhile; True if this copy was kept."""
        while (other := self._in_flight.get(key)) is not None:
            await other.done.wait()
            if other.kept:
                return False
        mine = self._in_flight[key] = _InFlight()
        try:
            kept_now = await keep()
            mine.kept = True  # kept now or before: either way, nothing more to write
            return kept_now
        finally:
            del self._in_flight[key]
            mine.done.set()

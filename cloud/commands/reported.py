"""The relay state each meter reported: one ordering rule for everything gateways observe.

An observation (an ack's read-back, a meter event, a birth roster entry, a reading) is placed
in the meter's own history by an `OrderKey`: first the meter's event sequence when it was read
(it only grows, and every load-switch event bumps it), then the gateway clock when the read
began, for changes the meter logs no event for (disconnected <-> ready_for_reconnection). An
older observation never overwrites a newer one, whenever its message arrives or was stamped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, and_, bindparam, or_, select, update
from sqlalchemy.types import BigInteger, String

from cloud.db.models import Meter
from cloud.db.session import Database
from cloud.db.types import UtcDateTime
from wire import Ack, GatewayState, MeterEvent, MeterReport, RelayState, TelemetryBatch
from wire.clock import ms_to_datetime


@dataclass(frozen=True, slots=True, order=True)
class OrderKey:
    """Where an observation sits in a meter's history; a greater key is newer."""

    event_seq: int
    # Gateway clock when the read began; 0 for an event-log entry, which shows the state the
    # event left, older than any read made at the same sequence.
    read_ms: int


@dataclass(frozen=True, slots=True)
class Observation:
    """One relay state a gateway saw on a meter."""

    relay: RelayState
    # None from a gateway that predates order keys: such observations are ordered by `at_ms`
    # among themselves and never overwrite a keyed one.
    key: OrderKey | None
    # When the meter was observed, as well as is known (becomes `reported_at`).
    at_ms: int


def in_ack(ack: Ack) -> Observation | None:
    """The relay state an ack read back, if it carries one."""
    if ack.relay is None:
        return None
    key = OrderKey(ack.event_seq, ack.read_ms or 0) if ack.event_seq is not None else None
    return Observation(ack.relay, key, ack.read_ms or ack.at_ms)


def in_report(report: MeterReport, state: GatewayState) -> Observation | None:
    """The relay state a birth roster entry read, if the meter answered."""
    if report.relay is None or not report.reachable:
        return None
    key = OrderKey(report.event_seq, report.read_ms or 0) if report.event_seq is not None else None
    return Observation(report.relay, key, report.read_ms or state.at_ms)


def in_event(event: MeterEvent) -> Observation | None:
    """The relay state a meter event left behind, if it names one."""
    if event.relay is None:
        return None
    return Observation(event.relay, OrderKey(event.seq, 0), event.at_ms)


def held_key(event_seq: int | None, read_ms: int | None) -> OrderKey | None:
    """The order key a meter row holds, None when no gateway ever gave one."""
    return OrderKey(event_seq, read_ms or 0) if event_seq is not None else None


def supersedes(observation: Observation, held: OrderKey | None, held_at: datetime | None) -> bool:
    """Whether the observation is newer than the one held (`held_at`: its reported_at).

    Equal keys keep what is held; an observation without a key never replaces one with a key.
    """
    if observation.key is not None:
        return held is None or observation.key > held
    if held is not None:
        return False
    # Both from gateways without keys: the old rule, newest stamp wins.
    return held_at is None or ms_to_datetime(observation.at_ms) >= held_at


def update_reported(meter: Meter, observation: Observation | None, seen_ms: int) -> None:
    """Take an observation into a meter row the caller has locked, unless the row's is newer."""
    held = held_key(meter.reported_event_seq, meter.reported_read_ms)
    if observation is not None and supersedes(observation, held, meter.reported_at):
        meter.reported_relay = observation.relay.value
        meter.reported_at = ms_to_datetime(observation.at_ms)
        if observation.key is not None:
            meter.reported_event_seq = observation.key.event_seq
            meter.reported_read_ms = observation.key.read_ms
    seen = ms_to_datetime(seen_ms)
    if meter.last_seen_at is None or seen > meter.last_seen_at:
        meter.last_seen_at = seen


# The same rule as `supersedes`, as a compare-and-set: a report committed between the read and
# this write (an ack, on another connection) is never overwritten by an older reading.
_table = cast(Table, Meter.__table__)
_CORRECT = (
    update(_table)
    .where(
        _table.c.meter_id == bindparam("m_meter_id", type_=String()),
        or_(
            _table.c.reported_event_seq.is_(None),
            _table.c.reported_event_seq < bindparam("m_seq", type_=BigInteger()),
            and_(
                _table.c.reported_event_seq == bindparam("m_seq", type_=BigInteger()),
                _table.c.reported_read_ms < bindparam("m_read_ms", type_=BigInteger()),
            ),
        ),
    )
    .values(
        reported_relay=bindparam("m_relay", type_=String()),
        reported_event_seq=bindparam("m_seq", type_=BigInteger()),
        reported_read_ms=bindparam("m_read_ms", type_=BigInteger()),
        reported_at=bindparam("m_at", type_=UtcDateTime()),
    )
)


async def correct_from_readings(db: Database, batch: TelemetryBatch) -> None:
    """Correct the reported relay of every meter whose reading in the batch is newer and differs.

    Runs for every telemetry batch, so it is one plain SELECT, and a write only for the few
    meters whose relay (or event sequence) moved on without their state being reported.
    """
    observed = _newest_readings(batch)
    if not observed:
        return
    async with db.read() as session:
        rows = await session.execute(
            select(
                Meter.meter_id,
                Meter.reported_relay,
                Meter.reported_event_seq,
                Meter.reported_read_ms,
            ).where(Meter.meter_id.in_(list(observed)), Meter.dcu_id == batch.dcu_id)
        )
        stale = [row.meter_id for row in rows if _worth_writing(observed[row.meter_id], *row[1:])]
    if not stale:
        return
    params = [
        {
            "m_meter_id": meter_id,
            "m_relay": observed[meter_id].relay.value,
            "m_seq": key.event_seq,
            "m_read_ms": key.read_ms,
            "m_at": ms_to_datetime(observed[meter_id].at_ms),
        }
        # Sorted: rows are locked in the order every writer locks meters (cloud/commands/rows.py).
        for meter_id in sorted(stale)
        if (key := observed[meter_id].key) is not None
    ]
    async with db.write() as session:
        await session.execute(_CORRECT, params)


def _newest_readings(batch: TelemetryBatch) -> dict[str, Observation]:
    """Each meter's newest keyed reading in the batch (a reading without a key corrects nothing)."""
    observed: dict[str, Observation] = {}
    read_ms = batch.read_ms or 0
    for reading in batch.readings:
        if reading.event_seq is None:
            continue
        key = OrderKey(reading.event_seq, read_ms)
        held = observed.get(reading.meter_id)
        if held is None or (held.key is not None and key > held.key):
            at_ms = batch.read_ms or reading.at_ms
            observed[reading.meter_id] = Observation(reading.relay, key, at_ms)
    return observed


def _worth_writing(
    observation: Observation,
    relay: str | None,
    event_seq: int | None,
    read_ms: int | None,
) -> bool:
    """A newer reading that tells something new: another relay, or events logged since.

    A reading that only repeats the held state at the same sequence is not written: that is
    nearly every reading, and the held key already orders later reports correctly.
    """
    held = held_key(event_seq, read_ms)
    if observation.key is None or not supersedes(observation, held, None):
        return False
    return (
        relay != observation.relay.value
        or held is None
        or held.event_seq < observation.key.event_seq
    )

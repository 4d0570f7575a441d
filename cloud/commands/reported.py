"""The relay state each meter reported: one ordering rule for everything gateways observe.

An observation (an ack's read-back, a meter event, a birth roster entry, a reading) is placed
in the meter's own history by an `OrderKey`: first the meter's event sequence when it was read
(it only grows, and every load-switch event bumps it), then the gateway clock when the read
began, for changes the meter logs no event for (disconnected <-> ready_for_reconnection). An
older observation never overwrites a newer one, whenever its message arrives or was stamped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from cloud.commands.rows import lock_meters
from cloud.db.models import Meter
from cloud.db.raw import RawSql
from cloud.db.session import Database
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


def update_reported(
    meter: Meter, observation: Observation | None, seen_ms: int | None = None
) -> None:
    """Take an observation into a meter row the caller has locked, unless the row's is newer.

    `seen_ms`: when the gateway last heard from the meter, if the message says.
    """
    held = held_key(meter.reported_event_seq, meter.reported_read_ms)
    if observation is not None and supersedes(observation, held, meter.reported_at):
        meter.reported_relay = observation.relay.value
        meter.reported_at = ms_to_datetime(observation.at_ms)
        if observation.key is not None:
            meter.reported_event_seq = observation.key.event_seq
            meter.reported_read_ms = observation.key.read_ms
    if seen_ms is None:
        return
    seen = ms_to_datetime(seen_ms)
    if meter.last_seen_at is None or seen > meter.last_seen_at:
        meter.last_seen_at = seen


# The readings of a batch, as a table `o` of the query below.
_OBSERVED_SQLITE = """WITH o (meter_id, relay, event_seq, read_ms) AS (
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
        json_extract(value, '$[2]'), json_extract(value, '$[3]')
    FROM json_each(:observed))"""
_OBSERVED_POSTGRES = """WITH o (meter_id, relay, event_seq, read_ms) AS (
    SELECT * FROM unnest(CAST(:meter_ids AS text[]), CAST(:relays AS text[]),
        CAST(:event_seqs AS bigint[]), CAST(:read_ms AS bigint[])))"""
# The meters worth a write: the reading is newer (`supersedes`) and tells something new, another
# relay or events logged since. Judged in SQL so that only those few rows come back: nearly every
# reading repeats what is held, and returning each row to Python halved telemetry throughput.
_STALE = """
SELECT m.meter_id FROM o JOIN meters AS m ON m.meter_id = o.meter_id
WHERE m.dcu_id = :dcu_id AND (
    m.reported_event_seq IS NULL
    OR m.reported_event_seq < o.event_seq
    OR (m.reported_event_seq = o.event_seq AND m.reported_read_ms < o.read_ms
        AND (m.reported_relay IS NULL OR m.reported_relay <> o.relay)))"""


# A reading that says what the meter's last checked reading said is not checked again until this
# long after: the database could only have moved on to an older state (a rare double switch that
# logs no event, whose second report was lost), and the next check puts that right.
RECHECK_S = 600.0
# Bound on the meters remembered (the readings of a gateway name meters the cloud may not know).
MAX_CHECKED_METERS = 1_000_000


class ReadingCorrector:
    """Corrects reported relays from telemetry readings, asking the database only about news.

    Every telemetry batch passes here (tens of thousands of readings a second), and nearly all
    repeat what the meter's previous reading said: those are answered from memory.
    """

    def __init__(
        self,
        db: Database,
        *,
        recheck_s: float = RECHECK_S,
        max_meters: int = MAX_CHECKED_METERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._recheck_s = recheck_s
        self._max_meters = max_meters
        self._clock = clock
        # Per meter, its last checked reading: relay, event sequence, DCU, checked until when.
        self._checked: dict[str, tuple[RelayState, int, str, float]] = {}

    async def correct(self, batch: TelemetryBatch) -> None:
        """Correct every meter whose reading in the batch is newer than its state and differs."""
        now_s = self._clock()
        news = self._news(batch, now_s)
        if not news:
            return
        await correct_from_readings(self._db, batch.dcu_id, {m: o for m, (o, _) in news.items()})
        if len(self._checked) + len(news) > self._max_meters:
            self._checked.clear()
        until_s = now_s + self._recheck_s
        for meter_id, (observation, event_seq) in news.items():
            self._checked[meter_id] = (observation.relay, event_seq, batch.dcu_id, until_s)

    def _news(self, batch: TelemetryBatch, now_s: float) -> dict[str, tuple[Observation, int]]:
        """Each meter's newest keyed reading in the batch, unless it repeats the last checked."""
        news: dict[str, tuple[Observation, int]] = {}
        read_ms = batch.read_ms or 0
        for reading in batch.readings:
            seq = reading.event_seq
            if seq is None:
                continue  # a reading without a key corrects nothing
            checked = self._checked.get(reading.meter_id)
            if (
                checked is not None
                and checked[0] is reading.relay
                and checked[1] == seq
                and checked[2] == batch.dcu_id
                and checked[3] > now_s
            ):
                continue
            held = news.get(reading.meter_id)
            if held is None or seq > held[1]:
                key = OrderKey(seq, read_ms)
                observation = Observation(reading.relay, key, batch.read_ms or reading.at_ms)
                news[reading.meter_id] = (observation, seq)
        return news


async def correct_from_readings(
    db: Database, dcu_id: str, observed: Mapping[str, Observation]
) -> None:
    """Correct the reported relay of these meters of the DCU where the reading is newer and differs.

    One SELECT that answers only the meters to correct (usually none), then a short write
    transaction for those alone.
    """
    table = [
        (meter_id, o.relay.value, key.event_seq, key.read_ms)
        for meter_id, o in observed.items()
        if (key := o.key) is not None
    ]
    if not table:
        return
    async with db.read() as session:
        await session.connection()  # begins the transaction RawSql runs in
        raw = await RawSql.of(session)
        if raw.is_postgres:
            meter_ids, relays, event_seqs, read_ms = (
                list(column) for column in zip(*table, strict=True)
            )
            rows = await raw.fetchall(
                _OBSERVED_POSTGRES + _STALE,
                meter_ids=meter_ids,
                relays=relays,
                event_seqs=event_seqs,
                read_ms=read_ms,
                dcu_id=dcu_id,
            )
        else:
            rows = await raw.fetchall(
                _OBSERVED_SQLITE + _STALE, observed=json.dumps(table), dcu_id=dcu_id
            )
    if not rows:
        return
    async with db.write() as session:
        # Locked in the order every writer locks meters, and judged again under the lock: an
        # ack may have committed a newer state since the SELECT.
        meters = await lock_meters(session, [meter_id for (meter_id,) in rows])
        for meter_id, meter in meters.items():
            update_reported(meter, observed[meter_id])

"""Gateway presence from births and Wills; every birth reconciles that DCU's meters."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.clock import Clock, utcnow
from cloud.commands.desired import CommandFactory, RelayRequest, request_relay
from cloud.commands.lifecycle import ACTIVE_STATES, IN_FLIGHT_STATES, Origin
from cloud.commands.reported import in_event, in_report, update_reported
from cloud.commands.rows import lock_meters
from cloud.db.models import Command, Gateway, Meter, MeterEventRecord
from cloud.db.session import Database
from cloud.db.upsert import insert_ignoring_duplicates
from cloud.metrics import CloudMetrics
from wire import Action, GatewayState, MeterEvent, RelayState
from wire.clock import ms_to_datetime

log = logging.getLogger(__name__)


def relay_satisfies(desired_relay: str, reported_relay: str | None) -> bool:
    """Whether a reported relay state fulfils the desired one (button-wait counts as on)."""
    if desired_relay == RelayState.CONNECTED.value:
        return reported_relay in (
            RelayState.CONNECTED.value,
            RelayState.READY_FOR_RECONNECTION.value,
        )
    return reported_relay == desired_relay


async def reconcile_dcu(
    session: AsyncSession,
    dcu_id: str,
    reachable: set[str],
    factory: CommandFactory,
    now: datetime,
) -> list[Command]:
    """Command every reachable meter of the DCU whose reported relay differs from desired."""
    meters = (await session.execute(select(Meter).where(Meter.dcu_id == dcu_id))).scalars()
    busy = set(
        (
            await session.execute(
                select(Command.meter_id).where(
                    Command.dcu_id == dcu_id,
                    Command.state.in_([s.value for s in ACTIVE_STATES]),
                )
            )
        ).scalars()
    )
    issued: list[Command] = []
    for meter in list(meters):
        if meter.meter_id not in reachable or meter.meter_id in busy:
            continue
        if relay_satisfies(meter.desired_relay, meter.reported_relay):
            continue
        connect = meter.desired_relay == RelayState.CONNECTED.value
        request = RelayRequest(
            meter_id=meter.meter_id,
            action=Action.CONNECT if connect else Action.DISCONNECT,
            reason=f"reconcile: reported {meter.reported_relay}, desired {meter.desired_relay}",
            origin=Origin.RECONCILER,
            requested_at=now,
        )
        issued.append(await request_relay(session, meter, request, factory, now))
    return issued


class PresenceTracker:
    """Keeps the gateways table in step with births and Wills, and reconciles on birth."""

    def __init__(
        self,
        db: Database,
        factory: CommandFactory,
        metrics: CloudMetrics,
        on_work: Callable[[], None],
        clock: Clock = utcnow,
        *,
        on_state: Callable[[GatewayState], None] | None = None,
    ) -> None:
        self._db = db
        self._factory = factory
        self._metrics = metrics
        self._on_work = on_work
        self._clock = clock
        self._on_state = on_state

    async def handle(self, state: GatewayState) -> None:
        """Apply one birth or Will (stale ones, from an older boot, are ignored)."""
        now = self._clock()
        async with self._db.write() as session:
            gateway = await session.get(Gateway, state.dcu_id, with_for_update=True)
            if gateway is None:
                gateway = Gateway(dcu_id=state.dcu_id, online=False, boot_seq=0, meter_count=0)
                session.add(gateway)
            if state.boot_seq < gateway.boot_seq:
                log.info("ignoring stale state of %s (boot %s)", state.dcu_id, state.boot_seq)
                return
            if state.online:
                issued = await self._birth(session, gateway, state, now)
                log.info(
                    "gateway %s online (boot %s, %d meters, %d reconcile commands)",
                    state.dcu_id,
                    state.boot_seq,
                    len(state.meters),
                    len(issued),
                )
            else:
                if gateway.online:
                    gateway.state_changed_at = now
                gateway.online = False
                gateway.boot_seq = state.boot_seq
                gateway.last_will_at = ms_to_datetime(state.at_ms)
                log.warning("gateway %s offline (boot %s)", state.dcu_id, state.boot_seq)
            online = await session.scalar(
                select(func.count()).select_from(Gateway).where(Gateway.online.is_(True))
            )
        self._metrics.gateways_online.set(online or 0)
        self._on_work()
        if self._on_state is not None:
            self._on_state(state)  # committed: e.g. a presence point for the dashboards

    async def _birth(
        self, session: AsyncSession, gateway: Gateway, state: GatewayState, now: datetime
    ) -> list[Command]:
        if not gateway.online:
            gateway.state_changed_at = now
        gateway.online = True
        gateway.boot_seq = state.boot_seq
        gateway.last_birth_at = ms_to_datetime(state.at_ms)
        gateway.meter_count = len(state.meters)
        reports = {report.meter_id: report for report in state.meters}
        meters = (await lock_meters(session, list(reports))).values()
        reachable: set[str] = set()
        for meter in meters:
            report = reports[meter.meter_id]
            if meter.dcu_id != state.dcu_id:
                self._metrics.foreign_acks.inc()
                log.warning("%s claims meter %s of %s", state.dcu_id, meter.meter_id, meter.dcu_id)
                continue
            if report.reachable:
                reachable.add(meter.meter_id)
                update_reported(meter, in_report(report, state), state.at_ms)
                meter.reported_control_mode = report.control_mode
        # Commands in flight when the gateway went away are republished now (same id).
        await session.execute(
            update(Command)
            .where(
                Command.dcu_id == state.dcu_id,
                Command.state.in_([s.value for s in IN_FLIGHT_STATES]),
            )
            .values(next_attempt_at=now)
        )
        return await reconcile_dcu(session, state.dcu_id, reachable, self._factory, now)


class EventRecorder:
    """Stores meter events (idempotently, by meter and sequence) and updates reported relays."""

    def __init__(self, db: Database, metrics: CloudMetrics, clock: Clock = utcnow) -> None:
        self._db = db
        self._metrics = metrics
        self._clock = clock

    async def apply_batch(self, events: Sequence[MeterEvent]) -> None:
        """Record a batch of events in a transaction of its own."""
        async with self._db.write() as session:
            meters = await lock_meters(session, {event.meter_id for event in events})
            await self.apply(session, events, meters)

    async def apply(
        self, session: AsyncSession, events: Sequence[MeterEvent], meters: Mapping[str, Meter]
    ) -> None:
        """Record events against meters the caller has locked; foreign ones are skipped."""
        now = self._clock()
        rows = []
        for event in events:
            meter = meters.get(event.meter_id)
            if meter is None or meter.dcu_id != event.dcu_id:
                self._metrics.foreign_acks.inc()
                continue
            update_reported(meter, in_event(event), event.at_ms)
            rows.append(
                {
                    "meter_id": event.meter_id,
                    "seq": event.seq,
                    "dcu_id": event.dcu_id,
                    "code": event.code,
                    "relay": event.relay.value if event.relay else None,
                    "at": ms_to_datetime(event.at_ms),
                    "received_at": now,
                }
            )
        await insert_ignoring_duplicates(session, MeterEventRecord, rows)

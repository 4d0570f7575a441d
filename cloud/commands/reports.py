"""What gateways report — acks and meter events — applied together, one transaction a batch."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from cloud.commands.acks import AckApplier
from cloud.commands.presence import EventRecorder
from cloud.commands.rows import lock_commands, lock_meters
from cloud.db.session import Database
from wire import Ack, MeterEvent

GatewayReport = Ack | MeterEvent


class ReportApplier:
    """Applies a mixed batch of acks and events with one commit (and one lock round)."""

    def __init__(
        self,
        db: Database,
        acks: AckApplier,
        events: EventRecorder,
        *,
        after_events: Callable[[Sequence[MeterEvent]], Awaitable[None]] | None = None,
    ) -> None:
        self._db = db
        self._acks = acks
        self._events = events
        self._after_events = after_events

    async def apply_batch(self, reports: Sequence[GatewayReport]) -> None:
        """Apply every report of the batch, or none of them."""
        acks = [r for r in reports if isinstance(r, Ack)]
        events = [r for r in reports if isinstance(r, MeterEvent)]
        async with self._db.write() as session:
            meters = await lock_meters(session, {r.meter_id for r in reports})
            commands = await lock_commands(session, {ack.command_id for ack in acks})
            await self._events.apply(session, events, meters)
            await self._acks.apply(session, acks, meters, commands)
        if events and self._after_events is not None:
            # Committed: e.g. relay-operation points for the time-series store.
            await self._after_events(events)

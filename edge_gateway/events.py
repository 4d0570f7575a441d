"""Meter event logs: what is new since the last event published, as wire MeterEvents."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from edge_gateway.errors import MeterLinkError
from edge_gateway.meterlink import MeterLink
from edge_gateway.metrics import GatewayMetrics
from edge_gateway.store import EventCursor, OutboundKind, OutboundMessage, Store
from wire import EventCode, MeterEvent, RelayState, encode
from wire import topics as wire_topics
from wire.messages import MAX_REASON_CHARS
from wire.meterlink import LinkEvent

log = logging.getLogger(__name__)

_RELAY_EVENTS = frozenset({EventCode.LOAD_SWITCH_DISCONNECTED, EventCode.LOAD_SWITCH_CONNECTED})


@dataclass(frozen=True, slots=True)
class NewEvents:
    """Events one meter logged since the last published one, oldest first."""

    meter_id: str
    events: tuple[LinkEvent, ...] = ()

    @property
    def cursor(self) -> EventCursor | None:
        """The cursor to store with these events' messages, or None when there are none."""
        return EventCursor(self.meter_id, self.events[-1].seq) if self.events else None

    def relay_event_code(self, relay: RelayState | None) -> int | None:
        """The newest load-switch event (301/302) that left the relay in `relay`, if any."""
        for event in reversed(self.events):
            if event.code in _RELAY_EVENTS and event.control_state.relay == relay:
                return event.code
        return None

    def messages(self, dcu_id: str) -> list[OutboundMessage]:
        """One MeterEvent message per event, for the outbound table."""
        topic = wire_topics.event_topic(dcu_id, self.meter_id)
        return [
            OutboundMessage(
                OutboundKind.EVENT,
                topic,
                encode(
                    MeterEvent(
                        meter_id=self.meter_id,
                        dcu_id=dcu_id,
                        code=event.code,
                        seq=event.seq,
                        at_ms=event.at_ms,
                        relay=event.control_state.relay,
                        detail=event.detail[:MAX_REASON_CHARS],
                    )
                ),
            )
            for event in self.events
        ]


class EventFeed:
    """Reads meters' event logs from where publishing last stopped; cursors are cached per meter."""

    def __init__(self, store: Store, link: MeterLink, metrics: GatewayMetrics) -> None:
        self._store = store
        self._link = link
        self._metrics = metrics
        self._last_seq: dict[str, int] = {}

    async def fetch(self, meter_id: str) -> NewEvents:
        """Events logged since the last published one; none if the meter cannot be read."""
        last_seq = self._last_seq.get(meter_id)
        if last_seq is None:
            last_seq = self._last_seq[meter_id] = await self._store.event_cursor(meter_id)
        try:
            # Asking from last_seq (not +1) and filtering works whichever way the server counts.
            logged = await self._link.events(meter_id, last_seq)
        except MeterLinkError as exc:
            log.info("events of meter %s not read: %s", meter_id, exc.reason)
            return NewEvents(meter_id)
        fresh = sorted((event for event in logged if event.seq > last_seq), key=lambda e: e.seq)
        return NewEvents(meter_id, tuple(fresh))

    def committed(self, new_events: NewEvents) -> None:
        """Advance the cached cursor once the events' messages and cursor are committed."""
        if new_events.cursor is not None:
            self._last_seq[new_events.meter_id] = new_events.cursor.last_seq
            self._metrics.events_published += len(new_events.events)

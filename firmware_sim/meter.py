"""One simulated smart meter: its Disconnect-control object, registers, events and counters."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from itertools import islice
from typing import Protocol

from firmware_sim.clock import Clock
from firmware_sim.disconnect_control import DisconnectControl, Method, Outcome
from firmware_sim.load_curve import LoadCurve
from firmware_sim.metrology import PROFILE_CAPACITY_BLOCKS, Metrology
from wire.messages import EventCode, LoadProfileBlock, Reading
from wire.meterlink import ControlState, LinkEvent, MeterStatus

log = logging.getLogger(__name__)

EVENT_CAPACITY = 1000  # like a meter's circular event buffer; old entries roll off


@dataclass(slots=True)
class MeterCounters:
    """Running totals a utility reads off a meter."""

    transitions_applied: int = 0
    transitions_refused: int = 0
    power_failures: int = 0
    load_limit_trips: int = 0


@dataclass(frozen=True, slots=True)
class MeterSnapshot:
    """What a meter keeps in non-volatile memory: control state, counters, registers."""

    meter_id: str
    control_state: ControlState
    control_mode: int
    supplied: bool
    last_event_seq: int
    counters: MeterCounters
    import_wh: float
    export_wh: float
    import_vah: float
    integrated_to_ms: int


class MeterJournal(Protocol):
    """Where a meter writes its state and new events before it answers (see firmware_sim.store)."""

    def save(self, snapshot: MeterSnapshot, events: Sequence[LinkEvent]) -> None:
        """Make this state and these events durable."""
        ...


class SimMeter:
    """A smart meter on one DCU's link, living in the time its clock tells."""

    def __init__(
        self,
        meter_id: str,
        dcu_id: str,
        clock: Clock,
        curve: LoadCurve,
        *,
        control_mode: int = 2,
        control_state: ControlState = ControlState.CONNECTED,
        installed_on: date | None = None,
        import_wh: float = 0.0,
        export_wh: float = 0.0,
        profile_capacity_blocks: int = PROFILE_CAPACITY_BLOCKS,
        event_capacity: int = EVENT_CAPACITY,
    ) -> None:
        self.meter_id = meter_id
        self.dcu_id = dcu_id
        self.installed_on = installed_on
        self.counters = MeterCounters()
        self._clock = clock
        self._disconnect_control = DisconnectControl(control_mode, control_state)
        self._metrology = Metrology(
            curve,
            clock.now_ms(),
            import_wh=import_wh,
            export_wh=export_wh,
            import_vah=import_wh / curve.power_factor,
            profile_capacity_blocks=profile_capacity_blocks,
        )
        self._events: deque[LinkEvent] = deque(maxlen=event_capacity)
        self._last_event_seq = 0
        self._supplied = True
        self._status: MeterStatus | None = None
        # Non-volatile memory: None keeps everything in RAM (tests, benchmarks).
        self.journal: MeterJournal | None = None
        self._unsaved: list[LinkEvent] = []

    @property
    def control_state(self) -> ControlState:
        """IC 70 control_state."""
        return self._disconnect_control.control_state

    @property
    def output_state(self) -> bool:
        """IC 70 output_state: True when the consumer's load is connected."""
        return self._disconnect_control.output_state

    @property
    def control_mode(self) -> int:
        """IC 70 control_mode."""
        return self._disconnect_control.control_mode

    @property
    def supplied(self) -> bool:
        """False during a power failure on the supply side (the meter is dark)."""
        return self._supplied

    @property
    def last_event_seq(self) -> int:
        """Sequence number of the newest event, 0 before the first."""
        return self._last_event_seq

    def snapshot(self) -> MeterSnapshot:
        """The state a restart must find again."""
        metrology = self._metrology
        return MeterSnapshot(
            meter_id=self.meter_id,
            control_state=self.control_state,
            control_mode=self.control_mode,
            supplied=self._supplied,
            last_event_seq=self._last_event_seq,
            counters=replace(self.counters),  # a copy: the live counters keep counting
            import_wh=metrology.exact_import_wh,
            export_wh=metrology.exact_export_wh,
            import_vah=metrology.exact_import_vah,
            integrated_to_ms=metrology.integrated_to_ms,
        )

    def restore(self, snapshot: MeterSnapshot, events: Sequence[LinkEvent]) -> None:
        """Come back from a restart with what non-volatile memory kept."""
        self._disconnect_control = DisconnectControl(snapshot.control_mode, snapshot.control_state)
        self._supplied = snapshot.supplied
        self._last_event_seq = snapshot.last_event_seq
        self.counters = snapshot.counters
        self._metrology.restore(
            snapshot.import_wh, snapshot.export_wh, snapshot.import_vah, snapshot.integrated_to_ms
        )
        self._events.clear()
        self._events.extend(events)
        self._status = None

    @property
    def status(self) -> MeterStatus:
        """The IC 70 object as the link reads it."""
        # Cached: many status reads, few changes, and the model is immutable.
        if self._status is None:
            self._status = MeterStatus(
                meter_id=self.meter_id,
                control_state=self.control_state,
                output_state=self.output_state,
                control_mode=self.control_mode,
                last_event_seq=self._last_event_seq,
            )
        return self._status

    def remote_disconnect(self) -> Outcome:
        """The head-end opens the switch."""
        return self._operate(Method.REMOTE_DISCONNECT)

    def remote_reconnect(self) -> Outcome:
        """The head-end closes the switch, or arms it for the consumer's button, by mode."""
        return self._operate(Method.REMOTE_RECONNECT)

    def press_button(self) -> Outcome:
        """The consumer presses the push button: reconnects when armed, else disconnects."""
        if self.control_state is ControlState.CONNECTED:
            return self._operate(Method.MANUAL_DISCONNECT)
        return self._operate(Method.MANUAL_RECONNECT)

    def trip_load_limit(self) -> Outcome:
        """The load limiter opens the switch (local_disconnect), logging an overload trip."""
        outcome = self._operate(Method.LOCAL_DISCONNECT, before_switching=EventCode.OVERLOAD_TRIP)
        if outcome.applied:
            self.counters.load_limit_trips += 1
        return outcome

    def clear_load_limit(self) -> Outcome:
        """The overload has cleared: local_reconnect, which only modes 5 and 6 allow."""
        return self._operate(Method.LOCAL_RECONNECT)

    def supply_lost(self) -> None:
        """The feeder goes dead: no consumption, event 101."""
        if not self._supplied:
            return
        now_ms = self._advance()
        self._supplied = False
        self.counters.power_failures += 1
        self._record(now_ms, EventCode.POWER_FAIL, "supply lost")
        self._save()

    def supply_restored(self) -> None:
        """The feeder comes back: event 102."""
        if self._supplied:
            return
        now_ms = self._advance()
        self._supplied = True
        self._record(now_ms, EventCode.POWER_RESTORE, "supply restored")
        self._save()

    def reading(self) -> Reading:
        """Instantaneous registers now."""
        now_ms = self._advance()
        instant = self._metrology.instant(
            now_ms, supplied=self._supplied, load_connected=self.output_state
        )
        return Reading(
            meter_id=self.meter_id,
            at_ms=now_ms,
            relay=self.control_state.relay,
            voltage_v=round(instant.voltage_v, 1),
            current_a=round(instant.current_a, 3),
            active_power_w=round(instant.active_power_w, 1),
            power_factor=round(instant.power_factor, 3),
            frequency_hz=round(instant.frequency_hz, 3),
            import_wh=self._metrology.import_wh,
            export_wh=self._metrology.export_wh,
            import_vah=self._metrology.import_vah,
            event_seq=self._last_event_seq,
        )

    def profile_since(self, since_ms: int) -> list[LoadProfileBlock]:
        """Captured 15-minute blocks that start at or after `since_ms`."""
        self._advance()
        return self._metrology.blocks_since(self.meter_id, since_ms)

    def events_since(self, since_seq: int) -> list[LinkEvent]:
        """The event log from `since_seq` on (inclusive), as far back as the buffer reaches."""
        if not self._events:
            return []
        skip = max(since_seq - self._events[0].seq, 0)
        return list(islice(self._events, skip, None))

    def _operate(self, method: Method, *, before_switching: EventCode | None = None) -> Outcome:
        """Invoke one IC 70 method at meter time now, logging what the switch did."""
        now_ms = self._advance()
        output_before = self.output_state
        outcome = self._disconnect_control.invoke(method)
        if not outcome.applied:
            self.counters.transitions_refused += 1
            log.debug("meter %s: %s", self.meter_id, outcome.describe())
            self._save()
            return outcome
        self.counters.transitions_applied += 1
        self._status = None
        if before_switching is not None:
            self._record(now_ms, before_switching, outcome.describe())
        if output_before and not self.output_state:
            self._record(now_ms, EventCode.LOAD_SWITCH_DISCONNECTED, outcome.describe())
        elif self.output_state and not output_before:
            self._record(now_ms, EventCode.LOAD_SWITCH_CONNECTED, outcome.describe())
        self._save()
        return outcome

    def _advance(self) -> int:
        """Bring the registers up to meter time now, under the conditions that held until now."""
        now_ms = self._clock.now_ms()
        self._metrology.advance(now_ms, supplied=self._supplied, load_connected=self.output_state)
        return now_ms

    def _record(self, at_ms: int, code: EventCode, detail: str) -> None:
        self._last_event_seq += 1
        event = LinkEvent(
            seq=self._last_event_seq,
            code=int(code),
            at_ms=at_ms,
            control_state=self.control_state,
            detail=detail,
        )
        self._events.append(event)
        self._unsaved.append(event)
        self._status = None

    def _save(self) -> None:
        """Write the changed state through to non-volatile memory before anyone is answered."""
        if self.journal is not None:
            self.journal.save(self.snapshot(), self._unsaved)
        self._unsaved.clear()

"""Drives one meter's relay towards a command's target: read first, operate only if needed."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from edge_gateway.errors import MeterLinkRefused, MeterUnreachable
from edge_gateway.inbox import UNREACHABLE
from edge_gateway.meterlink import MeterLink
from edge_gateway.metrics import GatewayMetrics
from wire import Action, RelayState
from wire.clock import now_ms
from wire.meterlink import ControlState, MeterStatus

log = logging.getLogger(__name__)


NOT_OPERATED = "not operated: only read"

# Control modes in which remote_reconnect stops at ready_for_reconnection (IEC 62056-6-2):
# the consumer's button closes the switch, so "ready" already counts as connected.
READY_IS_CONNECTED_MODES = frozenset({1, 3, 5, 6})


def in_target(status: MeterStatus, action: Action) -> bool:
    """Whether the meter is already where the action would take it."""
    if action is Action.DISCONNECT:
        return status.control_state is ControlState.DISCONNECTED
    if status.control_state is ControlState.CONNECTED:
        return True
    return (
        status.control_state is ControlState.READY_FOR_RECONNECTION
        and status.control_mode in READY_IS_CONNECTED_MODES
    )


def _reached(status: MeterStatus, action: Action) -> bool:
    if action is Action.DISCONNECT:
        return status.control_state is ControlState.DISCONNECTED
    # After remote_reconnect, "ready" is as far as the meter goes without the consumer.
    return status.control_state is not ControlState.DISCONNECTED


@dataclass(frozen=True, slots=True)
class Observed:
    """A status read from the meter, and when (gateway clock) the request that read it began."""

    status: MeterStatus
    read_ms: int


@dataclass(frozen=True, slots=True)
class DriveResult:
    """What driving a relay achieved, and the last status read back (if any was)."""

    reached: bool
    last: Observed | None
    operations: int
    reason: str = ""

    @property
    def relay(self) -> RelayState | None:
        """The relay state last read back."""
        return self.last.status.relay if self.last else None

    @property
    def retryable(self) -> bool:
        """Whether trying again later may help (the meter did not answer)."""
        return not self.reached and self.reason == UNREACHABLE


class RelayDriver:
    """Reads, operates and reads back over the meter link, never operating blind after a timeout."""

    def __init__(
        self,
        link: MeterLink,
        *,
        attempts: int,
        metrics: GatewayMetrics,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._link = link
        self._attempts = attempts
        self._metrics = metrics
        self._clock = clock

    async def drive(
        self, meter_id: str, action: Action, *, may_operate: bool = True
    ) -> DriveResult:
        """Bring the relay to the action's target; with `may_operate` False only read it."""
        last: Observed | None = None
        operations = 0
        for attempt in range(1, self._attempts + 1):
            try:
                # Always read first: after a lost answer the operation may have happened anyway.
                last = await self._timed(self._link.read, meter_id)
                if in_target(last.status, action):
                    return DriveResult(True, last, operations)
                if not may_operate:
                    return DriveResult(False, last, operations, NOT_OPERATED)
                operations += 1
                self._metrics.relay_operations += 1
                last = None  # unknown until the meter answers: the operation may or may not run
                operate = (
                    self._link.disconnect if action is Action.DISCONNECT else self._link.reconnect
                )
                last = await self._timed(operate, meter_id)
            except MeterUnreachable as exc:
                log.info("meter %s attempt %d/%d: %s", meter_id, attempt, self._attempts, exc)
                continue
            except MeterLinkRefused as exc:
                return DriveResult(False, last, operations, f"meter link refused: {exc.code}")
            if _reached(last.status, action):
                return DriveResult(True, last, operations)
            control_mode = last.status.control_mode
            reason = f"relay did not reach {action.target} (control_mode {control_mode})"
            return DriveResult(False, last, operations, reason)
        return DriveResult(False, last, operations, UNREACHABLE)

    async def _timed(
        self, request: Callable[[str], Awaitable[MeterStatus]], meter_id: str
    ) -> Observed:
        # The start of the request, not its answer: the meter was read some time after it.
        read_ms = self._clock()
        return Observed(await request(meter_id), read_ms)

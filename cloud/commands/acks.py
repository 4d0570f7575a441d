"""Acknowledgments from gateways move commands through their lifecycle, in batches."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from cloud.clock import Clock, utcnow
from cloud.commands.lifecycle import CommandState, Origin, is_active, record_transition
from cloud.commands.reported import in_ack, update_reported
from cloud.commands.rows import lock_commands, lock_meters
from cloud.db.models import Command, Meter
from cloud.db.session import Database
from cloud.metrics import CloudMetrics
from wire import Ack, AckStatus, Action, RelayState

log = logging.getLogger(__name__)

# Called once per transaction with every command it ended, inside that transaction.
FinalHook = Callable[[AsyncSession, Sequence[Command]], Awaitable[None]]

# What counts as "the relay reached its target": a connect in a mode that needs the
# consumer's button ends ready_for_reconnection (DESIGN §3).
_REACHED = {
    Action.CONNECT: {RelayState.CONNECTED, RelayState.READY_FOR_RECONNECTION},
    Action.DISCONNECT: {RelayState.DISCONNECTED},
}


@dataclass(frozen=True)
class AckRetryPolicy:
    """How long to wait for the final ack after `received`, and how often to retry."""

    execution_timeout_s: float
    max_attempts: int


class AckApplier:
    """Applies a batch of acks in one transaction."""

    def __init__(
        self,
        db: Database,
        metrics: CloudMetrics,
        policy: AckRetryPolicy,
        *,
        on_final: Sequence[FinalHook] = (),
        clock: Clock = utcnow,
    ) -> None:
        self._db = db
        self._metrics = metrics
        self._policy = policy
        self._on_final = list(on_final)
        self._clock = clock

    def add_final_hook(self, hook: FinalHook) -> None:
        """Also call `hook` inside the ack transaction whenever a command reaches a final state."""
        self._on_final.append(hook)

    async def apply_batch(self, acks: Sequence[Ack]) -> None:
        """Apply acks in a transaction of their own."""
        async with self._db.write() as session:
            meters = await lock_meters(session, {ack.meter_id for ack in acks})
            commands = await lock_commands(session, {ack.command_id for ack in acks})
            await self.apply(session, acks, meters, commands)

    async def apply(
        self,
        session: AsyncSession,
        acks: Sequence[Ack],
        meters: Mapping[str, Meter],
        commands: Mapping[str, Command],
    ) -> None:
        """Apply acks in arrival order to rows the caller has locked; foreign ones are skipped."""
        active_before = {c.command_id for c in commands.values() if is_active(c)}
        for ack in acks:
            command = commands.get(ack.command_id)
            meter = meters.get(ack.meter_id)
            if command is None or meter is None or not self._owned(ack, command, meter):
                self._metrics.foreign_acks.inc()
                log.warning(
                    "ignoring ack %s for meter %s from DCU %s: unknown or not owned",
                    ack.command_id,
                    ack.meter_id,
                    ack.dcu_id,
                )
                continue
            update_reported(meter, in_ack(ack), ack.at_ms)
            await self._apply(session, ack, command, meter)
            self._metrics.acks_processed.inc()
        ended = [c for c in commands.values() if c.command_id in active_before and not is_active(c)]
        if ended:
            for hook in self._on_final:
                await hook(session, ended)

    @staticmethod
    def _owned(ack: Ack, command: Command, meter: Meter) -> bool:
        # The topic DCU was already checked against ack.dcu_id: here the DCU must own both.
        return command.meter_id == meter.meter_id and command.dcu_id == meter.dcu_id == ack.dcu_id

    async def _apply(self, session: AsyncSession, ack: Ack, command: Command, meter: Meter) -> None:
        if not is_active(command):
            return
        now = self._clock()
        if ack.status is AckStatus.RECEIVED:
            if command.state == CommandState.SENT.value:
                self._transition(session, command, CommandState.DELIVERED, now, "gateway received")
                command.next_attempt_at = now + timedelta(seconds=self._policy.execution_timeout_s)
            return
        command.relay_result = ack.relay.value if ack.relay else None
        command.event_code = ack.event_code
        if ack.status in (AckStatus.EXECUTED, AckStatus.FAILED) and command.state == "SENT":
            # The `received` ack is late (another cloud process has it, or it was lost): the
            # gateway did receive the command, so the trail says so.
            self._transition(session, command, CommandState.DELIVERED, now, "implied by final ack")
        if ack.status is AckStatus.EXECUTED:
            if ack.relay in _REACHED[Action(command.action)]:
                await self._finish(session, command, CommandState.SUCCEEDED, now, "executed")
            else:
                relay = ack.relay.value if ack.relay else "unknown"
                detail = f"relay read back {relay}"
                await self._finish(session, command, CommandState.FAILED, now, detail)
        elif ack.status is AckStatus.REJECTED and ack.retryable:
            await self._rejected_copy(session, ack, command, now)
        elif ack.status is AckStatus.REJECTED:
            await self._finish(session, command, CommandState.REJECTED, now, ack.reason)
        elif ack.status is AckStatus.EXPIRED:
            await self._finish(session, command, CommandState.EXPIRED, now, ack.reason)
        elif ack.retryable and command.attempts < self._policy.max_attempts:
            # The gateway could not reach the meter: the dispatcher republishes with backoff.
            command.detail = ack.reason[:200]
            command.next_attempt_at = now
        elif ack.retryable:
            await self._finish(session, command, CommandState.TIMED_OUT, now, ack.reason)
        else:
            await self._finish(session, command, CommandState.FAILED, now, ack.reason)

    async def _rejected_copy(
        self, session: AsyncSession, ack: Ack, command: Command, now: datetime
    ) -> None:
        # The gateway refused one copy it could not verify (maybe a forgery); our own copy is
        # still in play, and the dispatcher republishes it on the ack timeout. Only when every
        # attempt was refused (a key the gateway does not trust) is the command REJECTED.
        if command.state == CommandState.DELIVERED.value:
            return  # the gateway already accepted the genuine command
        if command.attempts < self._policy.max_attempts:
            command.detail = ack.reason[:200]
            return
        await self._finish(session, command, CommandState.REJECTED, now, ack.reason)

    async def _finish(
        self,
        session: AsyncSession,
        command: Command,
        state: CommandState,
        now: datetime,
        detail: str,
    ) -> None:
        self._transition(session, command, state, now, detail)
        command.next_attempt_at = None
        self._metrics.ack_latency.observe((now - command.created_at).total_seconds())
        if (
            state is CommandState.SUCCEEDED
            and command.origin == Origin.PAYMENT.value
            and command.action == Action.CONNECT.value
        ):
            power_s = (now - command.requested_at).total_seconds()
            self._metrics.payment_to_power.observe(power_s)

    def _transition(
        self,
        session: AsyncSession,
        command: Command,
        state: CommandState,
        now: datetime,
        detail: str,
    ) -> None:
        record_transition(session, command, state, now, detail)
        self._metrics.command_transitions.labels(state.value).inc()

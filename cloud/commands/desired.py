"""Desired relay state and the outbox: a change of desired state and its signed command are
written in one transaction, superseding whatever older command is still active."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.commands.lifecycle import ACTIVE_STATES, CommandState, Origin, record_transition
from cloud.db.models import Command, Meter
from wire import Action, CommandSigner, encode, new_command_id
from wire.clock import datetime_to_ms


@dataclass(frozen=True)
class RelayRequest:
    """Why a meter's relay should change, and on whose behalf."""

    meter_id: str
    action: Action
    reason: str
    origin: Origin
    requested_at: datetime
    actor: str | None = None
    payment_id: str | None = None


@dataclass(frozen=True)
class CommandFactory:
    """Mints signed commands with the configured lifetime."""

    signer: CommandSigner
    ttl_s: int

    def build(self, meter: Meter, request: RelayRequest, version: int, now: datetime) -> Command:
        """A QUEUED outbox row carrying the signed command for this request."""
        return self.build_for(meter.meter_id, meter.dcu_id, request, version, now)

    def build_for(
        self, meter_id: str, dcu_id: str, request: RelayRequest, version: int, now: datetime
    ) -> Command:
        """The same, from the meter's id and DCU."""
        issued_at_ms = datetime_to_ms(now)
        signed = self.signer.sign(
            command_id=new_command_id(),
            meter_id=meter_id,
            dcu_id=dcu_id,
            action=request.action,
            version=version,
            reason=request.reason[:200],
            issued_at_ms=issued_at_ms,
            expires_at_ms=issued_at_ms + self.ttl_s * 1000,
        )
        return Command(
            command_id=signed.command_id,
            meter_id=meter_id,
            dcu_id=dcu_id,
            action=request.action.value,
            version=version,
            reason=signed.reason,
            origin=request.origin.value,
            actor=request.actor,
            payment_id=request.payment_id,
            state="",
            attempts=0,
            requested_at=request.requested_at,
            created_at=now,
            updated_at=now,
            expires_at=now + timedelta(seconds=self.ttl_s),
            next_attempt_at=None,
            payload=encode(signed).decode(),
            detail="",
        )


async def lock_meter(session: AsyncSession, meter_id: str) -> Meter | None:
    """Load a meter for update (a row lock on PostgreSQL; SQLite writers are serialised)."""
    result = await session.execute(
        select(Meter).where(Meter.meter_id == meter_id).with_for_update()
    )
    return result.scalar_one_or_none()


async def supersede_active(
    session: AsyncSession, meter_id: str, now: datetime, by_command_id: str
) -> list[Command]:
    """Mark every still-active command of a meter SUPERSEDED by a newer one."""
    result = await session.execute(
        select(Command).where(
            Command.meter_id == meter_id, Command.state.in_([s.value for s in ACTIVE_STATES])
        )
    )
    superseded = list(result.scalars())
    for command in superseded:
        record_transition(
            session, command, CommandState.SUPERSEDED, now, f"superseded by {by_command_id}"
        )
        command.next_attempt_at = None
    return superseded


async def request_relay(
    session: AsyncSession,
    meter: Meter,
    request: RelayRequest,
    factory: CommandFactory,
    now: datetime,
) -> Command:
    """Set the meter's desired relay state (new version) and queue its command, in this tx."""
    version = meter.desired_version + 1
    command = factory.build(meter, request, version, now)
    await supersede_active(session, meter.meter_id, now, command.command_id)
    meter.desired_version = version
    meter.desired_relay = request.action.target.value
    meter.desired_at = now
    session.add(command)
    record_transition(session, command, CommandState.QUEUED, now, request.reason)
    return command

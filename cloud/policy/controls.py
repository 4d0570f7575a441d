"""The global kill switch: while engaged no real run starts and pending policy cuts are undone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.commands.desired import CommandFactory, RelayRequest, lock_meter, request_relay
from cloud.commands.lifecycle import ACTIVE_STATES, Origin
from cloud.db.models import Command, PolicyControl
from cloud.db.upsert import insert_ignoring_duplicates
from wire import Action

KILL_SWITCH = "kill_switch"


@dataclass(frozen=True)
class KillSwitchState:
    """Whether the kill switch is engaged, why, and who changed it when."""

    engaged: bool
    reason: str
    changed_at: datetime | None
    changed_by: str | None


async def kill_switch(session: AsyncSession, *, for_update: bool = False) -> KillSwitchState:
    """The kill switch as stored (disengaged if never set)."""
    query = select(PolicyControl).where(PolicyControl.name == KILL_SWITCH)
    if for_update:
        query = query.with_for_update()
    row = (await session.execute(query)).scalar_one_or_none()
    if row is None:
        return KillSwitchState(False, "", None, None)
    return KillSwitchState(row.engaged, row.reason, row.changed_at, row.changed_by)


async def set_kill_switch(
    session: AsyncSession,
    factory: CommandFactory,
    *,
    engaged: bool,
    reason: str,
    actor: str,
    now: datetime,
) -> int:
    """Engage or release the switch; engaging withdraws active policy disconnects (returns how
    many) by making their meters' desired state connected again."""
    await insert_ignoring_duplicates(
        session, PolicyControl, [{"name": KILL_SWITCH, "engaged": False, "reason": ""}]
    )
    row = (
        await session.execute(
            select(PolicyControl).where(PolicyControl.name == KILL_SWITCH).with_for_update()
        )
    ).scalar_one()
    row.engaged = engaged
    row.reason = reason[:200]
    row.changed_at = now
    row.changed_by = actor
    if not engaged:
        return 0
    pending = (
        await session.execute(
            select(Command).where(
                Command.origin == Origin.POLICY.value,
                Command.action == Action.DISCONNECT.value,
                Command.state.in_([s.value for s in ACTIVE_STATES]),
            )
        )
    ).scalars()
    withdrawn = 0
    for command in list(pending):
        meter = await lock_meter(session, command.meter_id)
        if meter is None or meter.desired_version != command.version:
            continue
        request = RelayRequest(
            meter_id=meter.meter_id,
            action=Action.CONNECT,
            reason=f"kill switch: policy disconnect {command.command_id} withdrawn",
            origin=Origin.POLICY,
            requested_at=now,
            actor=actor,
        )
        await request_relay(session, meter, request, factory, now)
        withdrawn += 1
    return withdrawn

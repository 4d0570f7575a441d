"""An operator's manual connect or disconnect: always a new desired version and command."""

from __future__ import annotations

from cloud.clock import Clock, utcnow
from cloud.commands.desired import CommandFactory, RelayRequest, lock_meter, request_relay
from cloud.commands.dispatcher import Dispatcher
from cloud.commands.lifecycle import Origin
from cloud.db.models import Command
from cloud.db.session import Database
from cloud.errors import NotFound
from wire import Action


async def issue_manual_command(
    db: Database,
    factory: CommandFactory,
    dispatcher: Dispatcher | None = None,
    *,
    meter_id: str,
    action: Action,
    reason: str,
    actor: str,
    clock: Clock = utcnow,
) -> Command:
    """Queue an operator's command for one meter; raises NotFound for an unknown meter."""
    now = clock()
    async with db.write() as session:
        meter = await lock_meter(session, meter_id)
        if meter is None:
            raise NotFound(f"meter {meter_id} not found")
        request = RelayRequest(
            meter_id=meter_id,
            action=action,
            reason=reason,
            origin=Origin.OPERATOR,
            requested_at=now,
            actor=actor,
        )
        command = await request_relay(session, meter, request, factory, now)
        outgoing = await dispatcher.claim_new(session, [command], now) if dispatcher else []
    if outgoing and dispatcher is not None:
        await dispatcher.publish(outgoing)
    elif dispatcher is not None:
        dispatcher.wake()
    return command

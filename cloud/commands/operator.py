"""An operator's manual connect or disconnect: always a new desired version and command, kept in
the audit log in the same transaction, within the manual-command rate limit."""

from __future__ import annotations

from datetime import datetime

from cloud.access.audit import (
    AuditAction,
    AuditOutcome,
    AuditRecord,
    CommandRateLimit,
    add_audit,
    record_audit,
)
from cloud.access.tokens import Principal, Role
from cloud.clock import Clock, utcnow
from cloud.commands.desired import CommandFactory, RelayRequest, lock_meter, request_relay
from cloud.commands.dispatcher import Dispatcher
from cloud.commands.lifecycle import Origin
from cloud.db.models import Command
from cloud.db.session import Database
from cloud.errors import NotFound, RateLimited
from wire import Action


async def issue_manual_command(
    db: Database,
    factory: CommandFactory,
    dispatcher: Dispatcher | None = None,
    *,
    meter_id: str,
    action: Action,
    reason: str,
    actor: str | Principal,
    clock: Clock = utcnow,
    limit: CommandRateLimit | None = None,
) -> Command:
    """Queue an operator's command for one meter; raises NotFound for an unknown meter and
    RateLimited beyond the limit. Refused attempts are audited too."""
    principal = actor if isinstance(actor, Principal) else Principal(actor, Role.OPERATOR)
    now = clock()
    try:
        return await _issue(
            db, factory, dispatcher, meter_id, action, reason, principal, now, limit
        )
    except (NotFound, RateLimited) as exc:
        outcome = AuditOutcome.NOT_FOUND if isinstance(exc, NotFound) else AuditOutcome.RATE_LIMITED
        refused = AuditRecord(
            actor=principal,
            action=AuditAction.METER_COMMAND,
            target=f"meter/{meter_id}",
            outcome=outcome,
            at=now,
            reason=reason,
            detail={"action": action.value, "refused": exc.message},
        )
        await record_audit(db, refused)
        raise


async def _issue(
    db: Database,
    factory: CommandFactory,
    dispatcher: Dispatcher | None,
    meter_id: str,
    action: Action,
    reason: str,
    principal: Principal,
    now: datetime,
    limit: CommandRateLimit | None,
) -> Command:
    async with db.write() as session:
        if limit is not None:
            await limit.check(session, principal, now)
        meter = await lock_meter(session, meter_id)
        if meter is None:
            raise NotFound(f"meter {meter_id} not found")
        request = RelayRequest(
            meter_id=meter_id,
            action=action,
            reason=reason,
            origin=Origin.OPERATOR,
            requested_at=now,
            actor=principal.name,
        )
        command = await request_relay(session, meter, request, factory, now)
        add_audit(
            session,
            AuditRecord(
                actor=principal,
                action=AuditAction.METER_COMMAND,
                target=f"meter/{meter_id}",
                outcome=AuditOutcome.OK,
                at=now,
                reason=reason,
                detail={
                    "command_id": command.command_id,
                    "action": action.value,
                    "version": command.version,
                },
            ),
        )
        outgoing = await dispatcher.claim_new(session, [command], now) if dispatcher else []
    # Committed: publish now rather than at the dispatcher's next round.
    if outgoing and dispatcher is not None:
        await dispatcher.publish(outgoing)
    elif dispatcher is not None:
        dispatcher.wake()
    return command

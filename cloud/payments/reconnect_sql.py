"""The payment path's reconnect, in SQL: desired state connected with a new version, older
commands superseded, the signed command and its transitions written — the same rows
`cloud.commands.desired.request_relay` writes, at a fifth of the cost (it runs per payment)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cloud.commands.desired import CommandFactory, RelayRequest
from cloud.commands.dispatcher import Dispatcher, Outgoing
from cloud.commands.lifecycle import CommandState, Origin
from cloud.db.models import Command
from cloud.db.raw import RawSql
from wire import Action, RelayState

# The active states, spelled out (tests/unit/test_reconnect_sql.py keeps it equal to the set).
ACTIVE_SQL = "('DELIVERED', 'QUEUED', 'SENT')"

_METER = """
SELECT m.meter_id, m.dcu_id, m.desired_relay, m.desired_version, COALESCE(g.online, :false)
FROM meters m LEFT JOIN gateways g ON g.dcu_id = m.dcu_id
WHERE m.meter_id = :meter_id"""

_SUPERSEDE = """
UPDATE commands SET state = 'SUPERSEDED', updated_at = :now, next_attempt_at = NULL,
       detail = :detail
WHERE meter_id = :meter_id AND state IN ('DELIVERED', 'QUEUED', 'SENT')
RETURNING command_id, state"""

_DESIRE = """
UPDATE meters SET desired_relay = :relay, desired_version = :version, desired_at = :now
WHERE meter_id = :meter_id"""

_INSERT_COMMAND = """
INSERT INTO commands (command_id, meter_id, dcu_id, action, version, reason, origin, actor,
    payment_id, state, attempts, requested_at, created_at, updated_at, expires_at,
    next_attempt_at, payload, relay_result, event_code, detail)
VALUES (:command_id, :meter_id, :dcu_id, :action, :version, :reason, :origin, NULL,
    :payment_id, :state, :attempts, :requested_at, :created_at, :updated_at, :expires_at,
    :next_attempt_at, :payload, NULL, NULL, :detail)"""

_TRANSITION = """
INSERT INTO command_transitions (command_id, from_state, to_state, at, detail)
VALUES (:command_id, :from_state, :to_state, :at, :detail)"""


@dataclass(frozen=True)
class Reconnect:
    """The command queued for a payment, and its first publish if it can go out at once."""

    command_id: str
    outgoing: Outgoing | None


async def reconnect_for_payment(
    raw: RawSql,
    factory: CommandFactory,
    dispatcher: Dispatcher | None,
    *,
    meter_id: str,
    payment_id: str,
    received_at: datetime,
) -> Reconnect | None:
    """Queue (and claim, when possible) the connect a cleared account's meter needs."""
    lock = " FOR UPDATE OF m" if raw.is_postgres else ""
    row = await raw.fetchone(_METER + lock, meter_id=meter_id, false=False)
    if row is None or row[2] == RelayState.CONNECTED.value:
        return None
    _, dcu_id, _, desired_version, online = row
    request = RelayRequest(
        meter_id=meter_id,
        action=Action.CONNECT,
        reason=f"dues cleared by payment {payment_id}",
        origin=Origin.PAYMENT,
        requested_at=received_at,
        payment_id=payment_id,
    )
    command = factory.build_for(meter_id, dcu_id, request, desired_version + 1, received_at)
    superseded = await raw.fetchall(
        _SUPERSEDE,
        now=received_at,
        detail=f"superseded by {command.command_id}",
        meter_id=meter_id,
    )
    for old_id, old_state in superseded:
        await raw.execute(
            _TRANSITION,
            command_id=old_id,
            from_state=old_state,
            to_state=CommandState.SUPERSEDED.value,
            at=received_at,
            detail=f"superseded by {command.command_id}",
        )
    await raw.execute(
        _DESIRE,
        relay=RelayState.CONNECTED.value,
        version=command.version,
        now=received_at,
        meter_id=meter_id,
    )
    command.state = CommandState.QUEUED.value
    outgoing = dispatcher.claim_created(command, received_at) if dispatcher and online else None
    await raw.execute(_INSERT_COMMAND, **_command_values(command))
    await raw.execute(
        _TRANSITION,
        command_id=command.command_id,
        from_state=None,
        to_state=CommandState.QUEUED.value,
        at=received_at,
        detail=request.reason[:200],
    )
    if outgoing is not None:
        await raw.execute(
            _TRANSITION,
            command_id=command.command_id,
            from_state=CommandState.QUEUED.value,
            to_state=CommandState.SENT.value,
            at=received_at,
            detail="published",
        )
    return Reconnect(command.command_id, outgoing)


def _command_values(command: Command) -> dict[str, object]:
    return {
        "command_id": command.command_id,
        "meter_id": command.meter_id,
        "dcu_id": command.dcu_id,
        "action": command.action,
        "version": command.version,
        "reason": command.reason,
        "origin": command.origin,
        "payment_id": command.payment_id,
        "state": command.state,
        "attempts": command.attempts,
        "requested_at": command.requested_at,
        "created_at": command.created_at,
        "updated_at": command.updated_at,
        "expires_at": command.expires_at,
        "next_attempt_at": command.next_attempt_at,
        "payload": command.payload,
        "detail": command.detail or "",
    }

"""The command state machine: states, which are final, and recording a transition."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.db.models import Command, CommandTransition
from cloud.db.session import Database


class CommandState(StrEnum):
    """Where a command is in its life (DESIGN §3)."""

    QUEUED = "QUEUED"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"
    SUPERSEDED = "SUPERSEDED"


ACTIVE_STATES = frozenset({CommandState.QUEUED, CommandState.SENT, CommandState.DELIVERED})
IN_FLIGHT_STATES = frozenset({CommandState.SENT, CommandState.DELIVERED})
FINAL_STATES = frozenset(CommandState) - ACTIVE_STATES


class Origin(StrEnum):
    """Who or what asked for a command."""

    PAYMENT = "payment"
    OPERATOR = "operator"
    POLICY = "policy"
    RECONCILER = "reconciler"


def is_active(command: Command) -> bool:
    """Whether the command may still change state."""
    return command.state in ACTIVE_STATES


def record_transition(
    session: AsyncSession,
    command: Command,
    to_state: CommandState,
    at: datetime,
    detail: str = "",
) -> CommandTransition:
    """Move a command to a state and keep the step, with its timestamp, in the audit trail."""
    transition = CommandTransition(
        command_id=command.command_id,
        from_state=command.state if command.state else None,
        to_state=to_state.value,
        at=at,
        detail=detail[:200],
    )
    session.add(transition)
    command.state = to_state.value
    command.updated_at = at
    if detail:
        command.detail = detail[:200]
    return transition


async def count_active_commands(db: Database) -> dict[CommandState, int]:
    """How many commands are in each not-yet-final state (an index-backed query)."""
    async with db.read() as session:
        rows = await session.execute(
            select(Command.state, func.count())
            .where(Command.state.in_([s.value for s in ACTIVE_STATES]))
            .group_by(Command.state)
        )
        return {CommandState(state): count for state, count in rows.all()}

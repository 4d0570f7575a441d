"""Row locks in the one order every writer uses — meters, then commands, each by id — so
concurrent transactions (several cloud processes on PostgreSQL) serialise instead of deadlocking."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.db.models import Command, Meter


async def lock_meters(session: AsyncSession, meter_ids: Collection[str]) -> dict[str, Meter]:
    """Load and lock these meters (missing ids are simply absent)."""
    if not meter_ids:
        return {}
    rows = await session.scalars(
        select(Meter)
        .where(Meter.meter_id.in_(list(meter_ids)))
        .order_by(Meter.meter_id)
        .with_for_update()
    )
    return {meter.meter_id: meter for meter in rows}


async def lock_commands(session: AsyncSession, command_ids: Collection[str]) -> dict[str, Command]:
    """Load and lock these commands (missing ids are simply absent)."""
    if not command_ids:
        return {}
    rows = await session.scalars(
        select(Command)
        .where(Command.command_id.in_(list(command_ids)))
        .order_by(Command.command_id)
        .with_for_update()
    )
    return {command.command_id: command for command in rows}

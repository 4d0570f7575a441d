"""Commands: lifecycle with every transition, and listing by meter and state."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy import select

from cloud.api.deps import RuntimeDep, ViewerDep
from cloud.api.errors import error_responses
from cloud.api.pagination import CursorQuery, LimitQuery, decode_cursor, encode_cursor
from cloud.api.schemas import CommandDetailOut, CommandOut, Page
from cloud.commands.lifecycle import CommandState
from cloud.db.models import Command, CommandTransition
from cloud.errors import NotFound
from wire.ids import ID_PATTERN

router = APIRouter(prefix="/api/v1/commands", tags=["commands"])

CommandIdPath = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")]


@router.get(
    "/{command_id}", response_model=CommandDetailOut, responses=error_responses(401, 404, 422)
)
async def get_command(
    command_id: CommandIdPath, runtime: RuntimeDep, _: ViewerDep
) -> CommandDetailOut:
    """State, attempts and every transition with its timestamp."""
    async with runtime.db.read() as session:
        command = await session.get(Command, command_id)
        if command is None:
            raise NotFound(f"command {command_id} not found")
        transitions = list(
            (
                await session.execute(
                    select(CommandTransition)
                    .where(CommandTransition.command_id == command_id)
                    .order_by(CommandTransition.transition_id)
                )
            ).scalars()
        )
    return CommandDetailOut.build(command, transitions)


@router.get("", response_model=Page[CommandOut], responses=error_responses(401, 422))
async def list_commands(
    runtime: RuntimeDep,
    _: ViewerDep,
    meter_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    state: Annotated[CommandState | None, Query()] = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[CommandOut]:
    """Commands, newest first (ids are time-ordered)."""
    before = decode_cursor(cursor)
    query = select(Command)
    if meter_id is not None:
        query = query.where(Command.meter_id == meter_id)
    if state is not None:
        query = query.where(Command.state == state.value)
    if before is not None:
        query = query.where(Command.command_id < before)
    query = query.order_by(Command.command_id.desc()).limit(limit)
    async with runtime.db.read() as session:
        items = [CommandOut.model_validate(c) for c in (await session.execute(query)).scalars()]
    next_cursor = encode_cursor(items[-1].command_id) if len(items) == limit else None
    return Page[CommandOut](items=items, next_cursor=next_cursor)

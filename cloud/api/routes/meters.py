"""Meters: listing, detail, and the operator's manual relay command."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from sqlalchemy import select

from cloud.api.deps import OperatorDep, RuntimeDep, ViewerDep
from cloud.api.errors import error_responses
from cloud.api.pagination import CursorQuery, LimitQuery, decode_cursor, encode_cursor
from cloud.api.schemas import CommandOut, CommandRequestIn, MeterOut, Page
from cloud.commands.operator import issue_manual_command
from cloud.db.models import Meter
from cloud.errors import NotFound
from wire import RelayState
from wire.ids import ID_PATTERN

router = APIRouter(prefix="/api/v1/meters", tags=["meters"])

MeterIdPath = Annotated[str, Path(pattern=ID_PATTERN)]


@router.get("", response_model=Page[MeterOut], responses=error_responses(401, 422))
async def list_meters(
    runtime: RuntimeDep,
    _: ViewerDep,
    relay: Annotated[RelayState | None, Query(description="reported relay state")] = None,
    dcu: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[MeterOut]:
    """Meters in id order, filtered by reported relay state and DCU."""
    after = decode_cursor(cursor)
    query = select(Meter)
    if relay is not None:
        query = query.where(Meter.reported_relay == relay.value)
    if dcu is not None:
        query = query.where(Meter.dcu_id == dcu)
    if after is not None:
        query = query.where(Meter.meter_id > after)
    query = query.order_by(Meter.meter_id).limit(limit)
    async with runtime.db.read() as session:
        items = [MeterOut.model_validate(m) for m in (await session.execute(query)).scalars()]
    next_cursor = encode_cursor(items[-1].meter_id) if len(items) == limit else None
    return Page[MeterOut](items=items, next_cursor=next_cursor)


@router.get("/{meter_id}", response_model=MeterOut, responses=error_responses(401, 404, 422))
async def get_meter(meter_id: MeterIdPath, runtime: RuntimeDep, _: ViewerDep) -> MeterOut:
    """Desired and reported relay state, control mode, DCU and last seen."""
    async with runtime.db.read() as session:
        meter = await session.get(Meter, meter_id)
        if meter is None:
            raise NotFound(f"meter {meter_id} not found")
        return MeterOut.model_validate(meter)


@router.post(
    "/{meter_id}/commands",
    response_model=CommandOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(400, 401, 403, 404, 422, 429),
)
async def command_meter(
    meter_id: MeterIdPath,
    body: CommandRequestIn,
    runtime: RuntimeDep,
    operator: OperatorDep,
) -> CommandOut:
    """Queue a manual connect or disconnect; it supersedes any older active command.

    Kept in the audit log with who asked and why; limited per operator and in total (429)."""
    command = await issue_manual_command(
        runtime.db,
        runtime.factory,
        runtime.dispatcher,
        meter_id=meter_id,
        action=body.action,
        reason=body.reason,
        actor=operator,
        limit=runtime.command_limit,
    )
    return CommandOut.model_validate(command)

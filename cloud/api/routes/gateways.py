"""Gateways (DCUs) and their presence."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from cloud.api.deps import RuntimeDep, ViewerDep
from cloud.api.errors import error_responses
from cloud.api.schemas import GatewayOut
from cloud.db.models import Gateway

router = APIRouter(prefix="/api/v1/gateways", tags=["gateways"])


@router.get("", response_model=list[GatewayOut], responses=error_responses(401))
async def list_gateways(runtime: RuntimeDep, _: ViewerDep) -> list[GatewayOut]:
    """Every DCU with presence, meter count and last birth."""
    async with runtime.db.read() as session:
        rows = (await session.execute(select(Gateway).order_by(Gateway.dcu_id))).scalars()
        return [GatewayOut.build(g) for g in rows]

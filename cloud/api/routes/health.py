"""Liveness with broker and database status, and Prometheus metrics."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from cloud.api.deps import RuntimeDep
from cloud.api.schemas import HealthOut

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


@router.get(
    "/healthz",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "The database does not answer"}},
)
async def healthz(runtime: RuntimeDep, response: Response) -> HealthOut:
    """Liveness; 503 when the database does not answer."""
    try:
        await runtime.db.ping()
        database = "ok"
    except (SQLAlchemyError, OSError) as exc:
        log.warning("health check: database error %s", exc)
        database = "error"
    broker = "connected" if runtime.mqtt.connected else "disconnected"
    healthy = database == "ok" and broker == "connected"
    if database != "ok":
        response.status_code = 503
    return HealthOut(
        status="ok" if healthy else "degraded",
        database=database,
        broker=broker,
        instance_id=runtime.settings.instance_id,
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus exposition of this process's metrics."""
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)

"""A meter's readings over a time range, from the cloud database (no InfluxDB configured)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query

from cloud.api.deps import RuntimeDep, ViewerDep
from cloud.api.errors import error_responses
from cloud.api.pagination import CursorQuery, LimitQuery, decode_cursor, encode_cursor
from cloud.api.schemas import Page, ReadingOut
from cloud.clock import utcnow
from cloud.db.models import Meter
from cloud.errors import Conflict, NotFound, Unprocessable
from cloud.telemetry import EmbeddedTelemetry
from wire.ids import ID_PATTERN

router = APIRouter(prefix="/api/v1/meters", tags=["readings"])

_DEFAULT_SPAN = timedelta(days=1)
MeterIdPath = Annotated[str, Path(pattern=ID_PATTERN)]
_ISO = "ISO 8601 with a time zone, e.g. 2026-11-28T10:00:00Z"
FromQuery = Annotated[datetime | None, Query(alias="from", description=f"{_ISO} (inclusive)")]
ToQuery = Annotated[datetime | None, Query(alias="to", description=f"{_ISO} (exclusive)")]


@router.get(
    "/{meter_id}/readings",
    response_model=Page[ReadingOut],
    responses=error_responses(401, 404, 409, 422),
)
async def meter_readings(
    meter_id: MeterIdPath,
    runtime: RuntimeDep,
    _: ViewerDep,
    start: FromQuery = None,
    end: ToQuery = None,
    limit: LimitQuery = 1000,
    cursor: CursorQuery = None,
) -> Page[ReadingOut]:
    """Readings with from <= at < to, oldest first (default: the last day)."""
    telemetry = runtime.telemetry
    if not isinstance(telemetry, EmbeddedTelemetry):
        raise Conflict(
            "readings go to InfluxDB in this deployment: query it, or see the Grafana dashboards",
            code="readings_in_influxdb",
        )
    end = end or utcnow()
    if start is None:
        try:
            start = end - _DEFAULT_SPAN
        except OverflowError:
            start = datetime.min.replace(tzinfo=UTC)
    if start.tzinfo is None or end.tzinfo is None:
        raise Unprocessable("from and to need a time zone (e.g. a trailing Z)")
    if start >= end:
        raise Unprocessable("from must be before to")
    async with runtime.db.read() as session:
        if await session.get(Meter, meter_id) is None:
            raise NotFound(f"meter {meter_id} not found")
    after = decode_cursor(cursor)
    if after is not None:
        try:
            start = max(start, datetime.fromisoformat(after) + timedelta(microseconds=1))
        except (ValueError, TypeError, OverflowError):
            # Not a position we issued (we only issue reading times): nothing comes after it.
            return Page[ReadingOut](items=[], next_cursor=None)
    if start >= end:
        return Page[ReadingOut](items=[], next_cursor=None)  # the cursor passed the window's end
    rows = await telemetry.store.readings(meter_id, start, end, limit=limit)
    items = [ReadingOut.model_validate(row) for row in rows]
    next_cursor = encode_cursor(items[-1].at.isoformat()) if len(items) == limit else None
    return Page[ReadingOut](items=items, next_cursor=next_cursor)

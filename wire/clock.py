"""Wall-clock helpers: every wire timestamp is integer Unix milliseconds, UTC."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_ms() -> int:
    """Return the current Unix time in whole milliseconds."""
    return time.time_ns() // 1_000_000


def ms_to_datetime(value_ms: int) -> datetime:
    """Convert Unix milliseconds to an aware UTC datetime."""
    return datetime.fromtimestamp(value_ms / 1000, tz=UTC)


def datetime_to_ms(value: datetime) -> int:
    """Convert an aware datetime (naive means UTC) to Unix milliseconds."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)

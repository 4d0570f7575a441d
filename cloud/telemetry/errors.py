"""What can go wrong on the way to the time-series database."""

from __future__ import annotations

from cloud.errors import CloudError


class TelemetryError(CloudError):
    """Base of the telemetry pipeline's errors."""


class TsdbUnavailable(TelemetryError):
    """The time-series database did not take a write now; trying again later may succeed."""


class PointsRejected(TelemetryError):
    """The database refused a write as invalid: sending the same bytes again cannot help."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status


class SpoolFull(TelemetryError):
    """The disk spool has reached its size bound."""

    def __init__(self, size_bytes: int, max_bytes: int) -> None:
        super().__init__(f"telemetry spool holds {size_bytes} bytes (bound {max_bytes})")
        self.size_bytes = size_bytes
        self.max_bytes = max_bytes


class KeptBatchesUnavailable(TelemetryError):
    """The cloud database cannot tell which batches are kept: writing now might repeat one."""

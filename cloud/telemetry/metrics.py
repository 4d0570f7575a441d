"""Prometheus metrics of the telemetry pipeline, on the cloud process's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class TelemetryMetrics:
    """Where telemetry points went, what waits, and what gateways had to drop."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.batches = Counter(
            "switchyard_telemetry_batches",
            "Telemetry batches accepted from gateways, by whether they were replayed.",
            ["historical"],
            registry=r,
        )
        self.readings = Counter(
            "switchyard_telemetry_readings",
            "Readings and load-profile blocks accepted from gateways.",
            registry=r,
        )
        self.repeated_batches = Counter(
            "switchyard_telemetry_repeated_batches",
            "Batches a gateway sent again that were kept before: acknowledged, not written.",
            registry=r,
        )
        self.points = Counter(
            "switchyard_telemetry_points",
            "Time-series points by fate: written, spooled, replayed (from the spool), rejected.",
            ["fate"],
            registry=r,
        )
        self.pending_points = Gauge(
            "switchyard_telemetry_pending_points",
            "Points buffered in memory, not yet written or spooled.",
            registry=r,
        )
        self.spool_bytes = Gauge(
            "switchyard_telemetry_spool_bytes",
            "Bytes of line protocol spooled on disk while the database is unavailable.",
            registry=r,
        )
        self.tsdb_up = Gauge(
            "switchyard_telemetry_tsdb_up",
            "1 while writes to the time-series database succeed.",
            registry=r,
        )
        self.tsdb_up.set(1)
        self.errors = Counter(
            "switchyard_telemetry_errors",
            "Failed writes and spool appends, by stage.",
            ["stage"],
            registry=r,
        )
        self.gateway_dropped = Gauge(
            "switchyard_telemetry_gateway_dropped_readings",
            "Readings a gateway dropped from its full backlog (its running total).",
            ["dcu_id"],
            registry=r,
        )

"""Telemetry in the cloud: batches from gateways and points from the command path, to InfluxDB
through a buffer the cloud owns, or readings into the cloud database when there is no InfluxDB."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from cloud.db.session import Database
from cloud.settings import CloudSettings
from cloud.telemetry.embedded import ReadingStore
from cloud.telemetry.errors import (
    KeptBatchesUnavailable,
    PointsRejected,
    SpoolFull,
    TelemetryError,
    TsdbUnavailable,
)
from cloud.telemetry.kept import BatchKey, KeptBatches, OncePerKey, batch_key
from cloud.telemetry.metrics import TelemetryMetrics
from cloud.telemetry.pipeline import PipelinePolicy, PipelineStats, TelemetryPipeline
from cloud.telemetry.schema import MEASUREMENTS, FieldType, Measurement
from cloud.telemetry.service import (
    DropTracker,
    EmbeddedTelemetry,
    InfluxTelemetry,
    TelemetryService,
    build_influx,
    influx_writer,
)
from cloud.telemetry.writer import InfluxWriter, PointWriter


def pipeline_policy(settings: CloudSettings) -> PipelinePolicy:
    """The buffer's sizes and timings from settings."""
    return PipelinePolicy(
        max_pending_points=settings.telemetry_buffer_max_points,
        flush_points=settings.telemetry_flush_points,
        flush_interval_s=settings.telemetry_flush_interval_ms / 1000,
        retry_s=settings.telemetry_retry_s,
        write_concurrency=settings.telemetry_write_concurrency,
    )


def build_telemetry(
    settings: CloudSettings, db: Database, registry: CollectorRegistry
) -> TelemetryService:
    """InfluxDB when `influx_url` is set, else the embedded reading store."""
    metrics = TelemetryMetrics(registry)
    kept = KeptBatches(
        db,
        max_age_s=settings.telemetry_kept_batches_max_age_s,
        max_count=settings.telemetry_kept_batches_max,
    )
    prune_s = settings.telemetry_kept_batches_prune_s
    if settings.influx_url:
        writer = influx_writer(
            settings.influx_url,
            settings.influx_token.get_secret_value(),
            settings.influx_org,
            settings.influx_bucket,
            timeout_s=settings.influx_timeout_s,
            gzip_level=settings.influx_gzip_level,
        )
        return build_influx(
            db,
            metrics,
            writer,
            spool_dir=settings.telemetry_spool_dir,
            spool_max_bytes=settings.telemetry_spool_max_bytes,
            policy=pipeline_policy(settings),
            kept=kept,
            prune_s=prune_s,
        )
    store = ReadingStore(db, metrics, retention_days=settings.telemetry_retention_days)
    return EmbeddedTelemetry(
        store,
        kept,
        DropTracker(db, metrics),
        metrics,
        batch_max=settings.ack_batch_max,
        retention_check_s=settings.telemetry_retention_check_s,
        prune_s=prune_s,
    )


__all__ = [
    "MEASUREMENTS",
    "BatchKey",
    "DropTracker",
    "EmbeddedTelemetry",
    "FieldType",
    "InfluxTelemetry",
    "InfluxWriter",
    "KeptBatches",
    "KeptBatchesUnavailable",
    "Measurement",
    "OncePerKey",
    "PipelinePolicy",
    "PipelineStats",
    "PointWriter",
    "PointsRejected",
    "ReadingStore",
    "SpoolFull",
    "TelemetryError",
    "TelemetryMetrics",
    "TelemetryPipeline",
    "TelemetryService",
    "TsdbUnavailable",
    "batch_key",
    "build_influx",
    "build_telemetry",
    "influx_writer",
    "pipeline_policy",
]

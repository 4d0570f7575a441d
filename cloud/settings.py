"""Typed configuration of the cloud service, read once from `SWITCHYARD_*` environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_PLACEHOLDER = "dev-only-change-me"


class CloudSettings(BaseSettings):
    """Everything the cloud process needs; secrets refuse placeholders outside development."""

    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_", extra="ignore")

    dev_mode: bool = False
    instance_id: str = Field("cloud-1", pattern=r"^[A-Za-z0-9_.-]{1,64}$")

    http_host: str = "127.0.0.1"
    http_port: int = Field(8000, ge=0, le=65535)

    database_url: str = "sqlite+aiosqlite:///.switchyard/cloud.sqlite3"
    database_echo: bool = False

    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(1883, ge=1, le=65535)
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_session_expiry_s: int = Field(3600, ge=0)

    signing_key_id: str = Field("k1", min_length=1, max_length=64)
    signing_private_key: SecretStr = SecretStr("")
    webhook_secret: SecretStr = SecretStr("")
    operator_token: SecretStr = SecretStr("")
    viewer_token: SecretStr = SecretStr("")

    reconnection_fee_paise: int = Field(35_000, ge=0)
    currency: str = "INR"

    command_ttl_s: int = Field(3600, ge=1)
    ack_timeout_s: float = Field(5.0, gt=0)
    execution_timeout_s: float = Field(30.0, gt=0)
    max_attempts: int = Field(5, ge=1)
    retry_backoff_cap_s: float = Field(60.0, gt=0)
    dispatch_batch: int = Field(500, ge=1)
    dispatch_poll_s: float = Field(1.0, gt=0)
    ack_batch_max: int = Field(1000, ge=1)
    ack_batch_window_ms: float = Field(2.0, ge=0)

    # Telemetry: to InfluxDB (v2 write API) when a URL is set, else readings in the database.
    influx_url: str | None = None
    influx_token: SecretStr = SecretStr("")
    influx_org: str = "switchyard"
    influx_bucket: str = "telemetry"
    influx_timeout_s: float = Field(10.0, gt=0)
    influx_gzip_level: int = Field(6, ge=1, le=9)
    telemetry_buffer_max_points: int = Field(200_000, ge=1)
    telemetry_flush_points: int = Field(10_000, ge=1)
    telemetry_flush_interval_ms: float = Field(200.0, ge=0)
    telemetry_retry_s: float = Field(2.0, gt=0)
    telemetry_write_concurrency: int = Field(2, ge=1, le=16)
    telemetry_spool_dir: Path = Path(".switchyard/telemetry-spool")
    telemetry_spool_max_bytes: int = Field(1024 * 1024 * 1024, ge=1024)
    telemetry_retention_days: float = Field(7.0, gt=0)
    telemetry_retention_check_s: float = Field(3600.0, gt=0)

    @model_validator(mode="after")
    def _refuse_missing_secrets(self) -> CloudSettings:
        if self.dev_mode:
            return self
        if self.influx_url and not self.influx_token.get_secret_value():
            raise ValueError("SWITCHYARD_INFLUX_TOKEN must be set when SWITCHYARD_INFLUX_URL is")
        for name in ("signing_private_key", "webhook_secret", "operator_token", "viewer_token"):
            value: SecretStr = getattr(self, name)
            secret = value.get_secret_value()
            if not secret or secret == DEV_PLACEHOLDER:
                raise ValueError(
                    f"SWITCHYARD_{name.upper()} must be set to a real secret "
                    "(or set SWITCHYARD_DEV_MODE=true for local development)"
                )
        return self

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is SQLite (one writer, in-process write lock)."""
        return self.database_url.startswith("sqlite")

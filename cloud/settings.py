"""Typed configuration of the cloud service, read once from `SWITCHYARD_*` environment."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import AwareDatetime, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloud.policy.settings import PolicySettings

DEV_PLACEHOLDER = "dev-only-change-me"
# Webhook secrets and API tokens shorter than this are guessable.
MIN_SECRET_CHARS = 16
_DEV_HINT = " (or set SWITCHYARD_DEV_MODE=true for local development)"


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
    mqtt_keepalive_s: int = Field(30, ge=5, le=3600)
    mqtt_reconnect_min_s: float = Field(0.5, gt=0)
    mqtt_reconnect_max_s: float = Field(10.0, gt=0)

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

    # Broker TLS: the CA that signed the broker's certificate, and our client certificate.
    mqtt_tls_ca_file: Path | None = None
    mqtt_tls_cert_file: Path | None = None
    mqtt_tls_key_file: Path | None = None
    # Webhook secret rotation: the previous secret is also accepted until the given instant.
    webhook_secret_previous: SecretStr = SecretStr("")
    webhook_secret_previous_until: AwareDatetime | None = None
    # Manual commands per window: per operator, and in total across every operator.
    manual_commands_per_actor: int = Field(30, ge=1)
    manual_commands_total: int = Field(300, ge=1)
    manual_commands_window_s: float = Field(60.0, gt=0)
    # The disconnection policy, read from SWITCHYARD_POLICY_* (cloud/policy/settings.py).
    policy: PolicySettings = Field(default_factory=PolicySettings)
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
    # Ids of the gateway batches kept, so a repeat is not written twice: a repeat that comes
    # later than the age bound (a gateway's backlog keeps a batch 2 days at most), or after the
    # newest `telemetry_kept_batches_max` ids, is written again.
    telemetry_kept_batches_max_age_s: float = Field(2 * 86_400.0 + 3600.0, gt=0)
    telemetry_kept_batches_max: int = Field(1_000_000, ge=1)
    telemetry_kept_batches_prune_s: float = Field(300.0, gt=0)

    @model_validator(mode="after")
    def _refuse_missing_secrets(self) -> CloudSettings:
        if self.webhook_secret_previous.get_secret_value():
            if self.webhook_secret_previous_until is None:
                raise ValueError(
                    "SWITCHYARD_WEBHOOK_SECRET_PREVIOUS needs"
                    " SWITCHYARD_WEBHOOK_SECRET_PREVIOUS_UNTIL (the end of the rotation window)"
                )
            if self.webhook_secret_previous == self.webhook_secret:
                raise ValueError("the previous webhook secret equals the current one")
        if (self.mqtt_tls_cert_file is None) != (self.mqtt_tls_key_file is None):
            raise ValueError("SWITCHYARD_MQTT_TLS_CERT_FILE and _KEY_FILE go together")
        if self.dev_mode:
            return self
        if self.influx_url and not self.influx_token.get_secret_value():
            raise ValueError("SWITCHYARD_INFLUX_TOKEN must be set when SWITCHYARD_INFLUX_URL is")
        for name in ("signing_private_key", "webhook_secret", "operator_token", "viewer_token"):
            value: SecretStr = getattr(self, name)
            secret = value.get_secret_value()
            if not secret or secret == DEV_PLACEHOLDER:
                raise ValueError(
                    f"SWITCHYARD_{name.upper()} must be set to a real secret{_DEV_HINT}"
                )
            if name != "signing_private_key" and len(secret) < MIN_SECRET_CHARS:
                raise ValueError(
                    f"SWITCHYARD_{name.upper()} is shorter than {MIN_SECRET_CHARS} characters"
                )
        password = self.mqtt_password.get_secret_value() if self.mqtt_password else ""
        if not self.mqtt_username or not password or password == DEV_PLACEHOLDER:
            raise ValueError(f"SWITCHYARD_MQTT_USERNAME and _MQTT_PASSWORD must be set{_DEV_HINT}")
        if self.mqtt_tls_ca_file is None:
            raise ValueError(
                f"SWITCHYARD_MQTT_TLS_CA_FILE must be set: the broker is reached by TLS{_DEV_HINT}"
            )
        return self

    def webhook_secrets(self, now: datetime) -> list[str]:
        """The webhook secrets valid at `now`: the current one, and the previous one until its
        rotation window ends."""
        valid = [self.webhook_secret.get_secret_value()]
        until = self.webhook_secret_previous_until
        if until is not None and now < until:
            valid.append(self.webhook_secret_previous.get_secret_value())
        return [secret for secret in valid if secret]

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is SQLite (one writer, in-process write lock)."""
        return self.database_url.startswith("sqlite")

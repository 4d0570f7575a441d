"""Typed configuration of one edge gateway, read once from `SWITCHYARD_*` environment."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from wire.ids import ID_PATTERN, gateway_client_id
from wire.signing import public_key_from_b64

DEV_PLACEHOLDER = "dev-only-change-me"

# Fault-injection points a test can arm; each kills the process with SIGKILL at that instant.
CrashPoint = Literal["after_inbox_write"]


class GatewaySettings(BaseSettings):
    """Everything one DCU's gateway needs: its id, the broker, the meter link, keys and storage."""

    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_", extra="ignore")

    dcu_id: str = Field(pattern=ID_PATTERN)
    # Outside development mode the gateway refuses to start without trusted keys, a broker
    # password and TLS (a password must never cross the network in clear).
    dev_mode: bool = False

    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(1883, ge=1, le=65535)
    # The broker's ACL confines a user to the DCU of the same name: by default, ours.
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_tls_ca_file: Path | None = None
    mqtt_tls_cert_file: Path | None = None
    mqtt_tls_key_file: Path | None = None
    mqtt_keepalive_s: int = Field(30, ge=5)
    # Long enough that commands queued at the broker survive a gateway restart or short outage.
    mqtt_session_expiry_s: int = Field(3600, ge=0)
    # Commands the broker may have in flight to us; bounds what waits in memory for the store.
    mqtt_receive_maximum: int = Field(1000, ge=1, le=65535)
    mqtt_max_inflight: int = Field(200, ge=1)
    mqtt_reconnect_min_s: float = Field(0.5, gt=0)
    mqtt_reconnect_max_s: float = Field(30.0, gt=0)

    link_host: str = "127.0.0.1"
    link_port: int = Field(7070, ge=1, le=65535)
    link_timeout_s: float = Field(2.0, gt=0)
    link_attempts: int = Field(3, ge=1)

    # key id -> base64 of a raw 32-byte Ed25519 public key; JSON in the environment.
    trusted_keys: dict[str, str] = Field(default_factory=dict)

    state_dir: Path = Path(".switchyard/edge")
    max_concurrent_meters: int = Field(256, ge=1)
    outbound_window: int = Field(1000, ge=1)
    # Relay events are read right after each command; this poll catches the spontaneous ones
    # (power failures, tamper, overload trips). Every meter of the DCU is read each round, so
    # like a real DCU's event schedule it is minutes, not seconds.
    event_poll_s: float = Field(900.0, ge=0)
    telemetry_interval_s: float = Field(60.0, ge=0)
    # Unsent telemetry kept while the uplink is down; beyond any bound the oldest is dropped.
    telemetry_backlog_max: int = Field(1440, ge=1)  # batches
    telemetry_backlog_max_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    telemetry_backlog_max_age_s: float = Field(2 * 86_400.0, gt=0)
    # Backlog batches in the MQTT client's hands at once while replaying after an outage.
    telemetry_replay_window: int = Field(4, ge=1)
    # How long a PUBACKed batch stays stored for a resend should the broker go down first: longer
    # than the broker's autosave_interval (1 s in the generated and production configurations).
    telemetry_hold_s: float = Field(5.0, ge=0)
    inbox_retention_days: int = Field(30, ge=1)
    shutdown_grace_s: float = Field(10.0, ge=0)
    log_level: str = "INFO"

    crash_point: CrashPoint | None = None

    @field_validator("trusted_keys")
    @classmethod
    def _keys_decode(cls, keys: dict[str, str]) -> dict[str, str]:
        for key_id, value in keys.items():
            try:
                public_key_from_b64(value)
            except ValueError as exc:
                raise ValueError(f"trusted key {key_id!r}: {exc}") from exc
        return keys

    @model_validator(mode="after")
    def _refuse_missing_secrets(self) -> GatewaySettings:
        if (self.mqtt_tls_cert_file is None) != (self.mqtt_tls_key_file is None):
            raise ValueError("SWITCHYARD_MQTT_TLS_CERT_FILE and _KEY_FILE go together")
        if self.dev_mode:
            return self
        problems = []
        if not self.trusted_keys:
            problems.append("SWITCHYARD_TRUSTED_KEYS is empty: every command would be rejected")
        password = self.mqtt_password.get_secret_value() if self.mqtt_password else ""
        if not password or password == DEV_PLACEHOLDER:
            problems.append("SWITCHYARD_MQTT_PASSWORD must be set to this gateway's password")
        if self.mqtt_tls_ca_file is None:
            problems.append("SWITCHYARD_MQTT_TLS_CA_FILE must be set: the broker is reached by TLS")
        if problems:
            raise ValueError(
                "; ".join(problems) + " (or set SWITCHYARD_DEV_MODE=true for local development)"
            )
        return self

    @property
    def mqtt_user(self) -> str:
        """The MQTT user name: the configured one, else the DCU id the broker's ACL expects."""
        return self.mqtt_username or self.dcu_id

    @property
    def store_path(self) -> Path:
        """The SQLite file holding this gateway's inbox, versions and unsent messages."""
        return self.state_dir / f"edge-{self.dcu_id}.sqlite3"

    @property
    def client_id(self) -> str:
        """MQTT client id; stable across restarts so the broker keeps our session."""
        return gateway_client_id(self.dcu_id)

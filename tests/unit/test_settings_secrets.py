"""Settings refuse empty, placeholder or short secrets outside development mode."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from cloud.settings import DEV_PLACEHOLDER, CloudSettings
from edge_gateway.settings import GatewaySettings
from wire.signing import generate_private_key_b64, private_key_from_b64, public_key_b64

KEY = generate_private_key_b64()
PUBLIC = public_key_b64(private_key_from_b64(KEY))


@pytest.fixture(autouse=True)
def _no_switchyard_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SWITCHYARD_"):
            monkeypatch.delenv(name)


def cloud(**overrides: Any) -> CloudSettings:
    fields: dict[str, Any] = {
        "signing_private_key": KEY,
        "webhook_secret": "w" * 32,
        "operator_token": "o" * 32,
        "viewer_token": "v" * 32,
        "mqtt_username": "cloud@switchyard",
        "mqtt_password": "p" * 32,
        "mqtt_tls_ca_file": Path("/etc/ca.crt"),
    }
    return CloudSettings.model_validate(fields | overrides)


def gateway(**overrides: Any) -> GatewaySettings:
    fields: dict[str, Any] = {
        "dcu_id": "DCU01",
        "trusted_keys": {"k1": PUBLIC},
        "mqtt_password": "p" * 32,
        "mqtt_tls_ca_file": Path("/etc/ca.crt"),
    }
    return GatewaySettings.model_validate(fields | overrides)


def test_complete_production_settings_are_accepted() -> None:
    assert cloud().mqtt_username == "cloud@switchyard"
    assert gateway().mqtt_user == "DCU01"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("signing_private_key", ""),
        ("webhook_secret", ""),
        ("webhook_secret", DEV_PLACEHOLDER),
        ("webhook_secret", "short"),
        ("operator_token", ""),
        ("operator_token", "tooshort"),
        ("viewer_token", DEV_PLACEHOLDER),
        ("mqtt_password", ""),
        ("mqtt_password", None),
        ("mqtt_username", None),
        ("mqtt_tls_ca_file", None),
    ],
)
def test_cloud_refuses_missing_or_default_secrets(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match="SWITCHYARD_"):
        cloud(**{field: value})
    assert cloud(dev_mode=True, **{field: value}).dev_mode


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("trusted_keys", {}),
        ("mqtt_password", None),
        ("mqtt_password", ""),
        ("mqtt_password", DEV_PLACEHOLDER),
        ("mqtt_tls_ca_file", None),
    ],
)
def test_gateway_refuses_missing_keys_or_credentials(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match="SWITCHYARD_"):
        gateway(**{field: value})
    assert gateway(dev_mode=True, **{field: value}).dev_mode


def test_a_certificate_needs_its_key() -> None:
    with pytest.raises(ValidationError, match="go together"):
        gateway(mqtt_tls_cert_file=Path("/etc/c.crt"))
    with pytest.raises(ValidationError, match="go together"):
        cloud(mqtt_tls_key_file=Path("/etc/c.key"))


def test_previous_webhook_secret_needs_an_end_and_expires_then() -> None:
    with pytest.raises(ValidationError, match="PREVIOUS_UNTIL"):
        cloud(webhook_secret_previous="x" * 32)
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    rotating = cloud(webhook_secret_previous="x" * 32, webhook_secret_previous_until=now)
    assert rotating.webhook_secrets(now - timedelta(seconds=1)) == ["w" * 32, "x" * 32]
    assert rotating.webhook_secrets(now) == ["w" * 32]
    assert cloud().webhook_secrets(now) == ["w" * 32]

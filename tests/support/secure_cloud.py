"""A cloud configured for production against the secured broker (TLS, its own user and
certificate, real secrets, no development mode), and a small seeded fleet over two DCUs."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from cloud.db.migrate import upgrade_to_head
from cloud.db.session import Database
from cloud.onboarding import AccountRecord, register_accounts
from cloud.settings import CloudSettings
from switchyard.broker import Broker
from switchyard.broker_credentials import CLOUD_USER, BrokerCredentials
from wire import RelayState
from wire.signing import generate_private_key_b64

DEADLINE_S = 15.0
T = TypeVar("T")


@dataclass(frozen=True)
class CloudSecrets:
    """The secrets one test cloud runs with."""

    signing_private_key: str
    webhook_secret: str
    operator_token: str
    viewer_token: str

    @classmethod
    def generate(cls) -> CloudSecrets:
        """Fresh random secrets."""
        return cls(
            generate_private_key_b64(),
            secrets.token_urlsafe(24),
            secrets.token_urlsafe(24),
            secrets.token_urlsafe(24),
        )


def cloud_env(
    broker: Broker,
    creds: BrokerCredentials,
    database_url: str,
    cloud_secrets: CloudSecrets,
) -> dict[str, str]:
    """SWITCHYARD_* variables of a production-mode cloud on the secured broker."""
    return {
        "SWITCHYARD_DEV_MODE": "false",
        "SWITCHYARD_DATABASE_URL": database_url,
        "SWITCHYARD_MQTT_HOST": broker.host,
        "SWITCHYARD_MQTT_PORT": str(broker.port),
        "SWITCHYARD_MQTT_USERNAME": CLOUD_USER,
        "SWITCHYARD_MQTT_PASSWORD": creds.password(CLOUD_USER),
        "SWITCHYARD_MQTT_TLS_CA_FILE": str(creds.ca_cert),
        "SWITCHYARD_MQTT_TLS_CERT_FILE": str(creds.client_cert(CLOUD_USER)),
        "SWITCHYARD_MQTT_TLS_KEY_FILE": str(creds.client_key(CLOUD_USER)),
        "SWITCHYARD_SIGNING_KEY_ID": "k1",
        "SWITCHYARD_SIGNING_PRIVATE_KEY": cloud_secrets.signing_private_key,
        "SWITCHYARD_WEBHOOK_SECRET": cloud_secrets.webhook_secret,
        "SWITCHYARD_OPERATOR_TOKEN": cloud_secrets.operator_token,
        "SWITCHYARD_VIEWER_TOKEN": cloud_secrets.viewer_token,
    }


def cloud_settings(
    broker: Broker,
    creds: BrokerCredentials,
    database_url: str,
    cloud_secrets: CloudSecrets,
    **overrides: Any,
) -> CloudSettings:
    """The same configuration as `cloud_env`, as settings for an in-process runtime."""
    fields = {
        key.removeprefix("SWITCHYARD_").lower(): value
        for key, value in cloud_env(broker, creds, database_url, cloud_secrets).items()
    }
    return CloudSettings.model_validate(fields | overrides)


# Two DCUs, two meters each; every relay connected.
FLEET = [
    AccountRecord(f"ACC{dcu}{n}", f"Consumer {dcu}{n}", f"MTR{dcu}{n}", f"DCU0{dcu}", rel)
    for dcu in (1, 2)
    for n, rel in ((1, RelayState.CONNECTED), (2, RelayState.CONNECTED))
]


async def seed(database_url: str) -> None:
    """Create the schema and register FLEET."""
    db = Database.from_url(database_url)
    try:
        await upgrade_to_head(db.engine)
        await register_accounts(db, FLEET, datetime.now(UTC))
    finally:
        await db.close()


async def eventually(found: Callable[[], Awaitable[T | None]], what: str) -> T:
    """Poll an async condition (a database row, an API answer) until it holds, or fail."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        # Polled: the database offers no change notification to a test.
        result = await found()
        if result:
            return result
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")

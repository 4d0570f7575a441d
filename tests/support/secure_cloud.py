"""A cloud configured for production against the secured broker (TLS, its own user and
certificate, real secrets, no development mode), and a small seeded fleet over two DCUs."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from cloud.db.migrate import upgrade_to_head
from cloud.db.session import Database
from cloud.onboarding import AccountRecord, register_accounts
from cloud.settings import CloudSettings
from switchyard.broker import Broker
from switchyard.broker_credentials import CLOUD_USER, BrokerCredentials
from switchyard.procs import ManagedProcess, free_port
from tests.support.wait import wait_until
from wire import RelayState
from wire.signing import generate_private_key_b64

DEADLINE_S = 15.0
REPO = Path(__file__).resolve().parents[2]


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


@dataclass
class CloudProcess:
    """`python -m cloud.main` in production mode on the secured broker, and how to reach it."""

    process: ManagedProcess
    url: str
    secrets: CloudSecrets
    database_url: str
    env: dict[str, str]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period."""
        self.process.stop()


def start_cloud_process(
    broker: Broker,
    creds: BrokerCredentials,
    database_url: str,
    workdir: Path,
    **settings: str,
) -> CloudProcess:
    """Seed FLEET, start the cloud and wait until it answers with the broker connected;
    `settings` override SWITCHYARD_* by lowercase name."""
    asyncio.run(seed(database_url))
    cloud_secrets = CloudSecrets.generate()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    env |= cloud_env(broker, creds, database_url, cloud_secrets)
    env |= {"SWITCHYARD_HTTP_PORT": str(port), "SWITCHYARD_INSTANCE_ID": f"cloud-{port}"}
    env |= {f"SWITCHYARD_{name.upper()}": value for name, value in settings.items()}
    process = ManagedProcess(
        "cloud", [sys.executable, "-m", "cloud.main"], workdir / "cloud.log", env=env, cwd=REPO
    ).start()
    url = f"http://127.0.0.1:{port}"
    try:
        process.wait_port("127.0.0.1", port)
        _wait_broker_connected(url, process)
    except BaseException:
        process.stop()
        raise
    return CloudProcess(process, url, cloud_secrets, database_url, env)


def _wait_broker_connected(url: str, process: ManagedProcess) -> None:
    with httpx.Client(base_url=url, timeout=5.0) as client:
        try:
            wait_until(
                "the cloud to connect to the broker",
                lambda: dict(client.get("/healthz").json()),
                lambda health: health.get("broker") == "connected",
                timeout_s=DEADLINE_S,
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{process.tail()}") from None


def run_cli(env: dict[str, str], *args: str) -> str:
    """Run the `switchyard` command with this environment; its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "switchyard.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout

"""Shared fixtures: a real Mosquitto per test, started on a free port with its own config — plain,
or secured with the project's TLS, passwords and ACL (`secure_broker`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from switchyard.broker import Broker, start_broker, start_secure_broker
from switchyard.broker_credentials import CLOUD_USER, BrokerCredentials, ensure_credentials

# The DCUs every secured-broker test has credentials for.
SECURE_DCUS = ("DCU01", "DCU02")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A fresh Mosquitto for one test, stopped afterwards."""
    running = start_broker(tmp_path / "broker")
    try:
        yield running
    finally:
        running.process.stop()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A fresh, empty cloud database for one test (SQLite today; PostgreSQL joins in issue 4)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'cloud.sqlite3'}"


@pytest.fixture
def broker_credentials(tmp_path: Path) -> BrokerCredentials:
    """A CA, server and client certificates and passwords for the cloud and SECURE_DCUS."""
    return ensure_credentials(tmp_path / "broker-secrets", [CLOUD_USER, *SECURE_DCUS])


@pytest.fixture
def secure_broker(tmp_path: Path, broker_credentials: BrokerCredentials) -> Iterator[Broker]:
    """A fresh Mosquitto with the project's security: TLS only, passwords, per-DCU ACL."""
    running = start_secure_broker(tmp_path / "secure-broker", broker_credentials)
    try:
        yield running
    finally:
        running.process.stop()

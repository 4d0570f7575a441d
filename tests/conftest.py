"""Shared fixtures: a real Mosquitto per test (plain, or secured with the project's TLS,
passwords and ACL: `secure_broker`), a real VictoriaMetrics, and cloud databases on SQLite and
PostgreSQL.

Every test that takes `database_url` runs once per backend. PostgreSQL is a throwaway cluster
started once per session with initdb/pg_ctl; each test gets a fresh database in it.
`SWITCHYARD_TEST_DATABASES=sqlite` (or `postgresql`) narrows the run to one backend.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from switchyard.broker import Broker, start_broker, start_secure_broker
from switchyard.broker_credentials import CLOUD_USER, BrokerCredentials, ensure_credentials
from switchyard.postgres import PostgresCluster, start_cluster
from switchyard.procs import ProcessStartError
from switchyard.victoria import Victoria, start_victoria

BACKENDS = [
    name.strip()
    for name in os.environ.get("SWITCHYARD_TEST_DATABASES", "sqlite,postgresql").split(",")
    if name.strip()
]
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


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """One PostgreSQL cluster for the session; CI must have it, elsewhere it may be skipped."""
    try:
        cluster = start_cluster()
    except ProcessStartError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        yield cluster
    finally:
        cluster.destroy()


async def _admin(cluster: PostgresCluster, statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(cluster.dsn())
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def fresh_database_url(backend: str, request: pytest.FixtureRequest, directory: Path) -> str:
    """A new, empty database on the named backend, dropped when the requesting scope ends."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{directory / f'cloud-{uuid.uuid4().hex[:8]}.sqlite3'}"
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    name = f"t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(cluster, f'CREATE DATABASE "{name}"'))
    request.addfinalizer(
        lambda: asyncio.run(_admin(cluster, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    )
    return cluster.url(name)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty cloud database for one test, once per backend."""
    return fresh_database_url(request.param, request, tmp_path)


@pytest.fixture(scope="module", params=BACKENDS)
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A fresh cloud database shared by one test module, once per backend."""
    return fresh_database_url(request.param, request, tmp_path_factory.mktemp("db"))


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


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[Victoria]:
    """A fresh VictoriaMetrics (InfluxDB v2 write API) for one test, stopped afterwards."""
    running = start_victoria(tmp_path / "victoria")
    try:
        yield running
    finally:
        running.process.stop()

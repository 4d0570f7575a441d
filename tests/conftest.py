"""Shared fixtures: a real Mosquitto and a real VictoriaMetrics per test, each on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from switchyard.broker import Broker, start_broker
from switchyard.victoria import Victoria, start_victoria


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
def victoria(tmp_path: Path) -> Iterator[Victoria]:
    """A fresh VictoriaMetrics (InfluxDB v2 write API) for one test, stopped afterwards."""
    running = start_victoria(tmp_path / "victoria")
    try:
        yield running
    finally:
        running.process.stop()

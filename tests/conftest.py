"""Shared fixtures: a real Mosquitto per test module, started on a free port with its own config."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from switchyard.broker import Broker, start_broker


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

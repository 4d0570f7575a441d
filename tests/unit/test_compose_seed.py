"""The compose stack's one-shot seed: demo accounts once, and the simulator's fleet file."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select

from cloud.db.models import Account
from cloud.db.session import Database
from switchyard.seed import SeedSettings, seed


async def test_seed_registers_the_fleet_once_and_writes_the_fleet_file(
    database_url: str, tmp_path: Path
) -> None:
    settings = SeedSettings(
        database_url=database_url,
        seed_meters=10,
        seed_gateways=2,
        seed_fleet_file=tmp_path / "fleet" / "fleet.json",
    )
    first = await seed(settings)
    again = await seed(settings)  # compose may start the seed again: nothing doubles

    assert first is not None and again is None
    fleet = json.loads(settings.seed_fleet_file.read_text())["meters"]
    assert [m["meter_id"] for m in fleet] == [a.meter_id for a in first.accounts]
    assert {m["dcu_id"] for m in fleet} == {"DCU01", "DCU02"}
    db = Database.from_url(database_url)
    try:
        async with db.read() as session:
            assert await session.scalar(select(func.count()).select_from(Account)) == 10
    finally:
        await db.close()

"""`python -m switchyard.seed`: demo data for a stack in containers — the simulator's fleet file
and the matching meters, accounts and bills in the cloud database, written once."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import func, select

from cloud.db.migrate import upgrade_to_head
from cloud.db.models import Meter
from cloud.db.session import Database
from cloud.onboarding import register_accounts
from switchyard.demo import DemoFleet, build_demo_fleet


class SeedSettings(BaseSettings):
    """Where the demo data goes and how big the fleet is."""

    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_", extra="ignore")

    database_url: str
    seed_meters: int = Field(200, ge=1)
    seed_gateways: int = Field(2, ge=1)
    seed_fleet_file: Path = Path("/var/lib/switchyard/fleet/fleet.json")


async def seed(settings: SeedSettings) -> DemoFleet | None:
    """Migrate, then register the demo fleet unless the database already has meters."""
    fleet = build_demo_fleet(meters=settings.seed_meters, gateways=settings.seed_gateways)
    db = Database.from_url(settings.database_url)
    try:
        await upgrade_to_head(db.engine)
        async with db.read() as session:
            existing = await session.scalar(select(func.count()).select_from(Meter))
        # The fleet file is rewritten either way: the same settings give the same meters.
        fleet.write_sim_fleet(settings.seed_fleet_file)
        if existing:
            return None
        await register_accounts(db, fleet.accounts, datetime.now(UTC))
        return fleet
    finally:
        await db.close()


def main() -> None:
    """Seed and say which accounts start disconnected (pay one to see its power return)."""
    try:
        settings = SeedSettings()  # database_url comes from the environment
    except ValidationError as exc:
        raise SystemExit(f"switchyard seed: bad configuration:\n{exc}") from exc
    fleet = asyncio.run(seed(settings))
    if fleet is None:
        print("switchyard seed: database already has meters; fleet file rewritten")
        return
    print(f"switchyard seed: {len(fleet.accounts)} accounts on {len(fleet.dcu_ids)} DCUs")
    for account in fleet.disconnected()[:5]:
        print(f"  disconnected: {account.account_id} (meter {account.meter_id})")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

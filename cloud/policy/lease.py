"""A named lease in the database: one cloud process at a time holds it, on SQLite and PostgreSQL.

Claimed with one conditional UPDATE (free or expired → mine), so two processes racing for it
cannot both win: the database applies the UPDATEs one after the other and only the first matches.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import CursorResult, or_, update

from cloud.db.models import Lease
from cloud.db.session import Database
from cloud.db.upsert import insert_ignoring_duplicates


@dataclass(frozen=True)
class LeaseClaim:
    """Proof of holding a lease until `expires_at`."""

    name: str
    holder: str
    expires_at: datetime


class LeaseKeeper:
    """Claims and releases named leases for one process."""

    def __init__(self, db: Database, instance_id: str) -> None:
        self._db = db
        self._instance_id = instance_id

    async def claim(self, name: str, now: datetime, ttl_s: float) -> LeaseClaim | None:
        """Take the lease if it is free or expired; None if another holder has it."""
        holder = f"{self._instance_id}/{uuid.uuid4().hex[:12]}"
        expires_at = now + timedelta(seconds=ttl_s)
        async with self._db.write() as session:
            await insert_ignoring_duplicates(session, Lease, [{"name": name}])
            result = await session.execute(
                update(Lease)
                .where(
                    Lease.name == name,
                    or_(Lease.holder.is_(None), Lease.expires_at <= now),
                )
                .values(holder=holder, expires_at=expires_at)
            )
        claimed = isinstance(result, CursorResult) and result.rowcount == 1
        return LeaseClaim(name, holder, expires_at) if claimed else None

    async def release(self, claim: LeaseClaim) -> None:
        """Give the lease back (only if we still hold it)."""
        async with self._db.write() as session:
            await session.execute(
                update(Lease)
                .where(Lease.name == claim.name, Lease.holder == claim.holder)
                .values(holder=None, expires_at=None)
            )

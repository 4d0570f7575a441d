"""Dialect-aware INSERT ... ON CONFLICT DO NOTHING for idempotent writes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.db.models import Base


async def insert_ignoring_duplicates(
    session: AsyncSession, model: type[Base], rows: Sequence[dict[str, Any]]
) -> None:
    """Insert rows; a row whose key already exists is skipped, not an error."""
    if not rows:
        return
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(insert(model).on_conflict_do_nothing(), list(rows))

"""Hand-written SQL on the driver connection of a session's transaction — for the hottest path
only. Measured here: a statement costs about 65 µs this way and 300 µs through SQLAlchemy's
async layer, and a payment runs ten of them.

SQL is written once with `:name` parameters and runs on SQLite (aiosqlite) and PostgreSQL
(asyncpg); values are stored exactly as SQLAlchemy stores them, so ORM reads see no difference.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

_PARAMETER = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


class RawSql:
    """Runs SQL inside the transaction the session has begun (run a SQLAlchemy statement first)."""

    def __init__(self, driver: Any, dialect: str) -> None:
        self._driver = driver
        self.is_postgres = dialect == "postgresql"
        self._prepared: dict[str, tuple[str, tuple[str, ...]]] = {}

    @classmethod
    async def of(cls, session: AsyncSession) -> RawSql:
        """The driver connection under this session's current transaction."""
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        return cls(raw.driver_connection, connection.dialect.name)

    async def fetchone(self, sql: str, **params: Any) -> tuple[Any, ...] | None:
        """The first row of a query, or None."""
        text, args = self._bind(sql, params)
        if self.is_postgres:
            row = await self._driver.fetchrow(text, *args)
            return tuple(row) if row is not None else None
        rows = await self._driver.execute_fetchall(text, args)
        return tuple(rows[0]) if rows else None

    async def fetchall(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        """Every row of a query (e.g. an UPDATE ... RETURNING)."""
        text, args = self._bind(sql, params)
        if self.is_postgres:
            return [tuple(row) for row in await self._driver.fetch(text, *args)]
        return [tuple(row) for row in await self._driver.execute_fetchall(text, args)]

    async def execute(self, sql: str, **params: Any) -> None:
        """Run a statement that returns nothing."""
        text, args = self._bind(sql, params)
        if self.is_postgres:
            await self._driver.execute(text, *args)
        else:
            cursor = await self._driver.execute(text, args)
            await cursor.close()

    async def executemany(self, sql: str, rows: Sequence[dict[str, Any]]) -> None:
        """Run one statement for many rows, in the driver's own loop (bulk inserts)."""
        if not rows:
            return
        text, names = self._prepared_for(sql)
        args = [tuple(self._value(row[name]) for name in names) for row in rows]
        if self.is_postgres:
            await self._driver.executemany(text, args)
        else:
            cursor = await self._driver.executemany(text, args)
            await cursor.close()

    def _prepared_for(self, sql: str) -> tuple[str, tuple[str, ...]]:
        prepared = self._prepared.get(sql)
        if prepared is None:
            prepared = self._prepared[sql] = self._prepare(sql)
        return prepared

    def _bind(self, sql: str, params: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
        text, names = self._prepared_for(sql)
        return text, tuple(self._value(params[name]) for name in names)

    def _prepare(self, sql: str) -> tuple[str, tuple[str, ...]]:
        names: list[str] = []

        def placeholder(match: re.Match[str]) -> str:
            names.append(match.group(1))
            return f"${len(names)}" if self.is_postgres else "?"

        return _PARAMETER.sub(placeholder, sql), tuple(names)

    def _value(self, value: Any) -> Any:
        if self.is_postgres:
            return value
        # SQLite: exactly SQLAlchemy's storage formats (see cloud.db.types.UtcDateTime).
        if isinstance(value, datetime):
            value = value.astimezone(UTC) if value.tzinfo else value
            return value.strftime("%Y-%m-%d %H:%M:%S.%f")
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, bool):
            return int(value)
        return value

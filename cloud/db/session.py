"""The database handle: engine, sessions, and a write path that is safe on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

log = logging.getLogger(__name__)

SLOW_WRITE_S = 0.1  # SQLite has one writer: a transaction holding it this long stalls the rest


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; NORMAL sync survives any process crash
    # (only an OS crash could lose the last commits); busy_timeout absorbs checkpoints.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(database_url: str, *, echo: bool = False) -> AsyncEngine:
    """Create the async engine; SQLite gets its pragmas and its parent directory."""
    url = make_url(database_url)
    kwargs: dict[str, Any] = {"echo": echo}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
    return create_async_engine(url, **kwargs)


class Database:
    """Sessions for readers and a serialised write path for SQLite's single writer."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        # SQLite allows one writer; queueing writers here beats "database is locked" retries.
        self._write_lock = asyncio.Lock()

    @classmethod
    def from_url(cls, database_url: str, *, echo: bool = False) -> Database:
        """Open a database by URL."""
        return cls(create_engine(database_url, echo=echo))

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for queries; nothing it does is committed."""
        async with self._sessions() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits as one transaction, or rolls back on error."""
        if not self.is_sqlite:
            async with self._sessions() as session, session.begin():
                yield session
            return
        async with self._write_lock:
            started = time.perf_counter()
            try:
                async with self._sessions() as session, session.begin():
                    yield session
            finally:
                held_s = time.perf_counter() - started
                if held_s > SLOW_WRITE_S:
                    # Every other writer waited this long: worth knowing which one it was.
                    caller = sys._getframe(2).f_code.co_qualname
                    log.warning("slow write transaction in %s: %.0f ms", caller, held_s * 1000)

    async def ping(self) -> bool:
        """Tell whether the database answers."""
        from sqlalchemy import text

        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True

    async def close(self) -> None:
        """Dispose of the engine's connections."""
        await self.engine.dispose()

"""Servers a benchmark starts for itself: a database of the asked kind and a full local stack."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from switchyard.postgres import start_cluster
from switchyard.procs import free_port
from switchyard.stack import LocalStack, StackOptions, start_stack

DATABASES = ("sqlite", "postgresql")

# Benchmarks drive the system hard on purpose: no manual-command limit, quiet logs.
BENCH_CLOUD_ENV = {
    "SWITCHYARD_MANUAL_COMMANDS_PER_ACTOR": "1000000",
    "SWITCHYARD_MANUAL_COMMANDS_TOTAL": "1000000",
}


def add_database_argument(parser: argparse.ArgumentParser, default: str) -> None:
    """The --database option every stack benchmark has."""
    parser.add_argument(
        "--database", choices=DATABASES, default=default, help=f"cloud database ({default})"
    )


@contextmanager
def bench_database(kind: str, workdir: Path) -> Iterator[str | None]:
    """None for SQLite (the stack makes its own file); else a durable throwaway PostgreSQL."""
    if kind == "sqlite":
        yield None
        return
    # Durable (fsync on), as in production: the figures must not flatter PostgreSQL.
    cluster = start_cluster(durable=True)
    try:

        async def create() -> None:
            import asyncpg

            connection = await asyncpg.connect(cluster.dsn())
            try:
                await connection.execute("CREATE DATABASE bench")
            finally:
                await connection.close()

        asyncio.run(create())
        yield cluster.url("bench")
    finally:
        cluster.destroy()


@contextmanager
def bench_stack(options: StackOptions, database: str) -> Iterator[LocalStack]:
    """A full stack (broker, meters, gateways, cloud) on the asked database, stopped after."""
    with bench_database(database, options.state_dir) as database_url:
        stack = start_stack(
            StackOptions(
                **{
                    **vars(options),
                    "database_url": database_url,
                    "port": options.port or free_port(),
                    "cloud_env": {**BENCH_CLOUD_ENV, **options.cloud_env},
                }
            )
        )
        try:
            yield stack
        finally:
            stack.stop()

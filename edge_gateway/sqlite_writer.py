"""One thread owns the SQLite connection; operations queued together are committed together."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from edge_gateway.errors import StoreError

T = TypeVar("T")
Operation = Callable[[sqlite3.Connection], T]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Job(Generic[T]):
    operation: Operation[T]
    future: concurrent.futures.Future[T]


# Operations that arrive while a transaction is being committed wait and then share the next
# transaction, so one fsync covers many commands. Each operation runs inside its own SAVEPOINT:
# one failing operation is rolled back alone and the rest of its batch still commits. A caller's
# future resolves only after the transaction holding its operation has committed.
class SqliteWriter:
    """Runs every operation on one connection in one thread, group-committing queued operations."""

    def __init__(self, path: Path, *, batch_max: int = 512) -> None:
        self._path = path
        self._batch_max = batch_max
        self._jobs: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="edge-sqlite-writer", daemon=True)
        self._closed = False
        self.transactions = 0  # committed so far; with operations counted, shows the batching

    def start(self) -> None:
        """Start the writer thread; the connection is opened on it."""
        self._thread.start()

    async def run(self, operation: Operation[T]) -> T:
        """Run one operation in the next transaction and return its result once committed."""
        if self._closed:
            raise StoreError("store is closed")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put(_Job(operation, future))
        return await asyncio.wrap_future(future)

    async def close(self) -> None:
        """Finish the queued operations, close the connection and stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join)

    def _connect(self) -> sqlite3.Connection:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are opened and closed explicitly around each batch.
        connection = sqlite3.connect(self._path, isolation_level=None)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode=WAL")
        # FULL: a command is only acknowledged `received` once its inbox row survives power loss.
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA busy_timeout=5000")
        return connection

    def _serve(self) -> None:
        try:
            connection = self._connect()
        except (sqlite3.Error, OSError) as exc:
            log.error("cannot open the gateway store %s: %s", self._path, exc)
            self._refuse_all(StoreError(f"cannot open {self._path}: {exc}"))
            return
        try:
            stopping = False
            while not stopping:
                batch, stopping = self._next_batch()
                if batch:
                    self._commit(connection, batch)
        finally:
            connection.close()

    def _next_batch(self) -> tuple[list[_Job[Any]], bool]:
        first = self._jobs.get()
        if first is None:
            return [], True
        batch = [first]
        while len(batch) < self._batch_max:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return batch, True
            batch.append(job)
        return batch, False

    def _commit(self, connection: sqlite3.Connection, batch: list[_Job[Any]]) -> None:
        outcomes: list[tuple[_Job[Any], Any, BaseException | None]] = []
        try:
            connection.execute("BEGIN IMMEDIATE")
            for job in batch:
                if not job.future.set_running_or_notify_cancel():
                    continue  # the caller gave up before the operation started
                connection.execute("SAVEPOINT job")
                try:
                    outcomes.append((job, job.operation(connection), None))
                except Exception as exc:  # noqa: BLE001 - handed to the caller's future below
                    connection.execute("ROLLBACK TO job")
                    outcomes.append((job, None, exc))
                connection.execute("RELEASE job")
            connection.execute("COMMIT")
            self.transactions += 1
        except sqlite3.Error as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            log.error("store transaction of %d operations failed: %s", len(batch), exc)
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(_store_error(exc))
            return
        for job, result, error in outcomes:
            if error is None:
                job.future.set_result(result)
            else:
                job.future.set_exception(
                    _store_error(error) if isinstance(error, sqlite3.Error) else error
                )

    def _refuse_all(self, error: StoreError) -> None:
        while (job := self._jobs.get()) is not None:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(error)


def _store_error(exc: BaseException) -> StoreError:
    error = StoreError(f"sqlite: {exc}")
    error.__cause__ = exc
    return error

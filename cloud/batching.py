"""Group commit for inbound messages: callers wait until their item is in a committed batch."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class BatchCommitter(Generic[T]):
    """Collects items from many callers and applies them in one transaction at a time."""

    def __init__(
        self,
        name: str,
        apply_batch: Callable[[Sequence[T]], Awaitable[None]],
        *,
        max_items: int,
        window_s: float,
    ) -> None:
        self.name = name
        self._apply_batch = apply_batch
        self._max_items = max_items
        self._window_s = window_s
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[None]]] = asyncio.Queue()

    async def submit(self, item: T) -> None:
        """Queue one item and wait until the batch holding it has committed (or failed)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        await future

    async def run(self) -> None:
        """Apply batches until cancelled; a failed batch fails its callers, who retry."""
        while True:
            batch = [await self._queue.get()]
            if self._window_s > 0:
                await asyncio.sleep(self._window_s)
            while len(batch) < self._max_items and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._apply_batch([item for item, _ in batch])
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                raise
            except Exception as exc:
                log.exception("%s: batch of %d failed", self.name, len(batch))
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

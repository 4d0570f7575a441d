"""Per-meter lanes: one job at a time per meter in arrival order, meters in parallel (bounded)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType

from edge_gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]


class MeterLanes:
    """Serialises the jobs of each meter; a lane's task lives only while it has work."""

    def __init__(self, *, max_active: int, metrics: GatewayMetrics) -> None:
        self._slots = asyncio.Semaphore(max_active)
        self._metrics = metrics
        self._queues: dict[str, deque[tuple[str, Job]]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._group = asyncio.TaskGroup()
        self._idle = asyncio.Event()
        self._idle.set()

    async def __aenter__(self) -> MeterLanes:
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Whatever is still running is cut short; the inbox makes that safe (see executor).
        for task in self._tasks.values():
            task.cancel()
        await self._group.__aexit__(exc_type, exc, traceback)

    @property
    def busy_meters(self) -> int:
        """How many meters have work queued or running."""
        return len(self._queues)

    def submit(self, meter_id: str, job: Job, *, what: str) -> None:
        """Queue a job behind the meter's earlier jobs; `what` names it in logs."""
        queue = self._queues.get(meter_id)
        if queue is None:
            queue = self._queues[meter_id] = deque()
            self._tasks[meter_id] = self._group.create_task(
                self._drain(meter_id, queue), name=f"meter-lane-{meter_id}"
            )
        queue.append((what, job))
        self._idle.clear()

    async def wait_idle(self) -> None:
        """Wait until no meter has work queued or running."""
        await self._idle.wait()

    async def _drain(self, meter_id: str, queue: deque[tuple[str, Job]]) -> None:
        try:
            while queue:
                what, job = queue[0]  # stays queued while it runs so submit() finds the lane
                async with self._slots:
                    try:
                        await job()
                    except Exception:
                        # Loop boundary: one bad job must not stop the meter's lane or the gateway.
                        self._metrics.job_errors += 1
                        log.exception("%s for meter %s failed", what, meter_id)
                queue.popleft()
        finally:
            del self._queues[meter_id]
            del self._tasks[meter_id]
            if not self._queues:
                self._idle.set()

"""Pruning, now and then, of what the cloud keeps for a bounded time (readings, batch ids)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def prune_every(interval_s: float, prune: Callable[[], Awaitable[int]], what: str) -> None:
    """Run `prune` now and then every `interval_s`, until cancelled; `what` names its rows."""
    while True:
        try:
            removed = await prune()
        except asyncio.CancelledError:
            raise
        except Exception:
            # Loop boundary: a failed prune is retried next round; the rows only wait longer.
            log.exception("pruning old %s failed", what)
        else:
            if removed:
                log.info("pruned %d old %s", removed, what)
        await asyncio.sleep(interval_s)

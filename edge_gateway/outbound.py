"""Publishes stored acks, events and telemetry at QoS 1, oldest first; deletes each after PUBACK."""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from edge_gateway.errors import NotDelivered, PublishError
from edge_gateway.metrics import GatewayMetrics
from edge_gateway.ports import Publisher
from edge_gateway.store import Store

log = logging.getLogger(__name__)

_RETRY_AFTER_S = 1.0


class OutboundPublisher:
    """Hands at most `window` stored rows to the MQTT client at a time and forgets PUBACKed ones."""

    # Rows handed over before a disconnect are resent by the MQTT client itself when the session
    # resumes, so only rows never handed over are read again; after a restart that is all rows.
    # The window keeps the client's in-memory queue bounded however long the uplink is down.
    # A row the broker PUBACKs as matching no subscription (the cloud is not subscribed at that
    # moment) is kept and handed over again after a pause: nobody has it yet.

    def __init__(
        self, store: Store, publisher: Publisher, *, window: int, metrics: GatewayMetrics
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._window = window
        self._metrics = metrics
        self._handed_up_to = 0
        self._in_flight: set[int] = set()
        self._acked: list[int] = []
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()

    def notify(self) -> None:
        """Tell the publisher that new rows were committed."""
        self._drained.clear()
        self._wake.set()

    async def run(self) -> None:
        """Publish forever: the backlog of earlier runs first, then rows as they are committed."""
        self.notify()
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._forget_acked()
            exhausted = await self._hand_over()
            if exhausted and not self._in_flight and not self._acked:
                self._drained.set()

    async def drained(self) -> None:
        """Wait until every committed row has been PUBACKed and deleted."""
        await self._drained.wait()

    async def _forget_acked(self) -> None:
        if self._acked:
            row_ids, self._acked = self._acked, []
            await self._store.delete_outbound(row_ids)

    async def _hand_over(self) -> bool:
        """Publish unsent rows while the window has room; True when no unsent row is left."""
        while (room := self._window - len(self._in_flight)) > 0:
            rows = await self._store.outbound_after(self._handed_up_to, room)
            if not rows:
                return True
            for row in rows:
                if row.id in self._in_flight or row.id in self._acked:
                    self._handed_up_to = row.id  # read again after a NotDelivered rewind
                    continue
                try:
                    puback = self._publisher.publish(row.topic, row.payload, qos=1)
                except PublishError as exc:
                    log.warning("outbound message %d not handed to MQTT: %s", row.id, exc)
                    asyncio.get_running_loop().call_later(_RETRY_AFTER_S, self._wake.set)
                    return False
                self._handed_up_to = row.id
                self._in_flight.add(row.id)
                puback.add_done_callback(partial(self._on_puback, row.id))
            if len(rows) < room:
                return True
        return False

    def _on_puback(self, row_id: int, puback: asyncio.Future[None]) -> None:
        self._in_flight.discard(row_id)
        if puback.cancelled():
            return  # the client is stopping; the row stays stored for the next run
        error = puback.exception()
        if isinstance(error, NotDelivered):
            self._metrics.outbound_undelivered += 1
            log.info("outbound message %d: %s; sending it again", row_id, error.reason)
            self._handed_up_to = min(self._handed_up_to, row_id - 1)
            asyncio.get_running_loop().call_later(_RETRY_AFTER_S, self._wake.set)
            return
        if error is None:
            self._metrics.outbound_published += 1
        else:
            # The broker refused it (e.g. not authorised): resending cannot change that.
            self._metrics.outbound_refused += 1
            log.error("broker refused outbound message %d: %s", row_id, error)
        self._acked.append(row_id)
        self._wake.set()

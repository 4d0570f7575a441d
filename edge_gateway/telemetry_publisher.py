"""Publishes telemetry: fresh batches at once, the stored backlog replayed (historical) beside."""

from __future__ import annotations

import asyncio
import itertools
import logging
from functools import partial

from edge_gateway.errors import NotDelivered, PublishError
from edge_gateway.metrics import GatewayMetrics
from edge_gateway.ports import ConnectedPublisher
from edge_gateway.telemetry_buffer import StoredBatch, TelemetryBuffer
from wire import MalformedMessage, TelemetryBatch, decode, encode
from wire import topics as wire_topics

log = logging.getLogger(__name__)

_RETRY_AFTER_S = 1.0


# A batch read while the uplink is up goes out at once, unmarked. Whatever the store holds that
# is not in the MQTT client's hands (read while the uplink was down, or left by an earlier run)
# is replayed oldest first, marked historical, at most `replay_window` batches at a time: live
# batches, acks and events never queue behind a day of backlog. Rows handed to the client stay
# stored until their PUBACK; across a reconnect the client resends them itself.
#
# A PUBACK says the broker has the batch in memory, not that the cloud has it or that it is on
# the broker's disk: Mosquitto saves its state every `autosave_interval`, so a broker SIGKILLed
# in between forgets batches it acknowledged and had not yet handed to the cloud. A copy of each
# PUBACKed batch is therefore held in memory for `hold_s` (longer than the broker's autosave
# interval) while connected, and resent, marked historical, if the connection drops first. The
# cloud keeps each batch id once, so a resend the broker did not need costs only bandwidth. The
# copy is in memory only: a gateway killed within the same second as the broker loses it.
#
# A PUBACK that says no subscription matched means nobody has the batch: Mosquitto restarted from
# its persistence does not restore shared subscriptions, so until the cloud resubscribes it takes
# telemetry and drops it. Such a batch stays stored (or, for a held copy, in memory) and goes again
# after a pause.
class TelemetryPublisher:
    """Hands telemetry batches to MQTT and forgets each one once the broker has it."""

    def __init__(
        self,
        buffer: TelemetryBuffer,
        mqtt: ConnectedPublisher,
        *,
        dcu_id: str,
        replay_window: int,
        metrics: GatewayMetrics,
        hold_s: float = 0.0,
    ) -> None:
        self._buffer = buffer
        self._mqtt = mqtt
        self._topic = wire_topics.telemetry_topic(dcu_id)
        self._replay_window = replay_window
        self._metrics = metrics
        self._hold_s = hold_s
        # Copies of PUBACKed batches kept for a resend: key -> (loop time they may go, payload).
        self._held: dict[int, tuple[float, bytes]] = {}
        self._held_keys = itertools.count()
        # Held copies to send again: the connection dropped, or nobody was subscribed.
        self._resend: list[bytes] = []
        self._in_flight: dict[int, bool] = {}  # row id -> replayed (historical)
        self._acked: list[int] = []
        # PUBACKed rows until their deletion has committed: still in the store, never resent.
        self._done: set[int] = set()
        self._backlog_maybe = True  # an earlier run may have left batches
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()

    @property
    def in_flight(self) -> frozenset[int]:
        """Rows handed to the MQTT client and not yet deleted: never to be dropped or resent."""
        return frozenset(self._in_flight.keys() | self._done)

    def wake(self) -> None:
        """The broker connection came up: resend what was held, and look at the backlog again."""
        if self._in_flight:
            # Handed to an earlier connection and never PUBACKed: a broker restored from an older
            # save may not know them, and the client may never complete them. They go again from
            # the store (a late PUBACK of the first copy still deletes the row; the cloud keeps
            # each batch id once).
            log.info("telemetry: resending %d batches not PUBACKed before", len(self._in_flight))
            self._in_flight.clear()
            self._backlog_maybe = True
        if self._held:
            log.info("telemetry: resending %d batches held since their PUBACK", len(self._held))
            self._resend.extend(payload for _, payload in self._held.values())
            self._held.clear()
        self._resend_held()
        self._wake.set()

    def _resend_held(self) -> None:
        """Publish the held copies due again; those the client cannot take wait for a wake."""
        while self._resend and self._mqtt.connected:
            payload = self._resend[0]
            try:
                puback = self._mqtt.publish(self._topic, _historical(payload), qos=1)
            except PublishError:
                return  # down again: the next connection resends what is left
            self._resend.pop(0)
            puback.add_done_callback(partial(self._on_resent, payload))

    def offer(self, row: StoredBatch) -> None:
        """A batch just stored: publish it live if the uplink is up, else leave it for replay."""
        if self._mqtt.connected and self._hand_over(row.id, row.payload, replayed=False):
            return
        self._backlog_maybe = True
        self._wake.set()

    async def run(self) -> None:
        """Delete acknowledged rows and replay the backlog, until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._release_held()
            self._resend_held()
            await self.forget_acked()
            if self._mqtt.connected and self._backlog_maybe:
                await self._replay()
            if not self._in_flight and not self._acked and not self._resend:
                self._idle.set()

    async def forget_acked(self) -> None:
        """Delete the rows the broker has acknowledged so far."""
        if self._acked:
            row_ids, self._acked = self._acked, []
            await self._buffer.delete(row_ids)
            self._done.difference_update(row_ids)

    def _release_held(self) -> None:
        """Copies held past `hold_s` on a connection that stayed up can go."""
        if not self._held or not self._mqtt.connected:
            return  # a broker that went away may have forgotten them: `wake` resends them
        now_s = asyncio.get_running_loop().time()
        for key in [k for k, (until_s, _) in self._held.items() if until_s <= now_s]:
            del self._held[key]

    async def settled(self) -> None:
        """Wait until no batch is in the MQTT client's hands and every PUBACKed row is deleted."""
        self._idle.clear()
        self._wake.set()
        await self._idle.wait()

    async def _replay(self) -> None:
        replaying = sum(self._in_flight.values())
        room = self._replay_window - replaying
        if room <= 0:
            return
        rows = await self._buffer.oldest(room, exclude=self._in_flight.keys() | self._done)
        if len(rows) < room:
            self._backlog_maybe = False
        for row in rows:
            if row.id in self._in_flight or row.id in self._done:
                continue  # offered live, or even acknowledged, while we read the store
            if not self._hand_over(row.id, _historical(row.payload), replayed=True):
                self._backlog_maybe = True
                return

    def _hand_over(self, row_id: int, payload: bytes, *, replayed: bool) -> bool:
        try:
            puback = self._mqtt.publish(self._topic, payload, qos=1)
        except PublishError as exc:
            log.warning("telemetry batch %d not handed to MQTT: %s", row_id, exc)
            asyncio.get_running_loop().call_later(_RETRY_AFTER_S, self._wake.set)
            return False
        self._in_flight[row_id] = replayed
        log.debug("telemetry batch %d handed to MQTT (replayed: %s)", row_id, replayed)
        self._idle.clear()
        puback.add_done_callback(partial(self._on_puback, row_id, payload))
        return True

    def _on_puback(self, row_id: int, payload: bytes, puback: asyncio.Future[None]) -> None:
        replayed = self._in_flight.pop(row_id, False)
        log.debug("telemetry batch %d: PUBACK (cancelled: %s)", row_id, puback.cancelled())
        if puback.cancelled():
            self._backlog_maybe = True  # the client is stopping; the row stays stored
            self._wake.set()
            return
        error = puback.exception()
        if isinstance(error, NotDelivered):
            # Still stored: replayed after a pause, once someone may be subscribed again.
            self._metrics.outbound_undelivered += 1
            log.info("telemetry batch %d: %s; sending it again", row_id, error.reason)
            self._backlog_maybe = True
            asyncio.get_running_loop().call_later(_RETRY_AFTER_S, self._wake.set)
            return
        if error is None:
            if replayed:
                self._metrics.telemetry_replayed += 1
            else:
                self._metrics.telemetry_live += 1
            self._hold(payload)
        else:
            # The broker refused it (e.g. not authorised): resending cannot change that.
            self._metrics.outbound_refused += 1
            log.error("broker refused telemetry batch %d: %s", row_id, error)
        self._acked.append(row_id)
        self._done.add(row_id)
        self._wake.set()

    def _on_resent(self, payload: bytes, puback: asyncio.Future[None]) -> None:
        if puback.cancelled():
            return
        error = puback.exception()
        if error is None:
            self._hold(payload)  # the restarted broker may go down again before saving it
        elif isinstance(error, NotDelivered):
            self._metrics.outbound_undelivered += 1
            self._resend.append(payload)
            asyncio.get_running_loop().call_later(_RETRY_AFTER_S, self._wake.set)

    def _hold(self, payload: bytes) -> None:
        if self._hold_s <= 0:
            return
        loop = asyncio.get_running_loop()
        self._held[next(self._held_keys)] = (loop.time() + self._hold_s, payload)
        loop.call_later(self._hold_s, self._wake.set)


def _historical(payload: bytes) -> bytes:
    """The same batch, marked as replayed from the backlog."""
    try:
        batch = decode(TelemetryBatch, payload)
    except MalformedMessage:
        return payload  # stored by this gateway, so it parses; never worth a crash if not
    return encode(batch.model_copy(update={"historical": True}))

"""Verifies commands, stores each decision, then drives relays; duplicates get stored answers."""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Callable
from functools import partial

from pydantic import TypeAdapter, ValidationError

from edge_gateway.checks import verify_command
from edge_gateway.errors import CommandRefused
from edge_gateway.events import EventFeed, NewEvents
from edge_gateway.inbox import InboxEntry, InboxStatus
from edge_gateway.lanes import MeterLanes
from edge_gateway.meterlink import MeterLink
from edge_gateway.metrics import GatewayMetrics
from edge_gateway.ports import InboundMessage, OutboundQueue
from edge_gateway.relay import NOT_OPERATED, DriveResult, RelayDriver
from edge_gateway.settings import CrashPoint
from edge_gateway.store import OutboundKind, OutboundMessage, Store
from wire import (
    Ack,
    AckStatus,
    Command,
    KeyRing,
    MalformedMessage,
    TopicError,
    TopicKind,
    decode,
    encode,
)
from wire import topics as wire_topics
from wire.clock import now_ms
from wire.ids import CommandId
from wire.messages import MAX_REASON_CHARS
from wire.topics import ParsedTopic

log = logging.getLogger(__name__)

_COMMAND_ID = TypeAdapter(CommandId)


# Invariants, in the order a command meets them:
# - a refused command (rejected/expired) never touches a relay; its answer is stored only when
#   it judges the genuine command (signature verified, right topic), see CommandRefused;
# - an accepted command's inbox row and the meter's new version are committed before the relay
#   is driven, and the broker gets its PUBACK only after that commit;
# - an `accepted` row left by a crash is finished after restart by reading the meter first, so a
#   relay already in its target state is never operated a second time;
# - every ack and event is committed to the outbound table before it is published.
class Executor:
    """Turns command messages into relay operations and acks, one command at a time per meter."""

    def __init__(
        self,
        *,
        dcu_id: str,
        store: Store,
        link: MeterLink,
        keyring: KeyRing,
        lanes: MeterLanes,
        outbound: OutboundQueue,
        metrics: GatewayMetrics,
        link_attempts: int,
        crash_point: CrashPoint | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._dcu_id = dcu_id
        self._store = store
        self._link = link
        self._keyring = keyring
        self._lanes = lanes
        self._outbound = outbound
        self._metrics = metrics
        self._driver = RelayDriver(link, attempts=link_attempts, metrics=metrics, clock=clock)
        self._crash_point = crash_point
        self._clock = clock
        self._events = EventFeed(store, link, metrics)
        self._accepting = True

    def submit(self, message: InboundMessage) -> None:
        """Queue a message from the command topic on its meter's lane; never raises."""
        if not self._accepting:
            return  # shutting down: without a PUBACK the broker redelivers it next session
        self._metrics.commands_received += 1
        try:
            topic = wire_topics.parse(message.topic)
        except TopicError as exc:
            topic = None
            log.warning("command on a foreign topic %r: %s", message.topic, exc.reason)
        if topic is None or topic.kind is not TopicKind.CMD or topic.meter_id is None:
            self._metrics.commands_malformed += 1
            message.puback()
            return
        job = partial(self._handle, message, topic)
        self._lanes.submit(topic.meter_id, job, what=f"command on {message.topic}")

    def stop_accepting(self) -> None:
        """Take no more work; later messages stay unacknowledged, so the broker keeps them."""
        self._accepting = False

    async def resume_unfinished(self) -> int:
        """Queue every command a previous run accepted but did not finish; return how many."""
        entries = await self._store.unfinished()
        for entry in entries:
            log.warning("resuming command %s for meter %s", entry.command_id, entry.meter_id)
            job = partial(self._resume, entry)
            self._lanes.submit(entry.meter_id, job, what=f"resume of {entry.command_id}")
        return len(entries)

    def poll_events(self, meter_id: str) -> None:
        """Queue a fetch of the meter's new events behind its commands."""
        if not self._accepting:
            return
        job = partial(self._publish_new_events, meter_id)
        self._lanes.submit(meter_id, job, what="event poll")

    async def _handle(self, message: InboundMessage, topic: ParsedTopic) -> None:
        assert topic.meter_id is not None
        try:
            command = decode(Command, message.payload)
        except MalformedMessage as exc:
            await self._refuse_malformed(message, topic.meter_id, exc)
            return
        entry, last_version = await self._store.lookup(command.command_id, topic.meter_id)
        if entry is not None:
            await self._answer_duplicate(message, entry, last_version)
            return
        received_at_ms = self._clock()
        try:
            verify_command(
                command,
                topic,
                dcu_id=self._dcu_id,
                roster=self._link.roster,
                keyring=self._keyring,
                now_ms=received_at_ms,
                last_version=last_version,
            )
        except CommandRefused as refusal:
            await self._refuse(message, command, refusal, received_at_ms)
            return
        entry = InboxEntry(
            command_id=command.command_id,
            meter_id=command.meter_id,
            version=command.version,
            action=command.action,
            status=InboxStatus.ACCEPTED,
            expires_at_ms=command.expires_at_ms,
            received_at_ms=received_at_ms,
        )
        if not await self._store.save(entry, [self._ack(entry)], applies_version=True):
            await self._answer_stored(message, entry)
            return
        self._crash_if_armed("after_inbox_write")
        self._outbound.notify()
        message.puback()
        await self._complete(entry, resumed=False)

    async def _refuse(
        self, message: InboundMessage, command: Command, refusal: CommandRefused, at_ms: int
    ) -> None:
        log.warning(
            "command %s for meter %s %s: %s",
            refusal.command_id,
            refusal.meter_id,
            refusal.status,
            refusal.reason,
        )
        if not refusal.durable:
            await self._answer_unstored(
                message, refusal.command_id, refusal.meter_id, refusal.status, refusal.reason
            )
            self._metrics.outcomes[refusal.status.value] += 1
            return
        entry = InboxEntry(
            command_id=command.command_id,
            meter_id=refusal.meter_id,
            version=command.version,
            action=command.action,
            status=InboxStatus(refusal.status.value),
            expires_at_ms=command.expires_at_ms,
            received_at_ms=at_ms,
            reason=refusal.reason,
            done_at_ms=at_ms,
        )
        if not await self._store.save(entry, [self._ack(entry)]):
            await self._answer_stored(message, entry)
            return
        self._metrics.outcomes[entry.status] += 1
        self._outbound.notify()
        message.puback()

    async def _answer_stored(self, message: InboundMessage, lost: InboxEntry) -> None:
        """Another copy of the command id, on another meter's lane, was stored first."""
        stored, last_version = await self._store.lookup(lost.command_id, lost.meter_id)
        assert stored is not None, "the store refused an entry it does not have"
        await self._answer_duplicate(message, stored, last_version)

    async def _refuse_malformed(
        self, message: InboundMessage, meter_id: str, exc: MalformedMessage
    ) -> None:
        self._metrics.commands_malformed += 1
        command_id = _salvage_command_id(message.payload)
        log.warning("malformed command %s on %s: %s", command_id, message.topic, exc.reason)
        if command_id is None:
            message.puback()
            return
        # A malformed payload is not a command: nothing to deduplicate, nothing to store.
        reason = f"malformed command: {exc.reason}"
        await self._answer_unstored(message, command_id, meter_id, AckStatus.REJECTED, reason)

    async def _answer_unstored(
        self,
        message: InboundMessage,
        command_id: str,
        meter_id: str,
        status: AckStatus,
        reason: str,
    ) -> None:
        """Ack a refusal that is not kept in the inbox, so a later genuine copy is still judged."""
        ack = Ack(
            command_id=command_id,
            meter_id=meter_id,
            dcu_id=self._dcu_id,
            status=status,
            at_ms=self._clock(),
            reason=reason[:MAX_REASON_CHARS],
            # Tells the cloud this answer concerned one copy: sending the command again may work.
            retryable=True,
        )
        topic = wire_topics.ack_topic(self._dcu_id, meter_id)
        await self._store.save(None, [OutboundMessage(OutboundKind.ACK, topic, encode(ack))])
        self._outbound.notify()
        message.puback()

    async def _answer_duplicate(
        self, message: InboundMessage, entry: InboxEntry, last_version: int
    ) -> None:
        self._metrics.commands_duplicate += 1
        log.info("duplicate command %s (%s)", entry.command_id, entry.status)
        if self._may_retry(entry, last_version):
            reopened = entry.reopened()
            await self._store.save(reopened, [self._ack(reopened)])
            self._outbound.notify()
            message.puback()
            await self._complete(reopened, resumed=True)
            return
        # The stored answer again, never a second relay operation.
        await self._store.save(None, [self._ack(entry)])
        self._outbound.notify()
        message.puback()

    def _may_retry(self, entry: InboxEntry, last_version: int) -> bool:
        """A command that failed only because the meter did not answer, still current and live."""
        return (
            entry.retryable
            and entry.version >= last_version
            and entry.expires_at_ms >= self._clock()
        )

    async def _resume(self, entry: InboxEntry) -> None:
        self._metrics.commands_resumed += 1
        await self._complete(entry, resumed=True)

    async def _complete(self, entry: InboxEntry, *, resumed: bool) -> None:
        """Drive the relay for an accepted entry, then store and publish its outcome."""
        assert entry.action is not None
        # A command resumed after its expiry is only checked, never carried out late.
        expired = self._clock() > entry.expires_at_ms
        result = await self._driver.drive(entry.meter_id, entry.action, may_operate=not expired)
        new_events = await self._events.fetch(entry.meter_id)
        final = self._outcome(
            entry, result, new_events, switched_here=resumed or result.operations > 0
        )
        messages = [self._ack(final), *new_events.messages(self._dcu_id)]
        if not await self._store.save(final, messages, event_cursor=new_events.cursor):
            log.error("outcome of %s not stored: it already had one", final.command_id)
            return
        self._events.committed(new_events)
        self._metrics.outcomes[final.status] += 1
        self._outbound.notify()
        log.info(
            "command %s for meter %s %s relay=%s %s",
            final.command_id,
            final.meter_id,
            final.status,
            final.relay,
            final.reason,
        )

    def _outcome(
        self,
        entry: InboxEntry,
        result: DriveResult,
        new_events: NewEvents,
        *,
        switched_here: bool,
    ) -> InboxEntry:
        at_ms = self._clock()
        finished = partial(
            entry.finished,
            at_ms=at_ms,
            relay=result.relay,
            event_seq=result.last.status.last_event_seq if result.last else None,
            read_ms=result.last.read_ms if result.last else None,
        )
        if result.reached:
            code = new_events.relay_event_code(result.relay) if switched_here else None
            return finished(InboxStatus.EXECUTED, event_code=code)
        if result.reason == NOT_OPERATED:
            return finished(
                InboxStatus.EXPIRED, reason="expired before the gateway could finish it"
            )
        return finished(InboxStatus.FAILED, reason=result.reason)

    async def _publish_new_events(self, meter_id: str) -> None:
        new_events = await self._events.fetch(meter_id)
        if new_events.cursor is None:
            return
        await self._store.save(
            None, new_events.messages(self._dcu_id), event_cursor=new_events.cursor
        )
        self._events.committed(new_events)
        self._outbound.notify()

    def _ack(self, entry: InboxEntry) -> OutboundMessage:
        ack = entry.ack(self._dcu_id, now_ms=self._clock())
        topic = wire_topics.ack_topic(self._dcu_id, entry.meter_id)
        return OutboundMessage(OutboundKind.ACK, topic, encode(ack))

    def _crash_if_armed(self, point: CrashPoint) -> None:
        """Fault injection for recovery tests: die here as abruptly as a power cut would."""
        if self._crash_point == point:
            log.critical("crash point %s reached: killing the gateway with SIGKILL", point)
            os.kill(os.getpid(), signal.SIGKILL)


def _salvage_command_id(payload: bytes) -> str | None:
    """The command id of a payload that failed validation, if it has a well-formed one."""
    try:
        fields = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(fields, dict):
        return None
    try:
        return _COMMAND_ID.validate_python(fields.get("command_id"))
    except ValidationError:
        return None

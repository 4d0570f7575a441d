"""Wires one DCU's gateway together and runs it until told to stop."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from pydantic import ValidationError

from edge_gateway.errors import PublishError, StoreError
from edge_gateway.executor import Executor
from edge_gateway.lanes import MeterLanes
from edge_gateway.meterlink import LinkClient
from edge_gateway.metrics import GatewayMetrics
from edge_gateway.mqtt import MqttClient, WillMessage
from edge_gateway.outbound import OutboundPublisher
from edge_gateway.presence import birth_state, offline_state
from edge_gateway.settings import GatewaySettings
from edge_gateway.store import Store
from edge_gateway.telemetry import TelemetryCollector
from edge_gateway.telemetry_buffer import BacklogBounds, TelemetryBuffer
from edge_gateway.telemetry_publisher import TelemetryPublisher
from wire import GatewayState, KeyRing, encode
from wire import topics as wire_topics
from wire.clock import now_ms
from wire.meterlink import MeterStatus

log = logging.getLogger(__name__)

_DAY_MS = 86_400_000
_STATE_PUBACK_TIMEOUT_S = 5.0


class Gateway:
    """One DCU's gateway: store, meter link, executor and MQTT client under one TaskGroup."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.metrics = GatewayMetrics()
        self._birth: asyncio.Task[None] | None = None
        self._telemetry: TelemetryPublisher | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then publish the offline state and shut down cleanly."""
        settings = self.settings
        keyring = KeyRing.from_b64(settings.trusted_keys)
        if not keyring.key_ids:
            log.warning("no trusted keys configured: every command will be rejected")
        store = await Store.open(settings.store_path)
        try:
            await self._run(store, keyring, stop)
        finally:
            await store.close()
            log.info("gateway %s stopped: %s", settings.dcu_id, self.metrics.snapshot())

    async def _run(self, store: Store, keyring: KeyRing, stop: asyncio.Event) -> None:
        settings = self.settings
        boot_seq = await store.next_boot_seq()
        pruned = await store.prune_inbox(now_ms() - settings.inbox_retention_days * _DAY_MS)
        log.info(
            "gateway %s boot %d (%d old inbox entries pruned)", settings.dcu_id, boot_seq, pruned
        )
        link = LinkClient(
            settings.link_host,
            settings.link_port,
            settings.dcu_id,
            timeout_s=settings.link_timeout_s,
            known_roster=await store.roster(),
            on_hello=lambda meters: _remember_roster(store, meters),
            metrics=self.metrics,
        )
        async with (
            asyncio.TaskGroup() as tasks,
            MeterLanes(max_active=settings.max_concurrent_meters, metrics=self.metrics) as lanes,
        ):
            mqtt = MqttClient(
                settings,
                will=_will(offline_state(settings.dcu_id, boot_seq)),
                on_connect=lambda _session: self._on_connect(tasks, mqtt, link, store, boot_seq),
            )
            outbound = OutboundPublisher(
                store, mqtt, window=settings.outbound_window, metrics=self.metrics
            )
            self._telemetry = TelemetryPublisher(
                _telemetry_buffer(store, settings),
                mqtt,
                dcu_id=settings.dcu_id,
                replay_window=settings.telemetry_replay_window,
                metrics=self.metrics,
                hold_s=settings.telemetry_hold_s,
            )
            executor = Executor(
                dcu_id=settings.dcu_id,
                store=store,
                link=link,
                keyring=keyring,
                lanes=lanes,
                outbound=outbound,
                metrics=self.metrics,
                link_attempts=settings.link_attempts,
                crash_point=settings.crash_point,
            )
            background = [
                tasks.create_task(link.maintain(), name="meter-link"),
                tasks.create_task(outbound.run(), name="outbound-publisher"),
                tasks.create_task(self._telemetry.run(), name="telemetry-publisher"),
            ]
            try:
                if not link.roster:
                    log.info("roster unknown: waiting for the meter link before taking commands")
                    await _first_of(link.wait_connected(), stop.wait())
                if stop.is_set():
                    return
                resumed = await executor.resume_unfinished()
                if resumed:
                    log.warning("resuming %d commands left unfinished by the last run", resumed)
                mqtt.subscribe(wire_topics.gateway_command_filter(settings.dcu_id), executor.submit)
                mqtt.start()
                pollers = self._pollers(tasks, executor, link, store, outbound)
                background += pollers
                await stop.wait()
                for poller in pollers:
                    poller.cancel()  # no new work while what is in hand is finished
                await self._shut_down(executor, lanes, outbound, mqtt, boot_seq)
            finally:
                await mqtt.stop()
                for task in [*background, self._birth]:
                    if task is not None:
                        task.cancel()

    def _pollers(
        self,
        tasks: asyncio.TaskGroup,
        executor: Executor,
        link: LinkClient,
        store: Store,
        outbound: OutboundPublisher,
    ) -> list[asyncio.Task[None]]:
        settings = self.settings
        pollers = []
        if settings.event_poll_s > 0:
            pollers.append(
                tasks.create_task(
                    _poll_events(executor, link, settings.event_poll_s), name="event-poller"
                )
            )
        if settings.telemetry_interval_s > 0 and self._telemetry is not None:
            collector = TelemetryCollector(
                link,
                _telemetry_buffer(store, settings),
                self._telemetry,
                dcu_id=settings.dcu_id,
                metrics=self.metrics,
            )
            pollers.append(
                tasks.create_task(
                    collector.run(settings.telemetry_interval_s), name="telemetry-collector"
                )
            )
        return pollers

    def _on_connect(
        self,
        tasks: asyncio.TaskGroup,
        mqtt: MqttClient,
        link: LinkClient,
        store: Store,
        boot_seq: int,
    ) -> None:
        self._start_birth(tasks, mqtt, link, store, boot_seq)
        if self._telemetry is not None:
            self._telemetry.wake()  # the backlog of the outage can go now

    def _start_birth(
        self,
        tasks: asyncio.TaskGroup,
        mqtt: MqttClient,
        link: LinkClient,
        store: Store,
        boot_seq: int,
    ) -> None:
        """On every CONNACK, publish a fresh birth; a newer connection supersedes an older birth."""
        if self._birth is not None:
            self._birth.cancel()
        self._birth = tasks.create_task(
            self._publish_birth(mqtt, link, store, boot_seq), name="birth"
        )

    async def _publish_birth(
        self, mqtt: MqttClient, link: LinkClient, store: Store, boot_seq: int
    ) -> None:
        state = await birth_state(self.settings.dcu_id, boot_seq, link, store)
        reachable = sum(meter.reachable for meter in state.meters)
        if await _publish_state(mqtt, state):
            log.info("birth published: %d meters, %d reachable", len(state.meters), reachable)

    async def _shut_down(
        self,
        executor: Executor,
        lanes: MeterLanes,
        outbound: OutboundPublisher,
        mqtt: MqttClient,
        boot_seq: int,
    ) -> None:
        grace_s = self.settings.shutdown_grace_s
        log.info("gateway %s stopping", self.settings.dcu_id)
        executor.stop_accepting()
        try:
            async with asyncio.timeout(grace_s):
                await lanes.wait_idle()
        except TimeoutError:
            log.warning(
                "%d meters still busy: their commands resume at next start", lanes.busy_meters
            )
        if not mqtt.connected:
            return  # the broker publishes our Will; unsent acks wait in the store
        try:
            async with asyncio.timeout(grace_s):
                await outbound.drained()
        except TimeoutError:
            log.warning("some acks and events not yet PUBACKed: they stay stored for next start")
        if self._telemetry is not None:
            try:
                async with asyncio.timeout(grace_s):
                    await self._telemetry.settled()
            except TimeoutError:
                log.warning("telemetry not yet PUBACKed stays stored; it replays at next start")
        await _publish_state(mqtt, offline_state(self.settings.dcu_id, boot_seq))


async def run_gateway(settings: GatewaySettings, *, stop: asyncio.Event | None = None) -> None:
    """Run a gateway in this event loop until `stop` is set (or the task is cancelled)."""
    await Gateway(settings).run(stop or asyncio.Event())


def main() -> None:
    """Entry point of `python -m edge_gateway` and `switchyard gateway`, configured by env."""
    try:
        settings = GatewaySettings()  # every value comes from SWITCHYARD_* variables
    except ValidationError as exc:
        print(f"invalid gateway configuration (SWITCHYARD_* environment):\n{exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        _event_loop_runner()(_run_until_signalled(settings))
    except StoreError as exc:
        raise SystemExit(f"edge gateway {settings.dcu_id}: {exc}") from exc


async def _run_until_signalled(settings: GatewaySettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await run_gateway(settings, stop=stop)


async def _remember_roster(store: Store, meters: Sequence[MeterStatus]) -> None:
    try:
        await store.replace_roster(meters)
    except StoreError as exc:
        # The live roster still applies; only the copy used before the next hello is stale.
        log.error("roster not saved: %s", exc)


async def _poll_events(executor: Executor, link: LinkClient, interval_s: float) -> None:
    """Catch events no command caused (power failures, tamper, the consumer's button)."""
    while True:
        await asyncio.sleep(interval_s)
        if link.connected:
            for meter_id in sorted(link.roster):
                executor.poll_events(meter_id)


async def _publish_state(mqtt: MqttClient, state: GatewayState) -> bool:
    """Publish the retained presence and wait briefly for the broker to have it."""
    topic = wire_topics.state_topic(state.dcu_id)
    try:
        async with asyncio.timeout(_STATE_PUBACK_TIMEOUT_S):
            await mqtt.publish(topic, encode(state), qos=1, retain=True)
    except (TimeoutError, PublishError) as exc:
        log.warning("presence (online=%s) not confirmed by the broker: %s", state.online, exc)
        return False
    return True


def _telemetry_buffer(store: Store, settings: GatewaySettings) -> TelemetryBuffer:
    bounds = BacklogBounds(
        max_batches=settings.telemetry_backlog_max,
        max_bytes=settings.telemetry_backlog_max_bytes,
        max_age_s=settings.telemetry_backlog_max_age_s,
    )
    return TelemetryBuffer(store, bounds)


def _will(state: GatewayState) -> WillMessage:
    return WillMessage(wire_topics.state_topic(state.dcu_id), encode(state))


async def _first_of(*waits: Awaitable[object]) -> None:
    """Return as soon as one of the awaitables completes; cancel the others."""
    pending = {asyncio.ensure_future(wait) for wait in waits}
    try:
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in pending:
            future.cancel()


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    """uvloop when installed (it roughly halves the loop's own overhead), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run

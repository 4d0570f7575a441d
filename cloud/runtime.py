"""One cloud process, assembled: database, MQTT, dispatcher, consumers, payment intake."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.exc import SQLAlchemyError

from cloud.access.audit import CommandRateLimit
from cloud.batching import BatchCommitter
from cloud.commands.acks import AckApplier, AckRetryPolicy
from cloud.commands.desired import CommandFactory
from cloud.commands.dispatcher import Dispatcher, DispatchPolicy
from cloud.commands.lifecycle import ACTIVE_STATES, IN_FLIGHT_STATES, count_active_commands
from cloud.commands.presence import EventRecorder, PresenceTracker
from cloud.commands.reports import GatewayReport, ReportApplier
from cloud.db.migrate import upgrade_to_head
from cloud.db.session import Database
from cloud.inbound import InboundRouter
from cloud.metrics import CloudMetrics
from cloud.mqtt import MqttTransport, tls_context
from cloud.payments.intake import PaymentIntake
from cloud.policy.services import PolicyServices
from cloud.settings import CloudSettings
from cloud.telemetry import TelemetryService, build_telemetry
from wire import CommandSigner
from wire.topics import TopicKind, cloud_filter, shared

log = logging.getLogger(__name__)

GAUGE_INTERVAL_S = 2.0


class CloudRuntime:
    """Everything one cloud process runs, built from settings, with no global state."""

    def __init__(self, settings: CloudSettings) -> None:
        self.settings = settings
        self.metrics = CloudMetrics()
        self.db = Database.from_url(settings.database_url, echo=settings.database_echo)
        signer = CommandSigner.from_b64(
            settings.signing_key_id, settings.signing_private_key.get_secret_value()
        )
        self.factory = CommandFactory(signer, settings.command_ttl_s)
        password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
        self.mqtt = MqttTransport(
            client_id=f"switchyard-{settings.instance_id}",
            host=settings.mqtt_host,
            port=settings.mqtt_port,
            username=settings.mqtt_username,
            password=password,
            session_expiry_s=settings.mqtt_session_expiry_s,
            keepalive_s=settings.mqtt_keepalive_s,
            reconnect_min_s=settings.mqtt_reconnect_min_s,
            reconnect_max_s=settings.mqtt_reconnect_max_s,
            ssl_context=(
                tls_context(
                    settings.mqtt_tls_ca_file,
                    settings.mqtt_tls_cert_file,
                    settings.mqtt_tls_key_file,
                )
                if settings.mqtt_tls_ca_file is not None
                else None
            ),
        )
        self.dispatcher = Dispatcher(
            self.db,
            self.mqtt,
            DispatchPolicy(
                ack_timeout_s=settings.ack_timeout_s,
                execution_timeout_s=settings.execution_timeout_s,
                max_attempts=settings.max_attempts,
                backoff_cap_s=settings.retry_backoff_cap_s,
                batch=settings.dispatch_batch,
                poll_s=settings.dispatch_poll_s,
            ),
            self.metrics,
            signer=signer,
        )
        self.telemetry: TelemetryService = build_telemetry(settings, self.db, self.metrics.registry)
        self.ack_applier = AckApplier(
            self.db,
            self.metrics,
            AckRetryPolicy(settings.execution_timeout_s, settings.max_attempts),
            on_final=[self.telemetry.on_command_final],
        )
        self.event_recorder = EventRecorder(self.db, self.metrics)
        reports = ReportApplier(
            self.db,
            self.ack_applier,
            self.event_recorder,
            after_events=self.telemetry.record_events,
        )
        self.reports: BatchCommitter[GatewayReport] = BatchCommitter(
            "gateway-reports",
            reports.apply_batch,
            max_items=settings.ack_batch_max,
            window_s=settings.ack_batch_window_ms / 1000,
        )
        self.presence = PresenceTracker(
            self.db,
            self.factory,
            self.metrics,
            self.dispatcher.wake,
            on_state=self.telemetry.on_gateway_state,
        )
        self.router = InboundRouter(
            reports=self.reports,
            presence=self.presence,
            metrics=self.metrics,
            telemetry=self.telemetry.handle_batch,
        )
        self.payments = PaymentIntake(self.db, self.factory, self.dispatcher, settings.currency)
        self.command_limit = CommandRateLimit(
            per_actor=settings.manual_commands_per_actor,
            total=settings.manual_commands_total,
            window_s=settings.manual_commands_window_s,
        )
        # The disconnection policy: runs, notices, scheduler, and the hooks that levy the
        # reconnection fee and tell the consumer when a command ends.
        self.policy = PolicyServices(
            settings, self.db, self.factory, self.metrics, self.dispatcher.wake
        )
        self.ack_applier.add_final_hook(self.policy.hooks.on_final)
        self.dispatcher.add_final_hook(self.policy.hooks.on_final)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[CloudRuntime]:
        """Migrate, connect and run the background loops for the duration of the block."""
        await upgrade_to_head(self.db.engine)
        self.mqtt.set_handler(self.router)
        self.mqtt.add_subscriptions(
            [
                shared(cloud_filter(TopicKind.ACK)),
                shared(cloud_filter(TopicKind.EVENT)),
                # Retained births are never sent to shared subscriptions: every process reads
                # presence itself (handling a birth twice is harmless).
                cloud_filter(TopicKind.STATE),
                shared(cloud_filter(TopicKind.TELEMETRY)),
            ]
        )
        try:
            async with asyncio.TaskGroup() as tasks:
                loops = [
                    tasks.create_task(self.mqtt.connect_forever(), name="mqtt-connect"),
                    tasks.create_task(self.dispatcher.run(), name="dispatcher"),
                    tasks.create_task(self.reports.run(), name="gateway-reports"),
                    tasks.create_task(self._refresh_gauges(), name="gauges"),
                    tasks.create_task(self.telemetry.run(), name="telemetry"),
                ]
                if self.policy.scheduler_enabled:
                    loops.append(
                        tasks.create_task(self.policy.scheduler.run(), name="policy-scheduler")
                    )
                try:
                    yield self
                finally:
                    # Keep every telemetry batch already accepted, and let their PUBACKs go out
                    # before the connection closes; later ones stay with the broker.
                    await self.telemetry.close()
                    await _let_callbacks_run()
                    for loop in loops:
                        loop.cancel()
        finally:
            await self.mqtt.disconnect()
            await self.db.close()
            log.info("cloud runtime stopped")

    async def _refresh_gauges(self) -> None:
        while True:
            self.metrics.mqtt_connected.set(1 if self.mqtt.connected else 0)
            self.metrics.publishes_in_flight.set(self.mqtt.in_flight)
            try:
                counts = await count_active_commands(self.db)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("could not count active commands: %s", exc)
                self.metrics.loop_errors.labels("gauges").inc()
            else:
                for state in ACTIVE_STATES:
                    self.metrics.commands_active.labels(state.value).set(counts.get(state, 0))
                in_flight = sum(counts.get(state, 0) for state in IN_FLIGHT_STATES)
                self.metrics.commands_in_flight.set(in_flight)
            await asyncio.sleep(GAUGE_INTERVAL_S)


async def _let_callbacks_run() -> None:
    """Give done-callbacks (the transport's PUBACKs of finished handlers) their turn."""
    for _ in range(3):
        await asyncio.sleep(0)

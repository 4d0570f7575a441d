"""Sizes are bounded: the broker refuses an oversized message, the cloud refuses a batch with
too many entries before building it, and its memory stays flat however many such messages come
(read from /proc); a maximal valid batch is stored, and the next payment still reconnects."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from cloud.db.models import MeterReadingRecord
from cloud.db.session import Database
from cloud.payments.webhook import sign_body
from switchyard.broker import Broker
from switchyard.broker_credentials import BrokerCredentials
from switchyard.pay import webhook_body
from tests.support.mqtt_client import Identity, MqttTestClient, connected_client
from tests.support.secure_cloud import CloudProcess, start_cloud_process
from wire import (
    Ack,
    AckStatus,
    GatewayState,
    MeterReport,
    Reading,
    RelayState,
    TelemetryBatch,
    decode,
    encode,
)
from wire import Command as WireCommand
from wire import topics as wire_topics
from wire.clock import now_ms
from wire.limits import MAX_ENTRIES, MAX_MESSAGE_BYTES, MAX_PACKET_BYTES

pytestmark = pytest.mark.integration

# What a flood of refused messages may add to the cloud's resident memory. The attack this
# guards against took it from 1.1 GB to 4.95 GB with one message.
RSS_GROWTH_BOUND_MB = 150
BOMBS = 20


@pytest.fixture
def cloud(
    secure_broker: Broker, broker_credentials: BrokerCredentials, database_url: str, tmp_path: Path
) -> Iterator[CloudProcess]:
    running = start_cloud_process(secure_broker, broker_credentials, database_url, tmp_path)
    yield running
    running.stop()


async def readings_of(meter_id: str, database_url: str) -> int:
    """How many readings of one meter the cloud database holds."""
    db = Database.from_url(database_url)
    try:
        async with db.read() as session:
            query = select(func.count()).where(MeterReadingRecord.meter_id == meter_id)
            return int((await session.execute(query)).scalar_one())
    finally:
        await db.close()


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def bomb() -> bytes:
    """Under the broker's size limit, but with far more entries than a batch may carry."""
    entry = b'{"meter_id":"MTR11"},'
    count = (MAX_MESSAGE_BYTES - 200) // len(entry)
    assert count > 10 * MAX_ENTRIES
    readings = (entry * count)[:-1]
    return b'{"dcu_id":"DCU01","batch_id":"bomb","readings":[' + readings + b"]}"


def maximal_batch() -> bytes:
    """A valid batch of exactly MAX_ENTRIES readings."""
    start_ms = now_ms() - MAX_ENTRIES * 1000
    readings = [
        Reading(
            meter_id="MTR11",
            at_ms=start_ms + i * 1000,
            relay=RelayState.CONNECTED,
            voltage_v=230.1,
            current_a=1.5,
            active_power_w=345.0,
            power_factor=0.98,
            frequency_hz=50.0,
            import_wh=1000 + i,
            export_wh=0,
            import_vah=1100 + i,
        )
        for i in range(MAX_ENTRIES)
    ]
    payload = encode(TelemetryBatch(dcu_id="DCU01", batch_id="maximal", readings=readings))
    assert len(payload) <= MAX_MESSAGE_BYTES
    return payload


def metric(api: httpx.Client, line_start: str) -> float:
    """A sample of the cloud's /metrics, 0 if absent."""
    for line in api.get("/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_until(condition: Callable[[], bool], what: str, deadline_s: float = 30.0) -> None:
    """Poll a condition on the cloud process until it holds, or fail."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)  # polled: the cloud process offers no change notification
    raise AssertionError(f"timed out waiting for {what}")


async def _flood(broker: Broker, creds: BrokerCredentials) -> MqttTestClient:
    gateway = await connected_client(broker, Identity.of(creds, "DCU01"))
    await gateway.subscribe(wire_topics.gateway_command_filter("DCU01"))
    reports = [
        MeterReport(meter_id=m, reachable=True, relay=RelayState.CONNECTED)
        for m in ("MTR11", "MTR12")
    ]
    birth = GatewayState(dcu_id="DCU01", online=True, boot_seq=1, at_ms=now_ms(), meters=reports)
    assert (
        await gateway.publish(wire_topics.state_topic("DCU01"), encode(birth), retain=True)
        == "Success"
    )
    topic = wire_topics.telemetry_topic("DCU01")
    payload = bomb()
    for _ in range(BOMBS):
        assert await gateway.publish(topic, payload) == "Success"
    assert await gateway.publish(topic, maximal_batch()) == "Success"
    return gateway


def test_oversized_and_overfull_messages_leave_memory_bounded_and_payments_working(
    cloud: CloudProcess, secure_broker: Broker, broker_credentials: BrokerCredentials
) -> None:
    operator = {"Authorization": f"Bearer {cloud.secrets.operator_token}"}
    with httpx.Client(base_url=cloud.url, timeout=10.0) as api:
        before_mb = rss_mb(cloud.process.pid)
        asyncio.run(_oversized_is_refused_by_the_broker(secure_broker, broker_credentials))

        async def scenario() -> None:
            gateway = await _flood(secure_broker, broker_credentials)
            try:
                await asyncio.to_thread(
                    wait_until,
                    lambda: (
                        metric(api, 'switchyard_malformed_messages_total{kind="telemetry"}')
                        >= BOMBS
                    ),
                    "every bomb counted as malformed",
                )
                await _payment_reconnects(api, gateway, cloud, operator)
            finally:
                gateway.close()

        asyncio.run(scenario())
        after_mb = rss_mb(cloud.process.pid)
    assert after_mb - before_mb < RSS_GROWTH_BOUND_MB, f"RSS {before_mb:.0f} -> {after_mb:.0f} MB"
    assert cloud.process.alive(), cloud.process.tail()
    log_text = cloud.process.log_path.read_text()
    assert "Traceback" not in log_text
    # Refused by the entry bound, before pydantic built a single reading.
    assert f"more than {MAX_ENTRIES} entries" in log_text
    assert asyncio.run(readings_of("MTR11", cloud.database_url)) == MAX_ENTRIES


async def _oversized_is_refused_by_the_broker(broker: Broker, creds: BrokerCredentials) -> None:
    gateway = await connected_client(broker, Identity.of(creds, "DCU01"))
    try:
        too_big = b'{"dcu_id":"DCU01","batch_id":"big","readings":[]}' + b" " * MAX_PACKET_BYTES
        # Mosquitto hangs up on a packet over max_packet_size: no PUBACK ever comes.
        pending = asyncio.ensure_future(
            gateway.publish(wire_topics.telemetry_topic("DCU01"), too_big)
        )
        await gateway.wait_for(lambda: gateway.disconnected, "the broker to hang up")
        assert not pending.done()
        pending.cancel()
    finally:
        gateway.close()


async def _payment_reconnects(
    api: httpx.Client, gateway: MqttTestClient, cloud: CloudProcess, operator: dict[str, str]
) -> None:
    """Disconnect MTR11 by an operator, then a payment: the reconnect reaches the gateway."""
    answer = await asyncio.to_thread(
        api.post,
        "/api/v1/meters/MTR11/commands",
        json={"action": "disconnect", "reason": "bounds test"},
        headers=operator,
    )
    assert answer.status_code == 202, answer.text
    await _execute(gateway, answer.json()["command_id"], RelayState.DISCONNECTED)
    body = webhook_body("ACC11", 1_000_000, "pay_after_bombs")
    paid = await asyncio.to_thread(
        api.post,
        "/api/v1/payments/webhook",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Razorpay-Signature": sign_body(body, cloud.secrets.webhook_secret),
            "X-Razorpay-Event-Id": "evt_after_bombs",
        },
    )
    assert paid.json()["status"] == "processed", paid.text
    assert paid.json()["command_id"], "the payment queued a reconnect"
    await _execute(gateway, paid.json()["command_id"], RelayState.CONNECTED)

    def succeeded() -> bool:
        state = api.get(f"/api/v1/commands/{paid.json()['command_id']}", headers=operator)
        return bool(state.json()["state"] == "SUCCEEDED")

    await asyncio.to_thread(wait_until, succeeded, "the reconnect SUCCEEDED")


async def _execute(gateway: MqttTestClient, command_id: str, relay: RelayState) -> None:
    topic = wire_topics.command_topic("DCU01", "MTR11")
    payloads = await gateway.wait_for(
        lambda: [p for p in gateway.payloads(topic) if command_id.encode() in p], command_id
    )
    command = decode(WireCommand, payloads[-1])
    ack = Ack(
        command_id=command.command_id,
        meter_id=command.meter_id,
        dcu_id=command.dcu_id,
        status=AckStatus.EXECUTED,
        relay=relay,
        version=command.version,
        at_ms=now_ms(),
    )
    assert await gateway.publish(wire_topics.ack_topic("DCU01", "MTR11"), encode(ack)) == "Success"

"""The cloud stopped with SIGTERM in the middle of a telemetry stream loses and repeats nothing:
what it acknowledged was written or spooled, what it did not the broker delivers again."""

from __future__ import annotations

import asyncio
import re
import signal
import threading
import uuid
from collections import Counter
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from switchyard.broker import Broker
from switchyard.victoria import Victoria
from tests.support.telemetry_stack import CloudProcess, eventually
from wire import Reading, RelayState, TelemetryBatch, encode
from wire import topics as wire_topics
from wire.clock import now_ms

pytestmark = pytest.mark.integration

DCU = "DCU09"
METERS = 50
BATCHES = 240


def _batch(n: int, base_ms: int) -> TelemetryBatch:
    readings = [
        Reading(
            meter_id=f"MTR9{m:04d}",
            at_ms=base_ms + n * 1000,
            relay=RelayState.CONNECTED,
            voltage_v=230.0 + m / 10,
            current_a=1.5,
            active_power_w=320.5,
            power_factor=0.93,
            frequency_hz=50.01,
            import_wh=1000 + n,
            export_wh=0,
            import_vah=1100 + n,
        )
        for m in range(METERS)
    ]
    return TelemetryBatch(dcu_id=DCU, batch_id=f"b{n}", readings=readings, at_ms=base_ms + n * 1000)


class Publisher:
    """Acts as a gateway: publishes batches at QoS 1, at a steady pace, counting PUBACKs."""

    def __init__(self, broker: Broker) -> None:
        self.acked = 0
        self._lock = threading.Lock()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"fake-gateway-{uuid.uuid4().hex[:6]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self._client.on_publish = self._on_publish
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()

    def _on_publish(self, *_: object) -> None:
        with self._lock:
            self.acked += 1

    def publish(self, batches: list[TelemetryBatch], pause_s: float) -> None:
        stop = threading.Event()
        for batch in batches:
            self._client.publish(wire_topics.telemetry_topic(DCU), encode(batch), qos=1)
            stop.wait(pause_s)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.mark.parametrize("tsdb", ["up", "down"])
async def test_sigterm_mid_stream_keeps_everything_received(
    tmp_path: Path, broker: Broker, victoria: Victoria, database_url: str, tsdb: str
) -> None:
    cloud = CloudProcess(
        tmp_path / "cloud",
        {
            "database_url": database_url,
            "mqtt_host": broker.host,
            "mqtt_port": str(broker.port),
            "influx_url": victoria.url,
            "influx_token": "token-for-tests",
            "instance_id": "cloud-a",
            # Large, slow flushes: at SIGTERM the buffer surely holds accepted batches.
            "telemetry_flush_interval_ms": "400",
            "telemetry_flush_points": "100000",
            "telemetry_retry_s": "0.3",
            "influx_timeout_s": "3",
        },
    )
    base_ms = now_ms() - 10 * 60_000
    batches = [_batch(n, base_ms) for n in range(BATCHES)]
    await asyncio.to_thread(cloud.start)
    publisher = Publisher(broker)
    try:
        # Ready once a first batch has made it all the way (the subscription exists).
        publisher.publish(batches[:1], 0)
        await eventually(
            "the first batch", lambda: victoria.samples("meter_reading_voltage_v") or None
        )

        streaming = asyncio.create_task(asyncio.to_thread(publisher.publish, batches[1:], 0.01))
        await eventually("a third of the stream", lambda: publisher.acked >= BATCHES // 3 or None)
        if tsdb == "down":
            await asyncio.to_thread(victoria.stop)
        returncode = await asyncio.to_thread(cloud.stop)
        # uvicorn re-raises the SIGTERM it caught once its shutdown is complete.
        assert returncode in (0, -signal.SIGTERM), cloud.process.tail() if cloud.process else ""
        assert "cloud runtime stopped" in cloud.log_text(), "not a clean shutdown"
        held = re.search(r"telemetry: (\d+) points held at shutdown", cloud.log_text())
        assert held and int(held.group(1)) > 0, "nothing was buffered at SIGTERM: test is moot"
        spooled = sorted((tmp_path / "cloud" / "spool").glob("*.lp"))
        if tsdb == "down":
            assert spooled, "with the database down, what the cloud had accepted must be spooled"
        await streaming  # the rest waits at the broker for the cloud's session
        if tsdb == "down":
            await asyncio.to_thread(victoria.start)
        await asyncio.to_thread(cloud.start)

        expected = {
            (f"MTR9{m:04d}", base_ms + n * 1000) for n in range(BATCHES) for m in range(METERS)
        }

        def all_arrived() -> list[tuple[tuple[str, int], float]] | None:
            samples = victoria.samples("meter_reading_voltage_v")
            found = [((labels["meter_id"], ts), value) for labels, ts, value in samples]
            return found if len({key for key, _ in found}) >= len(expected) else None

        found = await eventually(f"{len(expected)} readings", all_arrived, timeout_s=120.0)
        spool = tmp_path / "cloud" / "spool"
        await eventually("the spool to be replayed", lambda: not any(spool.glob("*.lp")) or None)
    finally:
        publisher.close()
        if cloud.process is not None and cloud.process.alive():
            await asyncio.to_thread(cloud.stop)

    keys = [key for key, _ in found]
    duplicated = [key for key, count in Counter(keys).items() if count > 1]
    # Batches the cloud had kept but whose PUBACK never went out come again after the restart:
    # acknowledged as repeats, never written twice, whether the database was up or down.
    assert not duplicated, f"{len(duplicated)} readings written twice, e.g. {duplicated[:3]}"
    assert set(keys) == expected

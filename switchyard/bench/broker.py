"""Benchmark `broker`: the bare broker's QoS 1 round trips per second on this machine.

A round trip is what a command costs the broker: a "cloud" client publishes at QoS 1 to a
per-meter topic, a "gateway" client subscribed to it answers at QoS 1 on an ack topic, and the
cloud receives the answer. A window of round trips is kept in flight, as the dispatcher does.
Both clients are gmqtt in this process: the same client code the cloud uses.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from gmqtt import Client, Subscription
from gmqtt.mqtt.constants import MQTTv50


@dataclass(frozen=True)
class BrokerResult:
    """Round trips completed and how long they took."""

    round_trips: int
    duration_s: float

    @property
    def per_second(self) -> float:
        """QoS 1 round trips per second."""
        return self.round_trips / self.duration_s if self.duration_s else 0.0


async def _client(name: str, host: str, port: int) -> Client:
    client = Client(f"bench-{name}", receive_maximum=65535)
    await client.connect(host, port, version=MQTTv50, keepalive=60)
    return client


async def measure_round_trips(
    host: str, port: int, *, count: int = 20_000, window: int = 500, meters: int = 1000
) -> BrokerResult:
    """Run `count` round trips with `window` in flight; returns the achieved rate."""
    cloud = await _client("cloud", host, port)
    gateway = await _client("gateway", host, port)
    done = asyncio.Event()
    completed = 0
    slots = asyncio.Semaphore(window)

    def on_command(client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> int:
        gateway.publish(topic.replace("/cmd", "/ack"), payload, qos=1)
        return 0

    def on_ack(client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> int:
        nonlocal completed
        completed += 1
        slots.release()
        if completed >= count:
            done.set()
        return 0

    gateway.on_message = on_command
    cloud.on_message = on_ack
    gateway.subscribe(Subscription("bench/dcu/+/meter/+/cmd", qos=1))
    cloud.subscribe(Subscription("bench/dcu/+/meter/+/ack", qos=1))
    await asyncio.sleep(0.5)  # let both SUBACKs land before the first publish
    payload = b"x" * 300  # about the size of a signed command
    started = time.perf_counter()
    for n in range(count):
        await slots.acquire()
        topic = f"bench/dcu/D{n % 20:02d}/meter/M{n % meters:06d}/cmd"
        while True:
            try:
                cloud.publish(topic, payload, qos=1)
                break
            except OverflowError:
                await asyncio.sleep(0.001)
    await asyncio.wait_for(done.wait(), timeout=120)
    duration_s = time.perf_counter() - started
    await cloud.disconnect()
    await gateway.disconnect()
    return BrokerResult(completed, duration_s)


class BrokerScenario:
    """The bare broker: how many command-like QoS 1 round trips per second this machine does."""

    name = "broker"
    help = "the bare broker's QoS 1 round trips per second (the yardstick for the others)"

    def add_arguments(self, parser: Any) -> None:
        """How many round trips, how many in flight."""
        parser.add_argument("--count", type=int, default=20_000, help="round trips (20000)")
        parser.add_argument("--window", type=int, default=500, help="in flight (500)")

    def run(self, args: Any, context: Any) -> Any:
        """Start a plain Mosquitto, measure, stop it."""
        from switchyard.bench.scenario import Figure, RunResult
        from switchyard.broker import start_broker

        context.progress.start(f"{args.count} round trips", 1)
        broker = start_broker(context.workdir / "broker")
        try:
            result = asyncio.run(
                measure_round_trips(broker.host, broker.port, count=args.count, window=args.window)
            )
        finally:
            broker.process.stop()
        context.progress.finish()
        return RunResult(
            figures=[Figure("QoS 1 round trips", result.per_second, "round trips/s", True)],
            details={"count": result.round_trips, "duration_s": result.duration_s},
        )


SCENARIO = BrokerScenario()

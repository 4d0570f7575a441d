"""One run of the telemetry benchmark: servers up, batches built and streamed, readings counted."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud.main import fill_dev_secrets
from cloud.runtime import CloudRuntime
from cloud.settings import CloudSettings
from cloud.telemetry import InfluxTelemetry
from firmware_sim.clock import ManualClock
from firmware_sim.fleet import Fleet, generate_fleet
from switchyard.bench.scenario import BenchContext, Figure, RunResult
from switchyard.bench.telemetry_producer import write_messages
from switchyard.broker import Broker, start_broker
from switchyard.procs import stop_all
from switchyard.victoria import Victoria, start_victoria
from wire import TelemetryBatch, decode, encode
from wire import topics as wire_topics
from wire.clock import now_ms

_ROUND_MS = 60_000  # one reading per meter per minute of meter time
_STEADY_FROM, _STEADY_TO = 0.05, 0.95  # the sustained rate leaves out start-up and the tail
_MEASURABLE_S = 0.5


@dataclass
class _Timeline:
    """When the written-points counter crossed each share of the total."""

    total: int
    crossed: dict[float, float]

    def note(self, written: int, at: float) -> None:
        for share in (_STEADY_FROM, _STEADY_TO, 1.0):
            if share not in self.crossed and written >= share * self.total:
                self.crossed[share] = at


def build_batches(
    meters: int, dcus: int, rounds: int, batch_size: int, start_ms: int
) -> list[tuple[str, bytes]]:
    """Readings of simulated meters, one per meter per round, batched per DCU like a gateway."""
    clock = ManualClock(start_ms)
    fleet = Fleet.from_spec(generate_fleet(meters, dcus, seed=1), clock, seed=1)
    by_dcu = {dcu_id: list(fleet.on_dcu(dcu_id).values()) for dcu_id in fleet.dcu_ids}
    messages = []
    for round_index in range(rounds):
        clock.advance(_ROUND_MS)
        for dcu_id, dcu_meters in by_dcu.items():
            topic = wire_topics.telemetry_topic(dcu_id)
            for start in range(0, len(dcu_meters), batch_size):
                readings = [m.reading() for m in dcu_meters[start : start + batch_size]]
                batch = TelemetryBatch(
                    dcu_id=dcu_id,
                    batch_id=f"{dcu_id}-{round_index}-{start}",
                    readings=readings,
                    at_ms=clock.now_ms(),
                )
                messages.append((topic, encode(batch)))
    return messages


def run_telemetry(args: argparse.Namespace, context: BenchContext, target: float) -> RunResult:
    """Build the batches, start the servers, stream, verify the count, stop everything."""
    progress = context.progress
    readings = args.meters * args.rounds
    progress.start("building batches", 1)
    start_ms = now_ms() - (args.rounds + 5) * _ROUND_MS  # in the recent past, like live data
    messages = build_batches(args.meters, args.dcus, args.rounds, args.batch_size, start_ms)
    payload_file = context.workdir / "batches.bin"
    write_messages(payload_file, messages)
    payload_mb = sum(len(p) for _, p in messages) / 1e6
    progress.finish(f"{len(messages)} batches, {readings:,} readings, {payload_mb:.0f} MB")

    victoria = start_victoria(context.workdir / "victoria")
    broker = start_broker(context.workdir / "broker") if args.source == "mqtt" else None
    try:
        measured = asyncio.run(
            _stream(args, context, victoria, broker, payload_file, messages, readings)
        )
        progress.start("counting readings in the time-series server", 1)
        stored = _count_stored(victoria, readings)
        progress.finish(f"{stored:,} stored")
    finally:
        stop_all([victoria.process, *([broker.process] if broker else [])])
    return _result(args, measured, readings, len(messages), stored, target)


async def _stream(
    args: argparse.Namespace,
    context: BenchContext,
    victoria: Victoria,
    broker: Broker | None,
    payload_file: Path,
    messages: list[tuple[str, bytes]],
    readings: int,
) -> dict[str, Any]:
    settings = fill_dev_secrets(
        CloudSettings(
            dev_mode=True,
            instance_id="bench",
            database_url=f"sqlite+aiosqlite:///{context.workdir / 'cloud.sqlite3'}",
            mqtt_host=broker.host if broker else "127.0.0.1",
            mqtt_port=broker.port if broker else 1,
            influx_url=victoria.url,
            influx_token="bench",  # noqa: S106 - VictoriaMetrics does not check it
            telemetry_spool_dir=context.workdir / "spool",
        )
    )
    runtime = CloudRuntime(settings)
    telemetry = runtime.telemetry
    assert isinstance(telemetry, InfluxTelemetry)
    stats = telemetry.pipeline.stats
    points = readings + len(messages)  # each batch also writes one gateway_telemetry point
    timeline = _Timeline(points, {})
    async with runtime.running():
        if broker is not None:
            await runtime.mqtt.wait_connected()
            await asyncio.sleep(0.5)  # let the SUBACK of the shared subscription come back
        context.progress.start(f"streaming ({args.source})", points)
        started = time.monotonic()
        feeder = asyncio.create_task(_feed(args, runtime, broker, payload_file, messages))
        while stats.written < points:
            if feeder.done() and feeder.exception() is not None:
                raise RuntimeError("the producer failed") from feeder.exception()
            now = time.monotonic()
            timeline.note(stats.written, now)
            context.progress.update(stats.written, f"{stats.written / (now - started):,.0f} pt/s")
            await asyncio.sleep(0.02)
        timeline.note(stats.written, time.monotonic())
        finished_wall_s = time.time()
        context.progress.finish()
        producer = await feeder
    return {
        "finished_wall_s": finished_wall_s,
        "timeline": timeline,
        "producer": producer,
        "write_seconds": stats.write_seconds,
        "spooled": stats.spooled,
    }


async def _feed(
    args: argparse.Namespace,
    runtime: CloudRuntime,
    broker: Broker | None,
    payload_file: Path,
    messages: list[tuple[str, bytes]],
) -> dict[str, Any]:
    if broker is None:
        # In-process: the consumer's own entry point, as many batches in flight as MQTT allows.
        room = asyncio.Semaphore(1000)

        async def one(payload: bytes) -> None:
            async with room:
                await runtime.telemetry.handle_batch(decode(TelemetryBatch, payload))

        first = time.time()
        await asyncio.gather(*(one(payload) for _, payload in messages))
        return {"messages": len(messages), "first_publish_s": first, "last_puback_s": time.time()}
    argv = [sys.executable, "-m", "switchyard.bench.telemetry_producer"]
    process = await asyncio.create_subprocess_exec(
        *argv,
        broker.host,
        str(broker.port),
        str(payload_file),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"producer exited with {process.returncode}")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


def _count_stored(victoria: Victoria, expected: int, timeout_s: float = 120.0) -> int:
    """Readings the server holds (it shows new samples after a short flush), duplicates counted."""
    deadline = time.monotonic() + timeout_s
    stored = 0
    while time.monotonic() < deadline:
        series = victoria.export('{__name__="meter_reading_voltage_v"}')
        stored = sum(len(s["timestamps"]) for s in series)
        if stored >= expected:
            return stored
        time.sleep(1.0)
    return stored


def _result(
    args: argparse.Namespace,
    measured: dict[str, Any],
    readings: int,
    batches: int,
    stored: int,
    target: float,
) -> RunResult:
    timeline: _Timeline = measured["timeline"]
    crossed = timeline.crossed
    share = _STEADY_TO - _STEADY_FROM
    sustained_s = crossed[_STEADY_TO] - crossed[_STEADY_FROM]
    producer = measured["producer"]
    # From the first publish (wall clock: the producer is another process) to the last write.
    whole_s = measured["finished_wall_s"] - producer["first_publish_s"]
    if sustained_s < _MEASURABLE_S:
        sustained = readings / whole_s  # a run too short for a steady window
    else:
        sustained = share * readings / sustained_s
    figures = [
        Figure("readings/s sustained (5-95 %)", sustained, "readings/s", True, target),
        Figure("readings/s first publish to last write", readings / whole_s, "readings/s"),
        Figure("readings", float(readings), "readings"),
        Figure("readings stored (counted in the TSDB)", float(stored), "readings"),
        Figure("batches", float(batches), "messages"),
        Figure("time in database writes", measured["write_seconds"], "s"),
    ]
    details = {
        "source": args.source,
        "meters": args.meters,
        "dcus": args.dcus,
        "rounds": args.rounds,
        "batch_size": args.batch_size,
        "producer": producer,
        "spooled_points": measured["spooled"],
        "duplicates_or_missing": stored - readings,
    }
    return RunResult(figures, details)

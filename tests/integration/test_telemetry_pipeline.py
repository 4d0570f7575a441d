"""Telemetry on real parts: simulated meters, gateway processes, Mosquitto, the cloud process and
a real time-series server (VictoriaMetrics, fed through influxdb-client's v2 write API)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from firmware_sim.clock import ScaledClock
from firmware_sim.faults import LinkFaults
from firmware_sim.fleet import Fleet, FleetSpec, MeterSpec
from firmware_sim.link_server import LinkServer
from switchyard.broker import Broker
from switchyard.faultproxy import FaultProxy
from switchyard.victoria import Victoria
from tests.support.telemetry_stack import (
    CloudProcess,
    GatewayProcess,
    ReadingLog,
    eventually,
)
from wire import RelayState
from wire.clock import now_ms
from wire.messages import PROFILE_BLOCK_MS

pytestmark = pytest.mark.integration

DCUS = ("DCU01", "DCU02")
METERS_PER_DCU = 4


def _fleet_spec() -> FleetSpec:
    meters = []
    for d, dcu_id in enumerate(DCUS):
        for m in range(1, METERS_PER_DCU + 1):
            relay = RelayState.DISCONNECTED if m == 1 else RelayState.CONNECTED
            meters.append(MeterSpec(meter_id=f"MTR{d + 1}{m:03d}", dcu_id=dcu_id, relay=relay))
    return FleetSpec(meters=meters)


@dataclass
class Rig:
    """Everything from meters to the time-series server, with handles to break each part."""

    clock: ScaledClock
    fleet: Fleet
    link: LinkServer
    produced: ReadingLog
    broker: Broker
    victoria: Victoria
    cloud: CloudProcess
    gateways: dict[str, GatewayProcess]
    proxies: dict[str, FaultProxy]
    workdir: Path

    def stop_meters(self) -> None:
        """Every meter stops answering: from now on no reading is produced."""
        every = [m for dcu in DCUS for m in self.fleet.on_dcu(dcu)]
        self.link.faults = LinkFaults(unreachable=frozenset(every))

    def readings_in_tsdb(self) -> list[tuple[dict[str, str], int, float]]:
        return self.victoria.samples("meter_reading_voltage_v")

    async def all_produced_arrive(self, *, missing: int = 0) -> list[tuple[dict[str, str], int]]:
        """Wait until the server holds as many readings as were produced (less `missing`)."""
        expected = len(self.produced.readings) - missing

        def arrived() -> list[tuple[dict[str, str], int]] | None:
            samples = self.readings_in_tsdb()
            return [(labels, ts) for labels, ts, _ in samples] if len(samples) >= expected else None

        return await eventually(f"{expected} readings in the time-series server", arrived)

    def gateway_store(self, dcu_id: str) -> sqlite3.Connection:
        path = self.workdir / dcu_id / "state" / f"edge-{dcu_id}.sqlite3"
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    def backlog(self, dcu_id: str) -> tuple[int, int]:
        """(batches waiting in the gateway's store, entries it has dropped in all)."""
        with self.gateway_store(dcu_id) as connection:
            waiting = connection.execute("SELECT count(*) FROM telemetry").fetchone()[0]
            dropped = connection.execute(
                "SELECT value FROM meta WHERE key = 'telemetry_dropped_entries'"
            ).fetchone()
        return int(waiting), int(dropped[0]) if dropped else 0


@asynccontextmanager
async def _rig(
    tmp_path: Path,
    broker: Broker,
    victoria: Victoria,
    database_url: str,
    *,
    time_scale: float = 1.0,
    gateway_settings: dict[str, str] | None = None,
) -> AsyncIterator[Rig]:
    # Meter time starts a minute into a load-profile block, so at 1x no block closes during a
    # test and every stored entry is an instantaneous reading.
    wall_ms = now_ms()
    origin_ms = wall_ms - wall_ms % PROFILE_BLOCK_MS + 60_000
    clock = ScaledClock(time_scale, origin_ms=min(origin_ms, wall_ms))
    fleet = Fleet.from_spec(_fleet_spec(), clock, seed=11)
    produced = ReadingLog(fleet)
    link = LinkServer(fleet, seed=11)
    link_host, link_port = await link.start()
    cloud = CloudProcess(
        tmp_path / "cloud",
        {
            "database_url": database_url,
            "mqtt_host": broker.host,
            "mqtt_port": str(broker.port),
            "influx_url": victoria.url,
            "influx_token": "token-for-tests",
            "telemetry_flush_interval_ms": "50",
            "telemetry_retry_s": "0.3",
            "influx_timeout_s": "3",
        },
    )
    await asyncio.to_thread(cloud.start)
    proxies: dict[str, FaultProxy] = {}
    gateways: dict[str, GatewayProcess] = {}
    for dcu_id in DCUS:
        proxy = FaultProxy(broker.host, broker.port).start()
        proxies[dcu_id] = proxy
        gateways[dcu_id] = GatewayProcess(
            dcu_id,
            tmp_path / dcu_id,
            {
                "mqtt_host": "127.0.0.1",
                "mqtt_port": str(proxy.port),
                "mqtt_reconnect_min_s": "0.2",
                "mqtt_reconnect_max_s": "1",
                "link_host": link_host,
                "link_port": str(link_port),
                "telemetry_interval_s": "0.2",
                "log_level": "DEBUG",
                **(gateway_settings or {}),
            },
        )
        gateways[dcu_id].start()
    rig = Rig(clock, fleet, link, produced, broker, victoria, cloud, gateways, proxies, tmp_path)
    try:
        yield rig
    finally:
        for gateway in gateways.values():
            await asyncio.to_thread(gateway.stop)
        await asyncio.to_thread(cloud.stop)
        for proxy in proxies.values():
            proxy.stop()
        await link.close()


@pytest.fixture
async def rig(
    tmp_path: Path, broker: Broker, victoria: Victoria, database_url: str
) -> AsyncIterator[Rig]:
    async with _rig(tmp_path, broker, victoria, database_url) as running:
        yield running


def _assert_exactly_the_produced_readings(
    rig: Rig, arrived: list[tuple[dict[str, str], int]], *, dropped: int = 0
) -> None:
    keys = [(labels["meter_id"], ts) for labels, ts in arrived]
    duplicated = [key for key, count in Counter(keys).items() if count > 1]
    assert not duplicated, f"{len(duplicated)} readings written twice, e.g. {duplicated[:3]}"
    produced = rig.produced.reading_keys()
    assert len(rig.produced.readings) == len(produced)
    assert set(keys) <= produced, "a point that no meter produced"
    assert len(keys) == len(produced) - dropped
    dcu_of = {m: dcu for dcu in DCUS for m in rig.fleet.on_dcu(dcu)}
    assert all(labels["dcu_id"] == dcu_of[labels["meter_id"]] for labels, _ in arrived)


async def test_every_reading_arrives_exactly_once_with_its_tags(
    tmp_path: Path, broker: Broker, victoria: Victoria, database_url: str
) -> None:
    # Meter time at 120x: a 15-minute load-profile block closes every 7.5 s.
    async with _rig(tmp_path, broker, victoria, database_url, time_scale=120.0) as rig:
        started_ms = rig.clock.now_ms()

        def two_blocks_closed() -> bool | None:
            return True if rig.clock.now_ms() - started_ms > 2 * PROFILE_BLOCK_MS else None

        await eventually("two load-profile blocks to close", two_blocks_closed)
        rig.stop_meters()
        arrived = await rig.all_produced_arrive()
        _assert_exactly_the_produced_readings(rig, arrived)

        by_key = {(r.meter_id, r.at_ms): r for r in rig.produced.readings}
        for labels, ts, value in rig.readings_in_tsdb():
            assert value == by_key[(labels["meter_id"], ts)].voltage_v
        power = rig.victoria.samples("meter_reading_active_power_w")
        open_relays = [v for labels, _, v in power if labels["meter_id"] in ("MTR1001", "MTR2001")]
        assert open_relays and set(open_relays) == {0.0}  # an open relay consumes nothing

        last_reading_ms: dict[str, int] = {}
        for meter_id, at_ms in rig.produced.reading_keys():
            last_reading_ms[meter_id] = max(at_ms, last_reading_ms.get(meter_id, 0))
        blocks = [
            (labels["meter_id"], ts)
            for labels, ts, _ in rig.victoria.samples("load_profile_import_wh")
        ]
        assert len(blocks) == len(set(blocks)), "a load-profile block written twice"
        for dcu_id in DCUS:
            for meter_id, meter in rig.fleet.on_dcu(dcu_id).items():
                closed = {
                    (meter_id, b.block_start_ms)
                    for b in meter.profile_since(0)
                    if b.block_start_ms + PROFILE_BLOCK_MS <= last_reading_ms[meter_id]
                }
                assert len(closed) >= 2
                assert closed <= set(blocks)
        assert set(blocks) <= {
            (m, b.block_start_ms)
            for d in DCUS
            for m, meter in rig.fleet.on_dcu(d).items()
            for b in meter.profile_since(0)
        }


async def test_time_series_server_outage_loses_and_duplicates_nothing(rig: Rig) -> None:
    await eventually("first readings stored", lambda: rig.readings_in_tsdb() or None)
    await asyncio.to_thread(rig.victoria.stop)
    await eventually(
        "the cloud to spool to disk",
        lambda: (
            rig.cloud.metrics().get('switchyard_telemetry_points_total{fate="spooled"}', 0) or None
        ),
    )
    await asyncio.to_thread(rig.victoria.start)
    rig.stop_meters()
    arrived = await rig.all_produced_arrive()
    _assert_exactly_the_produced_readings(rig, arrived)
    metrics = await eventually(
        "the spool to empty",
        lambda: m if (m := rig.cloud.metrics())["switchyard_telemetry_spool_bytes"] == 0 else None,
    )
    assert metrics['switchyard_telemetry_points_total{fate="replayed"}'] > 0
    assert metrics["switchyard_telemetry_tsdb_up"] == 1


async def test_uplink_cut_buffers_and_replays_marked_historical(rig: Rig) -> None:
    await eventually("first readings stored", lambda: rig.readings_in_tsdb() or None)
    _cut(rig.proxies["DCU01"])
    await eventually("DCU01 to buffer batches", lambda: rig.backlog("DCU01")[0] >= 8 or None)
    cut_over = len(rig.produced.readings)
    rig.proxies["DCU01"].heal()
    await eventually("DCU01 to replay its backlog", lambda: rig.backlog("DCU01")[0] < 2 or None)
    rig.stop_meters()
    arrived = await rig.all_produced_arrive()
    _assert_exactly_the_produced_readings(rig, arrived)

    historical = {
        (labels["meter_id"], ts)
        for labels, ts, value in rig.victoria.samples("meter_reading_historical")
        if value == 1
    }
    assert historical, "the replayed backlog is not marked historical"
    assert {m for m, _ in historical} <= set(rig.fleet.on_dcu("DCU01"))
    # At least 8 batches were stored while cut off; one or two may have been in the MQTT
    # client's hands already, and it resends those itself, unmarked.
    assert len(historical) >= 6 * METERS_PER_DCU
    assert len(historical) < cut_over
    assert rig.backlog("DCU01")[1] == 0  # nothing dropped within the bounds


def _batches_kept(cloud: CloudProcess) -> float:
    metrics = cloud.metrics()
    return sum(v for k, v in metrics.items() if k.startswith("switchyard_telemetry_batches_total"))


@pytest.mark.parametrize("restart_cloud", [False, True], ids=["cloud-running", "cloud-restarted"])
async def test_a_batch_whose_puback_was_lost_is_written_once(rig: Rig, restart_cloud: bool) -> None:
    await eventually("first readings stored", lambda: rig.readings_in_tsdb() or None)
    proxy = rig.proxies["DCU01"]
    # PUBACKs lost: DCU01's batches reach the broker and the cloud keeps them, but the gateway
    # never hears so; they stay in its store, and it sends them again after a reconnect.
    kept_before = _batches_kept(rig.cloud)
    proxy.set_faults(blackhole_down=True)
    await eventually(
        "DCU01 to hold unacknowledged batches", lambda: rig.backlog("DCU01")[0] >= 3 or None
    )
    await eventually(
        "the cloud to keep them", lambda: _batches_kept(rig.cloud) >= kept_before + 3 or None
    )
    if restart_cloud:
        await asyncio.to_thread(rig.cloud.stop)
    proxy.set_faults(refuse_new=True)
    proxy.reset_connections()
    proxy.heal()
    if restart_cloud:
        await asyncio.to_thread(rig.cloud.start)
    await eventually("DCU01 to send them again", lambda: rig.backlog("DCU01")[0] < 2 or None)
    rig.stop_meters()
    arrived = await rig.all_produced_arrive()
    _assert_exactly_the_produced_readings(rig, arrived)
    repeats = await eventually(
        "the repeats to be counted",
        lambda: rig.cloud.metrics().get("switchyard_telemetry_repeated_batches_total") or None,
    )
    assert repeats >= 1  # they did come again, and were acknowledged without a write


async def test_beyond_the_backlog_bound_the_drop_is_counted_and_visible(
    tmp_path: Path, broker: Broker, victoria: Victoria, database_url: str
) -> None:
    small = {"telemetry_backlog_max": "3"}
    async with _rig(tmp_path, broker, victoria, database_url, gateway_settings=small) as rig:
        await eventually("first readings stored", lambda: rig.readings_in_tsdb() or None)
        _cut(rig.proxies["DCU02"])
        await eventually("DCU02 to drop readings", lambda: rig.backlog("DCU02")[1] >= 12 or None)
        rig.proxies["DCU02"].heal()
        await eventually("DCU02 to replay", lambda: rig.backlog("DCU02")[0] < 2 or None)
        rig.stop_meters()
        await eventually("DCU02 to settle", lambda: rig.backlog("DCU02")[0] == 0 or None)
        dropped = rig.backlog("DCU02")[1]
        arrived = await rig.all_produced_arrive(missing=dropped)
        _assert_exactly_the_produced_readings(rig, arrived, dropped=dropped)

        def reported() -> float | None:
            totals = [
                value
                for labels, _, value in rig.victoria.samples("gateway_telemetry_dropped_readings")
                if labels["dcu_id"] == "DCU02"
            ]
            return max(totals) if totals and max(totals) >= dropped else None

        # Visible on the dashboards (the server shows new samples after a short flush).
        assert await eventually("the drop total in the time-series server", reported) == dropped
        gateways = await eventually(
            "the drop in the gateways API",
            lambda: (
                body
                if (body := rig.cloud.get("/api/v1/gateways").json())
                and any(g["telemetry_dropped_readings"] == dropped for g in body)
                else None
            ),
        )
        assert {g["dcu_id"]: g["telemetry_dropped_readings"] for g in gateways} == {
            "DCU01": 0,
            "DCU02": dropped,
        }
        gauge = rig.cloud.metrics()['switchyard_telemetry_gateway_dropped_readings{dcu_id="DCU02"}']
        assert gauge == dropped


def _cut(proxy: FaultProxy) -> None:
    """Like a pulled cable: every open connection reset, new ones refused until healed."""
    proxy.set_faults(refuse_new=True)
    proxy.reset_connections()

"""The simulator as a whole: `serve` in-process, and `python -m firmware_sim` as a process."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from firmware_sim.app import serve
from firmware_sim.fleet import generate_fleet, write_fleet_file
from firmware_sim.settings import SimSettings
from switchyard.procs import ManagedProcess, free_port, port_open
from wire.messages import RelayState
from wire.meterlink import MAX_FRAME_BYTES, LinkOp, LinkRequest, decode_response, encode_frame

REPO_ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 10.0


async def hello(port: int, dcu_id: str) -> list[str]:
    """Bind a fresh connection to `dcu_id` and answer the meter ids of its roster."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=MAX_FRAME_BYTES)
    try:
        writer.write(encode_frame(LinkRequest(id=1, op=LinkOp.HELLO, dcu_id=dcu_id)))
        answer = decode_response(await asyncio.wait_for(reader.readline(), DEADLINE_S))
    finally:
        writer.close()
    assert answer.ok and answer.meters is not None, answer
    return [meter.meter_id for meter in answer.meters]


async def test_serve_runs_the_configured_fleet_until_cancelled(tmp_path: Path) -> None:
    fleet_file = tmp_path / "fleet.json"
    write_fleet_file(generate_fleet(6, 2, seed=9), fleet_file)
    port = free_port()
    settings = SimSettings(fleet_file=fleet_file, link_port=port)
    ready = asyncio.Event()

    serving = asyncio.create_task(serve(settings, ready=ready), name="sim-under-test")
    await asyncio.wait_for(ready.wait(), DEADLINE_S)
    assert await hello(port, "DCU01") == ["MTR000001", "MTR000002", "MTR000003"]
    assert await hello(port, "DCU02") == ["MTR000004", "MTR000005", "MTR000006"]

    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving
    assert not port_open("127.0.0.1", port)


async def test_serve_applies_settings_faults_and_fleet(tmp_path: Path) -> None:
    fleet_file = tmp_path / "fleet.json"
    spec = generate_fleet(4, 1, seed=2, disconnected_share=1.0, mode_weights={2: 1.0})
    write_fleet_file(spec, fleet_file)
    port = free_port()
    settings = SimSettings(fleet_file=fleet_file, link_port=port, unreachable=["MTR000002"])
    ready = asyncio.Event()
    serving = asyncio.create_task(serve(settings, ready=ready), name="sim-under-test")
    try:
        await asyncio.wait_for(ready.wait(), DEADLINE_S)
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=MAX_FRAME_BYTES)
        writer.write(encode_frame(LinkRequest(id=1, op=LinkOp.HELLO, dcu_id="DCU01")))
        answer = decode_response(await asyncio.wait_for(reader.readline(), DEADLINE_S))
        writer.close()
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
    assert answer.meters is not None
    assert all(m.relay is RelayState.DISCONNECTED for m in answer.meters)
    assert [m.meter_id for m in answer.meters if not m.reachable] == ["MTR000002"]


@pytest.mark.integration
def test_module_runs_as_a_process_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "SWITCHYARD_SIM_LINK_PORT": str(port),
        "SWITCHYARD_SIM_METERS": "40",
        "SWITCHYARD_SIM_GATEWAYS": "4",
    }
    process = ManagedProcess(
        "sim",
        [sys.executable, "-m", "firmware_sim"],
        tmp_path / "sim.log",
        env=env,
        cwd=REPO_ROOT,
    ).start()
    try:
        process.wait_port("127.0.0.1", port, timeout_s=DEADLINE_S)
        roster = asyncio.run(hello(port, "DCU04"))
    finally:
        returncode = process.stop()
    assert roster == [f"MTR{i:06d}" for i in range(31, 41)]
    assert returncode == 0, process.tail()
    assert f"link listening on 127.0.0.1:{port}" in process.tail()


@pytest.mark.integration
def test_bad_settings_exit_with_a_message(tmp_path: Path) -> None:
    env = {**os.environ, "SWITCHYARD_SIM_FLEET_FILE": str(tmp_path / "missing.json")}
    process = ManagedProcess(
        "sim", [sys.executable, "-m", "firmware_sim"], tmp_path / "sim.log", env=env, cwd=REPO_ROOT
    ).start()
    assert process.popen is not None
    returncode = process.popen.wait(timeout=DEADLINE_S)
    assert returncode != 0
    assert "missing.json" in process.tail()

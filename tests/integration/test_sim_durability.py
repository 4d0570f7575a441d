"""A SIGKILLed simulator comes back like a real meter: relay state, events and counters intact,
and a gateway's link client reconnects to it by itself."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_gateway.errors import MeterUnreachable
from edge_gateway.meterlink import LinkClient
from firmware_sim.fleet import generate_fleet, write_fleet_file
from firmware_sim.store import STORE_FILE, read_meters
from switchyard.procs import ManagedProcess, free_port
from wire.meterlink import ControlState

REPO_ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 20.0
METERS = 8
ANSWERED_BEFORE_KILL = 60

pytestmark = pytest.mark.integration


@dataclass
class Toggler:
    """Operates one meter back and forth; remembers what the meter answered."""

    meter_id: str
    answered: int = 0
    last_state: ControlState = ControlState.CONNECTED
    in_doubt: int = 0  # an operation sent whose answer never came

    async def run(self, client: LinkClient) -> None:
        while True:
            connected = self.last_state is ControlState.CONNECTED
            operate = client.disconnect if connected else client.reconnect
            try:
                status = await operate(self.meter_id)
            except MeterUnreachable:
                self.in_doubt = 1
                return
            self.answered += 1
            self.last_state = status.control_state


def _sim(tmp_path: Path, port: int) -> ManagedProcess:
    fleet_file = tmp_path / "fleet.json"
    write_fleet_file(generate_fleet(METERS, 1, seed=3, mode_weights={2: 1.0}), fleet_file)
    env = {
        **os.environ,
        "SWITCHYARD_SIM_FLEET_FILE": str(fleet_file),
        "SWITCHYARD_SIM_LINK_PORT": str(port),
        "SWITCHYARD_SIM_STATE_DIR": str(tmp_path / "sim"),
    }
    return ManagedProcess(
        "sim", [sys.executable, "-m", "firmware_sim"], tmp_path / "sim.log", env=env, cwd=REPO_ROOT
    )


async def _until(condition_met: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition_met():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {DEADLINE_S:.0f}s: {what}")
        await asyncio.sleep(0.02)


async def test_sigkill_mid_operations_keeps_state_and_counters(tmp_path: Path) -> None:
    port = free_port()
    sim = _sim(tmp_path, port).start()
    client = LinkClient("127.0.0.1", port, "DCU01", timeout_s=1.0, reconnect_max_s=0.5)
    maintaining = asyncio.create_task(client.maintain())
    try:
        sim.wait_port("127.0.0.1", port, timeout_s=DEADLINE_S)
        await asyncio.wait_for(client.wait_connected(), DEADLINE_S)
        togglers = [Toggler(f"MTR{n:06d}") for n in range(1, METERS + 1)]
        running = [asyncio.create_task(t.run(client)) for t in togglers]
        await _until(
            lambda: sum(t.answered for t in togglers) >= ANSWERED_BEFORE_KILL, "operations"
        )
        sim.kill()  # SIGKILL with operations in flight
        await asyncio.wait_for(asyncio.gather(*running), DEADLINE_S)

        sim.start()
        await _until(lambda: client.connected, "the link client reconnected on its own")
        counters = read_meters(tmp_path / "sim" / STORE_FILE)
        for toggler in togglers:
            applied = counters[toggler.meter_id].counters.transitions_applied
            assert toggler.answered <= applied <= toggler.answered + toggler.in_doubt, toggler
            assert counters[toggler.meter_id].counters.transitions_refused == 0
            status = await client.read(toggler.meter_id)
            expected = toggler.last_state
            if applied > toggler.answered:  # the operation in doubt did happen
                expected = ControlState(1 - int(expected))
            assert status.control_state is expected, (toggler, status)
            assert status.last_event_seq == applied  # one load-switch event per operation
    finally:
        maintaining.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await maintaining
        sim.stop()

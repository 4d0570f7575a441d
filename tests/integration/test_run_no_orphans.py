"""`switchyard run` leaves no process behind however it is stopped: two Ctrl-C in quick
succession, or a SIGKILL of `switchyard run` itself; and a second run refuses a state directory
whose stack is still running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from switchyard.procs import free_port
from tests.support.processes import processes_mentioning
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
# A child of a SIGKILLed `switchyard run` gets its parent-death SIGKILL at once; this leaves
# room for a loaded machine.
NO_ORPHANS_DEADLINE_S = 10.0


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}


def _run_command(state: Path) -> list[str]:
    command = [sys.executable, "-m", "switchyard.cli", "run", "--meters", "20", "--gateways", "2"]
    return [*command, "--port", str(free_port()), "--state-dir", str(state)]


@pytest.fixture
def runs() -> Iterator[list[subprocess.Popen[str]]]:
    """`switchyard run` processes a test started, SIGKILLed if the test left one running."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for runner in started:
        if runner.poll() is None:
            runner.kill()
            runner.wait(timeout=30)


def _start_run(runs: list[subprocess.Popen[str]], state: Path) -> subprocess.Popen[str]:
    """Start `switchyard run` and wait for its banner."""
    runner = subprocess.Popen(
        _run_command(state),
        cwd=REPO_ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    runs.append(runner)
    assert runner.stdout is not None
    lines = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = runner.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C stops everything." in line:
            break
    assert "Switchyard is running." in "".join(lines), "".join(lines)
    # The broker, the meters, the cloud and both gateways.
    assert len(processes_mentioning(str(state))) >= 5, processes_mentioning(str(state))
    return runner


def _assert_no_process_left(state: Path) -> None:
    wait_for(
        f"no process of the stack in {state}",
        lambda: True if not processes_mentioning(str(state)) else None,
        timeout_s=NO_ORPHANS_DEADLINE_S,
    )


@pytest.mark.parametrize("gap_s", [0.0, 0.02, 0.05])
def test_two_quick_ctrl_c_leave_no_process(
    tmp_path: Path, runs: list[subprocess.Popen[str]], gap_s: float
) -> None:
    state = tmp_path / "run"
    runner = _start_run(runs, state)
    runner.send_signal(signal.SIGINT)
    time.sleep(gap_s)  # the second Ctrl-C lands inside the shutdown the first one began
    runner.send_signal(signal.SIGINT)
    runner.wait(timeout=60)
    assert runner.stdout is not None
    output = runner.stdout.read()
    assert runner.returncode == 0, output
    _assert_no_process_left(state)


def test_sigkill_of_switchyard_run_takes_its_children_down(
    tmp_path: Path, runs: list[subprocess.Popen[str]]
) -> None:
    state = tmp_path / "run"
    runner = _start_run(runs, state)
    runner.kill()
    runner.wait(timeout=30)
    _assert_no_process_left(state)


def test_a_second_run_on_a_live_state_dir_refuses(
    tmp_path: Path, runs: list[subprocess.Popen[str]]
) -> None:
    state = tmp_path / "run"
    first = _start_run(runs, state)
    before = sorted(processes_mentioning(str(state)))
    second = subprocess.run(
        _run_command(state), cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=60
    )
    assert second.returncode == 1, second.stdout + second.stderr
    assert f"another switchyard stack (pid {first.pid}) is running in {state}" in second.stderr
    # The first stack was left alone: same processes, and its state directory was not wiped.
    assert sorted(processes_mentioning(str(state))) == before
    assert (state / "stack.json").exists()
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=60) == 0
    _assert_no_process_left(state)

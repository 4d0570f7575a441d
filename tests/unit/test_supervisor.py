"""The supervisor's restart rules on a fake clock: backoff doubles up to a cap with bounded
jitter, a part crashing too often within the window is given up alone, and a part stopped on
purpose or exiting cleanly stays down. The parts are real `sleep` processes."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from switchyard.procs import ManagedProcess
from switchyard.supervisor import (
    CrashHistory,
    Part,
    PartState,
    RestartPolicy,
    Supervisor,
    describe_exit,
)

POLICY = RestartPolicy(
    initial_backoff_s=1.0, max_backoff_s=5.0, jitter=0.25, max_crashes=5, crash_window_s=60.0
)


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def test_backoff_doubles_up_to_the_cap() -> None:
    history = CrashHistory(RestartPolicy(max_crashes=100, max_backoff_s=5.0), rand=lambda: 0.5)
    delays = [history.crashed(float(n)) for n in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_jitter_stays_within_its_share() -> None:
    low = CrashHistory(POLICY, rand=lambda: 0.0).crashed(0.0)
    high = CrashHistory(POLICY, rand=lambda: 0.999999).crashed(0.0)
    assert low == pytest.approx(0.75)
    assert high == pytest.approx(1.25, abs=1e-5)


def test_the_fifth_crash_within_a_minute_gives_up() -> None:
    history = CrashHistory(POLICY, rand=lambda: 0.5)
    answers = [history.crashed(t) for t in (0.0, 10.0, 20.0, 30.0, 40.0)]
    assert [a is None for a in answers] == [False, False, False, False, True]


def test_crashes_older_than_the_window_are_forgotten() -> None:
    history = CrashHistory(POLICY, rand=lambda: 0.5)
    for t in (0.0, 10.0, 20.0, 30.0):
        assert history.crashed(t) is not None
    # 61 s after the first crash, that one has left the window: a fifth crash is the fourth.
    assert history.crashed(61.0) == POLICY.max_backoff_s
    assert history.recent == 4
    assert history.crashed(62.0) is None


@pytest.fixture
def sleepers(tmp_path: Path) -> Iterator[list[ManagedProcess]]:
    """Two real long-running processes, killed whatever the test does."""
    processes = [
        ManagedProcess(
            name, [sys.executable, "-c", "import signal; signal.pause()"], tmp_path / f"{name}.log"
        )
        for name in ("gateway DCU01", "gateway DCU02")
    ]
    for process in processes:
        process.start()
    yield processes
    for process in processes:
        process.kill()


def _crash(process: ManagedProcess) -> None:
    """SIGKILL from outside, as the soak does, and wait until the child is a zombie."""
    os.kill(process.pid, signal.SIGKILL)
    assert process.popen is not None
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)


def test_a_killed_part_comes_back_after_its_backoff(
    sleepers: list[ManagedProcess], caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    supervisor = Supervisor([Part(p) for p in sleepers], POLICY, clock=clock, rand=lambda: 0.5)
    first, second = sleepers
    old_pid, other_pid = first.pid, second.pid
    _crash(first)
    with caplog.at_level(logging.WARNING, logger="switchyard.supervisor"):
        supervisor.check()
    assert supervisor.state("gateway DCU01") is PartState.BACKOFF
    [line] = caplog.messages
    assert "gateway DCU01 died (signal SIGKILL)" in line and "restarting in 1.0 s" in line
    clock.now_s += 0.9
    supervisor.check()
    assert not first.alive(), "restarted before its backoff was over"
    clock.now_s += 0.2
    supervisor.check()
    assert first.alive() and first.pid != old_pid
    supervisor.check()
    assert supervisor.state("gateway DCU01") is PartState.RUNNING
    assert supervisor.restarts == {"gateway DCU01": 1, "gateway DCU02": 0}
    assert supervisor.wait_restarted("gateway DCU01", 1, timeout_s=0.0)
    assert second.pid == other_pid and second.alive()


def test_a_part_that_keeps_crashing_is_given_up_alone(
    sleepers: list[ManagedProcess], caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    supervisor = Supervisor([Part(p) for p in sleepers], POLICY, clock=clock, rand=lambda: 0.5)
    first, second = sleepers
    with caplog.at_level(logging.WARNING, logger="switchyard.supervisor"):
        for _ in range(POLICY.max_crashes):
            _crash(first)
            supervisor.check()
            clock.now_s += POLICY.max_backoff_s
            supervisor.check()
    assert supervisor.state("gateway DCU01") is PartState.GIVEN_UP
    assert supervisor.restarts["gateway DCU01"] == POLICY.max_crashes - 1
    assert "giving up on it, the rest keeps running" in caplog.messages[-1]
    clock.now_s += 100.0
    supervisor.check()
    assert not first.alive(), "a part given up was started again"
    assert second.alive() and supervisor.state("gateway DCU02") is PartState.RUNNING


def test_a_part_stopped_or_killed_on_purpose_stays_down(sleepers: list[ManagedProcess]) -> None:
    clock = FakeClock()
    supervisor = Supervisor([Part(p) for p in sleepers], POLICY, clock=clock)
    first, second = sleepers
    first.kill()
    second.stop(timeout_s=5.0)
    for _ in range(3):
        supervisor.check()
        clock.now_s += 10.0
    assert not first.alive() and not second.alive()
    assert supervisor.restarts == {"gateway DCU01": 0, "gateway DCU02": 0}
    # Started again by hand, the part is followed again.
    first.start()
    supervisor.check()
    _crash(first)
    supervisor.check()
    assert supervisor.state("gateway DCU01") is PartState.BACKOFF


def test_a_clean_exit_is_not_restarted(tmp_path: Path) -> None:
    done = ManagedProcess("meters", [sys.executable, "-c", "pass"], tmp_path / "m.log").start()
    assert done.popen is not None and done.popen.wait(timeout=30) == 0
    supervisor = Supervisor([Part(done)], POLICY, clock=FakeClock())
    supervisor.check()
    assert supervisor.state("meters") is PartState.STOPPED


def test_exits_are_described_by_signal_name_or_code() -> None:
    assert describe_exit(-signal.SIGKILL) == "signal SIGKILL"
    assert describe_exit(3) == "exit code 3"

"""The supervisor of `switchyard run` on real processes and a real Mosquitto: a SIGKILLed
gateway or broker comes back and no command is lost or repeated, a part that keeps crashing is
given up alone, and a broker that cannot bind its port is an error, never "running"."""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from switchyard.pay import pay
from switchyard.procs import ProcessStartError, free_port
from switchyard.stack import LocalStack, StackOptions, start_stack
from switchyard.supervisor import PartState, RestartPolicy
from tests.support.fast_timers import FAST_CLOUD, FAST_GATEWAY
from tests.support.meterlink_probe import MeterLinkProbe
from tests.support.processes import processes_mentioning
from tests.support.stack_api import StackApi
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration

COMMANDS = 30
RESTART_DEADLINE_S = 30.0
CONVERGENCE_DEADLINE_S = 60.0


@pytest.fixture
def started() -> Iterator[list[LocalStack]]:
    """Stacks started by a test, stopped whatever happens."""
    stacks: list[LocalStack] = []
    yield stacks
    for stack in stacks:
        stack.stop()


def _start(started: list[LocalStack], tmp_path: Path, **overrides: object) -> LocalStack:
    options = StackOptions(
        meters=60,
        gateways=2,
        port=free_port(),
        state_dir=tmp_path / "stack",
        cloud_env=FAST_CLOUD,
        gateway_env=FAST_GATEWAY,
        **overrides,  # type: ignore[arg-type]
    )
    stack = start_stack(options)
    started.append(stack)
    return stack


def _relay_events(stack: LocalStack, dcu_of: dict[str, str]) -> dict[str, list[int]]:
    """Relay events (301 disconnected, 302 connected) of each meter, read from the simulator."""
    events: dict[str, list[int]] = {}
    for dcu_id in sorted(set(dcu_of.values())):
        probe = MeterLinkProbe("127.0.0.1", stack.link_port, dcu_id)
        try:
            for meter_id in (m for m, d in dcu_of.items() if d == dcu_id):
                events[meter_id] = probe.relay_events(meter_id)
        finally:
            probe.close()
    return events


def test_gateway_sigkilled_mid_commands_is_restarted_and_each_relay_operates_once(
    tmp_path: Path, started: list[LocalStack]
) -> None:
    stack = _start(started, tmp_path)
    assert stack.supervisor is not None
    api = StackApi(stack)
    connected = [a for a in stack.fleet.accounts if a.relay.value == "connected"]
    targets = [a for a in connected if a.control_mode != 0][:COMMANDS]
    assert len(targets) == COMMANDS
    issued: dict[str, str] = {}

    def issue() -> None:
        for account in targets:
            issued[account.meter_id] = api.command(account.meter_id, "disconnect")["command_id"]
            threading.Event().wait(0.05)

    issuer = threading.Thread(target=issue)
    issuer.start()
    wait_for("a third of the commands issued", lambda: True if len(issued) >= 10 else None)
    gateway = stack.supervisor.parts["gateway DCU01"]
    killed_pid = gateway.pid
    os.kill(killed_pid, signal.SIGKILL)
    assert stack.supervisor.wait_restarted("gateway DCU01", 1, RESTART_DEADLINE_S)
    assert gateway.pid != killed_pid
    issuer.join()
    after_kill = [a for a in targets[10:] if a.dcu_id == "DCU01"]
    assert after_kill, "no command for the killed gateway was issued after the kill"

    finals = api.wait_final(list(issued.values()), timeout_s=CONVERGENCE_DEADLINE_S)
    assert [c["state"] for c in finals] == ["SUCCEEDED"] * COMMANDS, [
        (c["meter_id"], c["state"], c["detail"]) for c in finals if c["state"] != "SUCCEEDED"
    ]
    events = _relay_events(stack, {a.meter_id: a.dcu_id for a in targets})
    assert events == {a.meter_id: [301] for a in targets}, "a relay operated other than once"
    assert stack.supervisor.restarts["gateway DCU01"] == 1
    assert stack.supervisor.restarts["gateway DCU02"] == 0


def test_broker_sigkilled_is_restarted_and_a_payment_restores_power(
    tmp_path: Path, started: list[LocalStack]
) -> None:
    stack = _start(started, tmp_path)
    assert stack.supervisor is not None and stack.broker is not None
    account = stack.fleet.disconnected()[0]
    broker = stack.broker.process
    killed_pid = broker.pid
    os.kill(killed_pid, signal.SIGKILL)
    assert stack.supervisor.wait_restarted(broker.name, 1, RESTART_DEADLINE_S)
    assert broker.pid != killed_pid and broker.listening(stack.broker.host, stack.broker.port)

    receipt = pay(stack.api_url, stack.secrets.webhook_secret, account.account_id, wait_s=30.0)
    assert receipt.command_id is not None
    assert receipt.relay == "connected", receipt
    probe = MeterLinkProbe("127.0.0.1", stack.link_port, account.dcu_id)
    try:
        assert probe.status(account.meter_id).output_state is True
    finally:
        probe.close()


def test_a_broker_that_keeps_failing_to_bind_is_given_up_while_the_rest_runs(
    tmp_path: Path, started: list[LocalStack]
) -> None:
    policy = RestartPolicy(initial_backoff_s=1.0, max_backoff_s=1.0, max_crashes=3)
    stack = _start(started, tmp_path, restart_policy=policy)
    assert stack.supervisor is not None and stack.broker is not None
    broker = stack.broker.process
    os.kill(broker.pid, signal.SIGKILL)
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        # Take the broker's port as soon as its death frees it, before the restart comes.
        wait_for("the broker's port freed", lambda: _bind(squatter, stack.broker.port))
        squatter.listen()
        wait_for(
            "the broker given up",
            lambda: True if stack.supervisor.state(broker.name) is PartState.GIVEN_UP else None,
            timeout_s=RESTART_DEADLINE_S,
        )
        assert "Address already in use" in broker.tail()
        assert stack.supervisor.restarts[broker.name] == policy.max_crashes - 1
        others = [p for name, p in stack.supervisor.parts.items() if name != broker.name]
        assert all(p.alive() for p in others)
        assert {stack.supervisor.state(p.name) for p in others} == {PartState.RUNNING}
        health = StackApi(stack).http.get("/healthz")
        assert health.status_code in (200, 503), health.text
    finally:
        squatter.close()


def _bind(sock: socket.socket, port: int) -> bool | None:
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        return None
    return True


def test_a_busy_mqtt_port_is_an_error_and_leaves_nothing_running(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy_port = squatter.getsockname()[1]
        options = StackOptions(
            meters=10, gateways=1, port=free_port(), mqtt_port=busy_port, state_dir=tmp_path / "s"
        )
        with pytest.raises(ProcessStartError, match=f"127.0.0.1:{busy_port} is already in use"):
            start_stack(options)
    assert processes_mentioning(str(tmp_path / "s")) == []

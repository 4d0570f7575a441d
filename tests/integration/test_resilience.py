"""Commands that survive anything: broker, cloud and gateway crashes, link faults, unreachable
meters, malformed payloads — on real Mosquitto, real processes, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from cloud.db.models import Command
from cloud.db.session import Database
from cloud.onboarding import AccountRecord
from switchyard.broker_credentials import CLOUD_USER
from switchyard.faultproxy import FaultProxy
from switchyard.procs import free_port
from switchyard.stack import LocalStack, StackOptions, start_stack
from tests.conftest import BACKENDS
from tests.support.meterlink_probe import MeterLinkProbe
from tests.support.mqtt import connect_as, subscribe
from tests.support.stack_api import StackApi, wait_for

pytestmark = pytest.mark.integration

# Short timers so faults heal within seconds (production defaults are in cloud/settings.py).
FAST_CLOUD = {
    "SWITCHYARD_ACK_TIMEOUT_S": "1",
    "SWITCHYARD_EXECUTION_TIMEOUT_S": "4",
    "SWITCHYARD_RETRY_BACKOFF_CAP_S": "2",
    "SWITCHYARD_DISPATCH_POLL_S": "0.2",
    "SWITCHYARD_MAX_ATTEMPTS": "30",
    "SWITCHYARD_MQTT_KEEPALIVE_S": "5",
    "SWITCHYARD_MQTT_RECONNECT_MIN_S": "0.2",
    "SWITCHYARD_MQTT_RECONNECT_MAX_S": "1",
    # These tests command every meter by hand: lift the operator rate limit.
    "SWITCHYARD_MANUAL_COMMANDS_PER_ACTOR": "100000",
    "SWITCHYARD_MANUAL_COMMANDS_TOTAL": "100000",
}
FAST_GATEWAY = {
    "SWITCHYARD_MQTT_KEEPALIVE_S": "5",
    "SWITCHYARD_MQTT_RECONNECT_MIN_S": "0.2",
    "SWITCHYARD_MQTT_RECONNECT_MAX_S": "1",
}
CONVERGENCE_DEADLINE_S = 60.0


def _options(tmp_path: Path, database_url: str, **overrides: object) -> StackOptions:
    options = StackOptions(
        meters=40,
        gateways=2,
        port=free_port(),
        state_dir=tmp_path / "stack",
        database_url=database_url,
        cloud_env=FAST_CLOUD,
        gateway_env=FAST_GATEWAY,
    )
    return replace(options, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def started() -> Iterator[list[LocalStack]]:
    """Stacks started by a test, stopped whatever happens."""
    stacks: list[LocalStack] = []
    yield stacks
    for stack in stacks:
        stack.stop()


def _start(started: list[LocalStack], options: StackOptions) -> tuple[LocalStack, StackApi]:
    stack = start_stack(options)
    started.append(stack)
    return stack, StackApi(stack)


def _switchable(stack: LocalStack) -> list[AccountRecord]:
    """Demo accounts whose meters can be switched remotely (control mode 0 never disconnects)."""
    return [a for a in stack.fleet.accounts if a.control_mode != 0]


def _opposite(relay: str) -> str:
    return "connect" if relay != "connected" else "disconnect"


def _relay_events(stack: LocalStack, meters: Mapping[str, str]) -> dict[str, list[int]]:
    """Relay events (301/302) of each meter, read from the simulator; meters: id -> DCU."""
    events: dict[str, list[int]] = {}
    for dcu_id in set(meters.values()):
        probe = MeterLinkProbe("127.0.0.1", stack.link_port, dcu_id)
        try:
            for meter_id, meter_dcu in meters.items():
                if meter_dcu == dcu_id:
                    events[meter_id] = probe.relay_events(meter_id)
        finally:
            probe.close()
    return events


def _command_every_meter(
    api: StackApi, stack: LocalStack, pause_s: float = 0.0, issued: dict[str, str] | None = None
) -> dict[str, str]:
    """Flip every meter's relay with one operator command each; fills meter id -> command id."""
    issued = {} if issued is None else issued
    for account in _switchable(stack):
        action = _opposite(account.relay.value)
        issued[account.meter_id] = api.command(account.meter_id, action)["command_id"]
        if pause_s:
            time.sleep(pause_s)
    return issued


def _assert_each_meter_switched_once(
    stack: LocalStack, api: StackApi, issued: dict[str, str], timeout_s: float
) -> None:
    finals = api.wait_final(list(issued.values()), timeout_s=timeout_s)
    assert {c["state"] for c in finals} == {"SUCCEEDED"}, [
        (c["meter_id"], c["state"], c["detail"]) for c in finals if c["state"] != "SUCCEEDED"
    ]
    dcu_of = {a.meter_id: a.dcu_id for a in _switchable(stack)}
    expected = {
        a.meter_id: [301 if a.relay.value == "connected" else 302] for a in _switchable(stack)
    }
    assert _relay_events(stack, dcu_of) == expected


def test_broker_killed_mid_stream_every_command_succeeds_once(
    tmp_path: Path, database_url: str, started: list[LocalStack]
) -> None:
    stack, api = _start(started, _options(tmp_path, database_url, link_latency_ms=20.0))
    assert stack.broker is not None
    issued: dict[str, str] = {}
    issuer = threading.Thread(target=_command_every_meter, args=(api, stack, 0.05, issued))
    issuer.start()
    wait_for("a quarter of the commands issued", lambda: True if len(issued) >= 10 else None)
    stack.broker.process.kill()
    time.sleep(1.0)  # the outage itself: commands keep being accepted meanwhile
    stack.broker.restart()
    issuer.join()
    assert len(issued) == len(_switchable(stack))
    _assert_each_meter_switched_once(stack, api, issued, CONVERGENCE_DEADLINE_S)


def test_cloud_killed_while_dispatching_loses_and_repeats_nothing(
    tmp_path: Path, database_url: str, started: list[LocalStack]
) -> None:
    stack, api = _start(started, _options(tmp_path, database_url, link_latency_ms=50.0))
    issued = _command_every_meter(api, stack)
    cloud = stack.clouds[0]
    cloud.kill()
    unfinished = [
        c
        for c in issued.values()
        if _state_in_database(stack, c) in ("QUEUED", "SENT", "DELIVERED")
    ]
    assert unfinished, "the cloud finished everything before it was killed: nothing was tested"
    cloud.start()
    cloud.wait_port("127.0.0.1", stack.options.port)
    _assert_each_meter_switched_once(stack, api, issued, CONVERGENCE_DEADLINE_S)


def _state_in_database(stack: LocalStack, command_id: str) -> str:
    """A command's state read straight from the database (the API is down)."""

    async def read() -> str:
        db = Database.from_url(stack.database_url)
        try:
            async with db.read() as session:
                command = await session.get(Command, command_id)
                assert command is not None
                return command.state
        finally:
            await db.close()

    return asyncio.run(read())


def test_gateway_offline_spends_no_attempts_and_converges_on_return(
    tmp_path: Path, database_url: str, started: list[LocalStack]
) -> None:
    stack, api = _start(started, _options(tmp_path, database_url))
    gateway = stack.gateways["DCU02"]
    gateway.kill()
    wait_for("the Will of DCU02", lambda: True if not api.gateways()["DCU02"] else None)
    on_dcu2 = [a for a in _switchable(stack) if a.dcu_id == "DCU02"]
    issued = {
        a.meter_id: api.command(a.meter_id, _opposite(a.relay.value))["command_id"] for a in on_dcu2
    }
    # Several ack timeouts pass while the gateway is away: no attempt may be spent.
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        assert {api.get_command(c)["attempts"] for c in list(issued.values())[:5]} == {0}
        time.sleep(0.3)
    gateway.start()
    finals = api.wait_final(list(issued.values()), timeout_s=CONVERGENCE_DEADLINE_S)
    assert {(c["state"], c["attempts"]) for c in finals} == {("SUCCEEDED", 1)}
    events = _relay_events(stack, {a.meter_id: "DCU02" for a in on_dcu2})
    assert events == {a.meter_id: [301 if a.relay.value == "connected" else 302] for a in on_dcu2}


def test_link_faults_heal_and_every_meter_converges(
    tmp_path: Path, database_url: str, started: list[LocalStack]
) -> None:
    mqtt_port = free_port()
    # The proxies forward to where the broker will listen; they start before it.
    to_broker_for_gateways = FaultProxy("127.0.0.1", mqtt_port).start()
    to_broker_for_cloud = FaultProxy("127.0.0.1", mqtt_port).start()
    try:
        options = _options(
            tmp_path,
            database_url,
            mqtt_port=mqtt_port,
            gateway_mqtt_port=to_broker_for_gateways.port,
            cloud_mqtt_port=to_broker_for_cloud.port,
        )
        stack, api = _start(started, options)
        issued: dict[str, str] = {}
        issuer = threading.Thread(target=_command_every_meter, args=(api, stack, 0.05, issued))
        issuer.start()
        for proxy in (to_broker_for_gateways, to_broker_for_cloud):
            proxy.set_faults(latency_ms=150)
        time.sleep(1.0)
        assert to_broker_for_gateways.reset_connections() >= 1
        assert to_broker_for_cloud.reset_connections() >= 1
        time.sleep(0.5)
        to_broker_for_gateways.set_faults(latency_ms=0, blackhole=True)
        time.sleep(2.0)
        to_broker_for_cloud.set_faults(latency_ms=0, blackhole=True, refuse_new=True)
        time.sleep(1.5)
        to_broker_for_gateways.reset_connections()
        to_broker_for_cloud.reset_connections()
        issuer.join()
        for proxy in (to_broker_for_gateways, to_broker_for_cloud):
            proxy.heal()
        healed_at = time.monotonic()
        _assert_each_meter_switched_once(stack, api, issued, CONVERGENCE_DEADLINE_S)
        converged_s = time.monotonic() - healed_at
        assert converged_s < CONVERGENCE_DEADLINE_S
        for account in _switchable(stack):
            meter = api.meter(account.meter_id)
            assert meter["reported_relay"] == meter["desired_relay"]
    finally:
        to_broker_for_gateways.stop()
        to_broker_for_cloud.stop()


def test_unreachable_meter_times_out_after_the_configured_attempts(
    tmp_path: Path, database_url: str, started: list[LocalStack]
) -> None:
    options = _options(
        tmp_path,
        database_url,
        sim_env={"SWITCHYARD_SIM_UNREACHABLE": "MTR000005"},
        gateway_env={
            **FAST_GATEWAY,
            "SWITCHYARD_LINK_TIMEOUT_S": "0.2",
            "SWITCHYARD_LINK_ATTEMPTS": "1",
        },
        cloud_env={**FAST_CLOUD, "SWITCHYARD_MAX_ATTEMPTS": "3"},
    )
    _, api = _start(started, options)
    unreachable = api.command("MTR000005", "disconnect")["command_id"]
    reachable = api.command("MTR000006", "disconnect")["command_id"]
    final = {c["command_id"]: c for c in api.wait_final([unreachable, reachable])}
    assert (final[unreachable]["state"], final[unreachable]["attempts"]) == ("TIMED_OUT", 3)
    assert "unreachable" in final[unreachable]["detail"]
    assert final[reachable]["state"] == "SUCCEEDED"


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="several clouds need PostgreSQL")
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_cloud_processes_split_the_work_and_do_it_once(
    tmp_path: Path, database_url: str, started: list[LocalStack]
) -> None:
    stack, first = _start(started, _options(tmp_path, database_url, clouds=2, meters=80))
    second = StackApi(stack, stack.api_urls[1])
    assert stack.broker is not None
    publishes: dict[str, int] = {}
    watchers = _watch_commands(stack, publishes)
    acks_sent: list[bytes] = []
    ack_watcher = connect_as(stack, CLOUD_USER)
    ack_watcher.on_message = lambda _c, _u, message: acks_sent.append(message.payload)
    subscribe(ack_watcher, "sy/v1/dcu/+/meter/+/ack")
    watchers.append(ack_watcher)
    try:
        issued: dict[str, str] = {}
        for n, account in enumerate(_switchable(stack)):
            api = first if n % 2 else second
            action = _opposite(account.relay.value)
            issued[account.meter_id] = api.command(account.meter_id, action)["command_id"]
        finals = first.wait_final(list(issued.values()))
        # Every ack the gateways sent has been applied (or the count below says otherwise).
        wait_for(
            "every ack applied",
            lambda: (
                True
                if sum(api.metric("switchyard_acks_processed_total") for api in (first, second))
                >= len(acks_sent)
                else None
            ),
        )
    finally:
        for watcher in watchers:
            watcher.loop_stop()
            watcher.disconnect()
    assert {c["state"] for c in finals} == {"SUCCEEDED"}
    for command in finals:
        assert publishes.get(command["command_id"]) == command["attempts"], command
        steps = [t["to_state"] for t in command["transitions"]]
        assert steps.count("DELIVERED") == 1 and steps.count("SUCCEEDED") == 1, steps
    for api in (first, second):
        assert api.metric("switchyard_commands_published_total") > 0
        assert api.metric("switchyard_acks_processed_total") > 0
    total_acks = sum(api.metric("switchyard_acks_processed_total") for api in (first, second))
    # A republish under load makes the gateway answer again, so count what was sent, not 2 each.
    assert len(acks_sent) >= 2 * len(finals)
    assert total_acks == len(acks_sent), "each ack the gateways sent applied exactly once"


def _watch_commands(stack: LocalStack, publishes: dict[str, int]) -> list[paho.Client]:
    """Count every command publish, per command id, as the cloud's user sees them (a second
    session as a gateway's user would take the gateway's place: the broker binds its id)."""
    lock = threading.Lock()

    def on_message(_c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        command_id = json.loads(message.payload)["command_id"]
        with lock:
            publishes[command_id] = publishes.get(command_id, 0) + 1

    client = connect_as(stack, CLOUD_USER)
    client.on_message = on_message
    subscribe(client, "sy/v1/dcu/+/meter/+/cmd")
    return [client]


def test_malformed_payloads_are_counted_and_do_not_block_what_follows(
    tmp_path: Path, database_url: str, started: list[LocalStack]
) -> None:
    stack, api = _start(started, _options(tmp_path, database_url))
    assert stack.broker is not None
    client = connect_as(stack, "DCU01")
    garbage = {
        "ack": "sy/v1/dcu/DCU01/meter/MTR000001/ack",
        "event": "sy/v1/dcu/DCU01/meter/MTR000001/event",
        "state": "sy/v1/dcu/DCU01/state",
    }
    for topic in garbage.values():
        client.publish(topic, b"\x00not json", qos=1).wait_for_publish(5)
        client.publish(topic, b'{"dcu_id": "DCU01"}', qos=1).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()
    cloud = connect_as(stack, CLOUD_USER)
    cloud.publish(
        "sy/v1/dcu/DCU01/meter/MTR000001/cmd", b'{"command_id": 1', qos=1
    ).wait_for_publish(5)
    cloud.loop_stop()
    cloud.disconnect()

    for kind in garbage:
        wait_for(
            f"malformed {kind} counted",
            lambda kind=kind: (
                True
                if api.metric("switchyard_malformed_messages_total", f'{{kind="{kind}"}}') >= 2
                else None
            ),
        )
    account = next(a for a in _switchable(stack) if a.dcu_id == "DCU01")
    command_id = api.command(account.meter_id, _opposite(account.relay.value))["command_id"]
    assert api.wait_final([command_id])[0]["state"] == "SUCCEEDED"
    assert api.gateways()["DCU01"], "garbage on the state topic did not take the gateway offline"

    gateway = stack.gateways["DCU01"]
    gateway.signal(signal.SIGTERM)
    assert gateway.popen is not None and gateway.popen.wait(timeout=20) == 0
    log = gateway.log_path.read_text()
    assert "malformed command" in log
    assert "'commands_malformed': 1" in log

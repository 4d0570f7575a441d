"""Commands that survive anything: broker, cloud and gateway crashes, link faults, unreachable
meters, malformed payloads — on real Mosquitto, real processes, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from cloud.db.models import Command
from cloud.db.session import Database
from cloud.onboarding import AccountRecord
from switchyard.broker_credentials import CLOUD_USER
from switchyard.faultproxy import FaultProxy
from switchyard.procs import free_port, port_open
from switchyard.stack import LocalStack, StackOptions, start_stack
from tests.conftest import BACKENDS
from tests.support.fast_timers import ACK_TIMEOUT_S, FAST_CLOUD, FAST_GATEWAY
from tests.support.meterlink_probe import MeterLinkProbe
from tests.support.mqtt import connect_as, subscribe
from tests.support.stack_api import ACTIVE_STATES, StackApi
from tests.support.wait import holds_for, wait_until

pytestmark = pytest.mark.integration

MALFORMED = "switchyard_malformed_messages_total"
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


def _issue(api: StackApi, accounts: Sequence[AccountRecord]) -> dict[str, str]:
    """Flip each account's relay with one operator command; meter id -> command id."""
    return {
        a.meter_id: api.command(a.meter_id, _opposite(a.relay.value))["command_id"]
        for a in accounts
    }


def _split(accounts: Sequence[AccountRecord], parts: int) -> list[list[AccountRecord]]:
    """The accounts in `parts` consecutive slices of (nearly) equal size."""
    size = -(-len(accounts) // parts)
    return [list(accounts[n : n + size]) for n in range(0, len(accounts), size)]


def _active(api: StackApi, command_ids: Iterable[str]) -> dict[str, str]:
    """Command id -> state of those still QUEUED, SENT or DELIVERED."""
    states = {c: api.get_command(c)["state"] for c in command_ids}
    return {c: state for c, state in states.items() if state in ACTIVE_STATES}


def _most_attempts(api: StackApi, command_ids: Iterable[str]) -> int:
    """The highest attempt count among these commands (2 or more: one was republished)."""
    return max(api.get_command(c)["attempts"] for c in command_ids)


def _assert_each_meter_switched_once(
    stack: LocalStack, api: StackApi, issued: dict[str, str], timeout_s: float
) -> None:
    """Every command SUCCEEDED within `timeout_s`, once, and operated its relay once."""
    finals = api.wait_final(list(issued.values()), timeout_s=timeout_s)
    assert {c["state"] for c in finals} == {"SUCCEEDED"}, [
        (c["meter_id"], c["state"], c["detail"]) for c in finals if c["state"] != "SUCCEEDED"
    ]
    for command in finals:
        steps = [t["to_state"] for t in command["transitions"]]
        # One trail per command: queued once, succeeded once, and nothing after it.
        assert steps[0] == "QUEUED" and steps.count("QUEUED") == 1, (command["command_id"], steps)
        assert steps[-1] == "SUCCEEDED" and steps.count("SUCCEEDED") == 1, (command, steps)
    dcu_of = {a.meter_id: a.dcu_id for a in _switchable(stack)}
    expected = {
        a.meter_id: [301 if a.relay.value == "connected" else 302] for a in _switchable(stack)
    }
    assert _relay_events(stack, dcu_of) == expected


def test_broker_killed_mid_stream_every_command_succeeds_once(
    tmp_path: Path, database_url: str, started: list[LocalStack]
) -> None:
    stack, api = _start(started, _options(tmp_path, database_url, link_latency_ms=20.0))
    broker = stack.broker
    assert broker is not None
    before, during, after = _split(_switchable(stack), 3)
    issued = _issue(api, before)
    broker.process.kill()
    assert not port_open(broker.host, broker.port), "the broker still accepts connections"
    wait_until("the cloud to see the broker gone", api.health, lambda h: h["broker"] != "connected")
    assert _active(api, issued.values()), "all finished before the broker died: nothing tested"
    outage = _issue(api, during)  # the API keeps accepting commands while the broker is down
    assert {api.get_command(c)["state"] for c in outage.values()} == {"QUEUED"}
    broker.restart()
    wait_until("the cloud to reconnect", api.health, lambda h: h["broker"] == "connected")
    issued |= outage | _issue(api, after)
    _assert_each_meter_switched_once(stack, api, issued, CONVERGENCE_DEADLINE_S)


def test_cloud_killed_while_dispatching_loses_and_repeats_nothing(
    tmp_path: Path, database_url: str, started: list[LocalStack]
) -> None:
    stack, api = _start(started, _options(tmp_path, database_url, link_latency_ms=50.0))
    issued = _issue(api, _switchable(stack))
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
    wait_until("the cloud to show DCU02 offline", api.gateways, lambda g: not g["DCU02"])
    on_dcu2 = [a for a in _switchable(stack) if a.dcu_id == "DCU02"]
    issued = _issue(api, on_dcu2)
    # DCU01 is served meanwhile: the dispatcher runs its rounds and passes DCU02's commands by.
    witness = _issue(api, [next(a for a in _switchable(stack) if a.dcu_id == "DCU01")])
    watched = list(issued.values())[:5]
    holds_for(
        "no attempt spent on DCU02's commands while it is away",
        lambda: {c: api.get_command(c)["attempts"] for c in watched},
        lambda attempts: set(attempts.values()) == {0},
        duration_s=3 * ACK_TIMEOUT_S,  # several ack timeouts
        every_s=0.25,
    )
    assert api.wait_final(list(witness.values()))[0]["state"] == "SUCCEEDED"
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
    gateways_link = FaultProxy("127.0.0.1", mqtt_port).start()
    cloud_link = FaultProxy("127.0.0.1", mqtt_port).start()
    try:
        options = _options(
            tmp_path,
            database_url,
            mqtt_port=mqtt_port,
            gateway_mqtt_port=gateways_link.port,
            cloud_mqtt_port=cloud_link.port,
        )
        stack, api = _start(started, options)
        issued = _link_fault_phases(stack, api, gateways_link, cloud_link)
        for proxy in (gateways_link, cloud_link):
            proxy.heal()
        # The deadline runs from the heal: every command converges within it, each once.
        _assert_each_meter_switched_once(stack, api, issued, CONVERGENCE_DEADLINE_S)
        for account in _switchable(stack):
            meter = api.meter(account.meter_id)
            assert meter["reported_relay"] == meter["desired_relay"], meter
    finally:
        gateways_link.stop()
        cloud_link.stop()


def _link_fault_phases(
    stack: LocalStack, api: StackApi, gateways_link: FaultProxy, cloud_link: FaultProxy
) -> dict[str, str]:
    """Issue commands through latency, resets and blackholes on both links, each phase lasting
    until its fault is seen to bite; leaves both links dark. Returns meter id -> command id."""
    slow, after_reset, gateways_dark, cloud_dark = _split(_switchable(stack), 4)
    for proxy in (gateways_link, cloud_link):
        proxy.set_faults(latency_ms=150)
    issued = _issue(api, slow)
    wait_until(
        "a command to finish through the slow links",
        lambda: _active(api, issued.values()),
        lambda active: len(active) < len(issued),
    )

    reset_at = datetime.now(UTC)
    reconnects = cloud_link.connections_accepted
    assert gateways_link.reset_connections() >= 1
    assert cloud_link.reset_connections() >= 1
    wait_until(
        "the cloud to reconnect and see every gateway born again after the reset",
        lambda: (cloud_link.connections_accepted - reconnects, api.health(), api.presence()),
        lambda seen: (
            seen[0] >= 1
            and seen[1]["broker"] == "connected"
            and all(_born_since(g, reset_at) for g in seen[2].values())
        ),
    )
    issued |= _issue(api, after_reset)

    gateways_link.set_faults(latency_ms=0, blackhole=True)
    unheard = _issue(api, gateways_dark)
    wait_until(
        "a command republished for lack of an ack from the dark gateways",
        lambda: _most_attempts(api, unheard.values()),
        lambda attempts: attempts >= 2,
    )
    issued |= unheard

    cloud_link.set_faults(latency_ms=0, blackhole=True, refuse_new=True)
    unsent = _issue(api, cloud_dark)
    wait_until(
        "a command republished into the cloud's dark link",
        lambda: _most_attempts(api, unsent.values()),
        lambda attempts: attempts >= 2,
    )
    issued |= unsent

    reconnects = gateways_link.connections_accepted
    gateways_link.reset_connections()
    cloud_link.reset_connections()
    wait_until(
        "the cloud to lose the broker and the gateways to reconnect into their dark link",
        lambda: (api.health()["broker"], gateways_link.connections_accepted - reconnects),
        lambda seen: seen[0] != "connected" and seen[1] >= len(stack.gateways),
    )
    return issued


def _born_since(gateway: dict[str, Any], moment: datetime) -> bool:
    """Whether the cloud has this gateway online on a birth it received after `moment`."""
    birth = gateway["last_birth_at"]
    return bool(gateway["online"]) and birth is not None and datetime.fromisoformat(birth) > moment


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
        # Each ack the gateways sent is applied once: the clouds' count catches up with what the
        # witness saw and stays there. Both are read together, as a late ack may still come.
        wait_until(
            "the clouds to have applied exactly the acks the gateways sent",
            lambda: (_acks_applied(first, second), len(acks_sent)),
            lambda seen: seen[0] == seen[1],
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
    # A republish under load makes the gateway answer again, so count what was sent, not 2 each.
    assert len(acks_sent) >= 2 * len(finals)


def _acks_applied(*clouds: StackApi) -> float:
    """Acks processed by these cloud processes together."""
    return sum(api.metric("switchyard_acks_processed_total") for api in clouds)


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
        wait_until(
            f"both malformed {kind} payloads counted",
            lambda kind=kind: api.metric(MALFORMED, f'{{kind="{kind}"}}'),
            lambda count: count >= 2,
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

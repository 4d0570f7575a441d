"""Each soak invariant against a clean world and a world that breaks it."""

from __future__ import annotations

from dataclasses import replace

from switchyard.soak.invariants import (
    FINAL_CHECKS,
    CloudView,
    CommandRow,
    Credit,
    MeterTruth,
    ReadingTotals,
    Sent,
    SentPayment,
    World,
    cleared_accounts_connected,
    commands_settled,
    money_conserved,
    readings_exactly_once,
    relay_operations,
    reported_relay_true,
    run_checks,
)
from wire.meterlink import ControlState

CONNECTED, DISCONNECTED = ControlState.CONNECTED, ControlState.DISCONNECTED


def _clean() -> tuple[World, Sent]:
    """Meter 1 was disconnected, paid and reconnected; meter 2 disconnected by an operator."""
    world = World(
        meters={
            "M1": MeterTruth("M1", CONNECTED, applied=1, refused=0, started_disconnected=True),
            "M2": MeterTruth("M2", DISCONNECTED, applied=1, refused=0),
        },
        commands=[
            CommandRow("c1", "M1", "connect", 1, "SUCCEEDED", 302, "executed"),
            # Superseded in the cloud, yet executed by the gateway: its operation counts.
            CommandRow("c2", "M2", "disconnect", 1, "SUPERSEDED", None, "executed"),
            # Executed with the relay already there: no operation needed.
            CommandRow("c3", "M2", "disconnect", 2, "SUCCEEDED", None, "executed"),
        ],
        cloud={
            "M1": CloudView("M1", "A1", "connected", "connected", 0),
            "M2": CloudView("M2", "A2", "disconnected", "disconnected", 5_000),
        },
        credits=[Credit("p1", "A1", 9_000)],
        payments={"p1": "credited", "p2": "unmatched"},
        readings=[ReadingTotals("D1", batched=80, dropped_entries=0, unsent_batches=0, stored=80)],
    )
    sent = Sent(
        payments={
            "p1": SentPayment("p1", "A1", 9_000, matched=True),
            "p2": SentPayment("p2", "ACC9", 100, matched=False),
        },
        paid_accounts={"A1", "ACC9"},
    )
    return world, sent


def _meter(world: World, meter_id: str, **changes: object) -> World:
    meters = dict(world.meters)
    meters[meter_id] = replace(meters[meter_id], **changes)  # type: ignore[arg-type]
    return replace(world, meters=meters)


def test_a_clean_world_passes_every_check() -> None:
    world, sent = _clean()
    assert run_checks(FINAL_CHECKS, world, sent) == []


def test_a_cleared_account_whose_meter_is_off_is_a_violation() -> None:
    world, sent = _clean()
    broken = _meter(world, "M1", state=DISCONNECTED)
    [violation] = cleared_accounts_connected(broken, sent)
    assert violation.subject == "M1"
    assert violation.evidence["meter_state"] == "disconnected"


def test_an_operation_no_command_accounts_for_is_a_violation() -> None:
    world, _ = _clean()
    assert relay_operations(_meter(world, "M1", applied=2))[0].evidence["needed"] == 1
    assert relay_operations(_meter(world, "M2", applied=0))[0].evidence["applied"] == 0
    # A repeat the meter refused is an operation twice for one command, too.
    assert relay_operations(_meter(world, "M2", refused=1))[0].subject == "M2"


def test_money_credited_twice_missing_or_lost_is_a_violation() -> None:
    world, sent = _clean()
    twice = replace(world, credits=[*world.credits, Credit("p1", "A1", 9_000)])
    assert money_conserved(twice, sent, final=False)[0].evidence == {"credited_times": 2}
    missing = replace(world, credits=[])
    assert money_conserved(missing, sent, final=False) == []  # may still be on its way
    assert money_conserved(missing, sent, final=True)[0].subject == "p1"
    lost = replace(world, payments={"p1": "credited"})
    assert money_conserved(lost, sent, final=True)[0].subject == "p2"
    wrong = replace(world, credits=[Credit("p1", "A1", 8_999)])
    assert money_conserved(wrong, sent, final=True)[0].subject == "p1"


def test_an_active_command_or_a_success_the_meter_contradicts_is_a_violation() -> None:
    world, _ = _clean()
    pending = replace(
        world, commands=[*world.commands, CommandRow("c4", "M1", "x", 2, "SENT", None)]
    )
    assert commands_settled(pending)[0].subject == "c4"
    contradicted = _meter(world, "M1", state=DISCONNECTED)
    assert commands_settled(contradicted)[0].evidence["meter_state"] == "disconnected"


def test_a_stale_reported_relay_is_a_violation() -> None:
    world, _ = _clean()
    cloud = dict(world.cloud)
    cloud["M1"] = replace(cloud["M1"], dues_relay="disconnected")
    [violation] = reported_relay_true(replace(world, cloud=cloud))
    assert violation.evidence == {"meter": "connected", "api": "connected", "dues": "disconnected"}


def test_a_reading_kept_twice_or_lost_is_a_violation() -> None:
    world, _ = _clean()
    totals = world.readings[0]
    twice = replace(world, readings=[replace(totals, stored=81)])
    assert readings_exactly_once(twice, final=False)[0].subject == "D1"
    lost = replace(world, readings=[replace(totals, stored=79)])
    assert readings_exactly_once(lost, final=False) == []  # may still be in flight
    assert readings_exactly_once(lost, final=True)[0].evidence["stored"] == 79
    unsent = replace(world, readings=[replace(totals, unsent_batches=1)])
    assert readings_exactly_once(unsent, final=True)[0].subject == "D1"

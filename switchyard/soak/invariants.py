"""What must hold after any fault: each check reads a `World` (what the parts say now) and what
the soak sent, and answers the violations it finds with their evidence."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wire.meterlink import ControlState

ACTIVE_STATES = frozenset({"QUEUED", "SENT", "DELIVERED"})


@dataclass(frozen=True)
class MeterTruth:
    """A meter as the simulator's non-volatile memory has it: the real switch."""

    meter_id: str
    state: ControlState
    applied: int
    refused: int
    started_disconnected: bool = False


@dataclass(frozen=True)
class CommandRow:
    """A command as the cloud keeps it, with its outcome in the gateway's durable inbox
    (`edge_status` "executed": the gateway brought the relay to the command's target)."""

    command_id: str
    meter_id: str
    action: str
    version: int
    state: str
    event_code: int | None
    edge_status: str | None = None


@dataclass(frozen=True)
class CloudView:
    """What the cloud tells about one meter: the meters API and the account's dues."""

    meter_id: str
    account_id: str
    reported_relay: str | None
    dues_relay: str | None
    total_payable_paise: int


@dataclass(frozen=True)
class Credit:
    """One payment credit in the ledger, as a positive amount (the ledger keeps it negative)."""

    reference: str
    account_id: str
    amount_paise: int


@dataclass(frozen=True)
class ReadingTotals:
    """One gateway's telemetry: what its store says it batched, and what the cloud kept."""

    dcu_id: str
    batched: int
    dropped_entries: int
    unsent_batches: int
    stored: int


@dataclass(frozen=True)
class World:
    """Everything the checks look at, gathered at one moment."""

    meters: Mapping[str, MeterTruth]
    commands: Sequence[CommandRow]
    cloud: Mapping[str, CloudView]
    credits: Sequence[Credit]
    # payment id -> status ("credited", "unmatched", ...)
    payments: Mapping[str, str]
    readings: Sequence[ReadingTotals]


@dataclass(frozen=True)
class SentPayment:
    """A payment the cloud answered 200 to."""

    payment_id: str
    account_id: str
    amount_paise: int
    matched: bool  # False: sent for an account the cloud does not have


@dataclass
class Sent:
    """What the workload did, as far as the cloud acknowledged it."""

    payments: dict[str, SentPayment] = field(default_factory=dict)
    paid_accounts: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Violation:
    """One broken invariant and what shows it."""

    invariant: str
    subject: str
    evidence: dict[str, Any]

    def describe(self) -> str:
        """One line for the terminal."""
        return f"{self.invariant}: {self.subject}: {self.evidence}"


def cleared_accounts_connected(world: World, sent: Sent) -> list[Violation]:
    """Every account a payment cleared has its meter connected, as the meter itself says."""
    found = []
    for view in world.cloud.values():
        if view.account_id not in sent.paid_accounts or view.total_payable_paise > 0:
            continue
        truth = world.meters[view.meter_id]
        if truth.state is ControlState.DISCONNECTED:
            evidence = {"account": view.account_id, "meter_state": truth.state.relay.value}
            found.append(Violation("cleared-connected", view.meter_id, evidence))
    return found


def relay_operations(world: World) -> list[Violation]:
    """Relay operations the meter counted equal the commands that needed one, and none refused.

    A command needed one when the gateway executed it and the relay was not already where it
    asked: walked in version order (the order a gateway executes a meter's commands) from the
    meter's starting state. A second operation for one command would be refused by the meter,
    or, replayed after a newer command, add an operation the walk does not have."""
    by_meter: dict[str, list[CommandRow]] = {}
    for command in sorted(world.commands, key=lambda c: c.version):
        by_meter.setdefault(command.meter_id, []).append(command)
    found = []
    for truth in world.meters.values():
        commands = by_meter.get(truth.meter_id, [])
        needed = _operations_needed(truth.started_disconnected, commands)
        if truth.applied != needed or truth.refused:
            evidence = {
                "applied": truth.applied,
                "refused": truth.refused,
                "needed": needed,
                "commands": [
                    f"v{c.version} {c.action} {c.state} edge={c.edge_status} event={c.event_code}"
                    for c in commands
                ],
            }
            found.append(Violation("relay-operations", truth.meter_id, evidence))
    return found


def _operations_needed(started_disconnected: bool, commands: Sequence[CommandRow]) -> int:
    off, needed = started_disconnected, 0
    for command in commands:
        if command.edge_status != "executed":
            continue
        wants_off = command.action == "disconnect"
        needed += wants_off != off
        off = wants_off
    return needed


def money_conserved(world: World, sent: Sent, *, final: bool) -> list[Violation]:
    """No payment credited twice; at the end, exactly the accepted ones, unmatched ones kept."""
    found = []
    for reference, times in Counter(c.reference for c in world.credits).items():
        if times > 1:
            found.append(Violation("money", reference, {"credited_times": times}))
    if not final:
        return found
    credited = {c.reference: c for c in world.credits}
    for payment in sent.payments.values():
        credit = credited.pop(payment.payment_id, None)
        if payment.matched and (credit is None or credit.amount_paise != payment.amount_paise):
            evidence = {"sent_paise": payment.amount_paise, "credit": repr(credit)}
            found.append(Violation("money", payment.payment_id, evidence))
        if not payment.matched and world.payments.get(payment.payment_id) != "unmatched":
            evidence = {"kept_as": world.payments.get(payment.payment_id), "credit": repr(credit)}
            found.append(Violation("money", payment.payment_id, evidence))
    for reference, credit in credited.items():
        found.append(Violation("money", reference, {"credit_not_sent": repr(credit)}))
    return found


def commands_settled(world: World) -> list[Violation]:
    """No command still active; a meter's newest command, if SUCCEEDED, matches its switch."""
    found = []
    newest: dict[str, CommandRow] = {}
    for command in world.commands:
        if command.state in ACTIVE_STATES:
            evidence = {"meter": command.meter_id, "state": command.state}
            found.append(Violation("commands-settled", command.command_id, evidence))
        if command.version >= newest.get(command.meter_id, command).version:
            newest[command.meter_id] = command
    for command in newest.values():
        truth = world.meters[command.meter_id]
        if command.state == "SUCCEEDED" and not _in_target(truth.state, command.action):
            evidence = {"action": command.action, "meter_state": truth.state.relay.value}
            found.append(Violation("commands-settled", command.command_id, evidence))
    return found


def reported_relay_true(world: World) -> list[Violation]:
    """The relay state the cloud reports (meters API and dues) is the meter's real one."""
    found = []
    for view in world.cloud.values():
        real = world.meters[view.meter_id].state.relay.value
        if view.reported_relay != real or view.dues_relay != real:
            evidence = {"meter": real, "api": view.reported_relay, "dues": view.dues_relay}
            found.append(Violation("reported-relay", view.meter_id, evidence))
    return found


def readings_exactly_once(world: World, *, final: bool) -> list[Violation]:
    """The store never holds more readings than were batched; at the end exactly as many."""
    found = []
    for totals in world.readings:
        expected = totals.batched - totals.dropped_entries
        duplicated = totals.stored > totals.batched
        missing = final and (totals.stored != expected or totals.unsent_batches > 0)
        if duplicated or missing:
            found.append(Violation("readings-once", totals.dcu_id, vars(totals)))
    return found


Check = Callable[[World, Sent], list[Violation]]

# Checked at the end, once everything has healed (and converged within the deadline).
FINAL_CHECKS: dict[str, Check] = {
    "cleared-connected": cleared_accounts_connected,
    "relay-operations": lambda world, _sent: relay_operations(world),
    "money": lambda world, sent: money_conserved(world, sent, final=True),
    "commands-settled": lambda world, _sent: commands_settled(world),
    "reported-relay": lambda world, _sent: reported_relay_true(world),
    "readings-once": lambda world, _sent: readings_exactly_once(world, final=True),
}
# Checked all along, faults or not: what may never be seen even for a moment.
CONTINUOUS_CHECKS: dict[str, Check] = {
    "money": lambda world, sent: money_conserved(world, sent, final=False),
    "readings-once": lambda world, _sent: readings_exactly_once(world, final=False),
}


def run_checks(checks: Mapping[str, Check], world: World, sent: Sent) -> list[Violation]:
    """Every violation the given checks find, in check order."""
    return [violation for check in checks.values() for violation in check(world, sent)]


def _in_target(state: ControlState, action: str) -> bool:
    # After remote_reconnect, modes that arm the button stop at ready: that is as far as it goes.
    if action == "disconnect":
        return state is ControlState.DISCONNECTED
    return state is not ControlState.DISCONNECTED

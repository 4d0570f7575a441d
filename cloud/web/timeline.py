"""A payment's way to power, read from the stored payment and its command's transitions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select

from cloud.commands.lifecycle import CommandState
from cloud.db.models import Command, CommandTransition, Payment
from cloud.db.session import Database
from cloud.ledger.service import account_dues
from cloud.web.messages import Lang, t
from cloud.web.money import format_paise
from wire import RelayState

Outcome = Literal["pending", "on", "button", "partial", "failed", "unmatched"]
STEPS = ("paid", "sent", "dcu", "confirmed")
_FAILED = frozenset(
    {
        CommandState.FAILED,
        CommandState.TIMED_OUT,
        CommandState.EXPIRED,
        CommandState.REJECTED,
        CommandState.SUPERSEDED,
    }
)


@dataclass(frozen=True)
class Timeline:
    """When each step was reached (seconds after the payment arrived) and how it ended."""

    elapsed_s: dict[str, float | None]
    outcome: Outcome
    remaining_paise: int = 0

    @property
    def finished(self) -> bool:
        """Nothing more will happen that the page should wait for."""
        return self.outcome != "pending"


async def load_timeline(db: Database, payment_id: str) -> Timeline | None:
    """The timeline of one payment, or None if no such payment has been recorded."""
    async with db.read() as session:
        payment = await session.get(Payment, payment_id)
        if payment is None:
            return None
        if payment.account_id is None:
            return Timeline(
                {"paid": 0.0, "sent": None, "dcu": None, "confirmed": None}, "unmatched"
            )
        command = (
            await session.execute(
                select(Command)
                .where(Command.payment_id == payment_id)
                .order_by(Command.created_at.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        transitions: list[CommandTransition] = []
        if command is not None:
            transitions = list(
                (
                    await session.execute(
                        select(CommandTransition)
                        .where(CommandTransition.command_id == command.command_id)
                        .order_by(CommandTransition.transition_id)
                    )
                ).scalars()
            )
        dues = await account_dues(session, payment.account_id)
    return _timeline(payment.received_at, command, transitions, dues.total_payable_paise)


def _timeline(
    paid_at: datetime,
    command: Command | None,
    transitions: list[CommandTransition],
    remaining_paise: int,
) -> Timeline:
    reached: dict[str, datetime] = {}
    for transition in transitions:
        reached.setdefault(transition.to_state, transition.at)

    def first(*states: CommandState) -> float | None:
        times = [reached[s.value] for s in states if s.value in reached]
        return max(0.0, (min(times) - paid_at).total_seconds()) if times else None

    elapsed: dict[str, float | None] = {
        "paid": 0.0,
        # A later state implies the earlier ones even if an ack overtook the broker's PUBACK.
        "sent": first(CommandState.SENT, CommandState.DELIVERED, CommandState.SUCCEEDED),
        "dcu": first(CommandState.DELIVERED, CommandState.SUCCEEDED),
        "confirmed": first(CommandState.SUCCEEDED),
    }
    if command is None:
        # No command: either the dues are not cleared yet, or the supply was never cut.
        return Timeline(elapsed, "partial" if remaining_paise > 0 else "on", remaining_paise)
    state = CommandState(command.state)
    if state == CommandState.SUCCEEDED:
        ready = command.relay_result == RelayState.READY_FOR_RECONNECTION.value
        return Timeline(elapsed, "button" if ready else "on", remaining_paise)
    if state in _FAILED:
        return Timeline(elapsed, "failed", remaining_paise)
    return Timeline(elapsed, "pending", remaining_paise)


def seconds_text(value: float) -> str:
    """Elapsed seconds as the page shows them (one decimal)."""
    return f"{value:.1f}"


_NOT_YET = Timeline(dict.fromkeys(STEPS), "pending")


def timeline_view(found: Timeline | None, lang: Lang) -> dict[str, object]:
    """The localised strings of a timeline (None: the payment has not arrived yet), for the
    template and the event stream alike."""
    timeline = found or _NOT_YET
    steps = []
    confirmed_key = "step_button" if timeline.outcome == "button" else "step_on"
    for step in STEPS:
        elapsed = timeline.elapsed_s[step]
        steps.append(
            {
                "step": step,
                "label": t(confirmed_key if step == "confirmed" else f"step_{step}", lang),
                "done": elapsed is not None,
                "elapsed": t("elapsed", lang, seconds=seconds_text(elapsed))
                if elapsed is not None
                else t("waiting", lang),
            }
        )
    confirmed = timeline.elapsed_s["confirmed"]
    fields = {
        "amount": format_paise(timeline.remaining_paise),
        "seconds": seconds_text(confirmed or 0.0),
    }
    key = {"button": "press_button"}.get(timeline.outcome, f"outcome_{timeline.outcome}")
    if found is None:
        key = "payment_unknown"
    return {
        "steps": steps,
        "outcome": timeline.outcome,
        "message": t(key, lang, **fields),
        "finished": timeline.finished,
    }

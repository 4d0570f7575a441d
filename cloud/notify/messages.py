"""What we tell consumers: each message has a kind and a reference that makes it unique."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class MessageKind(StrEnum):
    """Kinds of consumer message."""

    REMINDER = "reminder"
    DISCONNECTION_NOTICE = "disconnection_notice"
    DISCONNECTED = "disconnected"
    POWER_RESTORED = "power_restored"


@dataclass(frozen=True)
class Message:
    """One message to one account; `reference` is unique, so a message is never sent twice."""

    account_id: str
    recipient: str | None
    kind: MessageKind
    body: str
    reference: str


def format_inr(paise: int) -> str:
    """Rupees for people, from integer paise, e.g. 123456 -> '₹1,234.56'."""
    sign = "-" if paise < 0 else ""
    rupees, rest = divmod(abs(paise), 100)
    return f"{sign}₹{rupees:,}.{rest:02d}"


def reminder_text(bill_id: str, unpaid_paise: int, due: date) -> str:
    """A reminder before the due date."""
    return (
        f"Reminder: {format_inr(unpaid_paise)} of bill {bill_id} is due on {due:%d %b %Y}. "
        "Pay online to avoid disconnection."
    )


def notice_text(overdue_paise: int, notice_days: int, earliest: date) -> str:
    """The disconnection notice that starts the notice period."""
    return (
        f"Disconnection notice: {format_inr(overdue_paise)} is overdue. Unless it is paid, "
        f"supply may be disconnected after {notice_days} days, not before {earliest:%d %b %Y}. "
        "To dispute the bill, contact your DISCOM office."
    )


def disconnected_text(total_payable_paise: int) -> str:
    """Supply was disconnected for non-payment."""
    return (
        f"Supply disconnected for non-payment. Pay {format_inr(total_payable_paise)} online "
        "and power returns within minutes, at any hour."
    )


def restored_text(needs_button: bool) -> str:
    """Power is back after a payment."""
    if needs_button:
        return "Payment received. Press the button on your meter to restore power."
    return "Payment received. Your power has been restored."

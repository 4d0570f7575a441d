"""Ledger properties, by hypothesis: money is conserved across any sequence of bills, payments,
fees and adjustments, and the dues never depend on the order duplicate events arrive in —
checked on the arithmetic and through the real services on a real database."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.commands.desired import CommandFactory
from cloud.db.migrate import upgrade_to_head
from cloud.db.models import Command, LedgerEntry
from cloud.db.session import Database
from cloud.ledger.arrears import arrears_as_of
from cloud.ledger.billing import NewBill, record_adjustment, record_bill
from cloud.ledger.dues import EntryKind, EntryView, compute_dues
from cloud.ledger.service import account_dues, account_entries
from cloud.ledger.statement import build_statement
from cloud.notify.notifier import RecordingNotifier
from cloud.onboarding import AccountRecord, register_accounts
from cloud.payments.intake import PaymentIntake
from cloud.payments.webhook import parse_envelope
from cloud.policy.hooks import CommandOutcomeHooks
from switchyard.pay import webhook_body
from wire import CommandSigner, RelayState
from wire.signing import generate_private_key_b64

T0 = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
KINDS = [EntryKind.BILL, EntryKind.PAYMENT, EntryKind.FEE, EntryKind.ADJUSTMENT]


@dataclass(frozen=True)
class Event:
    """One money event as its source would send it (again, on a retry)."""

    kind: EntryKind
    reference: str
    amount_paise: int
    at: datetime
    due_date: date | None


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    rows = draw(
        st.lists(
            st.tuples(
                st.sampled_from(KINDS),
                st.integers(min_value=1, max_value=5_000_000),
                st.integers(min_value=0, max_value=120),
                st.booleans(),
            ),
            max_size=30,
        )
    )
    events = []
    for n, (kind, paise, day, negative) in enumerate(rows):
        credit = kind is EntryKind.PAYMENT or (kind is EntryKind.ADJUSTMENT and negative)
        at = T0 + timedelta(days=day, minutes=n)
        due = (at + timedelta(days=15)).date() if kind is EntryKind.BILL else None
        events.append(Event(kind, f"{kind.value}-{n}", -paise if credit else paise, at, due))
    return events


def views(events: list[Event]) -> list[EntryView]:
    return [
        EntryView(n, e.kind, e.amount_paise, e.at, e.due_date, e.reference)
        for n, e in enumerate(events, start=1)
    ]


@given(histories(), st.integers(min_value=0, max_value=200))
def test_balance_statement_and_arrears_conserve_money(events: list[Event], day: int) -> None:
    entries = views(events)
    total = sum(e.amount_paise for e in entries)
    dues = compute_dues(entries)
    assert dues.balance_paise == total
    assert min(dues.outstanding_paise, dues.reconnection_fee_paise, dues.credit_paise) >= 0
    assert dues.total_payable_paise == 0 or dues.credit_paise == 0
    arrears = arrears_as_of(entries, (T0 + timedelta(days=day)).date(), grace_days=3)
    assert 0 <= arrears.overdue_paise <= dues.outstanding_paise
    assert all(0 < c.unpaid_paise <= c.entry.amount_paise for c in arrears.overdue_bills)


@given(histories(), st.randoms())
def test_statement_running_balance_ends_at_the_balance(
    events: list[Event], rng: random.Random
) -> None:
    rows = [
        LedgerEntry(
            entry_id=e.entry_id,
            kind=e.kind.value,
            amount_paise=e.amount_paise,
            created_at=e.created_at,
            due_date=e.due_date,
            reference=e.reference,
        )
        for e in views(events)
    ]
    rng.shuffle(rows)
    in_order = sorted(rows, key=lambda r: (r.created_at, r.entry_id))
    running = list(itertools.accumulate(r.amount_paise for r in in_order))
    statement = build_statement(rows)
    assert [line.balance_paise for line in statement.lines] == running
    assert statement.closing_balance_paise == (running[-1] if running else 0)
    assert statement.closing_balance_paise == statement.dues.balance_paise
    middle = T0 + timedelta(days=60)
    window = build_statement(rows, since=middle)
    assert (
        window.opening_balance_paise + sum(line.entry.amount_paise for line in window.lines)
        == window.closing_balance_paise
    )


@dataclass
class Ledger:
    db: Database
    intake: PaymentIntake
    factory: CommandFactory
    hooks: CommandOutcomeHooks
    accounts: itertools.count[int]


@pytest.fixture
async def ledger(database_url: str) -> AsyncIterator[Ledger]:
    db = Database.from_url(database_url)
    await upgrade_to_head(db.engine)
    factory = CommandFactory(CommandSigner.from_b64("k1", generate_private_key_b64()), 3600)
    yield Ledger(
        db,
        PaymentIntake(db, factory),
        factory,
        CommandOutcomeHooks(factory, RecordingNotifier(), fee_paise=35_000),
        itertools.count(1),
    )
    await db.close()


async def _deliver(ledger: Ledger, account_id: str, event: Event, copy: int) -> None:
    # References are unique across the whole ledger, as the billing system's ids are.
    reference = f"{account_id}-{event.reference}"
    if event.kind is EntryKind.BILL:
        assert event.due_date is not None
        period = (event.due_date - timedelta(days=45), event.due_date - timedelta(days=15))
        bill = NewBill(reference, event.amount_paise, period, event.due_date, event.at)
        await record_bill(ledger.db, account_id, bill)
    elif event.kind is EntryKind.PAYMENT:
        body = webhook_body(account_id, -event.amount_paise, reference)
        envelope, document = parse_envelope(body)
        # A retried delivery may carry a new event id: the payment id still dedupes it.
        await ledger.intake.record(f"evt-{reference}-{copy}", envelope, document, body, event.at)
    elif event.kind is EntryKind.ADJUSTMENT:
        await record_adjustment(
            ledger.db,
            ledger.factory,
            account_id=account_id,
            reference=reference,
            amount_paise=event.amount_paise,
            reason="property test",
            actor="tester",
            now=event.at,
        )
    else:
        # The fee is levied by the hook when a policy disconnect's success ack is applied.
        command = Command(
            command_id=reference,
            meter_id=f"M-{account_id}",
            origin="policy",
            action="disconnect",
            state="SUCCEEDED",
            relay_result="disconnected",
            updated_at=event.at,
        )
        async with ledger.db.write() as session:
            await ledger.hooks.on_final(session, [command])


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(histories(), st.lists(st.integers(min_value=0, max_value=29), max_size=15), st.randoms())
async def test_duplicates_in_any_order_give_the_same_dues_through_the_services(
    ledger: Ledger, events: list[Event], repeats: list[int], rng: random.Random
) -> None:
    account_id = f"ACC{next(ledger.accounts):06d}"
    await register_accounts(
        ledger.db,
        [
            AccountRecord(
                account_id=account_id,
                consumer_name="Property Test",
                meter_id=f"M-{account_id}",
                dcu_id="DCU01",
                relay=RelayState.CONNECTED,
            )
        ],
        T0,
    )
    deliveries = [(e, 0) for e in events]
    deliveries += [(events[i], copy) for copy, i in enumerate(repeats, 1) if i < len(events)]
    rng.shuffle(deliveries)
    for event, copy in deliveries:
        await _deliver(ledger, account_id, event, copy)

    fee_events = [e for e in events if e.kind is EntryKind.FEE]
    expected = compute_dues(
        [
            EntryView(n, e.kind, 35_000 if e.kind is EntryKind.FEE else e.amount_paise, e.at)
            for n, e in enumerate(events, 1)
        ]
    )
    async with ledger.db.read() as session:
        stored: list[LedgerEntry] = await account_entries(session, account_id)
        assert await account_dues(session, account_id) == expected
    assert len(stored) == len(events), "each event recorded exactly once"
    assert sum(e.kind == "fee" for e in stored) == len(fee_events)

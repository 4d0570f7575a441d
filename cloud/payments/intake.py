"""A verified webhook event becomes a durable payment, a ledger credit and, when the dues are
cleared, a reconnect command — all in one transaction, before the webhook is answered."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.commands.desired import CommandFactory, RelayRequest, lock_meter, request_relay
from cloud.commands.dispatcher import Dispatcher, Outgoing
from cloud.commands.lifecycle import Origin
from cloud.db.models import Account, Command, Payment, WebhookEvent
from cloud.db.session import Database
from cloud.ledger.dues import EntryKind
from cloud.ledger.service import account_balance_paise, add_entry
from cloud.payments.webhook import (
    CAPTURED,
    CapturedPayment,
    WebhookEnvelope,
    WebhookError,
    parse_captured,
)
from wire import Action, RelayState

log = logging.getLogger(__name__)


class WebhookOutcome(StrEnum):
    """What the webhook answers in `status`."""

    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    UNMATCHED = "unmatched"


@dataclass(frozen=True)
class IntakeResult:
    """The outcome and, when one was queued, the reconnect command's id."""

    outcome: WebhookOutcome
    payment_id: str | None = None
    account_id: str | None = None
    command_id: str | None = None


class PaymentIntake:
    """Records payment events exactly once and reconnects meters whose dues are cleared."""

    def __init__(
        self,
        db: Database,
        factory: CommandFactory,
        dispatcher: Dispatcher | None = None,
        currency: str = "INR",
    ) -> None:
        self._db = db
        self._factory = factory
        self._dispatcher = dispatcher
        self._currency = currency

    async def record(
        self,
        event_id: str,
        envelope: WebhookEnvelope,
        document: object,
        raw_body: bytes,
        received_at: datetime,
    ) -> IntakeResult:
        """Store the event and act on it; a concurrent duplicate resolves to `duplicate`."""
        captured = parse_captured(document) if envelope.event == CAPTURED else None
        if captured is not None and captured.payment.currency != self._currency:
            raise WebhookError(f"currency {captured.payment.currency} is not {self._currency}")
        outgoing: list[Outgoing] = []
        try:
            result = await self._record(
                event_id, envelope, captured, raw_body, received_at, outgoing
            )
        except IntegrityError:
            # Another request stored the same event or payment id first.
            return IntakeResult(WebhookOutcome.DUPLICATE)
        # Committed: the reconnect goes out now rather than at the dispatcher's next round.
        if self._dispatcher is None:
            return result
        if outgoing:
            await self._dispatcher.publish(outgoing)
        elif result.command_id is not None:
            self._dispatcher.wake()
        return result

    async def _record(
        self,
        event_id: str,
        envelope: WebhookEnvelope,
        captured: CapturedPayment | None,
        raw_body: bytes,
        received_at: datetime,
        outgoing: list[Outgoing],
    ) -> IntakeResult:
        body = raw_body.decode("utf-8", errors="replace")
        async with self._db.write() as session:
            if await session.get(WebhookEvent, event_id) is not None:
                return IntakeResult(WebhookOutcome.DUPLICATE)
            if captured is None:
                session.add(_event(event_id, envelope.event, None, "ignored", received_at, body))
                return IntakeResult(WebhookOutcome.IGNORED)
            payment = captured.payment
            if await session.get(Payment, payment.id) is not None:
                session.add(
                    _event(event_id, envelope.event, payment.id, "duplicate", received_at, body)
                )
                return IntakeResult(WebhookOutcome.DUPLICATE, payment_id=payment.id)
            account = (
                await session.get(Account, payment.account_ref) if payment.account_ref else None
            )
            status = "credited" if account is not None else "unmatched"
            session.add(
                Payment(
                    payment_id=payment.id,
                    event_id=event_id,
                    account_ref=payment.account_ref,
                    account_id=account.account_id if account else None,
                    amount_paise=payment.amount,
                    currency=payment.currency,
                    status=status,
                    received_at=received_at,
                )
            )
            outcome = "processed" if account is not None else "unmatched"
            session.add(_event(event_id, envelope.event, payment.id, outcome, received_at, body))
            if account is None:
                log.warning("payment %s names unknown account %r", payment.id, payment.account_ref)
                return IntakeResult(WebhookOutcome.UNMATCHED, payment_id=payment.id)
            add_entry(
                session,
                account_id=account.account_id,
                kind=EntryKind.PAYMENT,
                amount_paise=-payment.amount,
                reference=payment.id,
                at=received_at,
                description=f"online payment {payment.id}",
            )
            await session.flush()
            command = await self._reconnect_if_cleared(session, account, payment.id, received_at)
            if command is not None and self._dispatcher is not None:
                outgoing += await self._dispatcher.claim_new(session, [command], received_at)
            return IntakeResult(
                WebhookOutcome.PROCESSED,
                payment_id=payment.id,
                account_id=account.account_id,
                command_id=command.command_id if command is not None else None,
            )

    async def _reconnect_if_cleared(
        self, session: AsyncSession, account: Account, payment_id: str, received_at: datetime
    ) -> Command | None:
        if await account_balance_paise(session, account.account_id) > 0:
            return None
        meter = await lock_meter(session, account.meter_id)
        if meter is None or meter.desired_relay == RelayState.CONNECTED.value:
            return None
        request = RelayRequest(
            meter_id=meter.meter_id,
            action=Action.CONNECT,
            reason=f"dues cleared by payment {payment_id}",
            origin=Origin.PAYMENT,
            requested_at=received_at,
            payment_id=payment_id,
        )
        return await request_relay(session, meter, request, self._factory, received_at)


def _event(
    event_id: str,
    event_type: str,
    payment_id: str | None,
    outcome: str,
    received_at: datetime,
    body: str,
) -> WebhookEvent:
    return WebhookEvent(
        event_id=event_id,
        event_type=event_type,
        payment_id=payment_id,
        outcome=outcome,
        received_at=received_at,
        body=body,
    )

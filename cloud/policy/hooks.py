"""What happens when a command ends, inside the transaction that ends it: the reconnection fee,
the consumer's messages, and undoing a policy cut that did not happen.

The fee is levied only when a policy disconnect ends SUCCEEDED with the relay read back
disconnected — the one proof that the disconnection actually happened. Its ledger reference is
the command id, so it can never be levied twice for one disconnection.

A policy disconnect superseded by a payment never levies the fee, even if the gateway had already
opened the relay before the payment's connect reached it: the consumer paid before the cloud
confirmed the cut, the supersede means the cloud never applies that command's result, and the
connect that superseded it closes the relay again seconds later.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.commands.desired import CommandFactory, RelayRequest, lock_meter, request_relay
from cloud.commands.lifecycle import CommandState, Origin
from cloud.db.models import Account, Command
from cloud.ledger.dues import EntryKind
from cloud.ledger.service import account_dues, add_entry, find_entry
from cloud.notify.messages import Message, MessageKind, disconnected_text, restored_text
from cloud.notify.notifier import Notifier
from wire import Action, RelayState

log = logging.getLogger(__name__)

# Final states in which a policy disconnect did not (as far as the cloud knows) happen.
_NOT_DONE = frozenset(
    {CommandState.EXPIRED, CommandState.TIMED_OUT, CommandState.FAILED, CommandState.REJECTED}
)


class CommandOutcomeHooks:
    """The `on_final` hooks of the ack applier and the dispatcher."""

    def __init__(self, factory: CommandFactory, notifier: Notifier, fee_paise: int) -> None:
        self._factory = factory
        self._notifier = notifier
        self._fee_paise = fee_paise

    async def on_final(self, session: AsyncSession, command: Command) -> None:
        """React to a command that just reached a final state."""
        state = CommandState(command.state)
        if command.origin == Origin.POLICY.value and command.action == Action.DISCONNECT.value:
            if (
                state is CommandState.SUCCEEDED
                and command.relay_result == RelayState.DISCONNECTED.value
            ):
                await self._levy_fee(session, command)
            elif state in _NOT_DONE:
                await self._restore_connected(session, command)
        elif (
            command.origin == Origin.PAYMENT.value
            and command.action == Action.CONNECT.value
            and state is CommandState.SUCCEEDED
        ):
            await self._power_restored(session, command)

    async def _levy_fee(self, session: AsyncSession, command: Command) -> None:
        account = await _account_of(session, command.meter_id)
        if account is None or await find_entry(session, EntryKind.FEE, command.command_id):
            return
        at = command.updated_at
        add_entry(
            session,
            account_id=account.account_id,
            kind=EntryKind.FEE,
            amount_paise=self._fee_paise,
            reference=command.command_id,
            at=at,
            description=f"reconnection fee: disconnected for non-payment ({command.meter_id})",
        )
        await session.flush()
        dues = await account_dues(session, account.account_id)
        await self._send(
            session,
            account,
            MessageKind.DISCONNECTED,
            disconnected_text(dues.total_payable_paise),
            f"disconnected:{command.command_id}",
            at,
        )

    async def _restore_connected(self, session: AsyncSession, command: Command) -> None:
        # Left alone, the desired state would stay "disconnected" and the reconciler would cut
        # the meter at its gateway's next birth — at any hour, outside every window.
        meter = await lock_meter(session, command.meter_id)
        if meter is None or meter.desired_version != command.version:
            return
        request = RelayRequest(
            meter_id=meter.meter_id,
            action=Action.CONNECT,
            reason=f"policy disconnect {command.command_id} ended {command.state}",
            origin=Origin.POLICY,
            requested_at=command.updated_at,
        )
        await request_relay(session, meter, request, self._factory, command.updated_at)
        log.info(
            "policy disconnect %s ended %s: meter %s desired connected again",
            command.command_id,
            command.state,
            meter.meter_id,
        )

    async def _power_restored(self, session: AsyncSession, command: Command) -> None:
        account = await _account_of(session, command.meter_id)
        if account is None:
            return
        needs_button = command.relay_result == RelayState.READY_FOR_RECONNECTION.value
        await self._send(
            session,
            account,
            MessageKind.POWER_RESTORED,
            restored_text(needs_button),
            f"restored:{command.command_id}",
            command.updated_at,
        )

    async def _send(
        self,
        session: AsyncSession,
        account: Account,
        kind: MessageKind,
        body: str,
        reference: str,
        at: datetime,
    ) -> None:
        message = Message(account.account_id, account.phone, kind, body, reference)
        await self._notifier.notify(session, message, at)


async def _account_of(session: AsyncSession, meter_id: str) -> Account | None:
    return (
        await session.execute(select(Account).where(Account.meter_id == meter_id))
    ).scalar_one_or_none()

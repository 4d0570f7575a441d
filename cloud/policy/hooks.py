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
from collections.abc import Collection, Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.commands.desired import CommandFactory, RelayRequest, lock_meter, request_relay
from cloud.commands.lifecycle import CommandState, Origin
from cloud.db.models import Account, Command, LedgerEntry
from cloud.ledger.dues import EntryKind
from cloud.ledger.service import add_entry, total_payable_paise
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

    async def on_final(self, session: AsyncSession, commands: Sequence[Command]) -> None:
        """React to commands that just reached a final state (one call per transaction)."""
        cut, not_cut, restored = [], [], []
        for command in commands:
            state = CommandState(command.state)
            if command.origin == Origin.POLICY.value and command.action == Action.DISCONNECT.value:
                if (
                    state is CommandState.SUCCEEDED
                    and command.relay_result == RelayState.DISCONNECTED.value
                ):
                    cut.append(command)
                elif state in _NOT_DONE:
                    not_cut.append(command)
            elif (
                command.origin == Origin.PAYMENT.value
                and command.action == Action.CONNECT.value
                and state is CommandState.SUCCEEDED
            ):
                restored.append(command)
        if cut or restored:
            accounts = await _accounts_of(session, {c.meter_id for c in (*cut, *restored)})
            if cut:
                await self._levy_fees(session, cut, accounts)
            if restored:
                await self._power_restored(session, restored, accounts)
        for command in not_cut:
            await self._restore_connected(session, command)

    async def _levy_fees(
        self, session: AsyncSession, commands: Sequence[Command], accounts: Mapping[str, Account]
    ) -> None:
        references = [command.command_id for command in commands]
        levied = set(
            (
                await session.scalars(
                    select(LedgerEntry.reference).where(
                        LedgerEntry.kind == EntryKind.FEE.value,
                        LedgerEntry.reference.in_(references),
                    )
                )
            ).all()
        )
        charged: list[tuple[Account, Command]] = []
        for command in commands:
            account = accounts.get(command.meter_id)
            if account is None or command.command_id in levied:
                continue
            add_entry(
                session,
                account_id=account.account_id,
                kind=EntryKind.FEE,
                amount_paise=self._fee_paise,
                reference=command.command_id,
                at=command.updated_at,
                description=f"reconnection fee: disconnected for non-payment ({command.meter_id})",
            )
            charged.append((account, command))
        if not charged:
            return
        await session.flush()
        payable = await total_payable_paise(session, {a.account_id for a, _ in charged})
        messages = [
            Message(
                account.account_id,
                account.phone,
                MessageKind.DISCONNECTED,
                disconnected_text(payable.get(account.account_id, 0)),
                f"disconnected:{command.command_id}",
            )
            for account, command in charged
        ]
        await self._notifier.notify_all(session, messages, commands[0].updated_at)

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

    async def _power_restored(
        self, session: AsyncSession, commands: Sequence[Command], accounts: Mapping[str, Account]
    ) -> None:
        messages = [
            Message(
                account.account_id,
                account.phone,
                MessageKind.POWER_RESTORED,
                restored_text(command.relay_result == RelayState.READY_FOR_RECONNECTION.value),
                f"restored:{command.command_id}",
            )
            for command in commands
            if (account := accounts.get(command.meter_id)) is not None
        ]
        if messages:
            await self._notifier.notify_all(session, messages, commands[0].updated_at)


async def _accounts_of(session: AsyncSession, meter_ids: Collection[str]) -> dict[str, Account]:
    """The account of each of these meters, by meter id."""
    rows = await session.scalars(select(Account).where(Account.meter_id.in_(list(meter_ids))))
    return {account.meter_id: account for account in rows}

"""Gathers the soak's `World`: the meters' real switches from the simulator's store, commands,
credits, payments and readings from the cloud database, relay states from the cloud's API, and
what each gateway says it batched from its own store."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace

import httpx
from sqlalchemy import func, select

from cloud.db.models import Command, LedgerEntry, MeterReadingRecord, Payment
from cloud.db.session import Database
from cloud.ledger.dues import EntryKind
from edge_gateway.telemetry_buffer import read_batched_totals
from firmware_sim.store import STORE_FILE, read_meters
from switchyard.soak.invariants import (
    CloudView,
    CommandRow,
    Credit,
    MeterTruth,
    ReadingTotals,
    World,
)
from switchyard.stack import LocalStack
from wire.messages import RelayState

_HTTP_TIMEOUT_S = 10.0
_PAGE = 500


class ObserveError(RuntimeError):
    """A part could not be read right now (it may be down): try again later."""


def observe(stack: LocalStack) -> World:
    """The world now; ObserveError when a part does not answer."""
    try:
        meters = _meters(stack)
        cloud = _cloud_views(stack)
        commands, credits, payments, stored = asyncio.run(_database(stack.database_url))
        commands = _with_edge_outcomes(stack, commands)
        readings = _readings(stack, stored)
    except (httpx.HTTPError, sqlite3.Error, OSError, KeyError) as exc:
        raise ObserveError(f"{type(exc).__name__}: {exc}") from exc
    return World(meters, commands, cloud, credits, payments, readings)


def _meters(stack: LocalStack) -> dict[str, MeterTruth]:
    path = stack.options.state_dir.resolve() / "sim" / STORE_FILE
    started_off = {a.meter_id: a.relay is RelayState.DISCONNECTED for a in stack.fleet.accounts}
    return {
        meter_id: MeterTruth(
            meter_id,
            record.control_state,
            record.counters.transitions_applied,
            record.counters.transitions_refused,
            started_off[meter_id],
        )
        for meter_id, record in read_meters(path).items()
    }


def _cloud_views(stack: LocalStack) -> dict[str, CloudView]:
    viewer = {"Authorization": f"Bearer {stack.secrets.viewer_token}"}
    views = {}
    with httpx.Client(base_url=stack.api_url, timeout=_HTTP_TIMEOUT_S, headers=viewer) as client:
        reported = _reported_relays(client)
        for account in stack.fleet.accounts:
            response = client.get(f"/api/v1/accounts/{account.account_id}/dues")
            response.raise_for_status()
            dues = response.json()
            views[account.meter_id] = CloudView(
                account.meter_id,
                account.account_id,
                reported.get(account.meter_id),
                dues["relay"],
                int(dues["total_payable_paise"]),
            )
    return views


def _reported_relays(client: httpx.Client) -> dict[str, str | None]:
    reported: dict[str, str | None] = {}
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": _PAGE, **({"cursor": cursor} if cursor else {})}
        response = client.get("/api/v1/meters", params=params)
        response.raise_for_status()
        page = response.json()
        reported.update({m["meter_id"]: m["reported_relay"] for m in page["items"]})
        cursor = page.get("next_cursor")
        if not cursor:
            return reported


async def _database(
    database_url: str,
) -> tuple[list[CommandRow], list[Credit], dict[str, str], dict[str, int]]:
    db = Database.from_url(database_url)
    try:
        async with db.read() as session:
            commands = [
                CommandRow(*row)
                for row in await session.execute(
                    select(
                        Command.command_id,
                        Command.meter_id,
                        Command.action,
                        Command.version,
                        Command.state,
                        Command.event_code,
                    )
                )
            ]
            credits = [
                Credit(reference, account_id, -amount_paise)
                for reference, account_id, amount_paise in await session.execute(
                    select(
                        LedgerEntry.reference, LedgerEntry.account_id, LedgerEntry.amount_paise
                    ).where(LedgerEntry.kind == EntryKind.PAYMENT.value)
                )
            ]
            payments = dict(
                (await session.execute(select(Payment.payment_id, Payment.status))).all()
            )
            stored = dict(
                (
                    await session.execute(
                        select(MeterReadingRecord.dcu_id, func.count()).group_by(
                            MeterReadingRecord.dcu_id
                        )
                    )
                ).all()
            )
    except Exception as exc:  # the database (PostgreSQL) may be unreachable for a moment
        raise ObserveError(f"database: {exc}") from exc
    finally:
        await db.close()
    return commands, credits, payments, stored


def _with_edge_outcomes(stack: LocalStack, commands: list[CommandRow]) -> list[CommandRow]:
    """Each command with its outcome in its gateway's durable inbox, if it got there."""
    edge = stack.options.state_dir.resolve() / "edge"
    outcomes: dict[str, str] = {}
    for dcu_id in stack.fleet.dcu_ids:
        path = edge / f"edge-{dcu_id}.sqlite3"
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            outcomes.update(connection.execute("SELECT command_id, status FROM inbox").fetchall())
        finally:
            connection.close()
    return [replace(c, edge_status=outcomes.get(c.command_id)) for c in commands]


def _readings(stack: LocalStack, stored: dict[str, int]) -> list[ReadingTotals]:
    edge = stack.options.state_dir.resolve() / "edge"
    totals = []
    for dcu_id in stack.fleet.dcu_ids:
        batched = read_batched_totals(edge / f"edge-{dcu_id}.sqlite3")
        totals.append(
            ReadingTotals(
                dcu_id,
                batched.readings,
                batched.dropped_entries,
                batched.unsent_batches,
                stored.get(dcu_id, 0),
            )
        )
    return totals

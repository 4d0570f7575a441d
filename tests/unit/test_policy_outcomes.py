"""What follows a policy command: the fee (once, only for a cut that happened), the race with a
payment, undoing a cut that expired, messages to the consumer, notices and the scheduler."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import time, timedelta

import pytest

from cloud.metrics import CloudMetrics
from cloud.policy.scheduler import PolicyScheduler, due_slot
from cloud.policy.settings import PolicySettings
from tests.support.policy_world import FEE_PAISE, PolicyWorld, policy_world
from wire import AckStatus, GatewayState, MeterReport, RelayState


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[PolicyWorld]:
    async with policy_world(database_url) as built:
        yield built


async def _cut_queued(world: PolicyWorld) -> tuple[str, str, str]:
    """An eligible account on a DCU of 6 meters; returns (account, meter, queued command)."""
    account_id = await world.add_account()
    for _ in range(5):
        await world.add_account(overdue_paise=0)
    await world.online("DCU01")
    await world.runner.run(dry_run=False, trigger="test", actor="op")
    meter_id = "MTR000001"
    (command,) = await world.commands(meter_id)
    assert (command.origin, command.action, command.state) == ("policy", "disconnect", "QUEUED")
    return account_id, meter_id, command.command_id


async def test_fee_is_levied_once_when_the_cut_is_confirmed(world: PolicyWorld) -> None:
    account_id, meter_id, command_id = await _cut_queued(world)
    owed = await world.total_payable(account_id)
    await world.dispatcher.dispatch_once()
    await world.execute(command_id, RelayState.DISCONNECTED)
    # QoS 1: the gateway's executed ack arrives a second time.
    await world.ack(command_id, AckStatus.EXECUTED, RelayState.DISCONNECTED)

    assert (await world.command(command_id)).state == "SUCCEEDED"
    assert await world.fees(account_id) == [command_id]
    assert await world.total_payable(account_id) == owed + FEE_PAISE
    (message,) = await world.messages(account_id, "disconnected")
    assert "₹1,850.00" in message.body  # 1,500 overdue + 350 fee

    second = await world.runner.run(dry_run=False, trigger="test", actor="op")
    assert second and len(await world.commands(meter_id)) == 1
    assert await world.fees(account_id) == [command_id]


async def test_a_cut_that_fails_or_is_rejected_levies_no_fee(world: PolicyWorld) -> None:
    account_id, meter_id, command_id = await _cut_queued(world)
    await world.dispatcher.dispatch_once()
    await world.ack(command_id, AckStatus.REJECTED)
    assert (await world.command(command_id)).state == "REJECTED"
    assert await world.fees(account_id) == []
    # ...and the desired state goes back to connected, so no reconciler cuts it later.
    assert (await world.meter(meter_id)).desired_relay == "connected"


async def test_payment_racing_a_queued_cut_supersedes_it_and_the_meter_stays_on(
    world: PolicyWorld,
) -> None:
    account_id, meter_id, cut = await _cut_queued(world)
    connect = await world.pay(account_id, await world.total_payable(account_id), "pay_race_q")
    assert connect is not None
    assert (await world.command(cut)).state == "SUPERSEDED"
    assert (await world.meter(meter_id)).desired_relay == "connected"

    await world.dispatcher.dispatch_once()
    published = [topic for topic, _ in world.publisher.published]
    assert published == [f"sy/v1/dcu/DCU01/meter/{meter_id}/cmd"], "only the connect goes out"
    await world.execute(connect, RelayState.CONNECTED)
    assert (await world.meter(meter_id)).reported_relay == "connected"
    assert await world.fees(account_id) == []
    assert await world.total_payable(account_id) == 0


async def test_payment_racing_an_in_flight_cut_leaves_the_meter_connected_without_a_fee(
    world: PolicyWorld,
) -> None:
    account_id, meter_id, cut = await _cut_queued(world)
    await world.dispatcher.dispatch_once()
    await world.ack(cut, AckStatus.RECEIVED)
    connect = await world.pay(account_id, await world.total_payable(account_id), "pay_race_f")
    assert connect is not None and (await world.command(cut)).state == "SUPERSEDED"

    # The gateway had already opened the relay: its ack for the cut changes nothing...
    await world.ack(cut, AckStatus.EXECUTED, RelayState.DISCONNECTED)
    assert (await world.command(cut)).state == "SUPERSEDED"
    assert await world.fees(account_id) == []
    # ...and the connect, with the higher version, closes it again.
    await world.dispatcher.dispatch_once()
    await world.execute(connect, RelayState.CONNECTED)
    assert (await world.command(connect)).state == "SUCCEEDED"
    assert (await world.meter(meter_id)).reported_relay == "connected"
    assert [m.kind for m in await world.messages(account_id)] == [
        "disconnection_notice",
        "power_restored",
    ]


async def test_payment_after_the_cut_reconnects_and_says_so(world: PolicyWorld) -> None:
    account_id, meter_id, cut = await _cut_queued(world)
    await world.dispatcher.dispatch_once()
    await world.execute(cut, RelayState.DISCONNECTED)

    partial = await world.pay(account_id, 10_000, "pay_part")
    assert partial is None, "a partial payment leaves the meter off"
    connect = await world.pay(account_id, await world.total_payable(account_id), "pay_rest")
    assert connect is not None
    await world.dispatcher.dispatch_once()
    await world.execute(connect, RelayState.CONNECTED)
    assert (await world.meter(meter_id)).reported_relay == "connected"
    (restored,) = await world.messages(account_id, "power_restored")
    assert restored.body == "Payment received. Your power has been restored."
    assert await world.fees(account_id) == [cut]
    assert await world.total_payable(account_id) == 0


async def test_an_expired_cut_is_undone_so_a_late_birth_never_cuts_at_night(
    world: PolicyWorld,
) -> None:
    account_id, meter_id, cut = await _cut_queued(world)
    await world.presence.handle(
        GatewayState(dcu_id="DCU01", online=False, boot_seq=1, at_ms=0, meters=[])
    )
    world.clock.advance(hours=10)  # night: the command's window has long closed
    await world.dispatcher.dispatch_once()
    assert (await world.command(cut)).state == "EXPIRED"
    assert (await world.meter(meter_id)).desired_relay == "connected"

    at_ms = int(world.clock().timestamp() * 1000)
    roster = [MeterReport(meter_id=meter_id, reachable=True, relay=RelayState.CONNECTED)]
    await world.presence.handle(
        GatewayState(dcu_id="DCU01", online=True, boot_seq=2, at_ms=at_ms, meters=roster)
    )
    actions = [(c.action, c.origin) for c in await world.commands(meter_id)]
    assert ("disconnect", "reconciler") not in actions
    assert actions == [("disconnect", "policy"), ("connect", "policy")]
    assert await world.fees(account_id) == []


async def test_reminders_before_the_due_date_and_notices_for_unnoticed_arrears(
    world: PolicyWorld,
) -> None:
    due_soon = await world.add_account(due_days_ago=-2, notice_days_ago=None)
    due_later = await world.add_account(due_days_ago=-10, notice_days_ago=None)
    overdue = await world.add_account(notice_days_ago=None)
    protected = await world.add_account(notice_days_ago=None, protection="essential_service")
    noticed = await world.add_account(notice_days_ago=3)

    sent = await world.notices.serve()
    assert (sent.reminders, sent.notices) == (1, 1)
    (reminder,) = await world.messages(due_soon, "reminder")
    assert "₹1,500.00 of bill BILL000001 is due on 03 Dec 2026" in reminder.body
    assert await world.messages(due_later) == []
    (notice,) = await world.messages(overdue, "disconnection_notice")
    assert "not before 16 Dec 2026" in notice.body
    assert notice.served_at == world.policy_clock()
    assert await world.messages(protected) == []
    assert len(await world.messages(noticed)) == 1, "only the test's own notice"

    again = await world.notices.serve()
    assert (again.reminders, again.notices) == (0, 0), "nothing is sent twice"


async def test_a_notice_served_today_holds_the_account_for_15_days(world: PolicyWorld) -> None:
    account_id = await world.add_account(notice_days_ago=None)
    for _ in range(5):
        await world.add_account(overdue_paise=0)
    await world.online("DCU01")
    await world.notices.serve()
    world.policy_clock.advance(days=14)  # Tuesday 15 December, 11:00 IST
    dry = await world.runner.run(dry_run=True, trigger="test", actor=None)
    world.policy_clock.advance(days=1)
    real = await world.runner.run(dry_run=False, trigger="test", actor=None)
    assert dry != real
    (command,) = await world.commands("MTR000001")
    assert command.action == "disconnect" and account_id


async def test_scheduler_runs_each_slot_once_and_only_inside_the_window(database_url: str) -> None:
    settings = PolicySettings(schedule=[time(10, 30), time(15, 0)])
    async with policy_world(database_url, settings) as world:
        scheduler = PolicyScheduler(
            world.runner,
            world.notices,
            settings,
            world.book,
            CloudMetrics(),
            policy_clock=world.policy_clock,
        )
        await world.add_account()
        start = world.policy_clock.now
        world.policy_clock.now = start.replace(hour=4, minute=45)  # 10:15 IST, before a slot
        assert await scheduler.tick() is None
        world.policy_clock.now = start.replace(hour=5, minute=5)  # 10:35 IST
        first = await scheduler.tick()
        assert first is not None
        assert await scheduler.tick() is None, "the 10:30 slot already ran"
        world.policy_clock.now = start.replace(hour=11, minute=30)  # 17:00 IST: closed
        assert due_slot(world.policy_clock(), settings, world.book) == "2026-12-01T15:00"
        assert await scheduler.tick() is None
        world.policy_clock.now = start.replace(hour=9, minute=45)  # 15:15 IST
        assert await scheduler.tick() not in (None, first)
        world.policy_clock.now = start + timedelta(days=5)  # Sunday
        assert await scheduler.tick() is None

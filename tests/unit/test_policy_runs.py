"""Disconnection runs on a real database with movable clocks: outcomes and rules per account,
the safety limits (share quarantine, caps), the kill switch and the run lease."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from cloud.db.models import Command, DisconnectionRunResult, Protection
from cloud.db.session import Database
from cloud.errors import Conflict
from cloud.policy.controls import set_kill_switch
from cloud.policy.decisions import Decision, Outcome
from cloud.policy.lease import LeaseKeeper
from cloud.policy.reports import RunReport, run_report
from cloud.policy.rules import Rule
from cloud.policy.runs import RUN_LEASE
from cloud.policy.settings import PolicySettings
from cloud.policy.snapshot import load_snapshots
from tests.support.policy_world import PolicyWorld, policy_world
from wire import RelayState


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[PolicyWorld]:
    async with policy_world(database_url) as built:
        yield built


async def _report(world: PolicyWorld, run_id: str) -> RunReport:
    async with world.db.read() as session:
        report = await run_report(session, run_id)
    assert report is not None
    return report


async def _every_case(world: PolicyWorld) -> dict[str, str]:
    """One account per case on DCU01 (10 meters, 2 eligible = 20 %), one on offline DCU02."""
    cases = {
        "eligible_a": await world.add_account(overdue_paise=300_000),
        "eligible_b": await world.add_account(overdue_paise=120_000),
        "protected": await world.add_account(protection="life_support"),
        "disputed": await world.add_account(dispute="payment_under_protest"),
        "no_notice": await world.add_account(notice_days_ago=None),
        "recent_notice": await world.add_account(notice_days_ago=14),
        "cohort": await world.add_account(installed_on=world.clock().date().replace(year=2025)),
        "mode0": await world.add_account(control_mode=0),
        "already_off": await world.add_account(relay=RelayState.DISCONNECTED),
        "below_threshold": await world.add_account(overdue_paise=5_000),
        "offline_gateway": await world.add_account(dcu_id="DCU02"),
    }
    await world.online("DCU01")
    return cases


async def _all_commands(db: Database) -> list[Command]:
    async with db.read() as session:
        return list((await session.execute(select(Command))).scalars())


async def test_dry_run_reports_counts_by_outcome_and_rule_and_switches_nothing(
    world: PolicyWorld,
) -> None:
    cases = await _every_case(world)
    report = await _report(world, await world.runner.run(dry_run=True, trigger="test", actor="op"))

    assert report.run.dry_run
    assert report.by_outcome == {"disconnect": 2, "blocked": 7, "already_disconnected": 1}
    assert report.by_rule == {
        "protected_consumer": 1,
        "open_dispute": 1,
        "notice_missing": 1,
        "notice_period_running": 1,
        "cohort_not_enabled": 1,
        "meter_cannot_disconnect": 1,
        "gateway_offline": 1,
    }
    outcome = {row.result.account_id: row.result.outcome for row in report.results}
    assert cases["below_threshold"] not in outcome, "not overdue enough to be a candidate"
    assert {a for a, o in outcome.items() if o == "disconnect"} == {
        cases["eligible_a"],
        cases["eligible_b"],
    }
    assert await _all_commands(world.db) == []
    assert (await world.meter("MTR000001")).desired_relay == "connected"


async def test_real_run_queues_policy_disconnects_for_exactly_the_eligible(
    world: PolicyWorld,
) -> None:
    cases = await _every_case(world)
    report = await _report(world, await world.runner.run(dry_run=False, trigger="test", actor="op"))

    commands = await _all_commands(world.db)
    assert sorted(c.meter_id for c in commands) == ["MTR000001", "MTR000002"]
    assert {(c.origin, c.action, c.state, c.actor) for c in commands} == {
        ("policy", "disconnect", "QUEUED", "op")
    }
    by_account = {row.result.account_id: row.result for row in report.results}
    assert by_account[cases["eligible_a"]].command_id in {c.command_id for c in commands}
    assert by_account[cases["protected"]].command_id is None
    assert report.command_states == {"QUEUED": 2}
    # Largest arrears first: the ordering a cap would cut at.
    assert commands[0].meter_id == "MTR000001"
    for command in commands:
        assert command.expires_at == world.clock() + timedelta(seconds=900)


async def test_a_policy_command_expires_when_the_window_closes(world: PolicyWorld) -> None:
    await world.add_account()
    for _ in range(5):
        await world.add_account(overdue_paise=0)
    await world.online("DCU01")
    world.policy_clock.now = world.policy_clock.now.replace(hour=11, minute=20)  # 16:50 IST
    await world.runner.run(dry_run=False, trigger="test", actor="op")
    (command,) = await _all_commands(world.db)
    assert command.expires_at == world.clock() + timedelta(minutes=10)


async def test_outside_the_window_every_eligible_account_is_blocked_by_the_hour(
    world: PolicyWorld,
) -> None:
    await world.add_account()
    await world.online("DCU01")
    world.policy_clock.now = world.policy_clock.now.replace(hour=3)  # 08:30 IST
    report = await _report(world, await world.runner.run(dry_run=False, trigger="t", actor=None))
    assert (report.by_outcome, report.by_rule) == ({"blocked": 1}, {"outside_hours": 1})
    assert await _all_commands(world.db) == []


async def test_a_dcu_over_the_share_limit_is_quarantined_until_confirmed(
    world: PolicyWorld,
) -> None:
    for _ in range(8):
        await world.add_account(overdue_paise=0)
    eligible_01 = await world.add_account()
    eligible_02 = [await world.add_account(dcu_id="DCU02") for _ in range(2)]
    await world.add_account(dcu_id="DCU02", overdue_paise=0)
    await world.add_account(dcu_id="DCU02", overdue_paise=0)
    await world.online("DCU01", "DCU02")

    run_id = await world.runner.run(dry_run=False, trigger="test", actor="op")
    report = await _report(world, run_id)
    assert report.by_outcome == {"disconnect": 1, "quarantined": 2}
    assert report.by_rule == {"dcu_share_exceeded": 2}
    (quarantine,) = report.quarantines
    assert (quarantine.dcu_id, quarantine.meter_count, quarantine.would_disconnect) == (
        "DCU02",
        4,
        2,
    )
    assert quarantine.status == "pending"
    assert [c.meter_id for c in await _all_commands(world.db)] == [f"MTR{9:06d}"]

    await world.runner.decide_quarantine(run_id, "DCU02", confirm=True, actor="supervisor")
    report = await _report(world, run_id)
    assert report.by_outcome == {"disconnect": 3}
    assert report.quarantines[0].status == "confirmed"
    assert report.quarantines[0].decided_by == "supervisor"
    rows = {row.result.account_id: row for row in report.results}
    for account_id in eligible_02:
        assert rows[account_id].command_state == "QUEUED"
        assert rows[account_id].result.detail == "confirmed by supervisor"
    assert rows[eligible_01].result.detail == ""
    with pytest.raises(Conflict, match="already confirmed"):
        await world.runner.decide_quarantine(run_id, "DCU02", confirm=True, actor="supervisor")


async def test_confirming_a_quarantine_checks_every_rule_again(world: PolicyWorld) -> None:
    paid, later = await world.add_account(), await world.add_account()
    await world.online("DCU01")
    run_id = await world.runner.run(dry_run=False, trigger="test", actor="op")
    assert (await _report(world, run_id)).by_outcome == {"quarantined": 2}

    await world.pay(paid, await world.total_payable(paid), "pay_before_confirm")
    world.policy_clock.advance(hours=6)  # 17:00 IST: the window has closed
    await world.runner.decide_quarantine(run_id, "DCU01", confirm=True, actor="supervisor")
    report = await _report(world, run_id)
    rows = {row.result.account_id: row.result for row in report.results}
    assert rows[paid].outcome == "not_overdue"
    assert (rows[later].outcome, rows[later].rule) == ("blocked", "outside_hours")
    assert await _all_commands(world.db) == []


async def test_a_rejected_quarantine_switches_nothing(world: PolicyWorld) -> None:
    await world.add_account()
    await world.online("DCU01")
    run_id = await world.runner.run(dry_run=False, trigger="test", actor="op")
    await world.runner.decide_quarantine(run_id, "DCU01", confirm=False, actor="supervisor")
    report = await _report(world, run_id)
    assert (report.quarantines[0].status, report.by_outcome) == ("rejected", {"quarantined": 1})
    assert await _all_commands(world.db) == []


async def test_caps_per_dcu_per_run_and_per_hour(database_url: str) -> None:
    settings = PolicySettings(max_per_dcu_per_run=2, max_per_dcu_per_hour=3)
    async with policy_world(database_url, settings) as world:
        for _ in range(20):
            await world.add_account(overdue_paise=0)
        for paise in (100_000, 200_000, 300_000, 400_000):
            await world.add_account(overdue_paise=paise)
        await world.online("DCU01")
        first = await _report(world, await world.runner.run(dry_run=False, trigger="t", actor=None))
        assert (first.by_outcome, first.by_rule) == (
            {"disconnect": 2, "capped": 2},
            {"dcu_run_cap": 2},
        )
        capped = {r.result.overdue_paise for r in first.results if r.result.outcome == "capped"}
        assert capped == {100_000, 200_000}, "the largest arrears go first"

        world.clock.advance(minutes=30)
        second = await _report(
            world, await world.runner.run(dry_run=False, trigger="t", actor=None)
        )
        assert second.by_outcome == {"disconnect": 1, "capped": 1, "already_disconnected": 2}
        assert second.by_rule == {"dcu_hourly_cap": 1}

        world.clock.advance(minutes=31)
        third = await _report(world, await world.runner.run(dry_run=False, trigger="t", actor=None))
        assert third.by_outcome == {"disconnect": 1, "already_disconnected": 3}


async def test_kill_switch_stops_real_runs_and_withdraws_pending_policy_cuts(
    world: PolicyWorld,
) -> None:
    account = await world.add_account()
    for _ in range(5):
        await world.add_account(overdue_paise=0)
    await world.online("DCU01")
    run_id = await world.runner.run(dry_run=False, trigger="test", actor="op")
    (queued,) = await _all_commands(world.db)

    async with world.db.write() as session:
        withdrawn = await set_kill_switch(
            session, world.factory, engaged=True, reason="storm", actor="op", now=world.clock()
        )
    assert withdrawn == 1
    commands = await world.commands(queued.meter_id)
    assert [(c.action, c.state, c.origin) for c in commands] == [
        ("disconnect", "SUPERSEDED", "policy"),
        ("connect", "QUEUED", "policy"),
    ]
    assert (await world.meter(queued.meter_id)).desired_relay == "connected"

    with pytest.raises(Conflict, match="kill switch") as refused:
        await world.runner.run(dry_run=False, trigger="test", actor="op")
    assert refused.value.code == "kill_switch_engaged"
    dry = await _report(world, await world.runner.run(dry_run=True, trigger="test", actor="op"))
    assert dry.run.kill_switch_engaged and dry.by_outcome == {"disconnect": 1}
    assert run_id != dry.run.run_id and account


async def test_one_run_at_a_time_across_processes(world: PolicyWorld, database_url: str) -> None:
    await world.add_account()
    # Another cloud process, with its own connection pool, holds the run lease.
    other_db = Database.from_url(database_url)
    try:
        other = LeaseKeeper(other_db, "cloud-2")
        claim = await other.claim(RUN_LEASE, world.clock(), ttl_s=900)
        assert claim is not None
        assert await LeaseKeeper(world.db, "cloud-3").claim(RUN_LEASE, world.clock(), 900) is None
        with pytest.raises(Conflict) as busy:
            await world.runner.run(dry_run=True, trigger="test", actor="op")
        assert busy.value.code == "run_in_progress"
        await other.release(claim)
        assert await world.runner.run(dry_run=True, trigger="test", actor="op")

        # A holder that died leaves the lease to expire; then another process takes it.
        stale = await other.claim(RUN_LEASE, world.clock(), ttl_s=60)
        assert stale is not None
        world.clock.advance(seconds=61)
        assert await world.runner.run(dry_run=True, trigger="test", actor="op")
    finally:
        await other_db.close()


async def test_a_schedule_slot_runs_once(world: PolicyWorld) -> None:
    await world.add_account()
    await world.runner.run(dry_run=False, trigger="scheduler", actor=None, schedule_slot="s1")
    with pytest.raises(Conflict) as again:
        await world.runner.run(dry_run=False, trigger="scheduler", actor=None, schedule_slot="s1")
    assert again.value.code == "slot_done"


async def _pending(world: PolicyWorld) -> tuple[str, RunReport]:
    """A dry run's report, and its account that would be cut."""
    report = await _report(world, await world.runner.run(dry_run=True, trigger="t", actor=None))
    (row,) = [r for r in report.results if r.result.outcome == "disconnect"]
    return row.result.account_id, report


async def _issue_now(world: PolicyWorld, report: RunReport, account_id: str) -> Decision:
    """Issue one decision of a finished run as the runner would, with a fresh judgement."""
    async with world.db.read() as session:
        (snapshot,) = await load_snapshots(
            session, world.issuer.criteria(world.policy_clock()), [account_id]
        )
    decision = Decision(snapshot, Outcome.DISCONNECT)
    async with world.db.write() as session:
        row = await session.get(DisconnectionRunResult, (report.run.run_id, account_id))
        assert row is not None
        await world.issuer.issue(session, report.run.run_id, [decision], {account_id: row}, "op")
    return decision


async def test_a_protection_recorded_after_the_snapshot_still_blocks_the_cut(
    world: PolicyWorld,
) -> None:
    await world.add_account()
    for _ in range(5):
        await world.add_account(overdue_paise=0)
    await world.online("DCU01")
    account_id, report = await _pending(world)
    async with world.db.write() as session:
        session.add(
            Protection(
                account_id=account_id,
                kind="life_support",
                reason="ventilator",
                created_at=world.clock(),
                created_by="op",
            )
        )
    decision = await _issue_now(world, report, account_id)
    assert (decision.outcome, list(decision.rules)) == (
        Outcome.BLOCKED,
        [Rule.PROTECTED_CONSUMER],
    )
    assert await _all_commands(world.db) == []


async def test_the_kill_switch_halts_a_run_between_its_chunks(world: PolicyWorld) -> None:
    await world.add_account()
    for _ in range(5):
        await world.add_account(overdue_paise=0)
    await world.online("DCU01")
    account_id, report = await _pending(world)
    async with world.db.write() as session:
        await set_kill_switch(
            session, world.factory, engaged=True, reason="drill", actor="op", now=world.clock()
        )
    decision = await _issue_now(world, report, account_id)
    assert (decision.outcome, list(decision.rules)) == (Outcome.HALTED, [Rule.KILL_SWITCH])
    assert await _all_commands(world.db) == []


async def test_runs_record_when_they_finished(world: PolicyWorld) -> None:
    await world.add_account()
    for run_id in [
        await world.runner.run(dry_run=dry, trigger="t", actor=None) for dry in (True, False)
    ]:
        assert (await _report(world, run_id)).run.finished_at == world.clock()

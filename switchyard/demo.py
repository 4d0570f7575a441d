"""Demo data for the local stack: a fleet of meters over DCUs, accounts, bills, some consumers
already overdue and disconnected (with the reconnection fee levied), and overdue consumers for
the disconnection policy: some eligible, some held back by each rule."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from cloud.db.models import Dispute, Notification, Protection
from cloud.db.session import Database
from cloud.onboarding import AccountRecord, BillRecord
from wire import RelayState

_FIRST = ["Asha", "Ravi", "Meena", "Imran", "Lakshmi", "Arjun", "Farah", "Suresh", "Kavya", "Dev"]
_LAST = ["Sharma", "Iyer", "Khan", "Reddy", "Das", "Patel", "Nair", "Singh", "Gupta", "Rao"]


# Overdue, connected accounts for the policy, by position k of the meter on its DCU (k % 40):
# two in forty eligible (5 % of each DCU, under the 20 % share limit), one held back by each rule.
POLICY_CASES = {
    1: "eligible",
    11: "eligible",
    3: "protected_consumer",
    5: "open_dispute",
    7: "notice_missing",
    9: "notice_period_running",
    13: "cohort_not_enabled",
    15: "meter_cannot_disconnect",
}


@dataclass(frozen=True)
class PolicyCase:
    """A demo account set up for the disconnection policy, and why it is there."""

    account_id: str
    case: str
    protection: str | None = None
    dispute: str | None = None
    notice_served_at: datetime | None = None


@dataclass(frozen=True)
class DemoFleet:
    """The accounts the cloud registers and the meters the simulator hosts."""

    accounts: list[AccountRecord]
    dcu_ids: list[str]
    policy_cases: list[PolicyCase] = field(default_factory=list)

    def write_sim_fleet(self, path: Path) -> Path:
        """Write the simulator's fleet file (format documented in firmware_sim/fleet.py)."""
        meters = [
            {
                "meter_id": a.meter_id,
                "dcu_id": a.dcu_id,
                "control_mode": a.control_mode,
                "relay": a.relay.value,
                "installed_on": a.installed_on.isoformat() if a.installed_on else None,
            }
            for a in self.accounts
        ]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"meters": meters}, indent=1))
        return path

    def disconnected(self) -> list[AccountRecord]:
        """Accounts whose meters start disconnected for non-payment."""
        return [a for a in self.accounts if a.relay is not RelayState.CONNECTED]

    def cases(self, case: str) -> list[str]:
        """Account ids of one policy case, e.g. "eligible"."""
        return [c.account_id for c in self.policy_cases if c.case == case]


def build_demo_fleet(
    *,
    meters: int,
    gateways: int,
    now: datetime | None = None,
    disconnected_share: float = 0.1,
    reconnection_fee_paise: int = 35_000,
    seed: int = 2026,
) -> DemoFleet:
    """A deterministic demo fleet; roughly `disconnected_share` of accounts start cut off."""
    if meters < 1 or gateways < 1:
        raise ValueError("need at least one meter and one gateway")
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    dcu_ids = [f"DCU{n:02d}" for n in range(1, gateways + 1)]
    period_end = now.date().replace(day=1) - timedelta(days=1)
    period_start = period_end.replace(day=1)
    accounts: list[AccountRecord] = []
    cases: list[PolicyCase] = []
    for n in range(1, meters + 1):
        cut_off = rng.random() < disconnected_share or n == 1
        amount_paise = rng.randrange(40_000, 400_000, 100)
        issued_at = datetime.combine(period_end + timedelta(days=3), datetime.min.time(), UTC)
        bill = BillRecord(
            bill_id=f"BILL{n:07d}-{period_end:%Y%m}",
            amount_paise=amount_paise,
            issued_at=min(issued_at, now - timedelta(days=20)),
            # Cut-off consumers are overdue; the others' bills fall due in ten days.
            due_date=(now - timedelta(days=25)).date()
            if cut_off
            else (now + timedelta(days=10)).date(),
            period=(period_start, period_end),
        )
        fee_at = now - timedelta(days=2)
        fees = [(f"FEE{n:07d}-demo", reconnection_fee_paise, fee_at)] if cut_off else []
        record = AccountRecord(
            account_id=f"ACC{n:06d}",
            consumer_name=f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
            meter_id=f"MTR{n:06d}",
            dcu_id=dcu_ids[(n - 1) % gateways],
            relay=RelayState.DISCONNECTED if cut_off else RelayState.CONNECTED,
            control_mode=1 if n % 25 == 0 else 2,
            installed_on=date(2020 + rng.randrange(0, 6), rng.randrange(1, 13), 1),
            phone=f"+9198{rng.randrange(10_000_000, 99_999_999)}",
            bills=[bill] if cut_off or rng.random() < 0.5 else [],
            fees_paise=fees,
        )
        case = None if cut_off else POLICY_CASES.get(((n - 1) // gateways) % 40)
        if case is not None:
            record, policy_case = _policy_case(record, case, amount_paise, n, now)
            cases.append(policy_case)
        accounts.append(record)
    return DemoFleet(accounts=accounts, dcu_ids=dcu_ids, policy_cases=cases)


def _policy_case(
    record: AccountRecord, case: str, amount_paise: int, n: int, now: datetime
) -> tuple[AccountRecord, PolicyCase]:
    """Make a connected account overdue (bill due 25 days ago) and set up its case."""
    due = (now - timedelta(days=25)).date()
    bill = BillRecord(
        bill_id=f"BILL{n:07d}-{due:%Y%m}-due",
        amount_paise=amount_paise,
        issued_at=now - timedelta(days=40),
        due_date=due,
        period=(due - timedelta(days=45), due - timedelta(days=15)),
    )
    installed_on = (
        date(2019 + (n % 2) * 6, 6, 1) if case == "cohort_not_enabled" else date(2022, 6, 1)
    )
    notice_ago = {"notice_missing": None, "notice_period_running": 5}.get(case, 20)
    overdue = replace(
        record,
        bills=[bill],
        installed_on=installed_on,
        control_mode=0 if case == "meter_cannot_disconnect" else record.control_mode,
    )
    return overdue, PolicyCase(
        account_id=record.account_id,
        case=case,
        protection=(
            ("life_support", "essential_service")[n % 2] if case == "protected_consumer" else None
        ),
        dispute=("dispute", "payment_under_protest")[n % 2] if case == "open_dispute" else None,
        notice_served_at=now - timedelta(days=notice_ago) if notice_ago is not None else None,
    )


async def register_policy_cases(db: Database, cases: list[PolicyCase], at: datetime) -> None:
    """Store the demo's protections, disputes and served notices (accounts must exist)."""
    async with db.write() as session:
        for case in cases:
            if case.protection:
                session.add(
                    Protection(
                        account_id=case.account_id,
                        kind=case.protection,
                        reason="demo",
                        created_at=at,
                        created_by="demo",
                    )
                )
            if case.dispute:
                session.add(
                    Dispute(
                        account_id=case.account_id,
                        kind=case.dispute,
                        reason="demo",
                        opened_at=at,
                        opened_by="demo",
                    )
                )
            if case.notice_served_at is not None:
                session.add(
                    Notification(
                        account_id=case.account_id,
                        kind="disconnection_notice",
                        channel="hand_delivery",
                        body="disconnection notice served by hand delivery (demo)",
                        reference=f"demo-notice:{case.account_id}",
                        served_at=case.notice_served_at,
                        recorded_at=at,
                        actor="demo",
                    )
                )

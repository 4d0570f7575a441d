"""Demo data for the local stack: a fleet of meters over DCUs, accounts, bills, and some
consumers already overdue and disconnected (with the reconnection fee levied)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from cloud.onboarding import AccountRecord, BillRecord
from wire import RelayState

_FIRST = ["Asha", "Ravi", "Meena", "Imran", "Lakshmi", "Arjun", "Farah", "Suresh", "Kavya", "Dev"]
_LAST = ["Sharma", "Iyer", "Khan", "Reddy", "Das", "Patel", "Nair", "Singh", "Gupta", "Rao"]


@dataclass(frozen=True)
class DemoFleet:
    """The accounts the cloud registers and the meters the simulator hosts."""

    accounts: list[AccountRecord]
    dcu_ids: list[str]

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
        accounts.append(
            AccountRecord(
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
        )
    return DemoFleet(accounts=accounts, dcu_ids=dcu_ids)

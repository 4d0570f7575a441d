"""The operator audit log (who, when, what, why, outcome) and the rate limit it makes possible:
manual commands are counted from the log itself, so every cloud process shares one limit."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.access.tokens import Principal
from cloud.db.models import AuditEntry
from cloud.db.session import Database
from cloud.errors import RateLimited


class AuditAction(StrEnum):
    """What was done (or attempted)."""

    METER_COMMAND = "meter.command"
    ACCESS_DENIED = "access.denied"
    TOKEN_CREATE = "token.create"  # noqa: S105 - an action name, not a secret
    TOKEN_REVOKE = "token.revoke"  # noqa: S105


class AuditOutcome(StrEnum):
    """How it ended."""

    OK = "ok"
    DENIED = "denied"
    RATE_LIMITED = "rate_limited"
    NOT_FOUND = "not_found"
    INVALID = "invalid"


@dataclass(frozen=True)
class AuditRecord:
    """One line of the audit log, before it is stored."""

    actor: Principal
    action: AuditAction
    target: str
    outcome: AuditOutcome
    at: datetime
    reason: str = ""
    detail: dict[str, object] = field(default_factory=dict)


def add_audit(session: AsyncSession, record: AuditRecord) -> None:
    """Add the record to this transaction: it commits, or not, with the action it describes."""
    session.add(
        AuditEntry(
            at=record.at,
            actor=record.actor.name[:64],
            token_id=record.actor.token_id,
            role=record.actor.role.name.lower(),
            action=record.action.value,
            target=record.target[:200],
            reason=record.reason[:200],
            outcome=record.outcome.value,
            detail=json.dumps(record.detail, sort_keys=True, default=str),
        )
    )


async def record_audit(db: Database, record: AuditRecord) -> None:
    """Store one record in a transaction of its own (refused attempts)."""
    async with db.write() as session:
        add_audit(session, record)


@dataclass(frozen=True)
class CommandRateLimit:
    """At most `per_actor` manual commands per actor, and `total` overall, per window."""

    per_actor: int
    total: int
    window_s: float

    async def check(self, session: AsyncSession, actor: Principal, now: datetime) -> None:
        """Raise RateLimited if one more manual command now would exceed a limit."""
        since = now - timedelta(seconds=self.window_s)
        recent = select(func.count(), func.min(AuditEntry.at)).where(
            AuditEntry.action == AuditAction.METER_COMMAND.value,
            AuditEntry.outcome == AuditOutcome.OK.value,
            AuditEntry.at > since,
        )
        for limit, query, whose in (
            (self.per_actor, recent.where(AuditEntry.actor == actor.name), f"for {actor.name}"),
            (self.total, recent, "in total"),
        ):
            count, oldest = (await session.execute(query)).one()
            if count >= limit:
                wait_s = (oldest + timedelta(seconds=self.window_s) - now).total_seconds()
                raise RateLimited(
                    f"at most {limit} manual commands per {self.window_s:g}s {whose}",
                    retry_after_s=max(1, math.ceil(wait_s)),
                )

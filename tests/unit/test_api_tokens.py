"""Named API tokens on a real database: only hashes stored, revocation at once, roles kept;
and the manual-command rate limit counted from the audit log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from cloud.access.audit import CommandRateLimit
from cloud.access.tokens import (
    Principal,
    Role,
    TokenAuthenticator,
    create_token,
    list_tokens,
    revoke_token,
)
from cloud.commands.desired import CommandFactory
from cloud.commands.operator import issue_manual_command
from cloud.db.migrate import upgrade_to_head
from cloud.db.models import AuditEntry
from cloud.db.session import Database
from cloud.errors import RateLimited
from cloud.onboarding import register_accounts
from switchyard.demo import build_demo_fleet
from wire import Action, CommandSigner
from wire.signing import generate_private_key_b64

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database.from_url(database_url)
    await upgrade_to_head(database.engine)
    yield database
    await database.close()


async def test_a_created_token_authenticates_and_only_its_hash_is_stored(db: Database) -> None:
    issued = await create_token(db, name="asha", role=Role.OPERATOR, created_by="cli:t", now=NOW)
    principal = await TokenAuthenticator(db, {}).authenticate(issued.token)

    assert principal == Principal("asha", Role.OPERATOR, issued.token_id)
    secret = issued.token.split("_", 2)[2]
    async with db.read() as session:
        dump = (await session.execute(text("SELECT * FROM api_tokens"))).all()
    assert secret not in repr(dump) and issued.token not in repr(dump)


async def test_revoked_wrong_and_malformed_tokens_are_refused(db: Database) -> None:
    issued = await create_token(db, name="ravi", role=Role.VIEWER, created_by="cli:t", now=NOW)
    other = await create_token(db, name="meena", role=Role.VIEWER, created_by="cli:t", now=NOW)
    authenticator = TokenAuthenticator(db, {Role.VIEWER: "settings-viewer-token-1234"})
    token_id, secret = issued.token.split("_", 2)[1:]
    other_secret = other.token.split("_", 2)[2]

    assert await authenticator.authenticate(f"sy_{token_id}_{other_secret}") is None
    assert await authenticator.authenticate(f"sy_{token_id}_{secret[:-1]}") is None
    assert await authenticator.authenticate("sy_000000000000_" + secret) is None
    assert await authenticator.authenticate("") is None
    assert await authenticator.authenticate("settings-viewer-token-1234") == Principal(
        "viewer", Role.VIEWER
    )
    await revoke_token(db, issued.token_id, revoked_by="cli:t", now=NOW)
    assert await authenticator.authenticate(issued.token) is None
    assert await authenticator.authenticate(other.token) is not None
    listed = {row.token_id: row.revoked_at for row in await list_tokens(db)}
    assert listed == {issued.token_id: NOW, other.token_id: None}


async def test_token_names_must_be_plain(db: Database) -> None:
    with pytest.raises(ValueError, match="token name"):
        await create_token(db, name="a b", role=Role.VIEWER, created_by="cli:t", now=NOW)


async def test_manual_commands_are_audited_and_limited_per_actor_and_in_total(
    db: Database,
) -> None:
    fleet = build_demo_fleet(meters=4, gateways=1)
    await register_accounts(db, fleet.accounts, NOW)
    factory = CommandFactory(CommandSigner.from_b64("k1", generate_private_key_b64()), 3600)
    limit = CommandRateLimit(per_actor=2, total=3, window_s=60)
    asha, ravi = Principal("asha", Role.OPERATOR, "t1"), Principal("ravi", Role.OPERATOR, "t2")
    clock_now = [NOW]

    async def command(actor: Principal, meter_id: str = "MTR000001") -> None:
        await issue_manual_command(
            db,
            factory,
            meter_id=meter_id,
            action=Action.DISCONNECT,
            reason=f"asked by {actor.name}",
            actor=actor,
            clock=lambda: clock_now[0],
            limit=limit,
        )

    await command(asha)
    await command(asha)
    with pytest.raises(RateLimited) as per_actor:
        await command(asha)
    await command(ravi)
    with pytest.raises(RateLimited) as total:
        await command(ravi)
    clock_now[0] = NOW + timedelta(seconds=61)
    await command(asha)

    assert per_actor.value.retry_after_s == 60
    assert "in total" in total.value.message
    async with db.read() as session:
        rows = (await session.execute(select(AuditEntry).order_by(AuditEntry.audit_id))).scalars()
        logged = [(r.actor, r.token_id, r.action, r.target, r.reason, r.outcome) for r in rows]
    asked = ("meter.command", "meter/MTR000001")
    assert logged == [
        ("asha", "t1", *asked, "asked by asha", "ok"),
        ("asha", "t1", *asked, "asked by asha", "ok"),
        ("asha", "t1", *asked, "asked by asha", "rate_limited"),
        ("ravi", "t2", *asked, "asked by ravi", "ok"),
        ("ravi", "t2", *asked, "asked by ravi", "rate_limited"),
        ("asha", "t1", *asked, "asked by asha", "ok"),
    ]

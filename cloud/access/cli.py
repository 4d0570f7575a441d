"""`switchyard token create|list|revoke`: manage named API tokens straight in the database
(SWITCHYARD_DATABASE_URL); each change is kept in the audit log as done by `cli:<os user>`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

from cloud.access.audit import AuditAction, AuditOutcome, AuditRecord, record_audit
from cloud.access.tokens import Principal, Role, create_token, list_tokens, revoke_token
from cloud.clock import utcnow
from cloud.db.migrate import upgrade_to_head
from cloud.db.session import Database
from cloud.errors import NotFound
from cloud.settings import CloudSettings


def _database_url() -> str:
    default: str = CloudSettings.model_fields["database_url"].default
    return os.environ.get("SWITCHYARD_DATABASE_URL", default)


def _cli_principal() -> Principal:
    return Principal(f"cli:{getpass.getuser()}", Role.OPERATOR)


async def _run(args: argparse.Namespace, db: Database) -> int:
    await upgrade_to_head(db.engine)
    me = _cli_principal()
    now = utcnow()
    if args.subcommand == "create":
        role = Role[args.role.upper()]
        issued = await create_token(db, name=args.name, role=role, created_by=me.name, now=now)
        await record_audit(
            db,
            AuditRecord(
                actor=me,
                action=AuditAction.TOKEN_CREATE,
                target=f"token/{issued.token_id}",
                outcome=AuditOutcome.OK,
                at=now,
                detail={"name": issued.name, "role": args.role},
            ),
        )
        print(f"token {issued.token_id} for {issued.name} ({args.role}); shown only once:")
        print(issued.token)
        return 0
    if args.subcommand == "list":
        for row in await list_tokens(db):
            state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
            print(
                f"{row.token_id}  {row.name:<24} {row.role:<9} {row.created_at:%Y-%m-%d}  {state}"
            )
        return 0
    try:
        row = await revoke_token(db, args.token_id, revoked_by=me.name, now=now)
    except NotFound as exc:
        print(f"switchyard token revoke: {exc.message}", file=sys.stderr)
        return 1
    await record_audit(
        db,
        AuditRecord(
            actor=me,
            action=AuditAction.TOKEN_REVOKE,
            target=f"token/{row.token_id}",
            outcome=AuditOutcome.OK,
            at=now,
            detail={"name": row.name, "role": row.role},
        ),
    )
    print(f"token {row.token_id} of {row.name} revoked")
    return 0


async def _main(args: argparse.Namespace) -> int:
    db = Database.from_url(_database_url())
    try:
        return await _run(args, db)
    finally:
        await db.close()


def run_token_command(args: argparse.Namespace) -> int:
    """Run one `switchyard token` subcommand; returns the exit status."""
    try:
        return asyncio.run(_main(args))
    except ValueError as exc:
        print(f"switchyard token: {exc}", file=sys.stderr)
        return 2

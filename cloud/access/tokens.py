"""API bearer tokens: named tokens kept as SHA-256 hashes in the database, plus the optional
tokens from settings; roles, principals and constant-time comparison."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from sqlalchemy import select

from cloud.db.models import ApiToken
from cloud.db.session import Database
from cloud.errors import NotFound

# `sy_<token id>_<secret>`: the id finds the row, the secret is checked against its hash. The
# secret has 256 bits of entropy, so one SHA-256 round is enough (no password stretching).
_TOKEN_RE = re.compile(r"^sy_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,63}$"


class Role(IntEnum):
    """Roles, ordered: an operator can do all a viewer can."""

    VIEWER = 1
    OPERATOR = 2


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name (a person or a system), role and token id."""

    name: str
    role: Role
    token_id: str | None = None


@dataclass(frozen=True)
class IssuedToken:
    """A token just created: the only moment its secret is known."""

    token_id: str
    name: str
    role: Role
    token: str


def _sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenAuthenticator:
    """Finds the principal of a bearer token; knows every token only by its hash."""

    def __init__(self, db: Database, settings_tokens: dict[Role, str]) -> None:
        self._db = db
        # Tokens from settings (SWITCHYARD_OPERATOR_TOKEN, _VIEWER_TOKEN) named after their role.
        self._settings_digests = [
            (role, hashlib.sha256(token.encode()).digest())
            for role, token in settings_tokens.items()
            if token
        ]

    async def authenticate(self, token: str) -> Principal | None:
        """The principal a token belongs to, or None (unknown, malformed or revoked)."""
        match = _TOKEN_RE.match(token)
        if match is not None:
            return await self._named(match.group(1), match.group(2))
        given = hashlib.sha256(token.encode()).digest()
        found: Role | None = None
        for role, digest in self._settings_digests:
            # No early exit: the time taken does not tell which token matched.
            if hmac.compare_digest(digest, given):
                found = role
        return Principal(found.name.lower(), found) if found is not None else None

    async def _named(self, token_id: str, secret: str) -> Principal | None:
        async with self._db.read() as session:
            row = await session.get(ApiToken, token_id)
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.secret_sha256, _sha256_hex(secret)):
            return None
        return Principal(row.name, Role[row.role.upper()], row.token_id)


async def create_token(
    db: Database, *, name: str, role: Role, created_by: str, now: datetime
) -> IssuedToken:
    """Create a named token; the returned secret is shown once and never stored."""
    if not re.match(NAME_PATTERN, name):
        raise ValueError(f"token name {name!r} must match {NAME_PATTERN}")
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    async with db.write() as session:
        session.add(
            ApiToken(
                token_id=token_id,
                name=name,
                role=role.name.lower(),
                secret_sha256=_sha256_hex(secret),
                created_at=now,
                created_by=created_by,
            )
        )
    return IssuedToken(token_id, name, role, f"sy_{token_id}_{secret}")


async def revoke_token(db: Database, token_id: str, *, revoked_by: str, now: datetime) -> ApiToken:
    """Revoke a token at once; raises NotFound for an unknown id."""
    async with db.write() as session:
        row = await session.get(ApiToken, token_id)
        if row is None:
            raise NotFound(f"token {token_id} not found")
        if row.revoked_at is None:
            row.revoked_at = now
            row.revoked_by = revoked_by
        return row


async def list_tokens(db: Database) -> Sequence[ApiToken]:
    """Every token, newest first (no secrets: only their hashes are stored)."""
    async with db.read() as session:
        rows = await session.execute(select(ApiToken).order_by(ApiToken.created_at.desc()))
        return list(rows.scalars())

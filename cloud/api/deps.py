"""Request dependencies: the process runtime and bearer-token principals with roles."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cloud.errors import Forbidden, Unauthorized
from cloud.runtime import CloudRuntime
from cloud.settings import CloudSettings


class Role(IntEnum):
    """Roles, ordered: an operator can do all a viewer can."""

    VIEWER = 1
    OPERATOR = 2


@dataclass(frozen=True)
class Principal:
    """Who is calling."""

    name: str
    role: Role


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenAuthenticator:
    """Knows tokens only by their SHA-256; compares in constant time."""

    def __init__(self, tokens: dict[Role, str]) -> None:
        self._digests = [(role, _digest(token)) for role, token in tokens.items() if token]

    @classmethod
    def from_settings(cls, settings: CloudSettings) -> TokenAuthenticator:
        """Build from the configured operator and viewer tokens."""
        return cls(
            {
                Role.OPERATOR: settings.operator_token.get_secret_value(),
                Role.VIEWER: settings.viewer_token.get_secret_value(),
            }
        )

    def authenticate(self, token: str) -> Principal | None:
        """The principal a token belongs to, or None."""
        given = _digest(token)
        found: Role | None = None
        for role, digest in self._digests:
            if hmac.compare_digest(digest, given):
                found = role
        return Principal(found.name.lower(), found) if found is not None else None


_bearer = HTTPBearer(auto_error=False)


def get_runtime(request: Request) -> CloudRuntime:
    """The runtime of this process."""
    runtime: CloudRuntime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[CloudRuntime, Depends(get_runtime)]


def _principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("a bearer token is required")
    authenticator: TokenAuthenticator = request.app.state.authenticator
    principal = authenticator.authenticate(credentials.credentials)
    if principal is None:
        raise Unauthorized("unknown token")
    return principal


def require_viewer(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
    """Any authenticated caller."""
    return principal


def require_operator(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
    """Only operators."""
    if principal.role < Role.OPERATOR:
        raise Forbidden("this action needs the operator role")
    return principal


ViewerDep = Annotated[Principal, Depends(require_viewer)]
OperatorDep = Annotated[Principal, Depends(require_operator)]

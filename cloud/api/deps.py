"""Request dependencies: the process runtime and bearer-token principals with roles."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cloud.access.audit import AuditAction, AuditOutcome, AuditRecord, record_audit
from cloud.access.tokens import Principal, Role, TokenAuthenticator
from cloud.clock import utcnow
from cloud.errors import Forbidden, Unauthorized
from cloud.runtime import CloudRuntime

__all__ = [
    "OperatorDep",
    "Principal",
    "Role",
    "RuntimeDep",
    "TokenAuthenticator",
    "ViewerDep",
    "require_operator",
    "require_viewer",
]

_bearer = HTTPBearer(auto_error=False)


def get_runtime(request: Request) -> CloudRuntime:
    """The runtime of this process."""
    runtime: CloudRuntime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[CloudRuntime, Depends(get_runtime)]


async def _principal(
    request: Request,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    # RequestGuard authenticated callers of routes that take a body before reading it.
    authenticated: Principal | None = getattr(request.state, "principal", None)
    if authenticated is not None:
        return authenticated
    if credentials is None or credentials.scheme.lower() != "bearer":
        runtime.metrics.auth_failures.labels("missing").inc()
        raise Unauthorized("a bearer token is required")
    authenticator: TokenAuthenticator = request.app.state.authenticator
    principal = await authenticator.authenticate(credentials.credentials)
    if principal is None:
        runtime.metrics.auth_failures.labels("unknown").inc()
        raise Unauthorized("unknown token")
    return principal


def require_viewer(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
    """Any authenticated caller."""
    return principal


async def require_operator(
    request: Request, runtime: RuntimeDep, principal: Annotated[Principal, Depends(_principal)]
) -> Principal:
    """Only operators; a viewer's attempt is refused and kept in the audit log."""
    if principal.role < Role.OPERATOR:
        runtime.metrics.auth_failures.labels("forbidden").inc()
        route = request.scope.get("route")
        what = getattr(route, "path", request.url.path)
        await record_audit(
            runtime.db,
            AuditRecord(
                actor=principal,
                action=AuditAction.ACCESS_DENIED,
                target=f"{request.method} {what}",
                outcome=AuditOutcome.DENIED,
                at=utcnow(),
                detail={"path": request.url.path},
            ),
        )
        raise Forbidden("this action needs the operator role")
    return principal


ViewerDep = Annotated[Principal, Depends(require_viewer)]
OperatorDep = Annotated[Principal, Depends(require_operator)]

"""Before any route reads a body: refuse it if it is over the limit (by Content-Length and while
it streams), and authenticate the caller of a route that takes one, so nobody unauthenticated
gets a body read, let alone parsed (FastAPI parses bodies before dependencies run)."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud.access.tokens import TokenAuthenticator
from cloud.api.errors import error_body

log = logging.getLogger(__name__)

# Every route's body, the webhook's included: the largest real one is a few kilobytes.
MAX_BODY_BYTES = 64 * 1024
# Bearer tokens guard the JSON API; the screens' forms (cookie session with CSRF, or public and
# rate limited) authenticate in their routes, on bodies this middleware has already capped.
_API_PATH_PREFIX = "/api/"
# The one API route with a body that is not authenticated by a token (its HMAC covers the body).
_UNAUTHENTICATED_BODY_PATHS = frozenset({"/api/v1/payments/webhook"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class _BodyTooLarge(Exception):
    """The body grew past MAX_BODY_BYTES while streaming."""


class RequestGuard:
    """ASGI middleware: body limit on every route, authentication before a body is read."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        request = Request(scope)
        if _needs_token_first(scope["method"], scope["path"]):
            refusal = await _authenticate(request)
            if refusal is not None:
                await _answer(scope, receive, send, 401, "unauthorized", refusal)
                return
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            await _answer(scope, receive, send, 413, "payload_too_large", _TOO_LARGE)
            return
        await self._limited(scope, receive, send)

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        received_bytes = 0
        too_large = started = False

        async def counted_receive() -> Message:
            nonlocal received_bytes, too_large
            message = await receive()
            if message["type"] == "http.request":
                received_bytes += len(message.get("body", b""))
                if received_bytes > MAX_BODY_BYTES:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            # Whatever the route makes of a cut body (FastAPI: a 400) gives way to our 413.
            if too_large and not started:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._app(scope, counted_receive, tracked_send)
        except _BodyTooLarge:
            if started:
                raise
        if too_large and not started:
            await _answer(scope, receive, send, 413, "payload_too_large", _TOO_LARGE)


_TOO_LARGE = f"body larger than {MAX_BODY_BYTES} bytes"


def _needs_token_first(method: str, path: str) -> bool:
    """Whether a request must show a valid bearer token before its body is read."""
    return (
        method in _BODY_METHODS
        and path.startswith(_API_PATH_PREFIX)
        and path not in _UNAUTHENTICATED_BODY_PATHS
    )


async def _authenticate(request: Request) -> str | None:
    """None if the bearer token is valid (the principal is kept for the route), else why not."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    runtime = request.app.state.runtime
    if scheme.lower() != "bearer" or not token.strip():
        runtime.metrics.auth_failures.labels("missing").inc()
        return "a bearer token is required"
    authenticator: TokenAuthenticator = request.app.state.authenticator
    principal = await authenticator.authenticate(token.strip())
    if principal is None:
        runtime.metrics.auth_failures.labels("unknown").inc()
        return "unknown token"
    request.state.principal = principal
    return None


async def _answer(
    scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str
) -> None:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    # Connection: close, so the unread body is never taken for the next request.
    response = JSONResponse(
        error_body(code, message),
        status_code=status,
        headers={**(headers or {}), "Connection": "close"},
    )
    await response(scope, receive, send)

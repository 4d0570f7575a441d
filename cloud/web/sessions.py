"""Console sign-in: a cookie session (HttpOnly, SameSite=Strict) holding only an opaque id; the
token stays in this process's memory, is checked again on each request (revocation is at once)
and is never put in a URL. Every POST carries the session's CSRF token."""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request, Response

from cloud.access.tokens import Principal, TokenAuthenticator

COOKIE = "sy_console"
SESSION_TTL_S = 8 * 3600.0
MAX_SESSIONS = 10_000


@dataclass(frozen=True)
class ConsoleSession:
    """One signed-in browser: who, and the CSRF token its forms must echo."""

    principal: Principal
    csrf: str


@dataclass
class _Stored:
    token: str
    csrf: str
    expires_at: float


class ConsoleSessions:
    """Sessions of this process (a restart signs everyone out, which is safe)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._by_id: dict[str, _Stored] = {}

    def open(self, token: str) -> tuple[str, str]:
        """A new session for a token already authenticated: (session id, CSRF token)."""
        self._expire()
        while len(self._by_id) >= MAX_SESSIONS:
            del self._by_id[next(iter(self._by_id))]
        session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self._by_id[session_id] = _Stored(token, csrf, self._clock() + SESSION_TTL_S)
        return session_id, csrf

    def close(self, session_id: str) -> None:
        """Sign out."""
        self._by_id.pop(session_id, None)

    async def find(
        self, session_id: str | None, authenticator: TokenAuthenticator
    ) -> ConsoleSession | None:
        """The session and its principal now, or None (unknown, expired, token revoked)."""
        stored = self._by_id.get(session_id or "")
        if stored is None or stored.expires_at <= self._clock():
            return None
        principal = await authenticator.authenticate(stored.token)
        if principal is None:
            self.close(session_id or "")
            return None
        return ConsoleSession(principal, stored.csrf)

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, v in self._by_id.items() if v.expires_at <= now]:
            del self._by_id[key]


def csrf_valid(session: ConsoleSession, given: str | None) -> bool:
    """Whether a form echoed the session's CSRF token."""
    return bool(given) and hmac.compare_digest(session.csrf.encode(), (given or "").encode())


def set_session_cookie(request: Request, response: Response, session_id: str) -> None:
    """The cookie: script cannot read it, other sites cannot send it."""
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(SESSION_TTL_S),
        path="/console",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )

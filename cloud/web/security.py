"""Security headers for the screens and the rate limit of consumer lookups."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Swagger UI loads its own assets from a CDN; the API's docs keep FastAPI's defaults.
_UNGUARDED_PREFIXES = ("/docs", "/redoc")


def content_security_policy(extra_script_src: str = "", extra_frame_src: str = "") -> str:
    """Only the app's own scripts, styles and connections; nothing inline, no framing."""
    script = " ".join(filter(None, ["'self'", extra_script_src]))
    frame = extra_frame_src or "'none'"
    return (
        f"default-src 'self'; script-src {script}; style-src 'self'; img-src 'self' data:;"
        f" connect-src 'self'; frame-src {frame}; form-action 'self'; frame-ancestors 'none';"
        " base-uri 'none'; object-src 'none'"
    )


class SecurityHeaders:
    """ASGI middleware adding the CSP and its companions to every response outside the API
    docs. Pure ASGI (not BaseHTTPMiddleware), so request bodies and event streams pass
    through untouched."""

    def __init__(self, app: ASGIApp, csp: str) -> None:
        self._app = app
        self._headers = [
            (name.lower().encode(), value.encode())
            for name, value in {
                "Content-Security-Policy": csp,
                "X-Content-Type-Options": "nosniff",
                "X-Frame-Options": "DENY",
                "Referrer-Policy": "no-referrer",
                "Cross-Origin-Opener-Policy": "same-origin",
                "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
            }.items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to the response's start."""
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(_UNGUARDED_PREFIXES):
            await self._app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in self._headers if n not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self._app(scope, receive, send_with_headers)


class SlidingWindowLimit:
    """At most `limit` events per key in any `window_s` (in this process's memory)."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = limit
        self._window_s = window_s
        self._max_keys = max_keys
        self._clock = clock
        self._events: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        """Count one event for `key`; False when it is over the limit (and then not counted)."""
        now = self._clock()
        events = self._events.get(key)
        if events is None:
            if len(self._events) >= self._max_keys:
                self._forget_idle(now)
            events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self._window_s:
            events.popleft()
        if len(events) >= self._limit:
            return False
        events.append(now)
        return True

    def _forget_idle(self, now: float) -> None:
        # Bounded memory: drop keys with no event in the window, then the oldest if still full.
        for key in [k for k, v in self._events.items() if not v or v[-1] <= now - self._window_s]:
            del self._events[key]
        while len(self._events) >= self._max_keys:
            del self._events[next(iter(self._events))]

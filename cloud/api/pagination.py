"""Opaque cursors for keyset pagination."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Query

from cloud.errors import Unprocessable

LimitQuery = Annotated[int, Query(ge=1, le=1000, description="page size")]
# Exactly the strings encode_cursor makes (URL-safe base64 with padding), so that every cursor
# the schema admits can be decoded.
CURSOR_PATTERN = (
    r"^(?:[A-Za-z0-9_-]{4}){0,49}(?:[A-Za-z0-9_-]{4}|[A-Za-z0-9_-]{3}=|[A-Za-z0-9_-]{2}==)$"
)
CursorQuery = Annotated[
    str | None, Query(max_length=200, pattern=CURSOR_PATTERN, description="from `next_cursor`")
]


def encode_cursor(last_key: str) -> str:
    """The cursor that continues after this key."""
    return base64.urlsafe_b64encode(last_key.encode()).decode()


def decode_cursor(cursor: str | None) -> str | None:
    """The key a cursor continues after; 422 for a cursor we did not issue."""
    if cursor is None:
        return None
    try:
        raw = base64.b64decode(cursor.encode(), altchars=b"-_", validate=True)
        # A cursor is only a bound to continue after; a mangled one still names a bound. NUL
        # cannot be sent to PostgreSQL in a string, so it becomes a replacement character too.
        key = raw.decode(errors="replace").replace("\x00", "\ufffd")
        if not key:
            raise ValueError("empty cursor")
        return key
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise Unprocessable("cursor is not valid") from exc

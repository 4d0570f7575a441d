"""Opaque cursors for keyset pagination."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Query

from cloud.errors import Unprocessable

LimitQuery = Annotated[int, Query(ge=1, le=1000, description="page size")]
CursorQuery = Annotated[str | None, Query(max_length=200, description="from `next_cursor`")]


def encode_cursor(last_key: str) -> str:
    """The cursor that continues after this key."""
    return base64.urlsafe_b64encode(last_key.encode()).decode()


def decode_cursor(cursor: str | None) -> str | None:
    """The key a cursor continues after; 422 for a cursor we did not issue."""
    if cursor is None:
        return None
    try:
        key = base64.b64decode(cursor.encode(), altchars=b"-_", validate=True).decode()
        if not key:
            raise ValueError("empty cursor")
        return key
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise Unprocessable("cursor is not valid") from exc

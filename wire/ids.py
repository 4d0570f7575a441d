"""Identifier types shared by every part: meter, DCU and account ids, time-ordered command ids."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from typing import Annotated

from pydantic import StringConstraints

# One MQTT topic level each: no '/', '+', '#', no leading '$', no whitespace.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)

MeterId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
DcuId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
AccountId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
CommandId = Annotated[
    str,
    StringConstraints(
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
    ),
]


def is_valid_id(value: str) -> bool:
    """Tell whether a meter, DCU or account id may be used as one topic level."""
    return bool(_ID_RE.match(value))


def gateway_client_id(dcu_id: str) -> str:
    """The one MQTT client id the broker lets a DCU's gateway use (stable: it keeps a session)."""
    return f"edge-{dcu_id}"


class _Uuid7Clock:
    """Monotonic UUIDv7 source: a 12-bit counter orders ids minted in the same millisecond."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0

    def next(self, now_ms: int | None = None) -> uuid.UUID:
        with self._lock:
            ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
            if ms <= self._last_ms:
                ms = self._last_ms
                self._counter += 1
                if self._counter > 0xFFF:
                    ms += 1
                    self._counter = 0
            else:
                self._counter = 0
            self._last_ms = ms
            counter = self._counter
        rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
        value = (ms & ((1 << 48) - 1)) << 80
        value |= 0x7 << 76
        value |= counter << 64
        value |= 0b10 << 62
        value |= rand_b
        return uuid.UUID(int=value)


_CLOCK = _Uuid7Clock()


def new_command_id() -> str:
    """Return a new time-ordered command id (UUIDv7, RFC 9562)."""
    return str(_CLOCK.next())


def uuid7_ms(command_id: str) -> int:
    """Return the Unix millisecond timestamp embedded in a UUIDv7."""
    return uuid.UUID(command_id).int >> 80

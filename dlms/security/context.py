"""Security suite 0 parameters: security control byte, system title, keys, invocation counter."""

from dataclasses import dataclass, field
from typing import Self

SUITE_0 = 0
KEY_SIZE = 16
TAG_SIZE = 12  # GCM tags are truncated to 96 bits in DLMS
SYSTEM_TITLE_SIZE = 8
INVOCATION_COUNTER_SIZE = 4
MAX_INVOCATION_COUNTER = 0xFFFF_FFFF

_SUITE_MASK = 0x0F
_AUTHENTICATED = 0x10
_ENCRYPTED = 0x20
_BROADCAST_KEY = 0x40
_COMPRESSED = 0x80


@dataclass(frozen=True, slots=True)
class SecurityControl:
    """The security control byte: suite id (bits 0-3), then one flag per bit 4-7."""

    suite: int = SUITE_0
    authenticated: bool = False
    encrypted: bool = False
    broadcast_key: bool = False
    compressed: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.suite <= _SUITE_MASK:
            raise ValueError(f"security suite {self.suite} outside 0-15")

    def to_byte(self) -> int:
        """The octet on the wire."""
        return (
            self.suite
            | self.authenticated * _AUTHENTICATED
            | self.encrypted * _ENCRYPTED
            | self.broadcast_key * _BROADCAST_KEY
            | self.compressed * _COMPRESSED
        )

    @classmethod
    def from_byte(cls, octet: int) -> Self:
        """Decode one octet; every value is a well-formed byte, policy is checked elsewhere."""
        return cls(
            octet & _SUITE_MASK,
            bool(octet & _AUTHENTICATED),
            bool(octet & _ENCRYPTED),
            bool(octet & _BROADCAST_KEY),
            bool(octet & _COMPRESSED),
        )


AUTHENTICATED_AND_ENCRYPTED = SecurityControl(authenticated=True, encrypted=True)  # 0x30
AUTHENTICATED_ONLY = SecurityControl(authenticated=True)  # 0x10, also HLS-GMAC's


@dataclass(frozen=True, slots=True)
class SystemTitle:
    """A party's 8-byte system title (3-letter FLAG manufacturer id, then 5 unique bytes)."""

    value: bytes

    def __post_init__(self) -> None:
        if len(self.value) != SYSTEM_TITLE_SIZE:
            raise ValueError(f"system title is {len(self.value)} bytes, not 8")

    def __bytes__(self) -> bytes:
        return self.value

    def __str__(self) -> str:
        return self.value.hex().upper()


@dataclass(frozen=True, slots=True)
class SecurityKeys:
    """One association's global unicast encryption key (EK) and authentication key (AK)."""

    # repr=False: a dataclass repr in a log line or traceback must not print a key.
    encryption_key: bytes = field(repr=False)
    authentication_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        for name, key in (
            ("encryption", self.encryption_key),
            ("authentication", self.authentication_key),
        ):
            if len(key) != KEY_SIZE:
                raise ValueError(f"{name} key is {len(key)} bytes; suite 0 needs 16")


def check_invocation_counter(value: int) -> None:
    """ValueError unless `value` fits the 4-byte invocation counter."""
    if not 0 <= value <= MAX_INVOCATION_COUNTER:
        raise ValueError(f"invocation counter {value} outside 0-{MAX_INVOCATION_COUNTER}")


def initialization_vector(system_title: SystemTitle, invocation_counter: int) -> bytes:
    """The 12-byte GCM IV: the sender's system title, then its invocation counter."""
    check_invocation_counter(invocation_counter)
    return system_title.value + invocation_counter.to_bytes(INVOCATION_COUNTER_SIZE, "big")

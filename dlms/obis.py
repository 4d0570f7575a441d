"""OBIS logical names and the IS 15959-2 objects Switchyard reads and switches."""

from dataclasses import dataclass
from typing import Self

from dlms.errors import DlmsDecodeError

OBIS_SIZE = 6


@dataclass(frozen=True, slots=True)
class Obis:
    """A COSEM logical name: six value groups A.B.C.D.E.F, each 0-255."""

    a: int
    b: int
    c: int
    d: int
    e: int
    f: int = 255

    def __post_init__(self) -> None:
        for group in (self.a, self.b, self.c, self.d, self.e, self.f):
            if not 0 <= group <= 255:
                raise ValueError(f"OBIS value group {group} outside 0-255")

    @classmethod
    def parse(cls, text: str) -> Self:
        """Parse the dotted form "0.0.96.3.10.255" (also "0-0:96.3.10.255")."""
        groups = text.replace("-", ".").replace(":", ".").split(".")
        if len(groups) != OBIS_SIZE or not all(g.isdigit() for g in groups):
            raise ValueError(f"not an OBIS code: {text!r}")
        a, b, c, d, e, f = (int(g) for g in groups)
        return cls(a, b, c, d, e, f)

    @classmethod
    def from_bytes(cls, raw: bytes, offset: int = 0) -> Self:
        """Read the 6-byte logical name the wire carries."""
        if len(raw) != OBIS_SIZE:
            raise DlmsDecodeError(f"logical name is {len(raw)} bytes, not 6", offset)
        a, b, c, d, e, f = raw
        return cls(a, b, c, d, e, f)

    def to_bytes(self) -> bytes:
        """The 6 bytes sent on the wire."""
        return bytes((self.a, self.b, self.c, self.d, self.e, self.f))

    def __str__(self) -> str:
        return f"{self.a}.{self.b}.{self.c}.{self.d}.{self.e}.{self.f}"


# Checked (2026) against the pinned vectors of DLMS-NOTES.md (disconnect control, clock) and
# against several independent head-end and meter-reading code bases for Indian meters, which
# agree on every code below. Not checked against the IS 15959-2 text itself, which we do not
# have: one code base numbered the event-code objects one higher (control = 0.0.96.11.7.255),
# the others, and the Gurux India object list quoted in DLMS-NOTES, use 0.0.96.11.6.255.
DISCONNECT_CONTROL = Obis(0, 0, 96, 3, 10)
CLOCK = Obis(0, 0, 1, 0, 0)
METER_SERIAL_NUMBER = Obis(0, 0, 96, 1, 0)
CURRENT_ASSOCIATION = Obis(0, 0, 40, 0, 0)
BLOCK_LOAD_PROFILE = Obis(1, 0, 99, 1, 0)
CONTROL_EVENTS_PROFILE = Obis(0, 0, 99, 98, 6)
CONTROL_EVENT_CODE = Obis(0, 0, 96, 11, 6)
INSTANTANEOUS_PROFILE = Obis(1, 0, 94, 91, 0)

# Instantaneous registers (IC 3). C=12/11 are the "any phase" voltage and current a
# single-phase meter reports; 7 in group D is the instantaneous value, 8 the cumulative energy.
VOLTAGE = Obis(1, 0, 12, 7, 0)
PHASE_CURRENT = Obis(1, 0, 11, 7, 0)
ACTIVE_POWER = Obis(1, 0, 1, 7, 0)
POWER_FACTOR = Obis(1, 0, 13, 7, 0)
FREQUENCY = Obis(1, 0, 14, 7, 0)
ENERGY_IMPORT_KWH = Obis(1, 0, 1, 8, 0)
ENERGY_EXPORT_KWH = Obis(1, 0, 2, 8, 0)
ENERGY_APPARENT_KVAH = Obis(1, 0, 9, 8, 0)

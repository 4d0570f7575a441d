"""The 12-byte COSEM date-time: fields, wildcards, deviation and clock status."""

import datetime as dt
from dataclasses import dataclass
from enum import IntFlag
from typing import Self

from dlms.errors import DlmsDecodeError

DATE_TIME_SIZE = 12
YEAR_NOT_SPECIFIED = 0xFFFF
NOT_SPECIFIED = 0xFF
DEVIATION_NOT_SPECIFIED = -0x8000


class ClockStatus(IntFlag):
    """Clock status bits; 0xFF (all set) means "not specified"."""

    OK = 0
    INVALID_VALUE = 0x01
    DOUBTFUL_VALUE = 0x02
    DIFFERENT_CLOCK_BASE = 0x04
    INVALID_CLOCK_STATUS = 0x08
    DAYLIGHT_SAVING_ACTIVE = 0x80


@dataclass(frozen=True, slots=True)
class CosemDateTime:
    """A date-time exactly as a meter sends it, wildcards included.

    Fields hold the raw values so that any 12 bytes from a meter decode and re-encode
    unchanged; `to_datetime` is where wildcards become an error. `deviation_min` follows
    the Blue Book: minutes from local time to UTC, so IST (UTC+05:30) is -330.
    """

    year: int
    month: int
    day: int
    hour: int
    minute: int
    second: int
    hundredths: int = 0
    day_of_week: int = NOT_SPECIFIED
    deviation_min: int = DEVIATION_NOT_SPECIFIED
    clock_status: ClockStatus = ClockStatus.OK

    def __post_init__(self) -> None:
        if not 0 <= self.year <= 0xFFFF:
            raise ValueError(f"year {self.year} outside 0-65535")
        for name in ("month", "day", "hour", "minute", "second", "hundredths", "day_of_week"):
            if not 0 <= getattr(self, name) <= 0xFF:
                raise ValueError(f"{name} {getattr(self, name)} outside 0-255")
        if not -0x8000 <= self.deviation_min <= 0x7FFF:
            raise ValueError(f"deviation {self.deviation_min} outside a long")
        if not 0 <= int(self.clock_status) <= 0xFF:
            raise ValueError(f"clock status {int(self.clock_status)} outside 0-255")

    @classmethod
    def from_bytes(cls, raw: bytes, offset: int = 0) -> Self:
        """Decode the 12 bytes; only the length is checked, wildcards are kept."""
        if len(raw) != DATE_TIME_SIZE:
            raise DlmsDecodeError(f"date-time is {len(raw)} bytes, not 12", offset)
        return cls(
            year=int.from_bytes(raw[0:2], "big"),
            month=raw[2],
            day=raw[3],
            day_of_week=raw[4],
            hour=raw[5],
            minute=raw[6],
            second=raw[7],
            hundredths=raw[8],
            deviation_min=int.from_bytes(raw[9:11], "big", signed=True),
            clock_status=ClockStatus(raw[11]),
        )

    def to_bytes(self) -> bytes:
        """The 12 bytes of the octet-string."""
        return (
            self.year.to_bytes(2, "big")
            + bytes((self.month, self.day, self.day_of_week))
            + bytes((self.hour, self.minute, self.second, self.hundredths))
            + self.deviation_min.to_bytes(2, "big", signed=True)
            + bytes((int(self.clock_status),))
        )

    @classmethod
    def from_datetime(cls, moment: dt.datetime, clock_status: ClockStatus = ClockStatus.OK) -> Self:
        """Encode a datetime; a naive one gets deviation "not specified".

        Day of week is left unspecified, as dlms-cosem does, so that our bytes and its
        bytes for the same moment agree.
        """
        offset = moment.utcoffset()
        deviation = (
            DEVIATION_NOT_SPECIFIED if offset is None else -int(offset.total_seconds() // 60)
        )
        return cls(
            year=moment.year,
            month=moment.month,
            day=moment.day,
            hour=moment.hour,
            minute=moment.minute,
            second=moment.second,
            hundredths=moment.microsecond // 10_000,
            deviation_min=deviation,
            clock_status=clock_status,
        )

    def to_datetime(self) -> dt.datetime:
        """The moment this names; aware unless the deviation is unspecified.

        Raises ValueError for wildcards (a schedule entry is not a moment).
        """
        wildcards = self.year == YEAR_NOT_SPECIFIED or NOT_SPECIFIED in (
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
        )
        if wildcards:
            raise ValueError(f"date-time with wildcards is not a moment: {self}")
        zone = None
        if self.deviation_min != DEVIATION_NOT_SPECIFIED:
            zone = dt.timezone(dt.timedelta(minutes=-self.deviation_min))
        hundredths = 0 if self.hundredths == NOT_SPECIFIED else self.hundredths
        return dt.datetime(
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            hundredths * 10_000,
            tzinfo=zone,
        )

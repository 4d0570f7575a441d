"""The holiday calendar: the shipped national list, a DISCOM's own file, and extra dates."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cloud.errors import CloudError

SHIPPED_HOLIDAYS = Path(__file__).with_name("data") / "holidays_india_2026_2027.json"


class HolidayFileError(CloudError):
    """A holiday file that cannot be read or does not follow the format."""


class _Holiday(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: date
    name: str = Field(min_length=1, max_length=120)
    provisional: bool = False


class _HolidayFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    note: str = ""
    holidays: list[_Holiday]


@dataclass(frozen=True)
class HolidayCalendar:
    """Dates on which the policy never disconnects, with where the list came from."""

    holidays: Mapping[date, str]
    source: str
    note: str = ""
    provisional: frozenset[date] = frozenset()

    def name_of(self, day: date) -> str | None:
        """The holiday's name, or None on a working day."""
        return self.holidays.get(day)

    @property
    def years(self) -> list[int]:
        """The years the calendar has dates for."""
        return sorted({day.year for day in self.holidays})


def load_calendar(path: Path | None = None, extra: Iterable[date] = ()) -> HolidayCalendar:
    """Read a holiday file (the shipped one by default) and add extra dates."""
    path = path or SHIPPED_HOLIDAYS
    try:
        parsed = _HolidayFile.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError) as exc:
        raise HolidayFileError(f"holiday file {path}: {exc}") from exc
    days = {h.date: h.name for h in parsed.holidays}
    for day in extra:
        days.setdefault(day, "extra holiday (SWITCHYARD_POLICY_EXTRA_HOLIDAYS)")
    return HolidayCalendar(
        MappingProxyType(dict(sorted(days.items()))),
        parsed.source,
        parsed.note,
        frozenset(h.date for h in parsed.holidays if h.provisional),
    )

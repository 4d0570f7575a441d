"""Typed configuration of the disconnection policy, read from `SWITCHYARD_POLICY_*`."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloud.policy.calendar import HolidayFileError, load_calendar


class Cohort(BaseModel):
    """Meters installed between two dates (inclusive) that the policy may disconnect."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=64)]
    installed_from: date
    installed_to: date

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.installed_from > self.installed_to:
            raise ValueError(f"cohort {self.name}: installed_from is after installed_to")
        return self

    def contains(self, installed_on: date) -> bool:
        """Whether a meter installed on this date belongs to the cohort."""
        return self.installed_from <= installed_on <= self.installed_to


FIRST_COHORT = Cohort(
    name="2020-2024", installed_from=date(2020, 1, 1), installed_to=date(2024, 12, 31)
)


class PolicySettings(BaseSettings):
    """Every knob of the disconnection policy, with the defaults the README documents."""

    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_POLICY_", extra="ignore")

    timezone: str = "Asia/Kolkata"
    grace_days: int = Field(3, ge=0, le=365)
    min_overdue_paise: int = Field(10_000, ge=0)
    notice_days: int = Field(15, ge=0, le=365)
    window_start: time = time(10, 0)
    window_end: time = time(17, 0)
    allowed_weekdays: list[Annotated[int, Field(ge=0, le=6)]] = Field(
        default_factory=lambda: [0, 1, 2, 3, 4, 5]
    )
    closed_saturdays: list[Annotated[int, Field(ge=1, le=5)]] = Field(default_factory=lambda: [2])
    holidays_file: Path | None = None
    extra_holidays: list[date] = Field(default_factory=list)
    cohorts: list[Cohort] = Field(default_factory=lambda: [FIRST_COHORT])
    max_dcu_share_percent: int = Field(20, ge=1, le=100)
    max_per_dcu_per_run: int = Field(100, ge=1)
    max_per_dcu_per_hour: int = Field(300, ge=1)
    command_ttl_s: int = Field(900, ge=60)
    reminder_days_before: int = Field(3, ge=0, le=60)
    schedule: list[time] = Field(default_factory=list)
    scheduler_tick_s: float = Field(30.0, gt=0)
    lease_ttl_s: float = Field(900.0, gt=0)
    # Tests and demos only: evaluate every rule as if it were this instant.
    clock: datetime | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("clock")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("the policy clock needs a UTC offset, e.g. 2026-12-01T11:00:00+05:30")
        return value

    @field_validator("window_start", "window_end", "schedule")
    @classmethod
    def _naive_local_times(cls, value: time | list[time]) -> time | list[time]:
        for moment in value if isinstance(value, list) else [value]:
            if moment.tzinfo is not None:
                raise ValueError("window and schedule times are local: give no UTC offset")
        return value

    @model_validator(mode="after")
    def _window_ordered(self) -> Self:
        if self.window_start >= self.window_end:
            raise ValueError("window_start must be before window_end")
        return self

    @field_validator("holidays_file")
    @classmethod
    def _readable_calendar(cls, value: Path | None) -> Path | None:
        # Read it now, so a bad file stops the process at start with the reason.
        if value is not None:
            try:
                load_calendar(value)
            except HolidayFileError as exc:
                raise ValueError(str(exc)) from exc
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The zone every rule is evaluated in."""
        return ZoneInfo(self.timezone)

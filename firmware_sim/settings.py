"""The simulator's settings, read from `SWITCHYARD_SIM_*` environment variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from wire.ids import MeterId


class SimSettings(BaseSettings):
    """Which fleet to simulate, where its link listens, and what faults the link injects."""

    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_SIM_", extra="ignore")

    fleet_file: Path | None = None
    # Without a fleet file, a demo fleet is generated: the same numbers give the same meters.
    meters: Annotated[int, Field(ge=1)] = 200
    gateways: Annotated[int, Field(ge=1)] = 2
    disconnected_share: Annotated[float, Field(ge=0, le=1)] = 0.0
    # Fixes the generated fleet, every household's load curve and the link's fault dice.
    seed: int = 1
    link_host: str = "127.0.0.1"
    link_port: Annotated[int, Field(ge=0, le=65535)] = 7070
    latency_ms: Annotated[float, Field(ge=0)] = 0.0
    loss: Annotated[float, Field(ge=0, le=1)] = 0.0
    # NoDecode: the environment may say "MTR000001,MTR000002" as well as a JSON list.
    unreachable: Annotated[list[MeterId], NoDecode] = Field(default_factory=list)
    time_scale: Annotated[float, Field(gt=0)] = 1.0
    # The meters' non-volatile memory (firmware_sim.store); None: state lives in RAM only.
    state_dir: Path | None = None
    log_level: str = "INFO"

    @field_validator("unreachable", mode="before")
    @classmethod
    def _split_meter_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _gateways_fit_meters(self) -> Self:
        if self.fleet_file is None and self.gateways > self.meters:
            raise ValueError(f"{self.gateways} gateways cannot share {self.meters} meters")
        return self

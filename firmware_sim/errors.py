"""The simulator's exception tree: bad fleet files, impossible meter configurations."""

from __future__ import annotations

from pathlib import Path


class SimError(Exception):
    """Base of every error the meter simulator raises."""


class FleetFileError(SimError):
    """A fleet file that cannot be read or does not describe a valid fleet."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"fleet file {path}: {reason}")
        self.path = path
        self.reason = reason


class ControlModeError(SimError, ValueError):
    """A Disconnect-control mode outside 0..6, or a start state the mode cannot be in."""

    def __init__(self, control_mode: int, reason: str) -> None:
        super().__init__(f"control_mode {control_mode}: {reason}")
        self.control_mode = control_mode
        self.reason = reason

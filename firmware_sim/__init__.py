"""Simulated smart meters: DLMS IC 70 relays, registers, load profile, events, the meter link."""

from firmware_sim.app import running_link, serve
from firmware_sim.clock import Clock, ManualClock, ScaledClock
from firmware_sim.disconnect_control import DisconnectControl, Method, Outcome, Refusal
from firmware_sim.errors import ControlModeError, FleetFileError, SimError
from firmware_sim.faults import LinkFaults
from firmware_sim.fleet import (
    Fleet,
    FleetSpec,
    MeterSpec,
    generate_fleet,
    load_fleet_file,
    write_fleet_file,
)
from firmware_sim.link_server import LinkServer, LinkStats
from firmware_sim.load_curve import LoadCurve
from firmware_sim.meter import SimMeter
from firmware_sim.settings import SimSettings

__all__ = [
    "Clock",
    "ControlModeError",
    "DisconnectControl",
    "Fleet",
    "FleetFileError",
    "FleetSpec",
    "LinkFaults",
    "LinkServer",
    "LinkStats",
    "LoadCurve",
    "ManualClock",
    "MeterSpec",
    "Method",
    "Outcome",
    "Refusal",
    "ScaledClock",
    "SimError",
    "SimMeter",
    "SimSettings",
    "generate_fleet",
    "load_fleet_file",
    "running_link",
    "serve",
    "write_fleet_file",
]

"""What the meters on a link answer to each operation, and the error answers of the link itself."""

from __future__ import annotations

import json
from dataclasses import dataclass

from firmware_sim.meter import SimMeter
from wire.meterlink import LinkError, LinkOp, LinkRequest, LinkResponse

_SWITCHING = {
    LinkOp.DISCONNECT: SimMeter.remote_disconnect,
    LinkOp.RECONNECT: SimMeter.remote_reconnect,
    LinkOp.BUTTON: SimMeter.press_button,
}


@dataclass(frozen=True, slots=True)
class Job:
    """An admitted request and the meters it reaches, to be answered after the link delay."""

    request: LinkRequest
    meters: tuple[SimMeter, ...]
    delay_s: float


def perform(job: Job) -> LinkResponse:
    """What the addressed meters answer once the request reaches them."""
    request = job.request
    if request.op is LinkOp.READINGS:
        return LinkResponse(
            id=request.id, ok=True, readings=[meter.reading() for meter in job.meters]
        )
    meter = job.meters[0]
    if request.op is LinkOp.PROFILE:
        profile = meter.profile_since(request.since_ms or 0)
        return LinkResponse(id=request.id, ok=True, profile=profile)
    if request.op is LinkOp.EVENTS:
        events = meter.events_since(request.since_seq or 0)
        return LinkResponse(id=request.id, ok=True, events=events)
    switching = _SWITCHING.get(request.op)
    if switching is None:
        return LinkResponse(id=request.id, ok=True, status=meter.status)
    outcome = switching(meter)
    # A refused method is not an error: the status shows the state it stayed in, the message why.
    message = "" if outcome.applied else outcome.describe()
    return LinkResponse(id=request.id, ok=True, status=meter.status, message=message)


def error_answer(request_id: int, error: LinkError, message: str) -> LinkResponse:
    """An answer that reports a request the link could not serve."""
    return LinkResponse(id=request_id, ok=False, error=error, message=message)


def salvage_id(line: bytes) -> int:
    """The id of a frame that failed validation, if it has a usable one; else 0."""
    try:
        frame = json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return 0
    request_id = frame.get("id") if isinstance(frame, dict) else None
    if type(request_id) is int and request_id >= 1:
        return request_id
    return 0

"""The meter-link protocol between a gateway (client) and the meters it reaches (server).

This module is the one place the protocol is defined; `docs/meter-link.md` explains it in prose.

Transport: one TCP connection per gateway. Each frame is one line of UTF-8 JSON ended by "\\n"
(at most `MAX_FRAME_BYTES`). The client sends `LinkRequest` frames, each with an `id` unique on
the connection; the server answers each with one `LinkResponse` carrying the same `id`. Requests
are pipelined: many may be outstanding and answers may come back in any order.

The link is not reliable, on purpose: a request may be delayed (latency), lost (no answer ever
comes) or addressed to an unreachable meter (no answer ever comes). The client therefore puts a
deadline on every request; after a timeout it does not know whether a relay operation happened,
so it must read the meter before trying again.

Operations (`LinkOp`):

- `hello` (`dcu_id`) -> `meters`: bind this connection to a DCU and answer its roster, each
  meter with its status (`reachable=False` for a meter that does not answer now). Must come first.
- `read` (`meter_id`) -> `status`: read the Disconnect-control object (IC 70) of one meter.
- `disconnect` (`meter_id`) -> `status`: invoke `remote_disconnect`; the status read after it.
- `reconnect` (`meter_id`) -> `status`: invoke `remote_reconnect`; the status read after it.
- `readings` (`meter_ids`, optional) -> `readings`: instantaneous registers (default: all meters).
- `profile` (`meter_id`, `since_ms`) -> `profile`: 15-minute load-profile blocks starting at or
  after `since_ms`.
- `events` (`meter_id`, `since_seq`) -> `events`: the meter's event log from `since_seq` on.
- `button` (`meter_id`) -> `status`: the consumer presses the meter's push button.
- `fault` (`latency_ms`, `loss`, `unreachable`): simulator only, changes link faults at run time.

A meter that is not on the bound DCU's link answers `error="unknown_meter"`; a request before
`hello` answers `error="not_bound"`; a frame that does not parse answers `error="bad_request"`
with `id=0` when no id could be read.
"""

from __future__ import annotations

import asyncio
from enum import IntEnum, StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wire.errors import MalformedMessage
from wire.ids import DcuId, MeterId
from wire.messages import LoadProfileBlock, Reading, RelayState

MAX_FRAME_BYTES = 1 << 20


class LinkOp(StrEnum):
    """Operations a gateway can ask of the meters on its link."""

    HELLO = "hello"
    READ = "read"
    DISCONNECT = "disconnect"
    RECONNECT = "reconnect"
    READINGS = "readings"
    PROFILE = "profile"
    EVENTS = "events"
    BUTTON = "button"
    FAULT = "fault"


class LinkError(StrEnum):
    """Error codes a link server answers with."""

    BAD_REQUEST = "bad_request"
    NOT_BOUND = "not_bound"
    UNKNOWN_METER = "unknown_meter"


class ControlState(IntEnum):
    """DLMS IC 70 attribute 3, control_state."""

    DISCONNECTED = 0
    CONNECTED = 1
    READY_FOR_RECONNECTION = 2

    @property
    def relay(self) -> RelayState:
        """The wire name of this control state."""
        return _RELAY_OF[self]


_RELAY_OF = {
    ControlState.DISCONNECTED: RelayState.DISCONNECTED,
    ControlState.CONNECTED: RelayState.CONNECTED,
    ControlState.READY_FOR_RECONNECTION: RelayState.READY_FOR_RECONNECTION,
}


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MeterStatus(_Frame):
    """The Disconnect-control object of one meter, as read over the link."""

    meter_id: MeterId
    control_state: ControlState
    output_state: bool
    control_mode: Annotated[int, Field(ge=0, le=6)]
    last_event_seq: Annotated[int, Field(ge=0)] = 0
    # False only in a `hello` roster: the meter is registered on the DCU but does not answer now,
    # and the other fields are its last known state.
    reachable: bool = True

    @property
    def relay(self) -> RelayState:
        """The relay state in wire terms."""
        return self.control_state.relay


class LinkEvent(_Frame):
    """One entry of a meter's event log."""

    seq: Annotated[int, Field(ge=1)]
    code: int
    at_ms: Annotated[int, Field(ge=0)]
    control_state: ControlState
    detail: str = ""


class LinkRequest(_Frame):
    """A request frame, gateway to meters."""

    id: Annotated[int, Field(ge=1)]
    op: LinkOp
    dcu_id: DcuId | None = None
    meter_id: MeterId | None = None
    meter_ids: list[MeterId] | None = None
    since_ms: Annotated[int, Field(ge=0)] | None = None
    since_seq: Annotated[int, Field(ge=0)] | None = None
    latency_ms: Annotated[float, Field(ge=0)] | None = None
    loss: Annotated[float, Field(ge=0, le=1)] | None = None
    unreachable: list[MeterId] | None = None


class LinkResponse(_Frame):
    """An answer frame, meters to gateway; `id` echoes the request's."""

    id: Annotated[int, Field(ge=0)]
    ok: bool
    error: LinkError | None = None
    message: str = ""
    status: MeterStatus | None = None
    meters: list[MeterStatus] | None = None
    readings: list[Reading] | None = None
    profile: list[LoadProfileBlock] | None = None
    events: list[LinkEvent] | None = None


def encode_frame(frame: LinkRequest | LinkResponse) -> bytes:
    """Serialise one frame, newline included."""
    return frame.model_dump_json(exclude_none=True).encode() + b"\n"


def decode_request(line: bytes) -> LinkRequest:
    """Parse one request line; raise MalformedMessage on any defect."""
    try:
        return LinkRequest.model_validate_json(line)
    except ValidationError as exc:
        raise MalformedMessage("LinkRequest", str(exc.errors()[0].get("msg"))) from exc


def decode_response(line: bytes) -> LinkResponse:
    """Parse one response line; raise MalformedMessage on any defect."""
    try:
        return LinkResponse.model_validate_json(line)
    except ValidationError as exc:
        raise MalformedMessage("LinkResponse", str(exc.errors()[0].get("msg"))) from exc


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """Read one frame line; None at end of stream. Over-long frames raise MalformedMessage."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError as exc:
        raise MalformedMessage("frame", f"longer than {MAX_FRAME_BYTES} bytes") from exc
    return line

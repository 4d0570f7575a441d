"""A blocking meter-link client for tests: a meter's status and event log, from the simulator."""

from __future__ import annotations

import itertools
import socket

from wire.meterlink import (
    LinkEvent,
    LinkOp,
    LinkRequest,
    LinkResponse,
    MeterStatus,
    decode_response,
    encode_frame,
)


class MeterLinkProbe:
    """One connection bound to a DCU; one request at a time, so answers come back in order."""

    def __init__(self, host: str, port: int, dcu_id: str, timeout_s: float = 5.0) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout_s)
        self._reader = self._sock.makefile("rb")
        self._ids = itertools.count(1)
        self.roster = self._call(LinkOp.HELLO, dcu_id=dcu_id).meters or []

    def _call(self, op: LinkOp, **fields: object) -> LinkResponse:
        request = LinkRequest(id=next(self._ids), op=op, **fields)  # type: ignore[arg-type]
        self._sock.sendall(encode_frame(request))
        response = decode_response(self._reader.readline())
        assert response.id == request.id and response.ok, response
        return response

    def status(self, meter_id: str) -> MeterStatus:
        """The meter's Disconnect-control object."""
        status = self._call(LinkOp.READ, meter_id=meter_id).status
        assert status is not None
        return status

    def events(self, meter_id: str) -> list[LinkEvent]:
        """The meter's whole event log."""
        return self._call(LinkOp.EVENTS, meter_id=meter_id, since_seq=0).events or []

    def relay_events(self, meter_id: str) -> list[int]:
        """Codes of the meter's relay events (301 disconnected, 302 connected), in order."""
        return [e.code for e in self.events(meter_id) if e.code in (301, 302)]

    def close(self) -> None:
        """Close the connection."""
        self._reader.close()
        self._sock.close()

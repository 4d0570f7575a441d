"""Message models: strict decoding with clear reasons."""

from __future__ import annotations

import pytest

from wire import Ack, AckStatus, GatewayState, MalformedMessage, RelayState, decode, encode
from wire.ids import new_command_id


def test_ack_round_trips() -> None:
    ack = Ack(
        command_id=new_command_id(),
        meter_id="MTR1",
        dcu_id="DCU01",
        status=AckStatus.EXECUTED,
        relay=RelayState.CONNECTED,
        event_code=302,
        version=2,
        at_ms=1,
    )
    assert decode(Ack, encode(ack)) == ack


@pytest.mark.parametrize(
    "payload,where",
    [
        (b"not json", "payload"),
        (b'{"dcu_id": "D1", "online": true, "boot_seq": 1}', "at_ms"),
        (b'{"dcu_id": "D/1", "online": true, "boot_seq": 1, "at_ms": 1}', "dcu_id"),
        (b'{"dcu_id": "D1", "online": true, "boot_seq": -1, "at_ms": 1}', "boot_seq"),
        (b'{"dcu_id": "D1", "online": true, "boot_seq": 1, "at_ms": 1, "x": 1}', "x"),
    ],
)
def test_malformed_state_names_the_bad_field(payload: bytes, where: str) -> None:
    with pytest.raises(MalformedMessage) as caught:
        decode(GatewayState, payload)
    assert where in str(caught.value)

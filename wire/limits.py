"""How big a message may be: the broker, both clients and every decoder hold to these bounds."""

from __future__ import annotations

from wire.errors import MalformedMessage

# One payload. A DCU's batch of MAX_ENTRIES readings with 64-character meter ids is ~1.5 MB.
MAX_MESSAGE_BYTES = 2 * 1024 * 1024
# An MQTT packet: the payload plus its topic and properties.
MAX_PACKET_BYTES = MAX_MESSAGE_BYTES + 16 * 1024
# Objects in one message: readings and profile blocks of a batch, meters of a birth roster.
MAX_ENTRIES = 5_000


def check_bounds(model_name: str, payload: bytes | str) -> None:
    """Refuse a payload over the size or entry bound before anything is parsed or built."""
    data = payload.encode() if isinstance(payload, str) else payload
    if len(data) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(model_name, f"{len(data)} bytes, over {MAX_MESSAGE_BYTES}")
    # Every entry is a JSON object, so the count of '{' bounds them from above (a brace inside
    # a string only over-counts); cheap, and done before the list is materialised.
    if data.count(b"{") > MAX_ENTRIES + 1:
        raise MalformedMessage(model_name, f"more than {MAX_ENTRIES} entries")

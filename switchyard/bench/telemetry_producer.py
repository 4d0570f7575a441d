"""The benchmark's stand-in for the gateways: publishes pre-built telemetry batches at QoS 1.

`python -m switchyard.bench.telemetry_producer HOST PORT PAYLOAD_FILE` publishes every message
of the file (see `write_messages`) as fast as the broker acknowledges them, with a bounded
number in flight, then prints one JSON line: messages, first publish and last PUBACK times.
"""

from __future__ import annotations

import json
import struct
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

IN_FLIGHT = 500
_LENGTH = struct.Struct(">I")


def write_messages(path: Path, messages: Sequence[tuple[str, bytes]]) -> None:
    """Store (topic, payload) pairs, each length-prefixed."""
    with path.open("wb") as handle:
        for topic, payload in messages:
            encoded = topic.encode()
            handle.write(_LENGTH.pack(len(encoded)) + encoded + _LENGTH.pack(len(payload)))
            handle.write(payload)


def read_messages(path: Path) -> Iterator[tuple[str, bytes]]:
    """The (topic, payload) pairs `write_messages` stored."""
    data = path.read_bytes()
    at = 0
    while at < len(data):
        (size,) = _LENGTH.unpack_from(data, at)
        topic = data[at + 4 : at + 4 + size].decode()
        at += 4 + size
        (size,) = _LENGTH.unpack_from(data, at)
        yield topic, data[at + 4 : at + 4 + size]
        at += 4 + size


def publish_all(host: str, port: int, messages: list[tuple[str, bytes]]) -> dict[str, float]:
    """Publish every message at QoS 1 and wait for every PUBACK."""
    room = threading.Semaphore(IN_FLIGHT)
    done = threading.Event()
    acked = 0
    last_ack = 0.0

    def on_publish(*_: object) -> None:
        nonlocal acked, last_ack
        acked += 1
        last_ack = time.time()
        room.release()
        if acked == len(messages):
            done.set()

    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-gateways", protocol=MQTTProtocolVersion.MQTTv5
    )
    client.max_inflight_messages_set(IN_FLIGHT)
    client.on_publish = on_publish
    client.connect(host, port)
    client.loop_start()
    first = time.time()
    for topic, payload in messages:
        room.acquire()
        client.publish(topic, payload, qos=1)
    done.wait()
    client.disconnect()
    client.loop_stop()
    return {"messages": float(len(messages)), "first_publish_s": first, "last_puback_s": last_ack}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the producer process."""
    host, port, path = (argv or sys.argv[1:])[:3]
    messages = list(read_messages(Path(path)))
    print(json.dumps(publish_all(host, int(port), messages)), flush=True)


if __name__ == "__main__":
    main()

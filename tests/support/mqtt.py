"""Test MQTT clients that log in to a stack's secured broker as one of its users."""

from __future__ import annotations

import threading

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from switchyard.stack import LocalStack


def connect_as(stack: LocalStack, user: str) -> paho.Client:
    """A started paho client, connected over TLS with `user`'s certificate and password."""
    creds = stack.broker_credentials
    assert creds is not None and stack.broker is not None
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.username_pw_set(user, creds.password(user))
    client.tls_set(
        ca_certs=str(creds.ca_cert),
        certfile=str(creds.client_cert(user)),
        keyfile=str(creds.client_key(user)),
    )
    connected = threading.Event()
    client.on_connect = lambda *_args: connected.set()
    client.connect(stack.broker.host, stack.broker.port)
    client.loop_start()
    assert connected.wait(10), f"could not connect to the broker as {user}"
    return client


def subscribe(client: paho.Client, topic_filter: str) -> None:
    """Subscribe at QoS 1 and wait for the SUBACK."""
    granted = threading.Event()
    client.on_subscribe = lambda *_args: granted.set()
    client.subscribe(topic_filter, qos=1)
    assert granted.wait(10), f"no SUBACK for {topic_filter}"

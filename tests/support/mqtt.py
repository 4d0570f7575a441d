"""Test MQTT clients that log in to a stack's secured broker as one of its users."""

from __future__ import annotations

import threading

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from switchyard.broker_credentials import CLOUD_USER
from switchyard.stack import LocalStack
from wire.ids import gateway_client_id


def connect_as(stack: LocalStack, user: str) -> paho.Client:
    """A started paho client, connected over TLS with `user`'s certificate and password."""
    creds = stack.broker_credentials
    assert creds is not None and stack.broker is not None
    # The broker lets a gateway's user in only under the gateway's own client id: this client
    # takes the gateway's place (the gateway reconnects after it), keeping its session.
    gateway = user != CLOUD_USER
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=gateway_client_id(user) if gateway else "",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.username_pw_set(user, creds.password(user))
    client.tls_set(
        ca_certs=str(creds.ca_cert),
        certfile=str(creds.client_cert(user)),
        keyfile=str(creds.client_key(user)),
    )
    connected = threading.Event()
    client.on_connect = lambda *_args: connected.set()
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600 if gateway else 0
    client.connect(
        stack.broker.host, stack.broker.port, clean_start=not gateway, properties=properties
    )
    client.loop_start()
    assert connected.wait(10), f"could not connect to the broker as {user}"
    return client


def subscribe(client: paho.Client, topic_filter: str) -> None:
    """Subscribe at QoS 1 and wait for the SUBACK."""
    granted = threading.Event()
    client.on_subscribe = lambda *_args: granted.set()
    client.subscribe(topic_filter, qos=1)
    assert granted.wait(10), f"no SUBACK for {topic_filter}"

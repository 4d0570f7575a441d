"""Prometheus metrics of one cloud process, on a registry of its own (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class CloudMetrics:
    """Every metric the cloud exports at /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.command_transitions = Counter(
            "switchyard_command_transitions",
            "Command lifecycle transitions, by target state.",
            ["state"],
            registry=r,
        )
        self.commands_published = Counter(
            "switchyard_commands_published", "Command publishes (first and retries).", registry=r
        )
        self.acks_processed = Counter(
            "switchyard_acks_processed", "Acks applied by this process.", registry=r
        )
        self.command_retries = Counter(
            "switchyard_command_retries", "Republishes after an ack timeout.", registry=r
        )
        self.commands_active = Gauge(
            "switchyard_commands_active",
            "Commands not yet final, by state (QUEUED, SENT, DELIVERED).",
            ["state"],
            registry=r,
        )
        self.commands_in_flight = Gauge(
            "switchyard_commands_in_flight", "Commands SENT or DELIVERED.", registry=r
        )
        self.publishes_in_flight = Gauge(
            "switchyard_mqtt_publishes_in_flight",
            "QoS 1 publishes awaiting their PUBACK.",
            registry=r,
        )
        self.ack_latency = Histogram(
            "switchyard_ack_latency_seconds",
            "From first publish to the final ack.",
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.payment_to_power = Histogram(
            "switchyard_payment_to_power_seconds",
            "From webhook receipt to the reconnect command SUCCEEDED.",
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.malformed_messages = Counter(
            "switchyard_malformed_messages",
            "Inbound MQTT payloads that failed validation, by topic kind.",
            ["kind"],
            registry=r,
        )
        self.foreign_acks = Counter(
            "switchyard_foreign_messages",
            "Acks or events naming a meter or command the publishing DCU does not own.",
            registry=r,
        )
        self.webhooks = Counter(
            "switchyard_payment_webhooks", "Payment webhooks, by outcome.", ["outcome"], registry=r
        )
        self.payment_conflicts = Counter(
            "switchyard_payment_conflicts",
            "Known payment ids delivered again with another amount, currency or account.",
            registry=r,
        )
        self.gateways_online = Gauge(
            "switchyard_gateways_online", "Gateways whose last state is online.", registry=r
        )
        self.mqtt_connected = Gauge(
            "switchyard_mqtt_connected", "1 when connected to the broker.", registry=r
        )
        self.auth_failures = Counter(
            "switchyard_api_auth_failures",
            "API requests refused: no token, unknown or revoked token, role not allowed.",
            ["reason"],
            registry=r,
        )
        self.loop_errors = Counter(
            "switchyard_background_errors",
            "Errors caught at a background loop boundary, by loop.",
            ["loop"],
            registry=r,
        )

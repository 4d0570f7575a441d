"""Short timers for stacks under test, so faults heal within seconds (production defaults
are in cloud/settings.py)."""

FAST_CLOUD = {
    "SWITCHYARD_ACK_TIMEOUT_S": "1",
    "SWITCHYARD_EXECUTION_TIMEOUT_S": "4",
    "SWITCHYARD_RETRY_BACKOFF_CAP_S": "2",
    "SWITCHYARD_DISPATCH_POLL_S": "0.2",
    "SWITCHYARD_MAX_ATTEMPTS": "30",
    "SWITCHYARD_MQTT_KEEPALIVE_S": "5",
    "SWITCHYARD_MQTT_RECONNECT_MIN_S": "0.2",
    "SWITCHYARD_MQTT_RECONNECT_MAX_S": "1",
    # These tests command every meter by hand: lift the operator rate limit.
    "SWITCHYARD_MANUAL_COMMANDS_PER_ACTOR": "100000",
    "SWITCHYARD_MANUAL_COMMANDS_TOTAL": "100000",
}
FAST_GATEWAY = {
    "SWITCHYARD_MQTT_KEEPALIVE_S": "5",
    "SWITCHYARD_MQTT_RECONNECT_MIN_S": "0.2",
    "SWITCHYARD_MQTT_RECONNECT_MAX_S": "1",
}
ACK_TIMEOUT_S = float(FAST_CLOUD["SWITCHYARD_ACK_TIMEOUT_S"])

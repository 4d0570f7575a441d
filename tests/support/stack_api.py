"""A small client for tests that drive a running stack over real HTTP."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from switchyard.stack import LocalStack

T = TypeVar("T")
ACTIVE_STATES = ("QUEUED", "SENT", "DELIVERED")
DEADLINE_S = 30.0


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = DEADLINE_S) -> T:
    """Poll `probe` until it returns something other than None, or fail after the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


class StackApi:
    """Operator and viewer calls against one cloud process of a stack."""

    def __init__(self, stack: LocalStack, api_url: str | None = None) -> None:
        self.stack = stack
        self.http = httpx.Client(base_url=api_url or stack.api_url, timeout=10.0)
        self.viewer = {"Authorization": f"Bearer {stack.secrets.viewer_token}"}
        self.operator = {"Authorization": f"Bearer {stack.secrets.operator_token}"}

    def close(self) -> None:
        """Close the HTTP client."""
        self.http.close()

    def command(self, meter_id: str, action: str, reason: str = "test") -> dict[str, Any]:
        """Queue an operator command; returns the 202 body."""
        response = self.http.post(
            f"/api/v1/meters/{meter_id}/commands",
            json={"action": action, "reason": reason},
            headers=self.operator,
        )
        assert response.status_code == 202, response.text
        return dict(response.json())

    def get_command(self, command_id: str) -> dict[str, Any]:
        """A command with its transitions."""
        response = self.http.get(f"/api/v1/commands/{command_id}", headers=self.viewer)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def meter(self, meter_id: str) -> dict[str, Any]:
        """A meter's desired and reported state."""
        response = self.http.get(f"/api/v1/meters/{meter_id}", headers=self.viewer)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def gateways(self) -> dict[str, bool]:
        """Presence of every DCU."""
        response = self.http.get("/api/v1/gateways", headers=self.viewer)
        return {g["dcu_id"]: g["online"] for g in response.json()}

    def wait_final(
        self, command_ids: list[str], timeout_s: float = DEADLINE_S
    ) -> list[dict[str, Any]]:
        """Wait until every command has left QUEUED/SENT/DELIVERED; returns them all."""
        finals: dict[str, dict[str, Any]] = {}

        def all_final() -> list[dict[str, Any]] | None:
            for command_id in command_ids:
                if command_id not in finals:
                    body = self.get_command(command_id)
                    if body["state"] in ACTIVE_STATES:
                        return None
                    finals[command_id] = body
            return [finals[c] for c in command_ids]

        return wait_for(f"{len(command_ids)} commands to finish", all_final, timeout_s)

    def metric(self, name: str, labels: str = "") -> float:
        """One sample of this process's Prometheus metrics (0 when absent)."""
        text = self.http.get("/metrics").text
        pattern = rf"^{re.escape(name)}{re.escape(labels)}\s+([0-9.e+-]+)$"
        match = re.search(pattern, text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

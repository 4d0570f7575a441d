"""A small client for tests that drive a running stack over real HTTP."""

from __future__ import annotations

import re
from typing import Any

import httpx

from switchyard.stack import LocalStack
from tests.support.wait import wait_until

ACTIVE_STATES = ("QUEUED", "SENT", "DELIVERED")
DEADLINE_S = 30.0


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

    def health(self) -> dict[str, Any]:
        """The cloud's /healthz answer: its database and broker connection."""
        return dict(self.http.get("/healthz").json())

    def presence(self) -> dict[str, dict[str, Any]]:
        """Every DCU's presence record (online, boot_seq, last_birth_at, ...)."""
        response = self.http.get("/api/v1/gateways", headers=self.viewer)
        assert response.status_code == 200, response.text
        return {g["dcu_id"]: dict(g) for g in response.json()}

    def gateways(self) -> dict[str, bool]:
        """Whether each DCU is online."""
        return {dcu_id: g["online"] for dcu_id, g in self.presence().items()}

    def wait_final(
        self, command_ids: list[str], timeout_s: float = DEADLINE_S
    ) -> list[dict[str, Any]]:
        """Wait until every command has left QUEUED/SENT/DELIVERED; returns them all."""
        finals: dict[str, dict[str, Any]] = {}

        def first_unfinished() -> str | None:
            """What the first command still active is doing; None once all have finished."""
            for command_id in command_ids:
                if command_id not in finals:
                    body = self.get_command(command_id)
                    if body["state"] in ACTIVE_STATES:
                        return (
                            f"{command_id} ({body['meter_id']}) {body['state']} after "
                            f"{body['attempts']} attempts; {len(finals)} finished"
                        )
                    finals[command_id] = body
            return None

        what = f"{len(command_ids)} commands to finish"
        wait_until(what, first_unfinished, lambda doing: doing is None, timeout_s=timeout_s)
        return [finals[c] for c in command_ids]

    def metric(self, name: str, labels: str = "") -> float:
        """One sample of this process's Prometheus metrics (0 when absent)."""
        text = self.http.get("/metrics").text
        pattern = rf"^{re.escape(name)}{re.escape(labels)}\s+([0-9.e+-]+)$"
        match = re.search(pattern, text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

"""A local stand-in for Razorpay's Orders API (POST /v1/orders with HTTP Basic key auth), so
the official SDK can be exercised for real through its `base_url` option."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class OrdersStandIn:
    """What the stand-in accepts, and every order it was asked to create."""

    key_id: str
    key_secret: str
    base_url: str = ""
    orders: list[dict[str, Any]] = field(default_factory=list)


def _handler(standin: OrdersStandIn) -> type[BaseHTTPRequestHandler]:
    expected = (
        "Basic " + base64.b64encode(f"{standin.key_id}:{standin.key_secret}".encode()).decode()
    )

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self) -> None:
            if self.path != "/v1/orders":
                self._answer(404, {"error": {"code": "BAD_REQUEST_ERROR", "description": "no"}})
                return
            if self.headers.get("Authorization") != expected:
                error = {"code": "BAD_REQUEST_ERROR", "description": "Authentication failed"}
                self._answer(401, {"error": error})
                return
            length = int(self.headers.get("Content-Length", "0"))
            request = json.loads(self.rfile.read(length))
            order = {
                "id": f"order_{secrets.token_hex(7)}",
                "entity": "order",
                "amount": request["amount"],
                "amount_paid": 0,
                "amount_due": request["amount"],
                "currency": request["currency"],
                "receipt": request.get("receipt"),
                "status": "created",
                "attempts": 0,
                "notes": request.get("notes", {}),
                "created_at": int(time.time()),
            }
            standin.orders.append(order)
            self._answer(200, order)

    return Handler


@contextmanager
def orders_standin(key_id: str, key_secret: str) -> Iterator[OrdersStandIn]:
    """Serve the stand-in on a free local port for the duration of the block."""
    standin = OrdersStandIn(key_id, key_secret)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(standin))
    standin.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield standin
    finally:
        server.shutdown()
        server.server_close()

"""The fault proxy itself, against a real TCP echo server: each fault does what it says."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from switchyard.faultproxy import FaultProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    running = FaultProxy("127.0.0.1", server.server_address[1]).start()
    try:
        yield running
    finally:
        running.stop()
        server.shutdown()
        server.server_close()


def _connect(proxy: FaultProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=2.0)


def test_passes_bytes_through(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        sock.sendall(b"ping")
        assert sock.recv(4) == b"ping"


def test_latency_delays_each_direction(proxy: FaultProxy) -> None:
    proxy.set_faults(latency_ms=150)
    with _connect(proxy) as sock:
        started = time.monotonic()
        sock.sendall(b"slow")
        assert sock.recv(4) == b"slow"
        assert time.monotonic() - started >= 0.3  # 150 ms up, 150 ms down


def test_reset_aborts_open_connections(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        sock.sendall(b"x")
        assert sock.recv(1) == b"x"
        assert proxy.reset_connections() == 1
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            for _ in range(50):
                sock.sendall(b"y")
                if not sock.recv(1):
                    raise ConnectionResetError("closed")


def test_blackhole_swallows_bytes_until_healed(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        proxy.set_faults(blackhole=True)
        sock.sendall(b"lost")
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(4)
        proxy.heal()
        sock.settimeout(2.0)
        sock.sendall(b"back")
        assert sock.recv(4) == b"back"


def test_refuse_new_closes_new_connections(proxy: FaultProxy) -> None:
    proxy.set_faults(refuse_new=True)
    with pytest.raises(ConnectionResetError), _connect(proxy) as sock:
        sock.sendall(b"z")
        if not sock.recv(1):
            raise ConnectionResetError("closed")
    assert proxy.connections_accepted == 0


def test_unknown_fault_is_refused(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        proxy.set_faults(jitter_ms=3)

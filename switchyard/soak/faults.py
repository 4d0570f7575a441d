"""The faults a soak injects, one at a time at seeded random moments, each healed before the
next: SIGKILL of a part (then its restart), and latency, blackholes and resets on the gateways'
broker links (a fault proxy) and latency and loss on the meter link (the simulator's fault op)."""

from __future__ import annotations

import random
import signal
import socket
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

from switchyard.faultproxy import FaultProxy
from switchyard.procs import ManagedProcess, port_open
from switchyard.stack import LocalStack
from wire.meterlink import LinkOp, LinkRequest, decode_response, encode_frame

KINDS = (
    "kill-gateway",
    "kill-cloud",
    "kill-broker",
    "kill-simulator",
    "broker-link-latency",
    "broker-link-blackhole",
    "broker-link-reset",
    "meter-link-latency",
    "meter-link-loss",
)
QUIET_S = (2.0, 6.0)  # between one fault healed and the next
HOLD_S = (1.0, 6.0)  # how long a fault lasts
_READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Injected:
    """One fault: what, on which part, when (seconds into the soak) and for how long."""

    kind: str
    target: str
    at_s: float
    held_s: float


def _revive(stack: LocalStack, part: ManagedProcess, restarts: int, port: int | None) -> None:
    """Wait until the stack's supervisor has brought a killed part back and it listens."""
    supervisor = stack.supervisor
    if supervisor is None:
        raise RuntimeError("the soak needs a supervised stack")
    if not supervisor.wait_restarted(part.name, restarts, timeout_s=_READY_TIMEOUT_S):
        raise RuntimeError(f"{part.name} did not come back within {_READY_TIMEOUT_S:.0f}s")
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while port is not None and not port_open(stack.options.host, port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{part.name} not listening within {_READY_TIMEOUT_S:.0f}s")
        time.sleep(0.05)


class _WouldBeGivenUp(Exception):
    """Killing this part now would reach the supervisor's give-up rule."""


class FaultInjector:
    """Runs in its own thread until `stop()`; counts and logs every fault it injected."""

    def __init__(self, stack: LocalStack, proxy: FaultProxy, seed: int) -> None:
        self._stack = stack
        self._proxy = proxy
        self._rng = random.Random(seed)
        self._started = time.monotonic()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-faults", daemon=True)
        self.injected: list[Injected] = []
        self._kills: dict[str, deque[float]] = defaultdict(deque)
        self.last_healed_at = time.monotonic()
        self.error: str | None = None

    @property
    def counts(self) -> Counter[str]:
        """Faults injected so far, by kind."""
        return Counter(fault.kind for fault in self.injected)

    def start(self) -> None:
        """Begin injecting."""
        self._started = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        """Finish (and heal) the fault in progress, inject no more."""
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopping.wait(self._rng.uniform(*QUIET_S)):
            kind = self._rng.choice(KINDS)
            hold_s = self._rng.uniform(*HOLD_S)
            at_s = time.monotonic() - self._started
            try:
                target, heal = self._inject(kind)
                self._stopping.wait(hold_s)
                heal()
            except _WouldBeGivenUp:
                continue  # a crash loop is given up by design (tested apart); not a fault to heal
            except (RuntimeError, OSError, ValueError) as exc:  # cannot heal: end, say why
                self.error = f"{kind}: {type(exc).__name__}: {exc}"
                return
            self.last_healed_at = time.monotonic()
            self.injected.append(Injected(kind, target, round(at_s, 1), round(hold_s, 1)))

    def _inject(self, kind: str) -> tuple[str, Callable[[], None]]:
        """Start one fault; answer its target and how to heal it."""
        stack, proxy = self._stack, self._proxy
        if kind == "kill-gateway":
            dcu_id = self._rng.choice(sorted(stack.gateways))
            return dcu_id, self._kill(stack.gateways[dcu_id], None)
        if kind == "kill-cloud":
            api_port = int(stack.api_url.rsplit(":", 1)[1])
            return "cloud-1", self._kill(stack.clouds[0], api_port)
        if kind == "kill-broker":
            assert stack.broker is not None
            return "mosquitto", self._kill(stack.broker.process, stack.broker.port)
        if kind == "kill-simulator":
            assert stack.sim is not None
            return "meters", self._kill(stack.sim, stack.link_port)
        if kind == "broker-link-latency":
            proxy.set_faults(latency_ms=self._rng.uniform(200, 1500))
            return "gateways-broker", proxy.heal
        if kind == "broker-link-blackhole":
            proxy.set_faults(blackhole=True)
            return "gateways-broker", proxy.heal
        if kind == "broker-link-reset":
            proxy.reset_connections()
            return "gateways-broker", proxy.heal
        if kind == "meter-link-latency":
            self._link_faults(latency_ms=self._rng.uniform(300, 1500))
            return "meter-link", lambda: self._link_faults(latency_ms=0.0, loss=0.0)
        if kind == "meter-link-loss":
            self._link_faults(loss=self._rng.uniform(0.2, 0.6))
            return "meter-link", lambda: self._link_faults(latency_ms=0.0, loss=0.0)
        raise AssertionError(f"unknown fault {kind}")

    def _kill(self, part: ManagedProcess, port: int | None) -> Callable[[], None]:
        # A crash, not a stop: the part stays wanted, so the supervisor restarts it.
        assert self._stack.supervisor is not None
        policy = self._stack.supervisor.policy
        now_s, kills = time.monotonic(), self._kills[part.name]
        while kills and kills[0] < now_s - policy.crash_window_s:
            kills.popleft()
        if len(kills) + 1 >= policy.max_crashes:
            raise _WouldBeGivenUp(part.name)
        kills.append(now_s)
        restarts = self._stack.supervisor.restarts[part.name] + 1
        part.signal(signal.SIGKILL)
        return lambda: _revive(self._stack, part, restarts, port)

    def _link_faults(self, **faults: float) -> None:
        """The simulator's `fault` op: change its link faults (a restart clears them too)."""
        request = LinkRequest(id=1, op=LinkOp.FAULT, **faults)
        address = (self._stack.options.host, self._stack.link_port)
        with socket.create_connection(address, timeout=5.0) as sock:
            sock.sendall(encode_frame(request))
            answer = decode_response(sock.makefile("rb").readline())
        if not answer.ok:
            raise RuntimeError(f"link fault refused: {answer.message}")

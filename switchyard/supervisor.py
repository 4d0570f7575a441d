"""Keep a stack's parts running: restart one that dies with capped, jittered backoff, and give
up on one that keeps crashing while the rest carries on."""

from __future__ import annotations

import enum
import logging
import random
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from switchyard.procs import ManagedProcess

log = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(frozen=True)
class RestartPolicy:
    """How soon a dead part comes back, and when it is given up."""

    initial_backoff_s: float = 0.5
    max_backoff_s: float = 15.0
    # Each delay is scaled by a random factor in [1 - jitter, 1 + jitter].
    jitter: float = 0.25
    # This many crashes within `crash_window_s` and the part is given up.
    max_crashes: int = 5
    crash_window_s: float = 60.0


class CrashHistory:
    """The recent crashes of one part: the delay before its next start, or give up."""

    def __init__(self, policy: RestartPolicy, rand: Callable[[], float] = random.random) -> None:
        self.policy = policy
        self._rand = rand
        self._crashes_s: deque[float] = deque()

    def crashed(self, now_s: float) -> float | None:
        """Record a crash at `now_s`; the backoff before the restart, or None to give up."""
        policy = self.policy
        self._crashes_s.append(now_s)
        while self._crashes_s and self._crashes_s[0] <= now_s - policy.crash_window_s:
            self._crashes_s.popleft()
        recent = len(self._crashes_s)
        if recent >= policy.max_crashes:
            return None
        delay_s: float = min(policy.max_backoff_s, policy.initial_backoff_s * 2.0 ** (recent - 1))
        return delay_s * (1 + policy.jitter * (2 * self._rand() - 1))

    @property
    def recent(self) -> int:
        """Crashes counted in the current window."""
        return len(self._crashes_s)


class PartState(enum.Enum):
    """Where a supervised part is in its life."""

    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    GIVEN_UP = "given up"
    # Exited with code 0, or stopped on purpose: not restarted.
    STOPPED = "stopped"


@dataclass
class Part:
    """One supervised process and what it takes to call it ready."""

    process: ManagedProcess
    # None: ready as soon as it runs (e.g. a gateway, whose presence the cloud shows).
    ready: Callable[[], bool] | None = None
    state: PartState = PartState.RUNNING
    seen: subprocess.Popen[bytes] | None = None
    restart_at_s: float = 0.0
    history: CrashHistory | None = field(default=None, repr=False)


def describe_exit(returncode: int) -> str:
    """'signal SIGKILL' or 'exit code 3'."""
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


class Supervisor:
    """A thread that watches every part of a stack and restarts the ones that die."""

    def __init__(
        self,
        parts: Sequence[Part],
        policy: RestartPolicy | None = None,
        clock: Clock = time.monotonic,
        rand: Callable[[], float] = random.random,
        tick_s: float = 0.1,
    ) -> None:
        self.policy = policy or RestartPolicy()
        self._clock, self._tick_s = clock, tick_s
        self._parts = {p.process.name: p for p in parts}
        for part in parts:
            part.history = CrashHistory(self.policy, rand)
            part.seen = part.process.popen
        self.restarts: dict[str, int] = {name: 0 for name in self._parts}
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def parts(self) -> dict[str, ManagedProcess]:
        """Every supervised process, by name (e.g. 'gateway DCU01', 'broker')."""
        return {name: part.process for name, part in self._parts.items()}

    def state(self, name: str) -> PartState:
        """Where part `name` is now."""
        return self._parts[name].state

    def start(self) -> Supervisor:
        """Watch the parts from a background thread until `stop()`."""
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (the parts keep running)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def wait_restarted(self, name: str, restarts: int, timeout_s: float = 60.0) -> bool:
        """Wait until part `name` has been restarted `restarts` times and is ready again."""

        def back() -> bool:
            part = self._parts[name]
            return self.restarts[name] >= restarts and part.state is PartState.RUNNING

        with self._changed:
            return self._changed.wait_for(back, timeout=timeout_s)

    def _run(self) -> None:
        while not self._stopping.wait(self._tick_s):
            try:
                self.check()
            except Exception:  # the watcher must outlive one bad check, loudly
                log.exception("supervisor check failed")

    def check(self) -> None:
        """Look at every part once: note deaths, restart the ones whose backoff is over."""
        for name, part in self._parts.items():
            if self._stopping.is_set():
                return
            if self._step(name, part):
                with self._changed:
                    self._changed.notify_all()

    def _step(self, name: str, part: Part) -> bool:
        process, now_s = part.process, self._clock()
        popen = process.popen
        if popen is None:
            return False
        if popen is not part.seen:
            # Started again by someone else (a test, by hand): follow the new process.
            part.seen, part.state = popen, PartState.STARTING
        returncode = popen.poll()
        if part.state is PartState.BACKOFF:
            return self._restart_when_due(name, part, now_s)
        if part.state in (PartState.GIVEN_UP, PartState.STOPPED):
            return False
        if returncode is None:
            if part.state is PartState.STARTING and (part.ready is None or part.ready()):
                part.state = PartState.RUNNING
                return True
            return False
        return self._died(name, part, returncode, now_s)

    def _died(self, name: str, part: Part, returncode: int, now_s: float) -> bool:
        process = part.process
        if not process.wanted:
            part.state = PartState.STOPPED
            return True
        if returncode == 0:
            log.warning("%s exited on its own (exit code 0): not restarted", name)
            part.state = PartState.STOPPED
            return True
        assert part.history is not None
        delay_s = part.history.crashed(now_s)
        how = describe_exit(returncode)
        if delay_s is None:
            window_s = self.policy.crash_window_s
            log.error(
                "%s died (%s) at %s, its %d crash within %.0f s: giving up on it, the rest "
                "keeps running; last lines of %s:\n%s",
                name,
                how,
                time.strftime("%H:%M:%S"),
                part.history.recent,
                window_s,
                process.log_path,
                process.tail(15),
            )
            part.state = PartState.GIVEN_UP
            return True
        log.warning(
            "%s died (%s) at %s; restarting in %.1f s (crash %d of %d allowed within %.0f s)",
            name,
            how,
            time.strftime("%H:%M:%S"),
            delay_s,
            part.history.recent,
            self.policy.max_crashes - 1,
            self.policy.crash_window_s,
        )
        part.state, part.restart_at_s = PartState.BACKOFF, now_s + delay_s
        return True

    def _restart_when_due(self, name: str, part: Part, now_s: float) -> bool:
        if not part.process.wanted:
            part.state = PartState.STOPPED
            return True
        if now_s < part.restart_at_s:
            return False
        assert part.seen is not None
        if part.process.restart_after(part.seen):
            self.restarts[name] += 1
            part.seen = part.process.popen
        part.state = PartState.STARTING
        return True

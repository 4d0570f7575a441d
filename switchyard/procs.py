"""Child processes the local stack and the tests start: free ports, readiness, clean shutdown."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from switchyard.lifeline import die_with_parent_hook, listens_on

# Runs a Popen call and returns its result: how a stack makes its children in one long-lived thread.
Launch = Callable[[Callable[[], "subprocess.Popen[bytes]"]], "subprocess.Popen[bytes]"]


class ProcessStartError(RuntimeError):
    """A child process exited or never became ready."""


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for a TCP port that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int) -> bool:
    """Tell whether something accepts TCP connections on host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


@dataclass
class ManagedProcess:
    """A child process in its own process group, with its output going to a log file."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    # SIGKILL the child when the thread that forked it dies (see switchyard/lifeline.py).
    die_with_parent: bool = False
    # Where the fork happens (a stack's launcher thread); None: the calling thread.
    launch: Launch | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, init=False)
    # False once someone stopped or killed it on purpose: a supervisor then leaves it alone.
    wanted: bool = field(default=False, init=False)
    lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def start(self) -> ManagedProcess:
        """Start the process; its stdout and stderr go to `log_path`."""
        popen = self._spawn()
        with self.lock:
            self.popen, self.wanted = popen, True
        return self

    def restart_after(self, crashed: subprocess.Popen[bytes]) -> bool:
        """Start again after `crashed` ended, unless someone stopped or restarted it meanwhile."""
        with self.lock:
            if not self.wanted or self.popen is not crashed:
                return False
            self.popen = self._spawn()
            return True

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        return self.launch(self._popen) if self.launch else self._popen()

    def _popen(self) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(self.env) if self.env is not None else None,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=die_with_parent_hook() if self.die_with_parent else None,
            )

    @property
    def pid(self) -> int:
        """The child's process id."""
        if self.popen is None:
            raise ProcessStartError(f"{self.name} was never started")
        return self.popen.pid

    def alive(self) -> bool:
        """Tell whether the process is still running."""
        return self.popen is not None and self.popen.poll() is None

    def wait_port(self, host: str, port: int, timeout_s: float = 20.0) -> None:
        """Wait until this process (not another one) listens on host:port, or fail with its log."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise ProcessStartError(f"{self.name} exited early:\n{self.tail()}")
            if self.listening(host, port):
                return
            time.sleep(0.05)
        holder = "another process" if port_open(host, port) else "nobody"
        raise ProcessStartError(
            f"{self.name} not listening on {host}:{port} ({holder} is):\n{self.tail()}"
        )

    def listening(self, host: str, port: int) -> bool:
        """Tell whether this very process accepts connections on host:port."""
        return self.alive() and port_open(host, port) and listens_on(self.pid, port)

    def tail(self, lines: int = 40) -> str:
        """The last lines of the process's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def signal(self, signum: int) -> None:
        """Send a signal to the whole process group."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signum)

    def unwant(self) -> None:
        """Say the process is going away on purpose, so no supervisor brings it back."""
        with self.lock:
            self.wanted = False

    def kill(self) -> None:
        """SIGKILL the process group and reap its leader (a crash on purpose, for tests)."""
        self.unwant()
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, wait, then SIGKILL: the process group leaves no orphans."""
        stop_all([self], timeout_s)
        return self.popen.returncode if self.popen is not None else None


def stop_all(
    processes: Sequence[ManagedProcess],
    timeout_s: float = 10.0,
    escalate: threading.Event | None = None,
) -> None:
    """SIGTERM every process at once, wait until a shared deadline (or until `escalate` is set,
    e.g. by a second Ctrl-C), then SIGKILL each process group left: no child is ever skipped."""
    for process in processes:
        process.unwant()
        process.signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    try:
        while any(p.alive() for p in processes) and time.monotonic() < deadline:
            if escalate is not None and escalate.is_set():
                break
            time.sleep(0.05)
    finally:
        # Also what a leader left behind in its group goes; this runs even if the wait was cut.
        for process in processes:
            process.kill()

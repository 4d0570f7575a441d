"""Child processes the local stack and the tests start: free ports, readiness, clean shutdown."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


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
    popen: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> ManagedProcess:
        """Start the process; its stdout and stderr go to `log_path`."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self.popen = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(self.env) if self.env is not None else None,
                cwd=self.cwd,
                start_new_session=True,
            )
        finally:
            log.close()
        return self

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
        """Wait until the process accepts connections on host:port, or fail with its log."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise ProcessStartError(f"{self.name} exited early:\n{self.tail()}")
            if port_open(host, port):
                return
            time.sleep(0.05)
        raise ProcessStartError(f"{self.name} not listening on {host}:{port}:\n{self.tail()}")

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

    def kill(self) -> None:
        """SIGKILL the process group and reap its leader (a crash, for tests)."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, wait, then SIGKILL: the process group leaves no orphans."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait(timeout=10)
        # Whatever the leader left behind in its group goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        return self.popen.returncode


def stop_all(processes: Sequence[ManagedProcess], timeout_s: float = 10.0) -> None:
    """SIGTERM every process at once, wait up to a shared deadline, then SIGKILL the rest.

    SIGINT and SIGTERM are blocked meanwhile, so a second Ctrl-C cannot cut the cleanup short
    and leave orphans behind.
    """
    blocked = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        for process in processes:
            process.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for process in processes:
            if process.popen is None:
                continue
            remaining_s = max(0.0, deadline - time.monotonic())
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=remaining_s)
            process.kill()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)

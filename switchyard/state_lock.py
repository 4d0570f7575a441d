"""One stack per state directory: a lock taken before the directory is wiped, held for the
stack's life, and released by the kernel if the stack's process dies."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

from switchyard.procs import ProcessStartError


class StateDirBusyError(ProcessStartError):
    """Another stack still runs in this state directory."""


def lock_path(state_dir: Path) -> Path:
    """The lock file, next to the state directory (which is wiped at every start)."""
    return state_dir.with_name(state_dir.name + ".lock")


class StateDirLock:
    """An exclusive flock on `<state-dir>.lock`; the file also names the holder's pid."""

    def __init__(self, state_dir: Path) -> None:
        self.path = lock_path(state_dir)
        self._fd: int | None = None

    def acquire(self) -> StateDirLock:
        """Take the lock, or refuse with who holds it and how to stop them."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            state_dir = self.path.with_name(self.path.name.removesuffix(".lock"))
            raise StateDirBusyError(
                f"another switchyard stack (pid {holder}) is running in {state_dir}: stop it "
                f"(Ctrl-C, or kill {holder}) or give another --state-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid()}).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Let the next stack in."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError, KeyError):
        return str(json.loads(os.pread(fd, 200, 0))["pid"])
    return "unknown"

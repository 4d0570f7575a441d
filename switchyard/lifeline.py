"""What ties a stack's children to it: a parent-death signal, the thread that forks them, and
which process really listens on a port."""

from __future__ import annotations

import ctypes
import functools
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_LISTEN = "0A"


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def die_with_parent_hook() -> Callable[[], None]:
    """A preexec_fn: the child gets SIGKILL when the thread that forked it dies.

    Linux ties PR_SET_PDEATHSIG to the forking *thread*, so a stack forks from a `Launcher`
    thread that outlives every child; a SIGKILL of the whole process still fires it.
    """
    prctl, parent_pid = _libc().prctl, os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        # The parent may have died between fork and prctl: then nobody will send the signal.
        if os.getppid() != parent_pid:
            os._exit(1)

    return hook


class Launcher:
    """One thread that forks every child of a stack and lives until they are all stopped."""

    def __init__(self, name: str = "launcher") -> None:
        self._requests: queue.SimpleQueue[
            tuple[Callable[[], subprocess.Popen[bytes]], Future[subprocess.Popen[bytes]]] | None
        ] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def __call__(self, popen: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        """Run one Popen call in the launcher thread and return the child."""
        if threading.current_thread() is self._thread:
            return popen()
        future: Future[subprocess.Popen[bytes]] = Future()
        self._requests.put((popen, future))
        return future.result()

    def _serve(self) -> None:
        while (request := self._requests.get()) is not None:
            popen, future = request
            try:
                future.set_result(popen())
            except Exception as exc:  # noqa: BLE001 - the caller raises it
                future.set_exception(exc)

    def close(self) -> None:
        """End the thread: call only once every child it forked has been stopped."""
        self._requests.put(None)
        self._thread.join(timeout=5)


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def listens_on(pid: int, port: int) -> bool:
    """Tell whether process `pid` itself holds a socket listening on `port` (Linux /proc).

    Where /proc cannot tell, answers True: the caller then relies on the port being open.
    """
    if not Path("/proc/net/tcp").exists():
        return True
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if str(fd.readlink()) in wanted:
                return True
        except OSError:
            continue
    return False

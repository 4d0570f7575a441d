"""Line-protocol chunks kept on disk while the time-series database cannot take them."""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from cloud.telemetry.errors import SpoolFull

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{12})\.lp$")


@dataclass(frozen=True, slots=True)
class SpoolFile:
    """One spooled chunk, replayed oldest first."""

    seq: int
    path: Path
    size_bytes: int


# Each chunk is written to a temporary name, fsynced, then renamed: a crash leaves either the
# whole chunk or nothing, never half a file that would replay as a torn line. Every method is
# blocking file I/O: call them from a worker thread.
class Spool:
    """A directory of chunk files, bounded in bytes."""

    def __init__(self, directory: Path, *, max_bytes: int) -> None:
        self.directory = directory
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        for leftover in directory.glob("*.tmp"):
            leftover.unlink()  # a chunk whose write never finished was never acknowledged
        files = self.files()
        self._next_seq = files[-1].seq + 1 if files else 1
        self.size_bytes = sum(f.size_bytes for f in files)

    def files(self) -> list[SpoolFile]:
        """The spooled chunks, oldest first."""
        found = []
        for path in self.directory.iterdir():
            match = _NAME.match(path.name)
            if match:
                found.append(SpoolFile(int(match.group(1)), path, path.stat().st_size))
        return sorted(found, key=lambda f: f.seq)

    def append(self, chunk: bytes) -> SpoolFile:
        """Keep one chunk durably; SpoolFull when it would pass the size bound."""
        with self._lock:  # several writers may spool at once
            if self.size_bytes + len(chunk) > self._max_bytes:
                raise SpoolFull(self.size_bytes, self._max_bytes)
            seq = self._next_seq
            self._next_seq += 1
            self.size_bytes += len(chunk)
        final = self.directory / f"{seq:012d}.lp"
        temporary = final.with_suffix(".tmp")
        try:
            with temporary.open("wb") as handle:
                handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            temporary.rename(final)
            self._sync_directory()
        except OSError:
            temporary.unlink(missing_ok=True)
            with self._lock:
                self.size_bytes -= len(chunk)
            raise
        return SpoolFile(seq, final, len(chunk))

    def read(self, spooled: SpoolFile) -> bytes:
        """The chunk a file holds."""
        return spooled.path.read_bytes()

    def remove(self, spooled: SpoolFile) -> None:
        """Forget a chunk the database has accepted."""
        spooled.path.unlink(missing_ok=True)
        with self._lock:
            self.size_bytes = max(0, self.size_bytes - spooled.size_bytes)

    def _sync_directory(self) -> None:
        descriptor = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

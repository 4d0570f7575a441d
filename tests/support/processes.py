"""Find the processes of a stack: every process whose command line or environment mentions a
marker (its state directory)."""

from __future__ import annotations

import os
from pathlib import Path


def processes_mentioning(marker: str) -> list[str]:
    """'pid: command line' of each process (but this one) that mentions `marker`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (proc / "environ").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        # A zombie is already dead; only its parent has yet to reap it.
        if state != "Z" and (marker in cmdline or marker.encode() in environ):
            found.append(f"{proc.name}: {cmdline.strip()}")
    return found

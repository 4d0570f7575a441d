"""`switchyard run` as a user runs it: it comes up, `switchyard pay` restores a meter, and Ctrl-C
stops every process it started — no orphans."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from switchyard.procs import free_port
from tests.support.processes import processes_mentioning

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_run_then_pay_then_ctrl_c_leaves_no_orphans(tmp_path: Path) -> None:
    state = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    command = [sys.executable, "-m", "switchyard.cli", "run", "--meters", "30", "--gateways", "2"]
    command += ["--port", str(free_port()), "--state-dir", str(state)]
    runner = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        banner = []
        deadline = time.monotonic() + 90
        assert runner.stdout is not None
        while time.monotonic() < deadline:
            line = runner.stdout.readline()
            if not line:
                break
            banner.append(line)
            if "Ctrl-C stops everything." in line:
                break
        text = "".join(banner)
        assert "Switchyard is running." in text, text
        account = text.split("switchyard pay ")[1].split()[0]
        assert processes_mentioning(str(state)), "the stack's processes were not found"

        paid = subprocess.run(
            [sys.executable, "-m", "switchyard.cli", "pay", account, "--state-dir", str(state)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert paid.returncode == 0, paid.stdout + paid.stderr
        assert "power restored: relay connected" in paid.stdout
        described = json.loads((state / "stack.json").read_text())
        assert described["api_url"].startswith("http://127.0.0.1:")
    finally:
        runner.send_signal(signal.SIGINT)
        runner.wait(timeout=60)
    assert runner.returncode == 0
    deadline = time.monotonic() + 10
    while processes_mentioning(str(state)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_mentioning(str(state)) == []

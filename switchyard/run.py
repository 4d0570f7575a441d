"""`switchyard run`: start the local stack, print how to use it, keep it healthy, and stop it
all on Ctrl-C or SIGTERM — a second signal kills what is left at once, never skipping a child."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from switchyard.stack import LocalStack, StackOptions, start_stack

log = logging.getLogger(__name__)


class ShutdownSignals:
    """SIGINT and SIGTERM as a shutdown request: the first interrupts the main thread
    (KeyboardInterrupt); every later one sets `escalate` and never interrupts the cleanup."""

    def __init__(self) -> None:
        self.escalate = threading.Event()
        self._requested = False

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self._requested:
            if not self.escalate.is_set():
                print(f"\n{signal.Signals(signum).name} again: killing what is left", flush=True)
            self.escalate.set()
            return
        self._requested = True
        raise KeyboardInterrupt

    @contextmanager
    def installed(self) -> Iterator[ShutdownSignals]:
        """Handle both signals this way inside the block (main thread only)."""
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def banner(stack: LocalStack, shown_accounts: int = 5) -> str:
    """What `switchyard run` prints once everything is up."""
    lines = [
        "",
        "Switchyard is running.",
        f"  API           {stack.api_url}   (docs: {stack.api_url}/docs)",
        f"  operator token {stack.secrets.operator_token}",
        f"  viewer token   {stack.secrets.viewer_token}",
        f"  webhook secret {stack.secrets.webhook_secret}",
        f"  meters {len(stack.fleet.accounts)} on {len(stack.fleet.dcu_ids)} gateways;"
        f" broker on port {stack.broker.port if stack.broker else '?'} (TLS, passwords, ACL)",
        f"  logs and state in {stack.options.state_dir}/",
        "",
        "Disconnected for non-payment (pay one and watch the power come back):",
    ]
    for account in stack.fleet.disconnected()[:shown_accounts]:
        lines.append(f"  {account.account_id}  meter {account.meter_id}  ({account.dcu_id})")
    first = stack.fleet.disconnected()[0].account_id
    lines += [
        "",
        f"  switchyard pay {first}",
        f"  curl {stack.api_url}/api/v1/accounts/{first}/dues",
        "",
        f"Overdue and still connected: {len(stack.fleet.policy_cases)} accounts; "
        f"{len(stack.fleet.cases('eligible'))} pass every rule (inside the allowed hours),",
        "the rest are held back by one. See what a disconnection run would do (switches nothing):",
        "  switchyard disconnection-run --dry-run",
        "",
        "A part that dies is restarted (docs/supervision.md).",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


def run_stack(options: StackOptions) -> int:
    """Start the stack, print how to use it, and stop it all on Ctrl-C or SIGTERM."""
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stdout,
    )
    with ShutdownSignals().installed() as signals:
        try:
            stack = start_stack(options, signals.escalate)
        except KeyboardInterrupt:
            print("\nstopped while starting", flush=True)
            return 130
        try:
            print(banner(stack), flush=True)
            while True:
                signal.pause()  # until the first signal's KeyboardInterrupt
        except KeyboardInterrupt:
            print("\nstopping...", flush=True)
            return 0
        finally:
            stack.stop(signals.escalate)

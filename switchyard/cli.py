"""The `switchyard` command: run the local stack, one part alone, or act as the payment gateway."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path

from switchyard.procs import ProcessStartError


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _port(value: str) -> int:
    number = int(value)
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {number}")
    return number


def _aware_datetime(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date and time: {value}") from exc
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("give a UTC offset, e.g. 2026-12-01T11:00:00+05:30")
    return moment


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="switchyard", description="Remote switching of smart meters."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="the whole system locally, with demo data")
    run.add_argument("--meters", type=_positive, default=200, help="simulated meters (200)")
    run.add_argument("--gateways", type=_positive, default=4, help="DCUs, one gateway each (4)")
    run.add_argument("--port", type=_port, default=8000, help="HTTP API port (8000)")
    run.add_argument("--mqtt-port", type=_port, default=0, help="broker port (a free one)")
    run.add_argument("--state-dir", type=Path, default=Path(".switchyard/run"))
    run.add_argument("--link-latency-ms", type=float, default=0.0, help="meter link latency")
    run.add_argument(
        "--policy-clock",
        type=_aware_datetime,
        help="fix the policy's clock, e.g. 2026-12-01T11:00:00+05:30 (demo data dates from it)",
    )
    run.add_argument(
        "--telemetry-interval-s", type=float, default=60.0, help="how often gateways read (60)"
    )
    run.add_argument(
        "--time-scale", type=float, default=1.0, help="meter time speed-up (1440: a day a minute)"
    )
    run.add_argument(
        "--influx-url", help="write telemetry to this InfluxDB (token: SWITCHYARD_INFLUX_TOKEN)"
    )

    sub.add_parser("cloud", help="the cloud service alone (SWITCHYARD_* environment)")
    sub.add_parser("gateway", help="one edge gateway alone (SWITCHYARD_* environment)")
    sub.add_parser("sim", help="the simulated meters alone (SWITCHYARD_SIM_* environment)")

    pay = sub.add_parser("pay", help="send a signed payment webhook, as the payment gateway")
    pay.add_argument("account", help="account id, e.g. ACC000001")
    pay.add_argument("amount_paise", nargs="?", type=_positive, help="default: total payable")
    pay.add_argument("--state-dir", type=Path, default=Path(".switchyard/run"))
    pay.add_argument("--wait-s", type=float, default=10.0, help="how long to watch the relay")

    creds = sub.add_parser(
        "broker-credentials", help="make or update the broker's CA, certificates and passwords"
    )
    creds.add_argument("--dir", type=Path, default=Path("mosquitto/secrets"))
    creds.add_argument("--gateway", action="append", default=[], help="a DCU id (repeatable)")
    creds.add_argument("--host", action="append", default=[], help="broker host name or IP")
    creds.add_argument("--rotate-password", action="append", default=[], metavar="USER")
    creds.add_argument("--reissue", action="append", default=[], metavar="USER|server")
    creds.add_argument("--remove", action="append", default=[], metavar="USER")

    keys = sub.add_parser("signing-key", help="a new Ed25519 command signing key pair")
    keys.add_argument("--key-id", default="k1", help="the id gateways will know it by")

    tokens = sub.add_parser("token", help="API tokens: create, list, revoke")
    token_sub = tokens.add_subparsers(dest="subcommand", required=True)
    create = token_sub.add_parser("create", help="a new named token (printed once)")
    create.add_argument("--name", required=True, help="who will use it, e.g. a person's login")
    create.add_argument("--role", required=True, choices=["viewer", "operator"])
    token_sub.add_parser("list", help="every token, without secrets")
    revoke = token_sub.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("token_id")
    run_policy = sub.add_parser(
        "disconnection-run", help="run the disconnection policy through the API (or a dry run)"
    )
    run_policy.add_argument("--dry-run", action="store_true", help="report only, switch nothing")
    run_policy.add_argument("--api-url", help="default: SWITCHYARD_API_URL or the running stack")
    run_policy.add_argument("--token", help="operator token (SWITCHYARD_OPERATOR_TOKEN)")
    run_policy.add_argument("--state-dir", type=Path, default=Path(".switchyard/run"))
    run_policy.add_argument("--json", action="store_true", help="print the API's JSON answer")

    from switchyard.bench import add_bench_parser

    add_bench_parser(sub)
    from switchyard.soak import add_soak_parser

    add_soak_parser(sub)
    return parser


def _broker_credentials(args: argparse.Namespace) -> int:
    from switchyard.broker_credentials import CLOUD_USER, CredentialsError, ensure_credentials

    try:
        creds = ensure_credentials(
            args.dir,
            [CLOUD_USER, *args.gateway],
            server_hosts=args.host or ["mosquitto", "localhost", "127.0.0.1"],
            rotate_passwords=args.rotate_password,
            reissue=args.reissue,
            remove=args.remove,
        )
    except (CredentialsError, ProcessStartError) as exc:
        print(f"switchyard broker-credentials: {exc}", file=sys.stderr)
        return 2
    print(f"credentials in {creds.directory}/ (users: {', '.join(sorted(creds.passwords))})")
    print(f"  passwords for clients: {creds.passwords_file} (keep secret)")
    print("  reload a running broker to apply: kill -HUP <mosquitto pid>")
    return 0


def _signing_key(args: argparse.Namespace) -> int:
    from wire.signing import generate_private_key_b64, private_key_from_b64, public_key_b64

    private = generate_private_key_b64()
    public = public_key_b64(private_key_from_b64(private))
    print(f"SWITCHYARD_SIGNING_KEY_ID={args.key_id}")
    print(f"SWITCHYARD_SIGNING_PRIVATE_KEY={private}")
    print(f'# gateways: add to SWITCHYARD_TRUSTED_KEYS  "{args.key_id}": "{public}"')
    return 0


def _token(args: argparse.Namespace) -> int:
    from cloud.access.cli import run_token_command

    return run_token_command(args)


def _pay(args: argparse.Namespace) -> int:
    from switchyard.pay import pay
    from switchyard.stack import STACK_FILE

    api_url = os.environ.get("SWITCHYARD_API_URL")
    secret = os.environ.get("SWITCHYARD_WEBHOOK_SECRET")
    stack_file = args.state_dir / STACK_FILE
    if (api_url is None or secret is None) and stack_file.exists():
        described = json.loads(stack_file.read_text())
        api_url = api_url or described["api_url"]
        secret = secret or described["webhook_secret"]
    if api_url is None or secret is None:
        print(
            "switchyard pay: no running stack found; start `make run` or set "
            "SWITCHYARD_API_URL and SWITCHYARD_WEBHOOK_SECRET",
            file=sys.stderr,
        )
        return 2
    try:
        receipt = pay(api_url, secret, args.account, args.amount_paise, wait_s=args.wait_s)
    except (ValueError, RuntimeError) as exc:
        print(f"switchyard pay: {exc}", file=sys.stderr)
        return 1
    rupees = receipt.amount_paise / 100
    print(f"paid ₹{rupees:,.2f} on {args.account} ({receipt.payment_id}): {receipt.status}")
    if receipt.command_id is None:
        print("dues not cleared (or already connected): no reconnect command")
    elif receipt.power_restored_s is not None:
        ms = receipt.power_restored_s * 1000
        print(f"power restored: relay {receipt.relay} {ms:.0f} ms after the webhook")
    else:
        print(f"relay not reported connected within {args.wait_s:.0f}s (now {receipt.relay})")
        return 1
    return 0


def _disconnection_run(args: argparse.Namespace) -> int:
    import httpx

    from switchyard.runs import RunRequestError, describe_run, start_run
    from switchyard.stack import STACK_FILE

    api_url = args.api_url or os.environ.get("SWITCHYARD_API_URL")
    token = args.token or os.environ.get("SWITCHYARD_OPERATOR_TOKEN")
    stack_file = args.state_dir / STACK_FILE
    if (api_url is None or token is None) and stack_file.exists():
        described = json.loads(stack_file.read_text())
        api_url = api_url or described["api_url"]
        token = token or described["operator_token"]
    if api_url is None or token is None:
        print(
            "switchyard disconnection-run: no running stack found; start `make run` or give "
            "--api-url and --token",
            file=sys.stderr,
        )
        return 2
    try:
        run = start_run(api_url, token, dry_run=args.dry_run)
    except (RunRequestError, httpx.HTTPError) as exc:
        print(f"switchyard disconnection-run: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(run, indent=1) if args.json else describe_run(run, api_url))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `switchyard` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "run":
        from switchyard.run import run_stack
        from switchyard.stack import StackOptions

        options = StackOptions(
            meters=args.meters,
            gateways=args.gateways,
            port=args.port,
            mqtt_port=args.mqtt_port,
            state_dir=args.state_dir,
            link_latency_ms=args.link_latency_ms,
            policy_clock=args.policy_clock,
            telemetry_interval_s=args.telemetry_interval_s,
            time_scale=args.time_scale,
            influx_url=args.influx_url,
        )
        try:
            return run_stack(options)
        except ProcessStartError as exc:
            print(f"switchyard run: {exc}", file=sys.stderr)
            return 1
    if args.command == "cloud":
        from cloud.main import main as cloud_main

        cloud_main()
        return 0
    if args.command == "gateway":
        from edge_gateway.app import main as gateway_main

        gateway_main()
        return 0
    if args.command == "sim":
        from firmware_sim.app import main as sim_main

        sim_main()
        return 0
    if args.command == "pay":
        return _pay(args)
    if args.command == "broker-credentials":
        return _broker_credentials(args)
    if args.command == "signing-key":
        return _signing_key(args)
    if args.command == "token":
        return _token(args)
    if args.command == "disconnection-run":
        return _disconnection_run(args)
    if args.command == "bench":
        from switchyard.bench import run_bench

        return run_bench(args)
    if args.command == "soak":
        from switchyard.soak.run import run_soak_command

        return run_soak_command(args)
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())

"""`python -m lib simulate`: serve the KuCoin simulator over HTTP until Ctrl-C."""

from __future__ import annotations

import argparse
import ipaddress
import signal
import sys
import threading

from lib.kucoin import constants as k
from lib.kucoin.sim.accounts import SAMPLE_ACCOUNTS, AccountsError, Faults
from lib.kucoin.sim.gateway import Simulator
from lib.kucoin.sim.server import SimulatorServer

EXIT_OK = 0
EXIT_CANNOT_SERVE = 1  # the address is in use or not ours
EXIT_USAGE = 2  # bad accounts file or arguments


def _quota(text: str) -> tuple[str, int]:
    """Return (pool, quota) from "Management=100"."""
    pool, _, number = text.partition("=")
    if pool not in k.POOL_QUOTAS or not number.isdigit():
        raise argparse.ArgumentTypeError(
            f"expected POOL=N with POOL one of {', '.join(k.POOL_QUOTAS)}, got {text!r}"
        )
    return pool, int(number)


def _ip(text: str) -> str:
    """Return text when it is an IP address."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's options."""
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback)")
    parser.add_argument("--port", type=int, default=8790, help="spot port (default 8790)")
    parser.add_argument(
        "--futures-port",
        type=int,
        default=None,
        help="futures port (default: --port + 1, or any free port when --port is 0)",
    )
    parser.add_argument(
        "--accounts",
        default=str(SAMPLE_ACCOUNTS),
        metavar="FILE",
        help='JSON accounts file {"accounts": [...]} (default: the bundled sample)',
    )
    parser.add_argument("--latency-ms", type=int, default=0, help="delay every answer")
    parser.add_argument(
        "--clock-offset-ms", type=int, default=0, help="run the simulator's clock ahead (or behind)"
    )
    parser.add_argument(
        "--caller-ip", type=_ip, default=None, help="treat every caller as this IP (whitelists)"
    )
    parser.add_argument(
        "--quota",
        type=_quota,
        action="append",
        default=[],
        metavar="POOL=N",
        help="override a pool's quota per window, e.g. Management=100 (repeatable)",
    )
    parser.add_argument(
        "--ip-limit",
        type=int,
        default=k.CDN_IP_LIMIT,
        metavar="N",
        help=f"requests per {k.CDN_IP_WINDOW_S} s from one IP before the CDN's error 1015 and "
        f"a {k.CDN_BLOCK_S} s block (default {k.CDN_IP_LIMIT}, KuCoin's; 0: no limit)",
    )
    parser.add_argument(
        "--rate-window-ms",
        type=int,
        default=k.RATE_WINDOW_MS,
        help=f"rate-limit window (default {k.RATE_WINDOW_MS})",
    )


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM; return the exit status."""
    try:
        faults = Faults(latency_ms=args.latency_ms, clock_offset_ms=args.clock_offset_ms)
        simulator = Simulator.from_file(
            args.accounts,
            caller_ip=args.caller_ip,
            quotas=dict(args.quota),
            window_ms=args.rate_window_ms,
            faults=faults,
            ip_limit=args.ip_limit or None,
        )
    except (AccountsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    futures_port = args.futures_port
    if futures_port is None:
        futures_port = args.port + 1 if args.port else 0
    server = SimulatorServer(simulator, args.host, args.port, futures_port)
    try:
        server.start()
    except OSError as error:
        print(f"error: cannot listen on {args.host}: {error.strerror or error}", file=sys.stderr)
        return EXIT_CANNOT_SERVE
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        print(f"KuCoin simulator: {len(simulator.accounts)} accounts from {args.accounts}")
        print(f"spot    {server.spot_url}")
        print(f"futures {server.futures_url}")
        if args.caller_ip:
            print(f"every caller is treated as {args.caller_ip}")
        print("Ctrl-C to stop", flush=True)
        # A timed wait keeps the main thread responsive to Ctrl-C.
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
    print("stopped", flush=True)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run the command on its own: `python -m lib.kucoin.sim.cli ...`."""
    parser = argparse.ArgumentParser(prog="python -m lib simulate")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

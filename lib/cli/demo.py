"""`python -m lib demo`: (re)build the demo fleet against a local simulator and print it."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from lib.cli.status import render_fleet
from lib.cli.terminal import EXIT_OK, EXIT_USAGE, fail
from lib.config import DATA_DIR_ENV, FUTURES_URL_ENV, SPOT_URL_ENV
from lib.console.demo import DEMO_ACCOUNTS, DemoError, build_demo, default_demo_dir
from lib.console.fleet import fleet_snapshot

EXIT_CANNOT_SERVE = 1  # the simulator's ports could not be bound


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's options."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the demo's own directory (default: data/demo); it is emptied and rebuilt",
    )
    parser.add_argument(
        "--serve", action="store_true", help="keep the simulator running until Ctrl-C"
    )
    parser.add_argument(
        "--port", type=int, default=0, help="simulator spot port, futures on port+1 (default: any)"
    )


def run(args: argparse.Namespace) -> int:
    """Build the demo, print its fleet and the simulator's URLs; serve if asked."""
    data_dir = (args.data_dir or default_demo_dir()).absolute()
    print(f"Building the demo fleet ({len(DEMO_ACCOUNTS)} simulated accounts) in {data_dir} …")
    try:
        console, server = build_demo(
            data_dir, spot_port=args.port, futures_port=args.port + 1 if args.port else 0
        )
    except DemoError as error:
        fail(str(error))
        return EXIT_USAGE
    except OSError as error:
        fail(f"cannot start the simulator: {error.strerror or error}")
        return EXIT_CANNOT_SERVE
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        print()
        print(render_fleet(fleet_snapshot(console)))
        print()
        print("KuCoin simulator")
        print(f"spot    {server.spot_url}")
        print(f"futures {server.futures_url}")
        if not args.serve:
            print("The simulator stops now; run with --serve to keep it for the app or a notebook.")
            return EXIT_OK
        print()
        print("To look at this fleet in the app while the simulator runs:")
        print(
            f"  {DATA_DIR_ENV}={data_dir} {SPOT_URL_ENV}={server.spot_url} "
            f"{FUTURES_URL_ENV}={server.futures_url} make run"
        )
        print("Ctrl-C to stop", flush=True)
        # The wait of `simulate` (lib.kucoin.sim.cli), which has no console to close;
        # a timed wait keeps the main thread responsive to Ctrl-C.
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        console.close()
        server.stop()
    print("stopped", flush=True)
    return EXIT_OK

"""`python -m lib watch`: check each account when it falls due, until stopped.

Meant to run as a service (systemd, a container) or from cron with `refresh`: SIGTERM or
Ctrl-C lets the checks in flight finish and be stored, then it exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from lib.cli.installation import open_console
from lib.cli.terminal import EXIT_OK, EXIT_USAGE, fail
from lib.config import Config
from lib.console import LOCAL_OPERATOR
from lib.console.watch import WATCHER_ACTOR, Watcher, watcher_name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's options."""
    parser.add_argument(
        "--name",
        default=None,
        help="this watcher's name in heartbeats and leases (default: host:pid)",
    )
    parser.epilog = (
        "Each account is checked when it falls due (the freshness period in Settings, a little "
        "early at random so accounts bound together spread out; sooner after a failure a retry "
        "may fix). Several watchers may share one database, one per egress IP: leases keep "
        "them off each other's accounts. BINDWATCH_IP_BUDGET caps the requests per 10 s. "
        "SIGTERM or Ctrl-C: the checks in flight finish, then exit 0."
    )


def run(args: argparse.Namespace) -> int:
    """Watch until SIGTERM or Ctrl-C; return the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        config = Config.from_env()
    except ValueError as error:
        fail(str(error))
        return EXIT_USAGE
    console = open_console(config)
    if console is None:
        return EXIT_USAGE
    console = console.as_actor(WATCHER_ACTOR if console.actor == LOCAL_OPERATOR else console.actor)
    watcher = Watcher(console, name=args.name or watcher_name())
    stopping = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.signal(sig, lambda *_: watcher.stop()) for sig in stopping}
    # The watcher runs in a thread so that this one is free to take the signal at once.
    thread = threading.Thread(target=watcher.run, name="watcher")
    thread.start()
    logging.info("watcher %s watching %s", watcher.name, config)
    try:
        while thread.is_alive():
            thread.join(timeout=0.5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        console.close()
    logging.info("watcher %s stopped", watcher.name)
    return EXIT_OK

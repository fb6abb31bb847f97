"""`python -m lib alerts add [URL|-]|list|remove N|test`: where alerts go (apprise URLs).

A channel URL holds tokens. `alerts add URL` takes it on the command line, where other users
of the machine can read it (`ps`, shell history): prefer `alerts add` with no URL (asked
without echo on a terminal) or `alerts add -` with the URL on the first line of stdin:

    printf '%s\\n' "$SLACK_URL" | python -m lib alerts add -
"""

from __future__ import annotations

import argparse
import getpass
import sys

from lib.cli.installation import run_action
from lib.cli.terminal import EXIT_NO, EXIT_OK, EXIT_USAGE, fail, interactive
from lib.console import Console, alerts
from lib.secret import Secret

FROM_STDIN = "-"
NO_URL = (
    "no channel URL: give it on the first line of stdin (`alerts add -`), or run in a terminal "
    "to be asked"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the subcommands."""
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = sub.add_parser(
        "add",
        help="add a channel (an apprise URL, e.g. json://host:port/path)",
        description="Add a channel. A URL given here is visible to other users of this "
        "machine: prefer no URL (asked without echo) or '-' (read from stdin).",
    )
    add.add_argument(
        "url", nargs="?", default=None, help="the apprise URL; '-' or none: read it safely"
    )
    sub.add_parser("list", help="list the channels, masked")
    remove = sub.add_parser("remove", help="remove channel number N (see `alerts list`)")
    remove.add_argument("number", type=int)
    sub.add_parser("test", help="send a test message to every channel now")


def _read_url(given: str | None) -> Secret | None:
    """Return the URL from argv, stdin's first line ('-' or none) or a question on a terminal."""
    if given not in (None, FROM_STDIN):
        return Secret(given)
    if given is None and interactive():
        typed = getpass.getpass("Channel URL (not shown): ").strip()
        return Secret(typed) if typed else None
    line = sys.stdin.readline().strip() if sys.stdin is not None else ""
    return Secret(line) if line else None


def _add(console: Console, args: argparse.Namespace) -> int:
    url = _read_url(args.url)
    if url is None:
        fail(NO_URL)
        return EXIT_USAGE
    number = alerts.add_channel(console, url)
    shown = alerts.channels(console).set_index("number").loc[number, "channel"]
    print(f"Added channel {number}: {shown}. Try it with `python -m lib alerts test`.")
    return EXIT_OK


def _list(console: Console, _args: argparse.Namespace) -> int:
    table = alerts.channels(console)
    if table.empty:
        print("No alert channel yet: add one with `python -m lib alerts add -` (URL on stdin).")
        return EXIT_OK
    for row in table.itertuples():
        print(f"{row.number:>3}  {row.channel:<28}  added {row.added:%Y-%m-%d %H:%M} by {row.by}")
    return EXIT_OK


def _remove(console: Console, args: argparse.Namespace) -> int:
    masked = alerts.remove_channel(console, args.number)
    print(f"Removed channel {args.number} ({masked}).")
    return EXIT_OK


def _test(console: Console, _args: argparse.Namespace) -> int:
    answers = alerts.send_test(console)
    if not answers:
        print("No alert channel yet: add one first (`python -m lib alerts add -`).")
        return EXIT_NO
    for answer in answers:
        said = "sent" if answer.sent else f"FAILED: {answer.error}"
        print(f"{answer.channel}: {said}")
    return EXIT_OK if all(a.sent for a in answers) else EXIT_NO


ACTIONS = {"add": _add, "list": _list, "remove": _remove, "test": _test}


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; return the exit status."""
    return run_action(ACTIONS, args)

"""`python -m lib operators add|list|remove|passwd`: who may open the console.

A password is asked twice without echo on a terminal, or read from the first line of stdin
for scripts (`printf '%s\\n' "$PW" | python -m lib operators add ana --role admin`); never from
the command line.
"""

from __future__ import annotations

import argparse

from lib.cli.installation import run_action
from lib.cli.terminal import EXIT_OK, EXIT_USAGE, fail, read_password
from lib.console import Console, Role, operators

NO_PASSWORD = (
    "no password: type the same one twice, or give it on the first line of stdin (never on "
    "the command line)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the subcommands."""
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="add an operator (the first must be an admin)")
    add.add_argument("name", help="letters, digits or . _ @ - (kept lower case)")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    sub.add_parser("list", help="list the operators and their roles")
    remove = sub.add_parser("remove", help="remove an operator (never the last admin)")
    remove.add_argument("name")
    passwd = sub.add_parser("passwd", help="set an operator's password; their sessions end")
    passwd.add_argument("name")


def _add(console: Console, args: argparse.Namespace) -> int:
    password = read_password(f"Password for {args.name}: ")
    if password is None:
        fail(NO_PASSWORD)
        return EXIT_USAGE
    added = operators.add_operator(console, args.name, password, args.role)
    print(f"Added {added.name} as {added.role.value}.")
    return EXIT_OK


def _list(console: Console, _args: argparse.Namespace) -> int:
    table = operators.operators_frame(console)
    if table.empty:
        print("No operator yet: add the first admin with `operators add NAME --role admin`.")
        return EXIT_OK
    width = max(4, *(len(n) for n in table["name"]))
    print(f"{'NAME':<{width}}  ROLE    SINCE             SESSIONS")
    for row in table.itertuples():
        print(f"{row.name:<{width}}  {row.role:<6}  {row.since:%Y-%m-%d %H:%M}  {row.sessions}")
    return EXIT_OK


def _remove(console: Console, args: argparse.Namespace) -> int:
    operators.remove_operator(console, args.name)
    print(f"Removed {args.name.strip().lower()}; their sessions ended.")
    return EXIT_OK


def _passwd(console: Console, args: argparse.Namespace) -> int:
    operators.operator(console, args.name)  # an unknown name fails before the question
    password = read_password(f"New password for {args.name}: ")
    if password is None:
        fail(NO_PASSWORD)
        return EXIT_USAGE
    ended = operators.set_password(console, args.name, password)
    print(f"Password changed; {ended} session(s) ended.")
    return EXIT_OK


ACTIONS = {"add": _add, "list": _list, "remove": _remove, "passwd": _passwd}


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; return the exit status."""
    return run_action(ACTIONS, args)

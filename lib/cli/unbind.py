"""`python -m lib unbind LABEL`: destroy an account's credentials after saying what goes."""

from __future__ import annotations

import argparse

from lib.cli.installation import open_console
from lib.cli.terminal import EXIT_NO, EXIT_OK, EXIT_USAGE, confirm, fail, interactive
from lib.console import binding
from lib.console.errors import StoreError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    parser.add_argument("label", help="the label of the account to unbind")
    parser.add_argument("--yes", action="store_true", help="unbind without asking")


def run(args: argparse.Namespace) -> int:
    """Show what unbinding deletes, confirm, unbind; return the exit status."""
    console = open_console()
    if console is None:
        return EXIT_USAGE
    try:
        account = binding.account_by_label(console, args.label)
        if account is None:
            fail(
                f"no bound account is labelled {args.label!r}; `python -m lib accounts` lists them"
            )
            return EXIT_NO
        print(binding.unbind_summary(console, account.id))
        if not (args.yes or (interactive() and confirm(f"Unbind '{account.label}'?"))):
            print("Not unbound: confirm with --yes (or run in a terminal to be asked).")
            return EXIT_NO
        try:
            binding.unbind(console, account.id)
        except StoreError as error:
            fail(str(error))
            return EXIT_NO
        print(f"Unbound '{account.label}': its credentials are destroyed; its history is kept.")
        return EXIT_OK
    finally:
        console.close()

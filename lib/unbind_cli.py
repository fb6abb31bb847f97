"""`python -m lib unbind LABEL`: destroy an account's credentials after saying what goes."""

from __future__ import annotations

import argparse
import sys

from lib import store
from lib.bind_cli import confirm, interactive
from lib.console import Console, binding
from lib.vault import VaultError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    parser.add_argument("label", help="the label of the account to unbind")
    parser.add_argument("--yes", action="store_true", help="unbind without asking")


def run(args: argparse.Namespace) -> int:
    """Show what unbinding deletes, confirm, unbind; return the exit status."""
    try:
        console = Console.open()
    except VaultError as error:
        print(f"error: bindwatch cannot open its credential store: {error}", file=sys.stderr)
        return 2
    try:
        account = binding.account_by_label(console, args.label)
        if account is None:
            print(
                f"error: no bound account is labelled {args.label!r}; "
                "`python -m lib accounts` lists them",
                file=sys.stderr,
            )
            return 1
        print(binding.unbind_summary(console, account.id))
        if not (args.yes or (interactive() and confirm(f"Unbind '{account.label}'?"))):
            print("Not unbound: confirm with --yes (or run in a terminal to be asked).")
            return 1
        try:
            binding.unbind(console, account.id)
        except store.StoreError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(f"Unbound '{account.label}': its credentials are destroyed; its history is kept.")
        return 0
    finally:
        console.close()

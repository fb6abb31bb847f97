"""`python -m lib accounts`: the bound accounts, one line each; never a secret."""

from __future__ import annotations

import argparse
import json

from lib.cli.installation import open_console
from lib.cli.terminal import EXIT_OK, EXIT_USAGE
from lib.console import binding
from lib.store import AccountView

COLUMNS = ("LABEL", "ID", "SCOPES", "KEY", "STATE", "CREATED")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's options."""
    parser.add_argument("--json", action="store_true", help="print the accounts as JSON")


def state(account: AccountView) -> str:
    """Return what the operator must know about an account: unbound, paused, unverified."""
    if not account.bound:
        return "unbound"
    flags = [name for name in ("paused", "unverified") if getattr(account, name)]
    return ", ".join(flags) or "active"


def as_dict(account: AccountView) -> dict[str, object]:
    """Return one account as JSON-ready data (the key only by its last four characters)."""
    return {
        "id": account.id,
        "label": account.label,
        "scopes": list(account.scopes),
        "key_last4": account.key_last4,
        "state": state(account),
        "paused": account.paused,
        "unverified": account.unverified,
        "unbound": not account.bound,
        "unbound_at": account.unbound_at.isoformat() if account.unbound_at else None,
        "created_at": account.created_at.isoformat(),
        "created_by": account.created_by,
    }


def render_table(accounts: list[AccountView]) -> str:
    """Return the accounts as an aligned text table."""
    rows = [
        (
            a.label,
            str(a.id),
            ",".join(a.scopes),
            f"…{a.key_last4}" if a.key_last4 else "-",
            state(a),
            f"{a.created_at:%Y-%m-%d %H:%M}",
        )
        for a in accounts
    ]
    widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [COLUMNS, *rows]
    )


def run(args: argparse.Namespace) -> int:
    """Print the accounts; return the exit status."""
    console = open_console()
    if console is None:
        return EXIT_USAGE
    try:
        accounts = binding.accounts(console, include_unbound=True)
    finally:
        console.close()
    if args.json:
        print(json.dumps([as_dict(a) for a in accounts], indent=2))
    elif accounts:
        print(render_table(accounts))
    else:
        print("No accounts yet: bind one with `python -m lib bind --label NAME`.")
    return EXIT_OK

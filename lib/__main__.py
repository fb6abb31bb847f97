"""Command line: `python -m lib COMMAND ...`; a command's module is imported only to run it.

`python -m lib check` thus starts with the KuCoin client and the health rules only: no
database, no pandas, no Streamlit.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module providing `add_arguments(parser)` and `run(args) -> int`, one-line help).
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("lib.kucoin.sim.cli", "run a local KuCoin simulator over HTTP"),
    "check": ("lib.cli.check", "check one key from KUCOIN_API_* environment variables"),
    "rotate-master-key": (
        "lib.cli.rotate_master_key",
        "re-encrypt every stored secret under a new master key",
    ),
    "bind": ("lib.cli.bind", "check a key live and bind it to a new account"),
    "import": ("lib.cli.import_keys", "bind many keys from a CSV or JSON file, verified first"),
    "accounts": ("lib.cli.accounts", "list the bound accounts (no secrets)"),
    "unbind": ("lib.cli.unbind", "destroy an account's credentials, keeping its history"),
    "status": ("lib.cli.status", "print the fleet table, worst first (--json for JSON)"),
    "refresh": ("lib.cli.refresh", "check the accounts that are due (--all: every one) now"),
    "watch": ("lib.cli.watch", "check each account when it falls due, until stopped"),
    "demo": ("lib.cli.demo", "build the demo fleet on a local simulator and print it"),
    "operators": ("lib.cli.operators", "add, list, remove operators or set a password"),
    "alerts": ("lib.cli.alerts", "add, list, remove alert channels (apprise URLs) or test them"),
}


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the command, and return its exit status."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m lib", description="bindwatch")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parsers = {
        name: sub.add_parser(name, help=help_text, description=help_text)
        for name, (_, help_text) in COMMANDS.items()
    }
    # The command is the first word that is not an option (the parser itself has only -h).
    chosen = next((word for word in argv if not word.startswith("-")), None)
    module = None
    if chosen in COMMANDS:
        module = importlib.import_module(COMMANDS[chosen][0])
        module.add_arguments(parsers[chosen])
    args = parser.parse_args(argv)
    assert module is not None  # parse_args exits on a missing or unknown command
    try:
        return module.run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

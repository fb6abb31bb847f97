"""Command line: `python -m lib COMMAND ...`. Each command lives in its own module."""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> module providing `add_arguments(parser)` and `run(args) -> int`, plus a one-line help.
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("lib.kucoin.sim.cli", "run a local KuCoin simulator over HTTP"),
    "check": ("lib.check_cli", "check one key from KUCOIN_API_* environment variables"),
    "rotate-master-key": ("lib.vault_cli", "re-encrypt every stored secret under a new master key"),
    "bind": ("lib.bind_cli", "check a key live and bind it to a new account"),
    "accounts": ("lib.accounts_cli", "list the bound accounts (no secrets)"),
    "unbind": ("lib.unbind_cli", "destroy an account's credentials, keeping its history"),
    "status": ("lib.status_cli", "print the fleet table, worst first (--json for JSON)"),
    "demo": ("lib.demo_cli", "build the demo fleet on a local simulator and print it"),
}


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the command, and return its exit status."""
    parser = argparse.ArgumentParser(prog="python -m lib", description="bindwatch")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {}
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        modules[name] = module
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    try:
        return modules[args.command].run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

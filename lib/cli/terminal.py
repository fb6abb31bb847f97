"""What every command shares with the terminal: exit codes, KuCoin's URLs, questions asked.

Light on purpose: `check` imports this, and must start without the database or pandas.
Secrets come from KUCOIN_API_* variables (passwords from stdin) or are asked for without echo;
never from argv.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Mapping

from lib.config import FUTURES_URL_ENV, SPOT_URL_ENV, Config

EXIT_OK = 0
EXIT_NO = 1  # the command ran and the answer is no: refused, not saved, an account failing
EXIT_USAGE = 2  # missing or bad input, or bindwatch's database or master key cannot be opened
EXIT_UNREACHABLE = 3  # no usable answer from KuCoin: retry later

ENV_KEY = "KUCOIN_API_KEY"
ENV_SECRET = "KUCOIN_API_SECRET"
ENV_PASSPHRASE = "KUCOIN_API_PASSPHRASE"
ENV_KEY_VERSION = "KUCOIN_API_KEY_VERSION"
# Each credential: the variable it is read from, and the question asked when it is missing.
PROMPTS = {
    "api_key": (ENV_KEY, "API Key: "),
    "api_secret": (ENV_SECRET, "Secret: "),
    "passphrase": (ENV_PASSPHRASE, "Passphrase: "),
}


class MissingCredentials(Exception):
    """A credential is neither in the environment nor can be asked for."""


def fail(message: str) -> None:
    """Say on stderr what went wrong."""
    print(f"error: {message}", file=sys.stderr)


def add_kucoin_urls(parser: argparse.ArgumentParser) -> None:
    """Declare --spot-url and --futures-url, which override where KuCoin is."""
    parser.add_argument(
        "--spot-url", help=f"spot REST base URL (default ${SPOT_URL_ENV} or KuCoin's)"
    )
    parser.add_argument(
        "--futures-url", help=f"futures REST base URL (default ${FUTURES_URL_ENV} or KuCoin's)"
    )


def kucoin_urls(args: argparse.Namespace, config: Config) -> tuple[str, str]:
    """Return KuCoin's spot and futures URLs: the options given, else the configuration's."""
    return (
        args.spot_url or config.kucoin_spot_url,
        args.futures_url or config.kucoin_futures_url,
    )


def read_credentials(environ: Mapping[str, str] | None = None, *, may_ask: bool) -> dict[str, str]:
    """Return the credentials from the environment; with `may_ask`, ask a terminal for the rest."""
    env = os.environ if environ is None else environ
    values = {name: env.get(variable, "") for name, (variable, _) in PROMPTS.items()}
    missing = [name for name, value in values.items() if not value.strip()]
    if missing and not (may_ask and interactive()):
        names = ", ".join(PROMPTS[name][0] for name in missing)
        ask = ", or run in a terminal to be asked" if may_ask else ""
        raise MissingCredentials(f"set {names} in the environment{ask} (never on the command line)")
    for name in missing:
        values[name] = getpass.getpass(PROMPTS[name][1])
    return values


def read_password(prompt: str = "Password: ") -> str | None:
    """Return a new password: asked twice without echo on a terminal, else stdin's first line.

    None when the two typed on a terminal differ, or stdin is empty. Never from argv.
    """
    if interactive():
        password = getpass.getpass(prompt)
        return password if getpass.getpass("Again: ") == password else None
    line = sys.stdin.readline() if sys.stdin is not None else ""
    return line.rstrip("\r\n") or None


def interactive() -> bool:
    """Return whether the operator can be asked (stdin is a terminal)."""
    return sys.stdin is not None and sys.stdin.isatty()


def confirm(question: str) -> bool:
    """Ask a yes/no question on the terminal; anything but y/yes is no."""
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False

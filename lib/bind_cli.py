"""`python -m lib bind`: check a key live, show what KuCoin said, save it once confirmed.

The same cleaning, verification and confirmation as the Bind page (lib.console.binding).
Secrets come from KUCOIN_API_KEY / KUCOIN_API_SECRET / KUCOIN_API_PASSPHRASE, or are asked
for without echo when absent and stdin is a terminal; never from the command line.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime

from lib.binding_input import FIELD_NAMES
from lib.check_cli import ENV_KEY, ENV_PASSPHRASE, ENV_SECRET, render_report
from lib.config import FUTURES_URL_ENV, SPOT_URL_ENV, Config
from lib.console import Console, KucoinTarget, binding
from lib.console.binding import BindingError, Decision, KeyCheck
from lib.health.coverage import PERMISSION_MARKS
from lib.health.status import Status
from lib.vault import VaultError

EXIT_SAVED = 0
EXIT_NOT_SAVED = 1  # KuCoin refused the key, it is bound already, or warnings not confirmed
EXIT_USAGE = 2  # missing credentials, a paste with errors, a taken label, no database
EXIT_UNREACHABLE = 3  # no usable answer from KuCoin: retry later

PROMPTS = {
    "api_key": (ENV_KEY, "API Key: "),
    "api_secret": (ENV_SECRET, "Secret: "),
    "passphrase": (ENV_PASSPHRASE, "Passphrase: "),
}


class MissingCredentials(Exception):
    """A credential is neither in the environment nor can be asked for."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's options (credentials never come from the command line)."""
    parser.add_argument("--label", required=True, help="the account's name in the fleet")
    parser.add_argument(
        "--scopes",
        default="spot",
        help="what the account needs, comma-separated among spot, futures, margin (default spot)",
    )
    parser.add_argument(
        "--yes", action="store_true", help="accept the key's warnings without asking"
    )
    parser.add_argument(
        "--save-unverified",
        action="store_true",
        help="save a key KuCoin refused only for this machine's IP (400006), marked unverified",
    )
    parser.add_argument(
        "--spot-url", help=f"spot REST base URL (default ${SPOT_URL_ENV} or KuCoin's)"
    )
    parser.add_argument(
        "--futures-url", help=f"futures REST base URL (default ${FUTURES_URL_ENV} or KuCoin's)"
    )
    parser.epilog = (
        f"Credentials are read from {ENV_KEY}, {ENV_SECRET} and {ENV_PASSPHRASE}; any that is "
        "missing is asked for without echo when stdin is a terminal. Exit status: 0 saved, "
        "1 not saved (refused, duplicate or not confirmed), 2 bad input, 3 KuCoin unreachable."
    )


def read_credentials(
    environ: Mapping[str, str] | None = None, *, ask: bool | None = None
) -> dict[str, str]:
    """Return the credentials from the environment, asking without echo for missing ones."""
    env = os.environ if environ is None else environ
    ask = interactive() if ask is None else ask
    values = {name: env.get(variable, "") for name, (variable, _) in PROMPTS.items()}
    missing = [name for name, value in values.items() if not value.strip()]
    if missing and not ask:
        names = ", ".join(PROMPTS[name][0] for name in missing)
        raise MissingCredentials(
            f"set {names} in the environment, or run in a terminal to be asked (never on the "
            "command line)"
        )
    for name in missing:
        values[name] = getpass.getpass(PROMPTS[name][1])
    return values


def interactive() -> bool:
    """Return whether the operator can be asked (stdin is a terminal)."""
    return sys.stdin is not None and sys.stdin.isatty()


def confirm(question: str) -> bool:
    """Ask a yes/no question on the terminal; anything but y/yes is no."""
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def render_check(check: KeyCheck, now: datetime) -> str:
    """Return the plain-text report of a key check: the Bind page's content, as text."""
    lines = [f"Note: {notice}" for notice in check.notices]
    if check.decision is Decision.INVALID:
        lines.append("Nothing was sent to KuCoin. Fix:")
        lines.extend(
            f"  {FIELD_NAMES.get(name, name)}: {error}" for name, error in check.errors.items()
        )
        return "\n".join(lines)
    if check.decision is Decision.DUPLICATE:
        lines.append(
            f"This API key is already bound to account '{check.duplicate_of}'. The same key "
            "cannot be bound twice: unbind it there first, or rotate that account's "
            "credentials. Nothing was sent to KuCoin."
        )
        return "\n".join(lines)
    assert check.result is not None and check.assessment is not None
    lines.append(render_report(check.result, now, check.assessment, warnings=()))
    if check.connected and check.permissions is not None:
        lines.append("Permissions against the scopes this account needs:")
        for row in check.permissions.itertuples():
            needed = " (needed)" if bool(row.needed) else ""
            lines.append(f"  {PERMISSION_MARKS[row.state]} {row.permission}{needed}: {row.state}")
    if check.whitelist is not None and len(check.whitelist):
        lines.append("Whitelist coverage:")
        for row in check.whitelist.itertuples():
            kind = "platform IP" if bool(row.is_platform_ip) else "IP KuCoin saw"
            lines.append(f"  {row.ip} ({kind}): {row.coverage}, {row.detail}")
    # Last, right above the question they are the subject of.
    lines.extend(f"Warning: {warning}" for warning in check.warnings)
    return "\n".join(lines)


def open_console(spot_url: str | None = None, futures_url: str | None = None) -> Console:
    """Open the configured console, KuCoin's URLs overridden when given."""
    config = Config.from_env()
    kucoin = KucoinTarget(
        spot_url or config.kucoin_spot_url, futures_url or config.kucoin_futures_url
    )
    return Console.open(config, kucoin=kucoin)


def run(args: argparse.Namespace) -> int:
    """Check the key, print the report, save it when allowed; return the exit status."""
    try:
        credentials = read_credentials()
    except MissingCredentials as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        console = open_console(args.spot_url, args.futures_url)
    except VaultError as error:
        print(f"error: bindwatch cannot open its credential store: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        check = binding.check_key(console, label=args.label, scopes=args.scopes, **credentials)
        del credentials
        print(render_check(check, datetime.now(UTC)))
        return _decide(console, check, args)
    finally:
        console.close()


def _decide(console: Console, check: KeyCheck, args: argparse.Namespace) -> int:
    """Save the checked key if allowed (asking when needed); return the exit status."""
    if check.decision is Decision.INVALID:
        print("error: nothing saved: fix what is listed above", file=sys.stderr)
        return EXIT_USAGE
    if check.decision is Decision.DUPLICATE:
        print("error: nothing saved: the key is bound already", file=sys.stderr)
        return EXIT_NOT_SAVED
    if check.decision is Decision.FAILED:
        assert check.assessment is not None
        print("error: nothing saved: KuCoin did not accept the key", file=sys.stderr)
        return EXIT_UNREACHABLE if check.assessment.transient else EXIT_NOT_SAVED
    assert check.token is not None
    options: dict[str, bool] = {}
    if check.decision is Decision.NEEDS_CONFIRMATION:
        accepted = args.yes or (interactive() and confirm("Save this key with these warnings?"))
        hint = "confirm the warnings with --yes"
        options["accept_warnings"] = accepted
    elif check.decision is Decision.WHITELIST_ONLY:
        print(
            "KuCoin refused only this machine's IP: the key may be saved as unverified "
            "(it shows as unverified until a check passes)."
        )
        accepted = args.save_unverified or (interactive() and confirm("Save it as unverified?"))
        hint = "save it as unverified with --save-unverified, or whitelist this IP"
        options["accept_unverified"] = accepted
    else:
        accepted = True
    if not accepted:
        binding.discard(check.token)
        print(f"Not saved: {hint} (or run in a terminal to be asked).", file=sys.stderr)
        return EXIT_NOT_SAVED
    try:
        account_id = binding.save(console, check.token, **options)
    except BindingError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_NOT_SAVED
    if options.get("accept_unverified"):
        state = "UNVERIFIED"
    elif check.status is Status.OK:
        state = "verified"
    else:
        # What the Fleet shows for it from now on, in the same words.
        assert check.assessment is not None
        state = f"connected; the Fleet shows it as {check.status}: {check.assessment.diagnosis}"
    print(f"Saved: account '{check.label}' (id {account_id}), {state}.")
    return EXIT_SAVED

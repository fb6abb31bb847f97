"""`python -m lib bind`: check a key live, show what KuCoin said, save it once confirmed.

The same cleaning, verification and confirmation as the Bind page (lib.console.binding).
Secrets come from KUCOIN_API_KEY / KUCOIN_API_SECRET / KUCOIN_API_PASSPHRASE, or are asked
for without echo when absent and stdin is a terminal; never from the command line.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from lib.cli.check import render_report
from lib.cli.installation import open_console
from lib.cli.terminal import (
    ENV_KEY,
    ENV_PASSPHRASE,
    ENV_SECRET,
    EXIT_NO,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    MissingCredentials,
    add_kucoin_urls,
    confirm,
    fail,
    interactive,
    kucoin_urls,
    read_credentials,
)
from lib.config import Config
from lib.console import Console, KucoinTarget, binding
from lib.console.binding import BindingError, Decision, KeyCheck, duplicate_text
from lib.console.binding_input import FIELD_NAMES
from lib.console.errors import VaultError
from lib.health.coverage import PERMISSION_MARKS
from lib.health.status import Status


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
    add_kucoin_urls(parser)
    parser.epilog = (
        f"Credentials are read from {ENV_KEY}, {ENV_SECRET} and {ENV_PASSPHRASE}; any that is "
        "missing is asked for without echo when stdin is a terminal. Exit status: 0 saved, "
        "1 not saved (refused, duplicate or not confirmed), 2 bad input, 3 KuCoin unreachable."
    )


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
        lines.append(duplicate_text(check))
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


def run(args: argparse.Namespace) -> int:
    """Check the key, print the report, save it when allowed; return the exit status."""
    try:
        credentials = read_credentials(may_ask=True)
    except MissingCredentials as error:
        fail(str(error))
        return EXIT_USAGE
    config = Config.from_env()
    console = open_console(config, KucoinTarget(*kucoin_urls(args, config)))
    if console is None:
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
        fail("nothing saved: fix what is listed above")
        return EXIT_USAGE
    if check.decision is Decision.DUPLICATE:
        fail("nothing saved: the key is bound already")
        return EXIT_NO
    if check.decision is Decision.FAILED:
        assert check.assessment is not None
        fail("nothing saved: KuCoin did not accept the key")
        return EXIT_UNREACHABLE if check.assessment.transient else EXIT_NO
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
        return EXIT_NO
    try:
        account_id = binding.save(console, check.token, **options)
    except BindingError as error:
        fail(str(error))
        return EXIT_NO
    except VaultError as error:
        # The key file changed under this run and is refused: nothing was written.
        fail(f"bindwatch cannot use its credential store: {error}")
        return EXIT_USAGE
    if options.get("accept_unverified"):
        state = "UNVERIFIED"
    elif check.status is Status.OK:
        state = "verified"
    else:
        # What the Fleet shows for it from now on, in the same words.
        assert check.assessment is not None
        state = f"connected; the Fleet shows it as {check.status}: {check.assessment.diagnosis}"
    print(f"Saved: account '{check.label}' (id {account_id}), {state}.")
    return EXIT_OK

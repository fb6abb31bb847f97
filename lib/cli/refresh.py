"""`python -m lib refresh`: check the accounts that are due (or all) now, once, and report."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter

from tqdm import tqdm

from lib.cli.installation import open_console
from lib.cli.status import exit_status
from lib.cli.terminal import EXIT_USAGE, fail
from lib.config import Config
from lib.console import alerts
from lib.console.checks import check_round, run_owner
from lib.console.fleet import fleet_snapshot
from lib.health.checks import check_result
from lib.health.fleet import is_failing


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's options."""
    parser.add_argument(
        "--all", action="store_true", help="check every account, not only those due"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    parser.epilog = (
        "One round of what `watch` does continuously: each account is claimed with a lease, "
        "so a watcher running meanwhile never checks it at the same time. Exit status: 0 when "
        "no account is failing afterwards, 1 when at least one is, 2 when the database or "
        "master key cannot be opened."
    )


def run(args: argparse.Namespace) -> int:
    """Run one round with a progress bar (in a terminal) and return the exit status."""
    try:
        config = Config.from_env()
    except ValueError as error:
        fail(str(error))
        return EXIT_USAGE
    console = open_console(config)
    if console is None:
        return EXIT_USAGE
    try:
        bar = _progress_bar(args)
        report = check_round(
            console,
            owner=run_owner(console),
            due_only=not args.all,
            on_stored=(lambda *_: bar.update(1)) if bar is not None else None,
        )
        if bar is not None:
            bar.close()
        # This process ends here: let the alert worker decide and send before it does.
        alerts.settle(console)
        snapshot = fleet_snapshot(console)
    finally:
        console.close()
    fleet = snapshot.fleet
    results = Counter(
        check_result(r.outcome, r.code, r.clock_offset_ms, snapshot.policy)
        for r in report.results.values()
    )
    failing = int(is_failing(fleet["status"]).sum()) if len(fleet) else 0
    summary = {
        "checked": len(report.results),
        "seconds": round(report.seconds, 2),
        "per_minute": round(len(report.results) * 60 / max(report.seconds, 0.001), 1),
        "results": {name: results.get(name, 0) for name in ("ok", "retrying", "rejected")},
        "accounts": len(fleet),
        "failing": failing,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(_sentence(summary, due_only=not args.all))
    return exit_status(fleet) if len(fleet) else 0


def _progress_bar(args: argparse.Namespace) -> tqdm | None:
    """Return a progress bar on stderr when it is a terminal, else None."""
    if args.json or not sys.stderr.isatty():
        return None
    return tqdm(desc="Checking", unit="account", file=sys.stderr)


def _sentence(summary: dict, *, due_only: bool) -> str:
    """Return the round's summary in words."""
    if not summary["checked"]:
        what = "No account was due" if due_only else "No account to check"
        return f"{what}. {summary['failing']} of {summary['accounts']} accounts failing."
    r = summary["results"]
    return (
        f"Checked {summary['checked']} accounts in {summary['seconds']:.1f} s "
        f"({summary['per_minute']:.0f} per minute): {r['ok']} passed, {r['retrying']} failed "
        f"in a way a retry may fix, {r['rejected']} refused by KuCoin. "
        f"{summary['failing']} of {summary['accounts']} accounts failing"
        + (": `python -m lib status` says what to do." if summary["failing"] else ".")
    )

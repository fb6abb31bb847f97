"""`python -m lib check`: verify one key from KUCOIN_API_* environment variables, print a report."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

from lib.config import FUTURES_URL_ENV, SPOT_URL_ENV, Config
from lib.health.assessment import CheckAssessment, assess_check
from lib.health.checks import IP_BLOCKED_CODE
from lib.health.policy import HealthPolicy
from lib.health.wording import api_status, key_warnings
from lib.kucoin import constants as k
from lib.kucoin.auth import Credentials
from lib.kucoin.probe import probe
from lib.kucoin.probe_result import ProbeResult, probe_result_to_dict

ENV_KEY = "KUCOIN_API_KEY"
ENV_SECRET = "KUCOIN_API_SECRET"
ENV_PASSPHRASE = "KUCOIN_API_PASSPHRASE"
ENV_KEY_VERSION = "KUCOIN_API_KEY_VERSION"

EXIT_OK = 0
EXIT_REJECTED = 1  # KuCoin refused the key: the report says why and what to do
EXIT_USAGE = 2  # missing credentials or bad arguments
EXIT_UNREACHABLE = 3  # no usable answer from KuCoin: retry later


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's options (credentials come only from the environment)."""
    parser.add_argument(
        "--spot-url", help=f"spot REST base URL (default ${SPOT_URL_ENV} or KuCoin's)"
    )
    parser.add_argument(
        "--futures-url", help=f"futures REST base URL (default ${FUTURES_URL_ENV} or KuCoin's)"
    )
    parser.add_argument("--json", action="store_true", help="print the probe result as JSON")
    parser.epilog = (
        f"Credentials are read from {ENV_KEY}, {ENV_SECRET} and {ENV_PASSPHRASE} "
        f"(never from the command line); {ENV_KEY_VERSION} overrides the key-version header."
    )


def credentials_from_env(environ: dict[str, str] | os._Environ = os.environ) -> Credentials:
    """Return credentials from the environment; raise ValueError naming what is missing."""
    values = {name: environ.get(name, "").strip() for name in (ENV_KEY, ENV_SECRET, ENV_PASSPHRASE)}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ValueError(f"set {', '.join(missing)} in the environment (never on the command line)")
    return Credentials(
        values[ENV_KEY],
        values[ENV_SECRET],
        values[ENV_PASSPHRASE],
        key_version=environ.get(ENV_KEY_VERSION, k.DEFAULT_KEY_VERSION).strip(),
    )


def run(args: argparse.Namespace) -> int:
    """Run the probe and print its report; return the exit status."""
    try:
        credentials = credentials_from_env()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    config = Config.from_env()
    result = probe(
        credentials,
        spot_url=args.spot_url or config.kucoin_spot_url,
        futures_url=args.futures_url or config.kucoin_futures_url,
    )
    # One key, no account: no scope is needed, and the thresholds are the policy's defaults.
    assessment = assess_check(result, (), HealthPolicy())
    if args.json:
        payload = probe_result_to_dict(result)
        if assessment.failure is not None:
            payload["diagnosis"] = {
                "title": assessment.failure.title,
                "fix": assessment.failure.fix,
            }
        print(json.dumps(payload, indent=2))
    else:
        print(render_report(result, datetime.now(UTC), assessment))
    return exit_status(result, assessment)


def exit_status(result: ProbeResult, assessment: CheckAssessment) -> int:
    """Return the exit status for a probe result: 0 works, 1 refused, 3 retry later."""
    if result.ok:
        return EXIT_OK
    return EXIT_UNREACHABLE if assessment.transient else EXIT_REJECTED


def render_report(
    result: ProbeResult,
    now: datetime,
    assessment: CheckAssessment,
    warnings: Iterable[str] | None = None,
) -> str:
    """Return the plain-text report of one probe (warnings: binding.key_warnings by default)."""
    lines = [f"API Status: {api_status(result, assessment)}"]
    if assessment.failure is not None:
        failure = assessment.failure
        lines.append(f"  KuCoin said: {result.message or '-'} (HTTP {result.http_status or '-'})")
        lines.append(f"  Why: {failure.cause}")
        lines.append(f"  Fix: {failure.fix}")
        if result.code == IP_BLOCKED_CODE and result.seen_ip:
            lines.append(f"  The IP KuCoin saw: {result.seen_ip}")
    if result.clock_offset_ms is not None:
        lines.append(f"Clock offset: {result.clock_offset_ms:+d} ms (KuCoin minus this machine)")
    if result.seen_ip and result.code != IP_BLOCKED_CODE:
        lines.append(f"IP KuCoin sees: {result.seen_ip}")
    if not result.ok:
        return "\n".join(lines)
    kind = "master account" if result.is_master else f"sub-account {result.sub_name or ''}"
    lines.append(f"Account: {kind.strip()}, UID {result.uid}")
    lines.append(f"Permissions: {', '.join(result.permissions) or '(none)'}")
    lines.append(f"IP whitelist: {result.ip_whitelist or '(none: any IP may use this key)'}")
    if result.key_created_at:
        age = (now - result.key_created_at).days
        lines.append(f"Key created: {result.key_created_at:%Y-%m-%d} ({age} days ago)")
    lines.extend(_balance_lines(result))
    if warnings is None:
        warnings = key_warnings(assessment)
    lines.extend(f"Warning: {w}" for w in warnings)
    if result.message:
        lines.append(f"Note: {result.message}")
    return "\n".join(lines)


def _balance_lines(result: ProbeResult) -> list[str]:
    """Return the balances summary: spot totals per account type, futures per currency."""
    by_type: dict[str, list[str]] = defaultdict(list)
    for row in result.spot_balances:
        if row.balance != 0:
            by_type[row.account_type].append(f"{row.currency} {row.balance.normalize():f}")
    lines = [
        f"Spot balances ({len(result.spot_balances)} rows):"
        if result.spot_balances
        else "Spot balances: none"
    ]
    lines.extend(f"  {kind}: {', '.join(items)}" for kind, items in sorted(by_type.items()))
    for currency, overview in result.futures.items():
        equity = overview.get("accountEquity", Decimal(0))
        available = overview.get("availableBalance", Decimal(0))
        lines.append(f"Futures {currency}: equity {equity:f}, available {available:f}")
    return lines

"""`python -m lib check`: verify one key from KUCOIN_API_* environment variables, print a report."""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal

from lib.cli.terminal import (
    ENV_KEY,
    ENV_KEY_VERSION,
    ENV_PASSPHRASE,
    ENV_SECRET,
    EXIT_NO,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    PROMPTS,
    MissingCredentials,
    add_kucoin_urls,
    fail,
    kucoin_urls,
    read_credentials,
)
from lib.config import Config
from lib.health.assessment import CheckAssessment, assess_check
from lib.health.checks import IP_BLOCKED_CODE
from lib.health.wording import api_status, key_warnings
from lib.kucoin import constants as k
from lib.kucoin.auth import Credentials
from lib.kucoin.probe import probe
from lib.kucoin.probe_result import ProbeResult, probe_result_to_dict


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's options (credentials come only from the environment)."""
    add_kucoin_urls(parser)
    parser.add_argument("--json", action="store_true", help="print the probe result as JSON")
    parser.epilog = (
        f"Credentials are read from {ENV_KEY}, {ENV_SECRET} and {ENV_PASSPHRASE} "
        f"(never from the command line); {ENV_KEY_VERSION} overrides the key-version header. "
        "Exit status: 0 the key works, 1 KuCoin refused it, 2 missing credentials, "
        "3 KuCoin unreachable."
    )


def credentials_from_env(environ: Mapping[str, str] | None = None) -> Credentials:
    """Return the key from KUCOIN_API_*; raise MissingCredentials naming what is missing."""
    env = os.environ if environ is None else environ
    values = read_credentials(env, may_ask=False)
    key, secret, passphrase = (values[name].strip() for name in PROMPTS)
    return Credentials(
        key, secret, passphrase, env.get(ENV_KEY_VERSION, k.DEFAULT_KEY_VERSION).strip()
    )


def run(args: argparse.Namespace) -> int:
    """Run the probe and print its report; return the exit status."""
    try:
        credentials = credentials_from_env()
    except MissingCredentials as error:
        fail(str(error))
        return EXIT_USAGE
    spot_url, futures_url = kucoin_urls(args, Config.from_env())
    # A key not seen before: the futures overview is read in the same wave as key info.
    result = probe(credentials, spot_url=spot_url, futures_url=futures_url, want_futures=True)
    # One key, no account: no scope is needed, and the thresholds are the policy's defaults.
    assessment = assess_check(result, ())
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
    return EXIT_UNREACHABLE if assessment.transient else EXIT_NO


def render_report(
    result: ProbeResult,
    now: datetime,
    assessment: CheckAssessment,
    warnings: Iterable[str] | None = None,
) -> str:
    """Return the plain-text report of one probe (warnings: key_warnings by default)."""
    lines = [f"API Status: {api_status(result, assessment)}"]
    if assessment.failure is not None:
        failure = assessment.failure
        lines.append(f"  KuCoin said: {result.message or '-'} (HTTP {result.http_status or '-'})")
        lines.append(f"  Why: {failure.cause}")
        lines.append(f"  Fix: {failure.fix}")
        if result.code == IP_BLOCKED_CODE and result.seen_ip:
            lines.append(f"  The IP KuCoin saw: {result.seen_ip}")
        if result.rate_limited_pool:
            resets = (
                f", resets in {result.rate_limit_reset_ms / 1000:.1f} s"
                if result.rate_limit_reset_ms is not None
                else ""
            )
            lines.append(f"  Pool that ran out: {result.rate_limited_pool} (per UID){resets}")
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

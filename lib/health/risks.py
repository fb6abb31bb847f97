"""Risks: why a working key may stop working, or may do more than it should, and the fix.

Any risk makes a working account AT_RISK; all are listed, gravest first, beside whatever
status the account has. Binding warns with the same list (lib.health.wording.key_warnings).
"""

from __future__ import annotations

from dataclasses import dataclass

from lib.health.facts import AccountFacts, timestamp
from lib.health.policy import HealthPolicy
from lib.kucoin.constants import MAX_CLOCK_SKEW_MS
from lib.kucoin.diagnosis import API_MANAGEMENT

IP_RESTRICTION = f"{API_MANAGEMENT} → Edit → IP Restriction"
API_RESTRICTIONS = f"{API_MANAGEMENT} → Edit → API Restrictions"
# The AccountFacts fields that are risks, gravest first: withdrawal permission, trading
# without a whitelist (KuCoin's 30-day rule), a platform IP not whitelisted, an old key, a
# clock close to KuCoin's limit.
RISK_FLAGS = ("withdrawal", "exposed", "ip_missing", "old_key", "clock")
# Every fact `risks` reads: the fleet finds the risks once per distinct reading of these.
RISK_FACTS = (*RISK_FLAGS, "expires_at", "seen_ip", "uncovered", "key_age_days", "clock_offset_ms")


@dataclass(frozen=True)
class Risk:
    """A reason a working key may stop working, or may do more than it should, and its fix."""

    what: str
    fix: str


def risks(facts: AccountFacts, policy: HealthPolicy) -> tuple[Risk, ...]:
    """Return every risk the account runs, gravest first."""
    found = []
    if facts.withdrawal:
        found.append(
            Risk(
                "withdrawal permission (Transfer) enabled",
                f"Disable Transfer in {API_RESTRICTIONS}: bindwatch never withdraws.",
            )
        )
    if facts.exposed:
        ips = ", ".join(policy.egress_ips) or facts.seen_ip or "this server's IP"
        found.append(
            Risk(
                f"trading without IP whitelist: KuCoin may delete it on "
                f"{timestamp(facts.expires_at):%Y-%m-%d} if unused",
                f"In {IP_RESTRICTION}, add {ips}: KuCoin deletes or disables trade-enabled "
                f"keys without a whitelist after {policy.inactivity_rule.days} days "
                "of inactivity.",
            )
        )
    if facts.ip_missing:
        ips = ", ".join(facts.uncovered)
        found.append(
            Risk(
                f"platform IP not whitelisted: {ips}",
                f"In {IP_RESTRICTION}, add {ips}: checks from it are refused (400006).",
            )
        )
    if facts.old_key:
        found.append(
            Risk(
                f"key is {facts.key_age_days} days old",
                f"Create a new key in {API_MANAGEMENT} and rotate this account's "
                f"credentials (rotation every {policy.rotation_age.days} days).",
            )
        )
    if facts.clock:
        found.append(
            Risk(
                f"clock {facts.clock_offset_ms / 1000:+.1f} s off KuCoin's",
                "Enable NTP time sync on this machine: KuCoin rejects requests more than "
                f"{MAX_CLOCK_SKEW_MS // 1000} s off (400002).",
            )
        )
    return tuple(found)

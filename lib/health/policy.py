"""The thresholds the health rules apply, and when each one is crossed.

Each method states one threshold's rule and reads a single value or a pandas Series alike,
so the fleet (vectorised) and a single check (plain values) apply the same comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any


@dataclass(frozen=True)
class HealthPolicy:
    """Thresholds the rules apply; the platform's settings provide them."""

    # The platform's outbound IPs: every one must be on a whitelisted key.
    egress_ips: tuple[str, ...] = ()
    # A successful sync is due every period; after period + grace without one: STALE.
    freshness_period: timedelta = timedelta(hours=1)
    freshness_grace: timedelta = timedelta(minutes=15)
    # A key older than this should be rotated (AT_RISK).
    rotation_age: timedelta = timedelta(days=90)
    # |clock offset| at or above this is "close to" KuCoin's 5 s limit (AT_RISK).
    clock_warn_ms: int = 3_000
    # KuCoin deletes or disables trade-enabled keys without a whitelist after this inactivity.
    inactivity_rule: timedelta = timedelta(days=30)
    # Fleet incident: at least `incident_share` of the non-paused accounts checked within
    # `incident_window` (and at least `incident_min_accounts` of them) failing the same way.
    incident_window: timedelta = timedelta(minutes=10)
    incident_share: float = 0.6
    incident_min_accounts: int = 3

    def __post_init__(self) -> None:
        """Accept any iterable of IPs and keep a tuple of stripped strings."""
        ips = (self.egress_ips,) if isinstance(self.egress_ips, str) else self.egress_ips
        object.__setattr__(self, "egress_ips", tuple(str(ip).strip() for ip in ips))

    def late_at(self, anchor: Any) -> Any:
        """Return when a sync is due again: the period after the last one (or the binding)."""
        return anchor + self.freshness_period

    def stale_at(self, anchor: Any) -> Any:
        """Return when the account turns STALE: period + grace after the last sync (or binding)."""
        return anchor + self.freshness_period + self.freshness_grace

    def key_too_old(self, key_age: Any) -> Any:
        """Return whether a key of this age should be rotated."""
        return key_age >= self.rotation_age

    def clock_off(self, clock_offset_ms: Any) -> Any:
        """Return whether a clock offset is close to KuCoin's limit (a risk, or a clock problem)."""
        return abs(clock_offset_ms) >= self.clock_warn_ms

    def deleted_if_unused_at(self, last_use: Any) -> Any:
        """Return when KuCoin may delete a trade-enabled key without a whitelist, left unused."""
        return last_use + self.inactivity_rule


DEFAULT_POLICY = HealthPolicy()

"""When an account is due for its next check: the rule every watcher and refresh follows.

After a check that passed, or KuCoin's verdict on the key, the next is due within the
freshness period, earlier by up to JITTER of it (drawn per check, so accounts bound in the
same afternoon drift apart instead of firing together). After a failure a retry may fix, the
next is due after a third of the grace, so that a few retries fit before the account turns
STALE. An account never checked is due at once.
"""

from __future__ import annotations

from datetime import datetime

from lib.health.checks import is_transient
from lib.health.policy import HealthPolicy
from lib.kucoin.probe_result import ProbeResult

JITTER = 0.1  # the share of the period a next check may come early
RETRIES_IN_GRACE = 3


def next_check_at(
    latest: ProbeResult | None, policy: HealthPolicy, now: datetime, draw: float
) -> datetime:
    """Return when the next check is due after `latest` (`draw` in [0, 1) sets the jitter)."""
    if latest is None:
        return now
    if is_transient(latest.outcome, latest.code, latest.clock_offset_ms, policy):
        wait = min(policy.freshness_grace / RETRIES_IN_GRACE, policy.freshness_period)
    else:
        wait = policy.freshness_period
    return latest.checked_at + wait * (1 - JITTER * draw)

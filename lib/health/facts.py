"""What the rules found about one account, in plain values: what its status and words read.

The fleet finds these for every account at once (lib.health.fleet), a single check for the
account it would bind (lib.health.assessment); the status, the risks and the words are then
decided from them in one place each (status, risks, wording).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NamedTuple

NAT = -(2**63)  # "no time" in nanoseconds: pandas' NaT
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class AccountFacts(NamedTuple):
    """One account's facts; times are UTC nanoseconds since the epoch, NAT when unknown."""

    paused: bool
    unverified: bool  # saved without a passing check, and none since
    stale: bool  # no successful sync for period + grace
    never_checked: bool
    latest_transient: bool  # the latest check failed in a way a retry may fix
    latest_code: str | None
    latest_offset_ms: int | None
    latest_limited_pool: str | None  # a 429000 with KuCoin's figures: the pool that ran out
    latest_reset_at: int  # ...and when it resets
    rejected: bool  # the latest non-transient answer was KuCoin's refusal
    verdict_code: str | None  # that answer's code, endpoint and clock offset
    verdict_endpoint: str | None
    verdict_offset_ms: int | None
    permissions: frozenset[str]  # from the last success (empty before key info was read)
    futures_missing: bool  # the futures overview answered 400007
    missing_scopes: tuple[str, ...]  # permission names the account needs and lacks
    scope_missing: bool
    seen_ip: str | None  # the IP KuCoin last saw (a success, or a 400006)
    uncovered: tuple[str, ...]  # platform IPs known not to be whitelisted
    withdrawal: bool  # the risks: see lib.health.risks
    exposed: bool
    ip_missing: bool
    old_key: bool
    clock: bool
    at_risk: bool  # any of the risks
    expires_at: int  # when KuCoin may delete it under the 30-day rule
    key_age_days: int | None
    clock_offset_ms: int | None
    last_sync_at: int
    created_at: int


def timestamp(ns: int) -> datetime | None:
    """Return a UTC datetime from nanoseconds since the epoch, None for NAT."""
    return None if ns == NAT else _EPOCH + timedelta(microseconds=int(ns) // 1_000)


def nanoseconds(when: datetime | None) -> int:
    """Return an aware datetime as nanoseconds since the epoch, NAT for None."""
    return NAT if when is None else (when - _EPOCH) // timedelta(microseconds=1) * 1_000

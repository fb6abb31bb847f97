"""What one check of a key observed: the probe's result, the unit the store keeps per check."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


class Outcome(enum.StrEnum):
    """How a check ended."""

    OK = "ok"  # the key works: key info and spot accounts were read
    REJECTED = "rejected"  # KuCoin answered with an error code about the key or request
    UNREACHABLE = "unreachable"  # transient: timeout, dropped connection, 5xx, 429000, CDN page


@dataclass(frozen=True)
class SpotBalance:
    """One row of GET /api/v1/accounts."""

    account_type: str  # main, trade, trade_hf, margin, ...
    currency: str
    balance: Decimal
    available: Decimal
    holds: Decimal


@dataclass(frozen=True)
class ProbeResult:
    """Everything one check learned about a key; no secret is ever part of it."""

    checked_at: datetime  # UTC, aware
    outcome: Outcome
    latency_ms: int
    code: str | None = None  # KuCoin's code of the failure ("400004"), None on success
    message: str | None = None  # KuCoin's message, or a transport error's description
    http_status: int | None = None
    endpoint: str | None = None  # the path that failed
    # From GET /api/v1/user/api-key:
    permissions: tuple[str, ...] = ()
    ip_whitelist: str | None = None  # as KuCoin returned it (masked); None when absent/empty
    is_master: bool | None = None
    sub_name: str | None = None
    uid: str | None = None
    remark: str | None = None
    api_version: int | None = None
    key_created_at: datetime | None = None
    # Measured:
    clock_offset_ms: int | None = None  # KuCoin's clock minus ours
    seen_ip: str | None = None  # the IP KuCoin saw: from /api/v1/my-ip or a 400006 message
    rate_limit_remaining: int | None = None  # Management pool, last response
    # A 429000 that carried KuCoin's rate-limit headers: the pool that ran out and when it resets.
    rate_limited_pool: str | None = None
    rate_limit_reset_ms: int | None = None
    # Balances:
    spot_balances: tuple[SpotBalance, ...] = ()
    futures: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # currency -> overview
    futures_permission_missing: bool = False  # Futures overview answered 400007
    vip_level: int | None = None

    @property
    def ok(self) -> bool:
        """Return whether the key works."""
        return self.outcome is Outcome.OK

    @property
    def whitelist_entries(self) -> tuple[str, ...]:
        """Return the masked whitelist entries, split and stripped."""
        if not self.ip_whitelist:
            return ()
        return tuple(e.strip() for e in self.ip_whitelist.split(",") if e.strip())


def _plain(value: object) -> object:
    """Return a JSON-ready copy: Decimal as str, datetime as ISO 8601, enums as values."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {name: _plain(getattr(value, name)) for name in value.__dataclass_fields__}
    return value


def probe_result_to_dict(result: ProbeResult) -> dict[str, object]:
    """Return the result as JSON-ready data (Decimals as strings, times as ISO 8601)."""
    return _plain(result)  # type: ignore[return-value]

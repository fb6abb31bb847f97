"""What the rules read: the columns of the accounts and probes frames the store provides.

`accounts`, one row per bound account: ACCOUNT_COLUMNS. `probes`, one row per check:
`account_id` plus the ProbeResult field names; the rules read the columns in PROBE_COLUMNS
(others, such as latency_ms or spot_balances, are ignored).
"""

from __future__ import annotations

ACCOUNT_COLUMNS: dict[str, str] = {
    "account_id": "int: the account's id",
    "label": "str: the operator's name for the account",
    "scopes": 'list of "spot" / "futures" / "margin": what the platform NEEDS the key for',
    "paused": "bool: the operator paused checks and alarms",
    "unverified": "bool: saved without a passing check",
    "created_at": "UTC datetime: when the account was bound",
}

PROBE_COLUMNS: dict[str, str] = {
    "account_id": "int: the account checked",
    "checked_at": "UTC datetime: when the check ran",
    "outcome": '"ok" / "rejected" / "unreachable" (Outcome)',
    "code": 'KuCoin\'s failure code ("400004"), None on success',
    "message": "KuCoin's message or the transport error",
    "endpoint": "the path that failed",
    "permissions": 'list of KuCoin permission names ("General", "Spot", ...)',
    "ip_whitelist": 'masked whitelist as KuCoin returns it ("203.**.154,103.**.34") or None',
    "is_master": "bool: a master-account key",
    "sub_name": "sub-account name, None for a master key",
    "uid": "KuCoin UID",
    "key_created_at": "UTC datetime: key info's createdAt",
    "clock_offset_ms": "int: KuCoin's clock minus ours",
    "seen_ip": "the IP KuCoin saw (my-ip, or a 400006 message)",
    "futures_permission_missing": "bool: the futures overview answered 400007",
    "rate_limited_pool": "a 429000 with KuCoin's rate-limit headers: the pool that ran out",
    "rate_limit_reset_ms": "int: that pool's reset countdown when KuCoin answered (ms)",
}

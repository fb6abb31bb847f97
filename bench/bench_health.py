"""Time the health rules on a synthetic fleet: 10,000 and 100,000 accounts x 30 checks each.

Run from the repository root: `python -m bench.bench_health`.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from bench.report import Figure, times
from lib.health.fleet import fleet_health, status_counts
from lib.health.incident import fleet_incident
from lib.health.policy import HealthPolicy
from lib.store import frames

ACCOUNTS = 10_000
SIZES = (ACCOUNTS, 100_000)
CHECKS = 30
REPEATS = 7
TARGET_S = 0.5
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
EGRESS = ("203.0.113.154", "198.51.100.7", "2001:db8::7")

# Shared patterns, as in a real fleet where most keys whitelist the same platform IPs.
# Scopes and permissions are drawn independently, so most accounts end up unhealthy: the
# pessimistic case, where every account needs its own diagnosis and hint.
PERMISSIONS = [
    ["General", "Spot"],
    ["General", "Spot", "Futures"],
    ["General", "Spot", "Futures", "Margin"],
    ["General", "Spot", "Transfer"],
    ["General"],
]
WHITELISTS = [None, "203.**.154,198.**.7", "203.**.154", "10.**.1", "203.**.154,2001:db8::7"]
FAILURES = [  # (outcome, code, message)
    ("rejected", "400004", "Invalid KC-API-PASSPHRASE."),
    ("rejected", "400006", "Invalid request IP, the current client IP is: 198.51.100.7"),
    ("rejected", "400003", "KC-API-KEY does not exist."),
    ("unreachable", None, "timeout"),
    ("unreachable", "429000", "Too Many Requests"),
]


def synthetic_fleet(
    accounts: int = ACCOUNTS, checks: int = CHECKS, seed: int = 7, *, shared_texts: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (accounts, probes) frames with the columns the store provides.

    shared_texts: each text column holds one object per distinct value, as the store's frames
    do; False gives every row objects of its own, as a frame built otherwise may have.
    """
    rng = np.random.default_rng(seed)
    ids = np.arange(1, accounts + 1)
    scopes = [["spot"], ["spot", "futures"], ["spot", "margin"]]
    account_frame = pd.DataFrame(
        {
            "account_id": ids,
            "label": [f"acct-{i:05d}" for i in ids],
            "scopes": [scopes[i] for i in rng.integers(0, len(scopes), accounts)],
            "paused": rng.random(accounts) < 0.02,
            "unverified": rng.random(accounts) < 0.01,
            "created_at": pd.Timestamp(NOW) - pd.to_timedelta(rng.integers(2, 400, accounts), "D"),
        }
    )

    n = accounts * checks
    account_id = np.repeat(ids, checks)
    # Hourly checks, newest within the last hour, with jitter; shuffled like a store's rows.
    step = np.tile(np.arange(checks)[::-1], accounts)
    offset_s = step * 3600 + rng.integers(0, 3600, n)
    offset_s[rng.random(n) < 0.001] += 6 * 3600  # a few accounts fall behind
    checked_at = pd.Timestamp(NOW) - pd.to_timedelta(offset_s, "s")

    roll = rng.random(n)
    failure = rng.integers(0, len(FAILURES), n)
    failing = roll < 0.08
    outcome = np.where(failing, [FAILURES[i][0] for i in failure], "ok")
    code = np.where(failing, [FAILURES[i][1] for i in failure], None)
    message = np.where(failing, [FAILURES[i][2] for i in failure], None)
    ok = outcome == "ok"

    account_permissions = rng.integers(0, len(PERMISSIONS), accounts)[account_id - 1]
    account_whitelist = rng.integers(0, len(WHITELISTS), accounts)[account_id - 1]
    key_created = pd.Timestamp(NOW) - pd.to_timedelta(rng.integers(1, 200, accounts), "D")
    probes = pd.DataFrame(
        {
            "account_id": account_id,
            "checked_at": checked_at,
            "outcome": outcome,
            "latency_ms": rng.integers(40, 900, n),
            "code": code,
            "message": message,
            "http_status": np.where(ok, 200, 400),
            "endpoint": np.where(ok, None, "/api/v1/user/api-key"),
            "permissions": [
                PERMISSIONS[i] if o else [] for i, o in zip(account_permissions, ok, strict=True)
            ],
            "ip_whitelist": [
                WHITELISTS[i] if o else None for i, o in zip(account_whitelist, ok, strict=True)
            ],
            "is_master": pd.array(np.where(ok, account_id % 7 == 0, None), dtype="boolean"),
            "sub_name": np.where(ok & (account_id % 7 != 0), "sub", None),
            "uid": (100_000_000 + account_id).astype(str),
            "remark": "bench",
            "api_version": 3,
            "key_created_at": key_created[account_id - 1].where(ok),
            "clock_offset_ms": rng.normal(0, 1200, n).round().astype(int),
            "seen_ip": np.where(failing & (code == "400006"), "198.51.100.7", "203.0.113.154"),
            "rate_limit_remaining": rng.integers(0, 2000, n),
            # a 429000 with KuCoin's figures names the pool that ran out and when it resets
            "rate_limited_pool": np.where(code == "429000", "spot", None),
            "rate_limit_reset_ms": pd.array(np.where(code == "429000", 4_000, None), dtype="Int64"),
            "futures_permission_missing": rng.random(n) < 0.01,
            "vip_level": 0,
        }
    )
    if shared_texts:  # as the store reads text (lib.store.frames): one object per distinct value
        for name in probes.columns:
            if probes[name].dtype == object and name != "permissions":
                probes[name] = frames.shared_texts(probes[name].to_numpy())
    probes = probes.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return account_frame, probes


def main() -> list[Figure]:
    """Time fleet_health over 10,000 and 100,000 accounts' whole history; return the figures."""
    policy = HealthPolicy(egress_ips=EGRESS)
    figures = []
    for accounts_count in SIZES:
        accounts, probes = synthetic_fleet(accounts_count)
        fleet = fleet_health(accounts, probes, policy, NOW)  # warm-up
        runs = times(lambda a=accounts, p=probes: fleet_health(a, p, policy, NOW), REPEATS)
        name = f"health rules in memory, {accounts_count:,} accounts x {CHECKS} checks"
        figures.append(Figure(name, runs, TARGET_S))
        print(figures[-1])
        ordered = probes.sort_values(["account_id", "checked_at"], ignore_index=True)
        ordered_s = statistics.median(
            times(lambda a=accounts, o=ordered: fleet_health(a, o, policy, NOW), REPEATS)
        )
        counts_ms = min(times(lambda f=fleet: status_counts(f), REPEATS)) * 1000
        incident_ms = min(times(lambda f=fleet: fleet_incident(f, policy, NOW), REPEATS)) * 1000
        print(
            f"  history ordered by account and time (as the store reads it): {ordered_s:.2f} s; "
            f"status_counts {counts_ms:.1f} ms, fleet_incident {incident_ms:.1f} ms"
        )
        del probes, ordered
        _, own = synthetic_fleet(accounts_count, shared_texts=False)
        own_s = statistics.median(
            times(lambda a=accounts, o=own: fleet_health(a, o, policy, NOW), REPEATS)
        )
        print(f"  with a text object of its own in every row (not the store's): {own_s:.2f} s")
        del own
    print(status_counts(fleet).to_string(index=False))
    return figures


if __name__ == "__main__":
    main()

"""One account in detail: its fleet row, its permission grid and its whitelist, IP by IP."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from lib.health.checks import ip_evidence
from lib.health.coverage import (
    DANGEROUS_PERMISSIONS,
    INFO_PERMISSIONS,
    SCOPE_PERMISSIONS,
    has_scope,
    ip_coverage,
    names,
    text,
)
from lib.health.fleet import fleet_health
from lib.health.inputs import ACCOUNT_COLUMNS
from lib.health.policy import HealthPolicy
from lib.kucoin.constants import GENERAL
from lib.kucoin.probe_result import Outcome

PERMISSION_STATE_DTYPE = pd.CategoricalDtype(
    ["missing", "unknown", "dangerous", "granted", "info", "not needed"], ordered=True
)
COVERAGE_DTYPE = pd.CategoricalDtype(
    ["not covered", "unknown", "covered (masked match)", "covered", "no whitelist"], ordered=True
)


def account_health(
    account: Mapping[str, Any] | pd.Series,
    probes: pd.DataFrame,
    policy: HealthPolicy,
    now: datetime,
) -> pd.Series:
    """Return one account's fleet_health row (probes of other accounts are ignored)."""
    row = {c: account[c] for c in ACCOUNT_COLUMNS}
    row["scopes"] = list(names(row["scopes"]))
    mine = probes[probes["account_id"] == account["account_id"]]
    return fleet_health(pd.DataFrame([row]), mine, policy, now).iloc[0]


def permission_coverage(
    scopes: Iterable[str],
    permissions: Iterable[str] | None,
    futures_permission_missing: bool = False,
) -> pd.DataFrame:
    """Return one row per KuCoin permission: needed, granted and its state (PERMISSION_MARKS)."""
    # permissions: key info's list; None when it was never read, and then nothing is known
    # about any permission: granted is NA and every state "unknown", never "missing".
    known = isinstance(permissions, str | Iterable)
    needed = names(scopes)
    granted = names(permissions)
    # (permission, scope, needed, granted, the state when granted)
    rows = [(GENERAL, None, True, GENERAL in granted, "granted")]
    for scope, permission in SCOPE_PERMISSIONS.items():
        has = has_scope(scope, granted, futures_permission_missing)
        rows.append((permission, scope, scope in needed, has, "granted"))
    for permission in DANGEROUS_PERMISSIONS + INFO_PERMISSIONS:
        kind = "dangerous" if permission in DANGEROUS_PERMISSIONS else "info"
        rows.append((permission, None, False, permission in granted, kind))
    rows = [
        (
            permission,
            scope,
            need,
            has if known else None,
            (when_granted if has else "missing" if need else "not needed") if known else "unknown",
        )
        for permission, scope, need, has, when_granted in rows
    ]
    frame = pd.DataFrame(rows, columns=["permission", "scope", "needed", "granted", "state"])
    return frame.astype(
        {
            "permission": "string",
            "scope": "string",
            "needed": "boolean",
            "granted": "boolean",
            "state": PERMISSION_STATE_DTYPE,
        }
    )


def whitelist_coverage(probes: pd.DataFrame, policy: HealthPolicy) -> pd.DataFrame:
    """Return one row per platform egress IP (plus the IP KuCoin last saw) for one account."""
    columns = ["ip", "is_platform_ip", "coverage", "confirmed", "detail"]
    history = probes.sort_values("checked_at", kind="stable")
    ok = history[history["outcome"] == Outcome.OK]
    known = not ok.empty
    whitelist = text(ok["ip_whitelist"].iloc[-1]) if known else None
    evidence_rows = history[
        [
            ip_evidence(o, c) is not None
            for o, c in zip(history["outcome"], history["code"], strict=True)
        ]
    ]
    evidence_ip, evidence = None, None
    if not evidence_rows.empty:
        last = evidence_rows.iloc[-1]
        evidence_ip = text(last["seen_ip"])
        evidence = ip_evidence(last["outcome"], last["code"])
    rows = ip_coverage(whitelist, known, policy.egress_ips, evidence_ip, evidence)
    frame = pd.DataFrame(list(rows), columns=columns)
    return frame.astype(
        {
            "ip": "string",
            "is_platform_ip": "boolean",
            "coverage": COVERAGE_DTYPE,
            "confirmed": "boolean",
            "detail": "string",
        }
    )

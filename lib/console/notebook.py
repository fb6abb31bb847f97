"""What a notebook asks of bindwatch: frames and small typed answers, never a secret.

Each call returns a DataFrame or a small object whose `repr` reads well in an output cell.
Calls to KuCoin run on the process's KuCoin loop (lib.kucoin.runner) and are waited for from
the caller's thread, so they work inside Jupyter's own running event loop.

    from lib.console.demo import open_or_demo
    console = open_or_demo()                # the configured store, or the demo fleet
    console.fleet()                         # the Fleet page's table
    console.check("mm-bot-01")              # a live check: KuCoin's answers, diagnosis, fix
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

from lib import store
from lib.console.account import AccountDetail, account_detail
from lib.console.checks import check_account
from lib.console.export import fleet_csv
from lib.console.fleet import account_kind, fleet_inputs, fleet_snapshot
from lib.health.account import whitelist_coverage
from lib.health.policy import HealthPolicy
from lib.health.status import Status
from lib.kucoin.probe_result import ProbeResult

if TYPE_CHECKING:
    from lib.console import Console

__all__ = [
    "CheckReport",
    "UnknownLabel",
    "account_id",
    "check_report",
    "expiring_keys",
    "export_csv",
    "fleet_by",
    "styled_fleet",
    "whitelist_matrix",
]

# A status's level (Status.level) as the Fleet page colours it: background, text.
LEVEL_STYLES = {
    "error": ("#fde2e2", "#a61b1b"),
    "warning": ("#fdf0d5", "#8a5300"),
    "info": ("#dcecfb", "#1c5d99"),
    "ok": ("#dcf3e4", "#1d6b3a"),
}
# How fleet_by groups the fleet.
GROUPINGS = ("status", "uid", "kind")


class UnknownLabel(store.StoreError):
    """No account has this label; the message lists the labels there are."""


def account_id(console: Console, label: str) -> int:
    """Return the id of the account with this label (bound or unbound)."""
    with console.reading() as session:
        accounts = store.list_accounts(session, include_unbound=True)
    for account in accounts:
        if account.label == label:
            return account.id
    labels = ", ".join(sorted(a.label for a in accounts)) or "none yet"
    raise UnknownLabel(f"No account is labelled {label!r}. Labels: {labels}.")


def account_by_label(console: Console, label: str) -> AccountDetail:
    """Return everything the Account page shows about the account with this label."""
    return account_detail(console, account_id(console, label))


def history(console: Console, label: str) -> pd.DataFrame:
    """Return the account's checks, oldest first: when, result, KuCoin's code, latency."""
    return account_by_label(console, label).history


# --- A live check ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckReport:
    """One live check of an account: KuCoin's answers and the Fleet's verdict on them."""

    label: str
    status: Status
    diagnosis: str
    fix: str
    risks: str | None
    result: ProbeResult = field(repr=False)

    @property
    def answers(self) -> pd.DataFrame:
        """Return what KuCoin answered and what was measured, one row per fact it gave."""
        r = self.result
        facts = {
            "outcome": r.outcome.value,
            "KuCoin code": r.code or "200000 (success)",
            "message": r.message,
            "HTTP status": r.http_status,
            "endpoint that failed": r.endpoint,
            "latency (ms)": r.latency_ms,
            "clock offset (ms, KuCoin minus ours)": r.clock_offset_ms,
            "IP KuCoin saw": r.seen_ip,
            "rate limit remaining (Management pool)": r.rate_limit_remaining,
            "rate-limited pool": r.rate_limited_pool,
            "rate limit resets in (ms)": r.rate_limit_reset_ms,
            "permissions": ", ".join(r.permissions) or None,
            "IP whitelist (masked)": r.ip_whitelist,
            "UID": r.uid,
            "account": None if r.is_master is None else ("master" if r.is_master else "sub"),
            "sub-account": r.sub_name,
            "key created": r.key_created_at,
        }
        frame = pd.DataFrame({"fact": list(facts), "value": [_shown(v) for v in facts.values()]})
        return frame.dropna().astype("string").reset_index(drop=True)

    def __repr__(self) -> str:
        """Return the verdict, the fix, and KuCoin's answers as a small table."""
        lines = [
            f"{self.label}: {self.status.title} ({self.status.value})",
            f"  diagnosis: {self.diagnosis}",
            f"  fix: {self.fix}",
        ]
        if self.risks:
            lines.append(f"  risks: {self.risks}")
        table = self.answers
        width = int(table["fact"].str.len().max())
        lines += [f"  {fact:<{width}}  {value}" for fact, value in table.itertuples(index=False)]
        return "\n".join(lines)


def _shown(value: object) -> str | None:
    """Return a fact as text (times in UTC), None when KuCoin did not say."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    return str(value)


def check_report(console: Console, label: str) -> CheckReport:
    """Check the account live now, record it, and return KuCoin's answers with the verdict."""
    found = account_id(console, label)
    result = check_account(console, found)
    fleet = fleet_snapshot(console).fleet
    row = fleet[fleet["account_id"] == found].iloc[0]
    risks = row["risks"]
    return CheckReport(
        label=label,
        status=Status(row["status"]),
        diagnosis=str(row["diagnosis"]),
        fix=str(row["hint"]),
        risks=None if pd.isna(risks) else str(risks),
        result=result,
    )


# --- The fleet ------------------------------------------------------------------------------


def styled_fleet(fleet: pd.DataFrame) -> Styler:
    """Return the fleet's main columns with each status coloured as on the Fleet page."""
    shown = fleet[["label", "status", "diagnosis", "hint", "whitelist", "last_sync_at", "uid"]]

    def colour(status: object) -> str:
        background, text = LEVEL_STYLES[Status(str(status)).level]
        return f"background-color: {background}; color: {text}; font-weight: 600"

    return shown.style.map(colour, subset=["status"]).hide(axis="index")


def fleet_by(fleet: pd.DataFrame, by: str) -> pd.DataFrame:
    """Return the number of accounts per status (worst first), per UID, or per kind."""
    if by not in GROUPINGS:
        raise ValueError(f"fleet_by groups by one of {', '.join(GROUPINGS)}, not {by!r}.")
    if by == "status":
        counts = fleet["status"].astype(str).value_counts()
        order = [s.value for s in Status if s.value in counts.index]
        return pd.DataFrame({"status": order, "accounts": counts[order].to_numpy()})
    keys = account_kind(fleet) if by == "kind" else fleet["uid"].astype("string").fillna("unknown")
    grouped = fleet.assign(**{by: keys.to_numpy()}).groupby(by, sort=False)
    frame = grouped.agg(
        accounts=("account_id", "size"),
        failing=("status", lambda s: sum(Status(str(v)).failing for v in s)),
        labels=("label", lambda s: ", ".join(sorted(s))),
    )
    return frame.sort_values(["accounts", by], ascending=[False, True]).reset_index()


def expiring_keys(
    fleet: pd.DataFrame, policy: HealthPolicy, now: datetime, within: timedelta
) -> pd.DataFrame:
    """Return keys KuCoin deletes if unused, or that reach the rotation age, within `within`."""
    deleted_soon = (fleet["expires_at"] <= now + within).fillna(False).to_numpy(dtype=bool)
    age_then = pd.to_timedelta(fleet["key_age_days"].astype("Float64"), unit="D") + within
    rotate_soon = policy.key_too_old(age_then).fillna(False).to_numpy(dtype=bool)
    deleted, rotate = "KuCoin deletes it if unused", "rotation age"
    why = np.select(
        [deleted_soon & rotate_soon, deleted_soon, rotate_soon],
        [f"{deleted}; {rotate}", deleted, rotate],
        "",
    )
    frame = pd.DataFrame(
        {
            "label": fleet["label"],
            "status": fleet["status"].astype(str),
            "why": why,
            "expires_at": fleet["expires_at"],
            "key_age_days": fleet["key_age_days"],
            "rotation_age_days": policy.rotation_age.days,
        }
    )[deleted_soon | rotate_soon]
    return frame.sort_values(
        ["expires_at", "key_age_days"], ascending=[True, False], na_position="last"
    ).reset_index(drop=True)


def whitelist_matrix(console: Console) -> pd.DataFrame:
    """Return, per bound account, whether its whitelist covers each platform egress IP."""
    accounts, probes, policy = fleet_inputs(console)
    labels = dict(zip(accounts["account_id"], accounts["label"], strict=True))
    rows = []
    for found, checks in probes.groupby("account_id", sort=False):
        coverage = whitelist_coverage(checks, policy)
        platform = coverage[coverage["is_platform_ip"].fillna(False).to_numpy(dtype=bool)]
        covered = dict(zip(platform["ip"], platform["coverage"], strict=True))
        rows.append({"label": labels.get(found), **covered})
    unchecked = set(labels) - set(probes["account_id"])
    rows += [{"label": labels[a]} for a in unchecked]
    frame = pd.DataFrame(rows, columns=["label", *policy.egress_ips])
    frame[list(policy.egress_ips)] = frame[list(policy.egress_ips)].astype("string")
    return frame.fillna({ip: "unknown" for ip in policy.egress_ips}).sort_values(
        "label", ignore_index=True
    )


def export_csv(fleet: pd.DataFrame, path: str | Path) -> Path:
    """Write the fleet as the Fleet page's CSV (no secret in it) and return where."""
    target = Path(path)
    target.write_bytes(fleet_csv(fleet))
    return target

"""Drift since binding: what KuCoin says about a key now against what it said at bind.

The baseline is what KuCoin said at bind, or when an admin last acknowledged a change. Each
difference is a risk with before → after: a permission added (dangerous when it moves funds),
a permission removed, the whitelist changed or removed, the key now under another UID or
another (sub-)account. KuCoin masks whitelist entries ("203.**.154"), so two whitelists that
read the same may still differ inside the masks: `masked_note` says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import pandas as pd

from lib.health.coverage import text, whitelist_entries
from lib.health.fleet import worst_first
from lib.health.risks import API_RESTRICTIONS, IP_RESTRICTION, Risk
from lib.health.status import Status
from lib.health.wording import at_risk_words
from lib.kucoin.constants import INNER_TRANSFER, TRANSFER
from lib.kucoin.diagnosis import API_MANAGEMENT

# Permissions that move funds off the account or between accounts: flagged dangerous.
MOVES_FUNDS = (TRANSFER, INNER_TRANSFER)
ACKNOWLEDGE = "If the change was intended, an admin acknowledges it on the Account page."


class KeyFacts(Protocol):
    """What KuCoin said about a key: the facts drift compares."""

    permissions: tuple[str, ...]
    ip_whitelist: str | None
    uid: str | None
    is_master: bool | None
    sub_name: str | None


@dataclass(frozen=True)
class Drift:
    """One change since the baseline: its stable key, what it is, before → after, the fix."""

    key: str  # stable while the change stands: alerts once per key
    what: str
    before: str
    after: str
    dangerous: bool
    fix: str

    @property
    def change(self) -> str:
        """Return "before → after"."""
        return f"{self.before} → {self.after}"


def _listed(values: tuple[str, ...] | frozenset[str]) -> str:
    return ", ".join(sorted(values)) or "(none)"


def _account_kind(facts: KeyFacts) -> str:
    """Return "master account", "sub-account NAME" or "unknown"."""
    if facts.is_master is None:
        return "unknown"
    if facts.is_master:
        return "master account"
    return f"sub-account {text(facts.sub_name) or '(unnamed)'}"


def key_drift(baseline: KeyFacts, now: KeyFacts) -> tuple[Drift, ...]:
    """Return every change of the key since its baseline, dangerous ones first."""
    found: list[Drift] = []
    before, after = frozenset(baseline.permissions), frozenset(now.permissions)
    for permission in sorted(after - before):
        dangerous = permission in MOVES_FUNDS
        found.append(
            Drift(
                f"permission_added:{permission}",
                f"permission added since binding: {permission}"
                + (" (moves funds)" if dangerous else ""),
                _listed(before),
                _listed(after),
                dangerous,
                f"Disable {permission} in {API_RESTRICTIONS} unless it was meant. {ACKNOWLEDGE}",
            )
        )
    for permission in sorted(before - after):
        found.append(
            Drift(
                f"permission_removed:{permission}",
                f"permission removed since binding: {permission}",
                _listed(before),
                _listed(after),
                False,
                f"Enable {permission} again in {API_RESTRICTIONS} if it is needed. {ACKNOWLEDGE}",
            )
        )
    old_list, new_list = (
        whitelist_entries(baseline.ip_whitelist),
        whitelist_entries(now.ip_whitelist),
    )
    if old_list and not new_list:
        found.append(
            Drift(
                "whitelist_removed",
                "IP whitelist removed since binding: any IP may use the key",
                _listed(old_list),
                "(none)",
                True,
                f"Restore the whitelist in {IP_RESTRICTION}. {ACKNOWLEDGE}",
            )
        )
    elif frozenset(old_list) != frozenset(new_list):
        found.append(
            Drift(
                f"whitelist_changed:{_listed(new_list)}",
                "IP whitelist changed since binding",
                _listed(old_list),
                _listed(new_list),
                False,
                f"Check the entries in {IP_RESTRICTION}. {ACKNOWLEDGE}",
            )
        )
    if text(baseline.uid) and text(now.uid) and text(baseline.uid) != text(now.uid):
        found.append(
            Drift(
                f"uid_changed:{text(now.uid)}",
                "the key now belongs to another KuCoin UID",
                str(baseline.uid),
                str(now.uid),
                True,
                f"Make sure this is the key meant for this account in {API_MANAGEMENT}; "
                f"bind the right key (rotate the credentials). {ACKNOWLEDGE}",
            )
        )
    old_kind, new_kind = _account_kind(baseline), _account_kind(now)
    if "unknown" not in (old_kind, new_kind) and old_kind != new_kind:
        found.append(
            Drift(
                f"account_changed:{new_kind}",
                "the key now belongs to another account (master or sub-account)",
                old_kind,
                new_kind,
                True,
                f"Make sure this is the key meant for this account; bind the right key. "
                f"{ACKNOWLEDGE}",
            )
        )
    return tuple(sorted(found, key=lambda d: not d.dangerous))


def masked_note(baseline: KeyFacts, now: KeyFacts) -> str | None:
    """Return why an unchanged-looking whitelist may still have changed (masked entries)."""
    entries = whitelist_entries(now.ip_whitelist)
    masked = [e for e in entries if "*" in e]
    if not masked or frozenset(entries) != frozenset(whitelist_entries(baseline.ip_whitelist)):
        return None
    return (
        f"KuCoin masks whitelist entries ({', '.join(masked)}): only their first and last "
        "numbers are compared, so a change inside a mask cannot be seen."
    )


def drift_risk(drift: Drift) -> Risk:
    """Return a drift as a risk: what changed, before → after, and its fix."""
    return Risk(f"{drift.what} ({drift.change})", drift.fix)


def with_drift(fleet: pd.DataFrame, drifts: Mapping[int, tuple[Drift, ...]]) -> pd.DataFrame:
    """Return the fleet with each account's drift among its risks, worst first.

    Drift is a risk like any other: it comes first in `risks`, and a working account with
    drift is AT_RISK, its diagnosis and hint those of its risks.
    """
    touched = fleet["account_id"].isin([a for a, found in drifts.items() if found])
    if not touched.any():
        return fleet
    fleet = fleet.copy()
    for index in fleet.index[touched.to_numpy(dtype=bool)]:
        found = [drift_risk(d) for d in drifts[int(fleet.at[index, "account_id"])]]
        before = text(fleet.at[index, "risks"])
        fleet.at[index, "risks"] = "; ".join([r.what for r in found] + ([before] if before else []))
        status = Status(str(fleet.at[index, "status"]))
        if status in (Status.OK, Status.AT_RISK):
            # An account at risk already keeps its own risks (and their fixes) after the drift.
            kept = [Risk(before, str(fleet.at[index, "hint"]))] if before else []
            diagnosis, hint = at_risk_words([*found, *kept])
            fleet.at[index, "status"] = Status.AT_RISK.value
            fleet.at[index, "severity"] = Status.AT_RISK.rank
            fleet.at[index, "diagnosis"], fleet.at[index, "hint"] = diagnosis, hint
    return fleet.take(worst_first(fleet)).reset_index(drop=True)

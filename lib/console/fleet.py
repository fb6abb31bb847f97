"""The fleet: its table with the policy it was judged by, its filters, a refresh's summary.

The Fleet page, `python -m lib status` and a notebook all read the same frame:

    from lib.console import Console
    from lib.console.fleet import fleet_table
    fleet = fleet_table(Console.open())     # one row per account, worst first
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pandas as pd

from lib import store
from lib.console.settings import policy_from_settings
from lib.health.checks import IP_BLOCKED_CODE
from lib.health.drift import Drift, key_drift, with_drift
from lib.health.fleet import fleet_health, status_counts
from lib.health.fleet import is_failing as failing_statuses
from lib.health.incident import FleetIncident, fleet_incident
from lib.health.inputs import PROBE_COLUMNS
from lib.health.policy import HealthPolicy
from lib.health.status import Status
from lib.store import alerts as alert_store

if TYPE_CHECKING:
    from lib.console import Console

__all__ = [
    "FAILING",
    "FleetSnapshot",
    "account_kind",
    "data_version",
    "filter_fleet",
    "fleet_drift",
    "fleet_inputs",
    "fleet_snapshot",
    "fleet_table",
    "is_failing",
    "refresh_summary",
]

FAILING = "failing"  # a status filter that keeps every failing status


def fleet_inputs(console: Console) -> tuple[pd.DataFrame, pd.DataFrame, HealthPolicy]:
    """Return what the health rules read: bound accounts, their deciding checks, the policy."""
    with console.reading() as session:
        policy = policy_from_settings(store.get_settings(session))
        accounts = store.accounts_frame(session)
        probes = store.deciding_checks_frame(
            session,
            PROBE_COLUMNS,
            clock_warn_ms=policy.clock_warn_ms,
            ip_blocked_code=IP_BLOCKED_CODE,
        )
    return accounts, probes, policy


def data_version(console: Console) -> tuple[int, int]:
    """Return a token that moves whenever a check, a binding or a setting is recorded."""
    with console.reading() as session:
        return store.data_version(session)


def fleet_table(console: Console, now: datetime | None = None) -> pd.DataFrame:
    """Return one row per bound account, worst status first (health FLEET_COLUMNS + scopes)."""
    return fleet_snapshot(console, now).fleet


def _with_scopes(fleet: pd.DataFrame, accounts: pd.DataFrame) -> pd.DataFrame:
    """Return the fleet with `scopes`: what the platform needs from each key ("spot, futures")."""
    needed = dict(
        zip(accounts["account_id"], (", ".join(s) for s in accounts["scopes"]), strict=True)
    )
    scopes = fleet["account_id"].map(needed).astype("string")
    return fleet.assign(scopes=scopes)[[*fleet.columns[:3], "scopes", *fleet.columns[3:]]]


@dataclass(frozen=True)
class FleetSnapshot:
    """The fleet table, the policy it was judged by and when: what the Fleet page draws."""

    fleet: pd.DataFrame
    policy: HealthPolicy
    as_of: datetime
    drifts: Mapping[int, tuple[Drift, ...]] = field(default_factory=dict)  # since binding

    @property
    def incident(self) -> FleetIncident | None:
        """Return the shared failure of most recently checked accounts, if any."""
        return fleet_incident(self.fleet, self.policy, self.as_of)

    @property
    def counts(self) -> pd.DataFrame:
        """Return the number of accounts per status, worst first."""
        return status_counts(self.fleet)

    @property
    def failing(self) -> pd.Series:
        """Return, per account, whether it is failing (Status.failing: the red tiles)."""
        return failing_statuses(self.fleet["status"])

    def incident_accounts(self) -> pd.Series:
        """Return, per account, whether its latest check is part of the incident."""
        incident = self.incident
        members = incident.account_ids if incident is not None else frozenset()
        return self.fleet["account_id"].isin(members).astype(bool)


def fleet_drift(console: Console) -> dict[int, tuple[Drift, ...]]:
    """Return each account's changes since its baseline (none without a baseline)."""
    with console.reading() as session:
        base = alert_store.baselines(session)
        latest = alert_store.latest_key_info(session) if base else {}
    return {a: key_drift(base[a], info) for a, info in latest.items() if a in base}


def fleet_snapshot(console: Console, now: datetime | None = None) -> FleetSnapshot:
    """Return the fleet table (drift since binding among the risks) with its policy and time."""
    now = now or datetime.now(UTC)
    accounts, probes, policy = fleet_inputs(console)
    drifts = fleet_drift(console)
    fleet = with_drift(fleet_health(accounts, probes, policy, now), drifts)
    return FleetSnapshot(_with_scopes(fleet, accounts), policy, now, drifts)


def refresh_summary(snapshot: FleetSnapshot, account_ids: Iterable[int]) -> tuple[bool, str]:
    """Return whether any account just checked needs attention, and the sentence saying so."""
    # Failing is the rules' (the red tiles); retrying: not failing yet, its check transient.
    fleet = snapshot.fleet
    checked = fleet["account_id"].isin(list(account_ids)).to_numpy(dtype=bool)
    failing = snapshot.failing.to_numpy(dtype=bool) & checked
    retrying = (fleet["last_result"] == "retrying").to_numpy(dtype=bool) & checked & ~failing
    total, bad, late = int(checked.sum()), int(failing.sum()), int(retrying.sum())
    noun = "account" if total == 1 else "accounts"
    text = f"Checked {total} {noun}: {bad} failing, {late} retrying, {total - bad - late} working."
    return bool(bad or late), text


# --- Filtering -----------------------------------------------------------------------------


def is_failing(status: str) -> bool:
    """Return whether accounts in this status are failing, as the health rules define it."""
    return Status(status).failing


def account_kind(fleet: pd.DataFrame) -> pd.Series:
    """Return "master", "sub-account" or "unknown" (key info not read yet) per account."""
    master = fleet["is_master"].astype("boolean")
    kind = pd.Series("unknown", index=fleet.index, dtype="string")
    kind[master.fillna(False).to_numpy(dtype=bool)] = "master"
    kind[(~master).fillna(False).to_numpy(dtype=bool)] = "sub-account"
    return kind


def filter_fleet(
    fleet: pd.DataFrame,
    *,
    statuses: Iterable[str] = (),
    scopes: Iterable[str] = (),
    kinds: Iterable[str] = (),
    search: str = "",
) -> pd.DataFrame:
    """Return the accounts matching every filter given, worst first (an empty filter keeps all)."""
    # statuses: Status names, FAILING for every failing one; scopes: accounts that need any
    # of them; kinds: "master", "sub-account", "unknown"; search: part of the label,
    # sub-account name or UID, any case.
    keep = pd.Series(True, index=fleet.index)
    statuses = {str(s) for s in statuses}
    if FAILING in statuses:
        statuses |= {s.value for s in Status if s.failing}
    if statuses:
        keep &= fleet["status"].astype(str).isin(statuses)
    scopes = [s.strip().lower() for s in scopes]
    if scopes:
        needed = fleet["scopes"].fillna("").astype(str).str.split(", ")
        keep &= needed.map(lambda names: any(s in names for s in scopes)).astype(bool)
    kinds = list(kinds)
    if kinds:
        keep &= account_kind(fleet).isin(kinds).to_numpy(dtype=bool)
    text = (search or "").strip()
    if text:
        pattern = re.escape(text)
        hit = pd.Series(False, index=fleet.index)
        for name in ("label", "uid", "sub_name"):
            hit |= fleet[name].astype("string").str.contains(pattern, case=False).fillna(False)
        keep &= hit
    return fleet[keep.to_numpy(dtype=bool)]

"""The fleet: its table with the policy it was judged by, its filters, a refresh's summary.

The Fleet page, `python -m lib status` and a notebook all read the same frame:

    from lib.console import Console
    from lib.console.fleet import fleet_table
    fleet = fleet_table(Console.open())     # one row per account, worst first

The snapshot behind it is kept judged per database (lib.console.snapshot).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lib import store
from lib.console.snapshot import (
    KEEP_S,
    FleetSnapshot,
    fleet_drift,
    fleet_snapshot,
    forget_fleet,
    keep_present,
    read_fleet,
)
from lib.health.policy import HealthPolicy
from lib.health.status import Status

if TYPE_CHECKING:
    from lib.console import Console

__all__ = [
    "FAILING",
    "KEEP_S",
    "FleetSnapshot",
    "account_kind",
    "data_version",
    "filter_fleet",
    "fleet_drift",
    "fleet_inputs",
    "fleet_snapshot",
    "fleet_table",
    "forget_fleet",
    "is_failing",
    "keep_present",
    "refresh_summary",
]

FAILING = "failing"  # a status filter that keeps every failing status


def fleet_inputs(console: Console) -> tuple[pd.DataFrame, pd.DataFrame, HealthPolicy]:
    """Return what the health rules read: bound accounts, their deciding checks, the policy."""
    with console.reading() as session:
        return read_fleet(session)


def data_version(console: Console) -> tuple[int, int]:
    """Return a token that moves whenever a check, a binding or a setting is recorded."""
    with console.reading() as session:
        return store.data_version(session)


def fleet_table(console: Console, now: datetime | None = None) -> pd.DataFrame:
    """Return one row per bound account, worst status first (health FLEET_COLUMNS + scopes)."""
    return fleet_snapshot(console, now).fleet


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
        # A fleet repeats a few scope lists: each is split once.
        codes, needed = pd.factorize(fleet["scopes"].fillna("").astype(str))
        wanted = [any(s in names.split(", ") for s in scopes) for names in needed]
        keep &= np.array(wanted, dtype=bool)[codes] if len(codes) else False
    kinds = list(kinds)
    if kinds:
        keep &= account_kind(fleet).isin(kinds).to_numpy(dtype=bool)
    text = (search or "").strip()
    if text:
        import pyarrow as pa  # the page's search only: `status` and `check` do without it
        import pyarrow.compute as pc

        hit = np.zeros(len(fleet), dtype=bool)
        for name in ("label", "uid", "sub_name"):
            values = pa.array(fleet[name].astype("string"), type=pa.string(), from_pandas=True)
            found = pc.match_substring(values, text, ignore_case=True).fill_null(False)
            hit |= found.to_numpy(zero_copy_only=False)
        keep &= hit
    kept = keep.to_numpy(dtype=bool)
    return fleet if kept.all() else fleet[kept]  # no filter: the table as it is, not a copy

"""The fleet: its table with the policy it was judged by, its filters, a refresh's summary.

The Fleet page, `python -m lib status` and a notebook all read the same frame:

    from lib.console import Console
    from lib.console.fleet import fleet_table
    fleet = fleet_table(Console.open())     # one row per account, worst first
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine
from sqlmodel import Session

from lib import store
from lib.console.settings import policy_from_settings
from lib.health.checks import IP_BLOCKED_CODE
from lib.health.fleet import (
    WORST_FIRST,
    deciding_checks,
    fleet_at,
    judge_fleet,
    status_counts,
    utc_now,
)
from lib.health.fleet import is_failing as failing_statuses
from lib.health.incident import FleetIncident, fleet_incident
from lib.health.inputs import ACCOUNT_COLUMNS, PROBE_COLUMNS
from lib.health.policy import HealthPolicy
from lib.health.status import Status

if TYPE_CHECKING:
    from lib.console import Console

__all__ = [
    "FAILING",
    "FleetSnapshot",
    "account_kind",
    "data_version",
    "filter_fleet",
    "fleet_inputs",
    "fleet_snapshot",
    "fleet_table",
    "is_failing",
    "refresh_summary",
]

FAILING = "failing"  # a status filter that keeps every failing status
PENDING_S = 300  # how long a skipped row id is asked for again (a slow writer's commit)
SHARED_S = 1  # how long one snapshot of the present serves every caller, if nothing changed
_TRACKERS: weakref.WeakKeyDictionary[Engine, _FleetTracker] = weakref.WeakKeyDictionary()
_TRACKERS_LOCK = threading.Lock()


def fleet_inputs(console: Console) -> tuple[pd.DataFrame, pd.DataFrame, HealthPolicy]:
    """Return what the health rules read: bound accounts, their deciding checks, the policy."""
    with console.reading() as session:
        return _read_fleet(session)


def _read_fleet(
    session: Session, account_ids: Iterable[int] | None = None, policy: HealthPolicy | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, HealthPolicy]:
    """Return the bound accounts (of `account_ids`), their deciding checks and the policy."""
    policy = policy or policy_from_settings(store.get_settings(session))
    accounts = store.accounts_frame(session, columns=ACCOUNT_COLUMNS, account_ids=account_ids)
    probes = store.deciding_checks_frame(
        session,
        PROBE_COLUMNS,
        clock_warn_ms=policy.clock_warn_ms,
        ip_blocked_code=IP_BLOCKED_CODE,
        account_ids=account_ids,
    )
    return accounts, probes, policy


def data_version(console: Console) -> tuple[int, int]:
    """Return a token that moves whenever a check, a binding or a setting is recorded."""
    with console.reading() as session:
        return store.data_version(session)


def fleet_table(console: Console, now: datetime | None = None) -> pd.DataFrame:
    """Return one row per bound account, worst status first (health FLEET_COLUMNS + scopes)."""
    return fleet_snapshot(console, now).fleet


@dataclass(frozen=True)
class FleetSnapshot:
    """The fleet table, the policy it was judged by and when: what the Fleet page draws."""

    fleet: pd.DataFrame
    policy: HealthPolicy
    as_of: datetime

    @cached_property
    def incident(self) -> FleetIncident | None:
        """Return the shared failure of most recently checked accounts, if any."""
        return fleet_incident(self.fleet, self.policy, self.as_of)

    @cached_property
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


def fleet_snapshot(console: Console, now: datetime | None = None) -> FleetSnapshot:
    """Return the fleet table with its policy and time (now unless told).

    One judgement of each database's fleet is kept for the process and brought up to date
    on every call: only the accounts with new checks, changed or due for judging again
    (lib.health.fleet changes_at) are judged anew.
    """
    return _tracker(console.engine).snapshot(console, now)


def _tracker(engine: Engine) -> _FleetTracker:
    """Return the tracker of this database's fleet (one per engine)."""
    with _TRACKERS_LOCK:
        tracker = _TRACKERS.get(engine)
        if tracker is None:
            tracker = _TRACKERS[engine] = _FleetTracker()
        return tracker


@dataclass
class _Seen:
    """The rows of one growing table already read: up to `newest`, and the ids skipped then."""

    newest: int = 0
    # An id skipped may belong to a writer that commits later (PostgreSQL hands out ids
    # before commit): asked for again until it is PENDING_S old.
    skipped: dict[int, float] = field(default_factory=dict)

    def saw(self, ids: Iterable[int], newest: int) -> None:
        """Note the ids read, up to the newest that exists."""
        read = set(ids)
        clock = time.monotonic()
        skipped = {i: t for i, t in self.skipped.items() if i not in read and clock - t < PENDING_S}
        gaps = set(range(self.newest + 1, max(self.newest, max(read, default=0)) + 1)) - read
        self.skipped = skipped | dict.fromkeys(gaps, clock)
        self.newest = max(self.newest, newest, max(read, default=0))


@dataclass
class _Judgement:
    """One database's fleet as judged last, with what it was judged from."""

    policy: HealthPolicy
    accounts: pd.DataFrame  # ACCOUNT_COLUMNS, indexed by account_id
    checks: pd.DataFrame  # the deciding checks (PROBE_COLUMNS and probe_id)
    judged: pd.DataFrame  # JUDGED_COLUMNS and scopes, indexed by account_id
    order: np.ndarray  # positions in `judged`, worst first
    at: pd.Timestamp  # the instant judged
    audit: _Seen
    probes: _Seen
    version: tuple[int, int]  # store.data_version when read

    def due(self, now: pd.Timestamp) -> bool:
        """Return whether time alone has changed an account's answers by `now`."""
        return bool((self.judged["changes_at"] <= now).any())

    def snapshot(self, now: datetime) -> FleetSnapshot:
        """Return the fleet at `now` (no earlier than `at`, no later than a change is due)."""
        fleet = fleet_at(self.judged.iloc[self.order], self.policy, now, ordered=True)
        return FleetSnapshot(fleet, self.policy, now)


class _FleetTracker:
    """Keeps one database's fleet judged, and judges again only what changed since."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: _Judgement | None = None
        self._shown: FleetSnapshot | None = None  # the last snapshot of the present moment

    def snapshot(self, console: Console, now: datetime | None) -> FleetSnapshot:
        """Return the fleet at `now` (the present unless told), judging what changed first."""
        present = now is None
        now = now or datetime.now(UTC)
        at = utc_now(now)
        with self._lock, console.reading() as session:
            last, shown = self._last, self._shown
            if (
                present
                and last is not None
                and shown is not None
                and at - shown.as_of < timedelta(seconds=SHARED_S)
                and not last.due(at)
                and store.data_version(session) == last.version
            ):
                return shown  # every session's reruns within the second share one table
            if last is None or at < last.at:
                last = _judge_all(session, at)
            else:
                last = _judge_changes(session, last, at)
            self._last = last
            snapshot = last.snapshot(now)
            if present:
                self._shown = snapshot
        return snapshot


def _judge_all(
    session: Session, now: pd.Timestamp, policy: HealthPolicy | None = None
) -> _Judgement:
    """Return the whole fleet read and judged at `now`."""
    version = store.data_version(session)
    accounts, checks, policy = _read_fleet(session, policy=policy)
    judged = _judge(accounts, checks, policy, now)
    audit, probes = _Seen(version[0]), _Seen(version[1])
    return _Judgement(
        policy,
        accounts.set_index("account_id", drop=False),
        checks,
        judged,
        _worst_first(judged),
        now,
        audit,
        probes,
        version,
    )


def _judge_changes(session: Session, last: _Judgement, now: pd.Timestamp) -> _Judgement:
    """Return `last` brought to `now`: accounts changed, checked or due judged again."""
    version = store.data_version(session)
    changed: set[int] = set()
    fresh = pd.DataFrame()
    if version != last.version or last.audit.skipped or last.probes.skipped:
        events = store.audit_since(session, last.audit.newest, also=last.audit.skipped)
        fresh = store.new_checks_frame(
            session, last.probes.newest, also=last.probes.skipped, columns=PROBE_COLUMNS
        )
        if any(account_id is None for _, _, account_id in events):
            # A setting (or anything not about one account): the policy may have moved.
            policy = policy_from_settings(store.get_settings(session))
            if policy != last.policy:
                return _judge_all(session, now, policy)
        changed = {account_id for _, _, account_id in events if account_id is not None}
        last.audit.saw((i for i, _, _ in events), version[0])
        last.probes.saw(fresh["probe_id"], version[1])
    checked = set(fresh["account_id"].unique()) if len(fresh) else set()
    due = last.judged.index[(last.judged["changes_at"] <= now).to_numpy()]
    dirty = changed | checked | set(due)
    if not dirty:
        return replace(last, at=now, version=version)
    accounts, checks = last.accounts, last.checks
    if changed:
        # Accounts bound, unbound, paused, verified...: read again with their deciding checks.
        rows, their_checks, _ = _read_fleet(session, changed, last.policy)
        accounts = pd.concat(
            [accounts.drop(changed, errors="ignore"), rows.set_index("account_id", drop=False)]
        )
        checks = pd.concat([checks[~checks["account_id"].isin(changed)], their_checks])
    if len(fresh):
        checks = pd.concat([checks, fresh[fresh["account_id"].isin(accounts.index)]])
    touched = checks["account_id"].isin(changed | checked).to_numpy()
    if touched.any():
        kept = deciding_checks(checks[touched].drop_duplicates("probe_id"), last.policy)
        checks = pd.concat([checks[~touched], kept], ignore_index=True)
    dirty_ids = accounts.index.intersection(sorted(dirty))
    again = _judge(
        accounts.loc[dirty_ids].reset_index(drop=True),
        checks[checks["account_id"].isin(dirty_ids)],
        last.policy,
        now,
    )
    judged = pd.concat([last.judged.drop(sorted(dirty), errors="ignore"), again])
    judged = judged.loc[judged.index.isin(accounts.index)]
    return _Judgement(
        last.policy,
        accounts,
        checks,
        judged,
        _worst_first(judged),
        now,
        last.audit,
        last.probes,
        version,
    )


def _judge(
    accounts: pd.DataFrame, checks: pd.DataFrame, policy: HealthPolicy, now: pd.Timestamp
) -> pd.DataFrame:
    """Return the accounts judged (lib.health.fleet.judge_fleet) with `scopes`, by account_id."""
    judged = judge_fleet(accounts, checks, policy, now)
    needed = [", ".join(s) for s in accounts["scopes"]]
    judged.insert(3, "scopes", pd.array(needed, dtype="string"))
    return judged.set_index("account_id", drop=False)


def _worst_first(judged: pd.DataFrame) -> np.ndarray:
    """Return the positions of the judged accounts, worst first (WORST_FIRST)."""
    keys = judged[WORST_FIRST].reset_index(drop=True)
    return keys.sort_values(WORST_FIRST, kind="stable").index.to_numpy()


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

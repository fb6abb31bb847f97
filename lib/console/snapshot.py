"""The fleet snapshot: one judgement of each database's fleet, kept and brought up to date.

Judging 100,000 accounts from their checks takes a second; between two snapshots a few of
them change. So each database's fleet is judged once per process and kept (shared by every
browser session, the commands and a notebook alike); each snapshot then reads what changed:

- audit events since the last one read: an account bound, paused, resumed, rescoped, verified
  or unbound is read again with its deciding checks; an event about no account (a setting)
  reads the policy again, and a new policy judges the whole fleet anew;
- checks recorded since the last row read: each joins its account's deciding checks (ids
  skipped by a slower PostgreSQL writer are asked for again for PENDING_S);
- accounts whose `changes_at` has come (lib.health.fleet): time alone changed an answer.

Only those accounts are judged again. The ages, freshness and going-stale times are read
from `now` when the snapshot is made (lib.health.fleet.fleet_at).

The snapshot of the present is shared by every caller for SHARED_S while nothing is stored:
a time boundary crossed meanwhile shows in the next one. While operators look at the fleet,
the served console brings it up to date every KEEP_S (keep_present), so that a page's rerun
finds it ready instead of judging the accounts whose words the clock has moved.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine
from sqlmodel import Session

from lib import store
from lib.console.settings import policy_from_settings
from lib.health.checks import IP_BLOCKED_CODE
from lib.health.drift import Drift, key_drift, with_drift
from lib.health.facts import NAT
from lib.health.fleet import (
    WORST_FIRST,
    deciding_checks,
    fleet_at,
    is_failing,
    judge_fleet,
    status_counts,
    utc_now,
    worst_first,
)
from lib.health.incident import FleetIncident, fleet_incident
from lib.health.inputs import ACCOUNT_COLUMNS, PROBE_COLUMNS
from lib.health.policy import HealthPolicy
from lib.health.timeline import TIMELINE_READS, StepGrid, timeline_steps
from lib.store import alerts as alert_store

if TYPE_CHECKING:
    from lib.console import Console

PENDING_S = 300  # how long a skipped row id is asked for again (a slow writer's commit)
SHARED_S = 2  # how long one snapshot of the present serves every caller, if nothing was stored
KEEP_S = 1  # how often keep_present brings the present up to date while operators look
LOOKED_S = 300  # how long after the last look keep_present keeps doing so


@dataclass(frozen=True)
class FleetSnapshot:
    """The fleet table, the policy it was judged by and when: what the Fleet page draws."""

    fleet: pd.DataFrame
    policy: HealthPolicy
    as_of: datetime
    drifts: Mapping[int, tuple[Drift, ...]] = field(default_factory=dict)  # since binding

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
        return is_failing(self.fleet["status"])

    def incident_accounts(self) -> pd.Series:
        """Return, per account, whether its latest check is part of the incident."""
        incident = self.incident
        members = incident.account_ids if incident is not None else frozenset()
        return self.fleet["account_id"].isin(members).astype(bool)


def fleet_snapshot(
    console: Console, now: datetime | None = None, *, looked: bool = False
) -> FleetSnapshot:
    """Return the fleet table with its policy and time (the present unless told).

    `looked`: an operator is shown the present (a page): keep_present then keeps it up to
    date for LOOKED_S. The alert worker, the commands and a notebook do not count.
    """
    kept = _kept(console)
    if now is None and looked:
        kept.looked()
    return kept.snapshot(console, now)


def keep_present(console: Console) -> bool:
    """Bring the present's snapshot up to date if a caller asked for it within LOOKED_S.

    Run every KEEP_S by the served console: a page's next rerun then finds the snapshot made,
    its status counts and incident included. Return whether it was brought up to date.
    """
    kept = _kept(console)
    if not kept.looked_lately():
        return False
    snapshot = kept.snapshot(console, None, shared_s=KEEP_S * 0.9)
    _ = snapshot.counts, snapshot.incident  # made now, not by the next page that draws them
    return True


def forget_fleet(console: Console) -> None:
    """Drop the console's kept fleet: the next snapshot judges it afresh.

    For writes made around the audit log (the demo's seeding moves bindings and checks back
    in time), which the kept fleet does not see.
    """
    with _KEPT_LOCK:
        _KEPT.pop(console.engine, None)


def _kept(console: Console) -> _KeptFleet:
    """Return the kept fleet of the console's database."""
    with _KEPT_LOCK:
        kept = _KEPT.get(console.engine)
        if kept is None:
            kept = _KEPT[console.engine] = _KeptFleet()
        return kept


def fleet_over_time(console: Console, days: int, now: datetime | None = None) -> pd.DataFrame:
    """Return the accounts working, retrying and failing at each step of the last days."""
    return _kept(console).timeline(console, days, now)


def fleet_drift(console: Console) -> dict[int, tuple[Drift, ...]]:
    """Return each account's changes since its baseline (none without a baseline)."""
    with console.reading() as session:
        return read_drift(session)


def read_drift(
    session: Session, account_ids: Iterable[int] | None = None
) -> dict[int, tuple[Drift, ...]]:
    """Return the changes since their baselines of these accounts (or all) that have one."""
    base = alert_store.baselines(session, account_ids)
    latest = alert_store.latest_key_info(session, account_ids) if base else {}
    return {a: key_drift(base[a], info) for a, info in latest.items() if a in base}


def read_fleet(
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


@dataclass
class _Seen:
    """The rows of one growing table already read: up to `newest`, and the ids skipped then."""

    newest: int = 0
    # An id skipped may belong to a writer that commits later (PostgreSQL hands out ids
    # before commit): it is asked for again until it is PENDING_S old.
    skipped: dict[int, float] = field(default_factory=dict)

    def saw(self, ids: Iterable[int], newest: int) -> None:
        """Note the ids read, up to the newest that exists."""
        read = set(ids)
        clock = time.monotonic()
        last = max(read, default=0)
        kept = {i: t for i, t in self.skipped.items() if i not in read and clock - t < PENDING_S}
        gaps = set(range(self.newest + 1, last + 1)) - read
        self.skipped = kept | dict.fromkeys(gaps, clock)
        self.newest = max(self.newest, newest, last)


class _Judged:
    """Every account judged (JUDGED_COLUMNS and scopes), one array per column, worst first.

    Accounts judged again are written in place; `frame` takes a copy for each snapshot.
    """

    def __init__(self, judged: pd.DataFrame) -> None:
        self.columns: dict[str, Any] = {name: _own(judged[name]) for name in judged.columns}
        self._index()

    def _index(self) -> None:
        """Number the accounts and order them worst first (WORST_FIRST)."""
        self.ids = np.asarray(self.columns["account_id"], dtype=np.int64)
        self.positions = pd.Index(self.ids)
        self._order()

    def _order(self) -> None:
        self.order = worst_first(
            pd.DataFrame({name: self.columns[name] for name in WORST_FIRST}, copy=False)
        )
        changes_at = self.columns["changes_at"].asi8
        self.next_change = changes_at[changes_at != NAT].min(initial=np.iinfo(np.int64).max)

    def due(self, now: pd.Timestamp) -> np.ndarray:
        """Return the ids of the accounts whose answers time alone has changed by `now`."""
        if self.next_change > now.value:
            return self.ids[:0]
        changes_at = self.columns["changes_at"].asi8
        return self.ids[(changes_at != NAT) & (changes_at <= now.value)]

    def update(self, judged: pd.DataFrame, gone: Iterable[int]) -> None:
        """Write accounts judged again, add new ones, drop those in `gone`."""
        gone = self.positions.intersection(list(gone))
        at = self.positions.get_indexer(judged["account_id"])
        known = at >= 0
        for name, values in self.columns.items():
            values[at[known]] = _own(judged[name][known])
        if known.all() and gone.empty:
            self._order()
            return
        keep = ~self.positions.isin(gone)
        added = judged[~known]
        for name, values in self.columns.items():
            kept = values[keep]
            self.columns[name] = (
                np.concatenate([kept, added[name].to_numpy()])
                if isinstance(kept, np.ndarray)
                else type(kept)._concat_same_type([kept, _own(added[name])])
            )
        self._index()

    def frame(self) -> pd.DataFrame:
        """Return every account's judgement, worst first (a copy)."""
        return pd.DataFrame(
            {name: values[self.order] for name, values in self.columns.items()}, copy=False
        )


def _own(values: pd.Series) -> Any:
    """Return a column's values as an array of their own (numpy or a pandas extension array)."""
    array = values.array
    if type(array) is pd.arrays.NumpyExtensionArray:  # not its subclasses (StringArray)
        return array.to_numpy().copy()
    return array.copy()


class _KeptFleet:
    """One database's fleet, judged once and then judged again where it changed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._policy: HealthPolicy | None = None
        self._accounts = pd.DataFrame()  # ACCOUNT_COLUMNS, indexed by account_id
        self._checks = pd.DataFrame()  # the deciding checks (PROBE_COLUMNS and probe_id)
        self._judged: _Judged | None = None
        self._at = pd.Timestamp(0, tz="UTC")  # when judged last
        self._audit, self._probes = _Seen(), _Seen()
        self._version = (0, 0)  # store.data_version when read last
        self._shown: FleetSnapshot | None = None  # the last snapshot of the present
        self._drifts: dict[int, tuple[Drift, ...]] = {}  # read again for accounts changed
        self._grids: dict[int, StepGrid] = {}  # the fleet over the last days, per window
        self._grids_lock = threading.Lock()  # held while a window's checks are read
        self._looked = -float("inf")  # time.monotonic() of the last caller asking for the present

    def snapshot(
        self, console: Console, now: datetime | None, *, shared_s: float = SHARED_S
    ) -> FleetSnapshot:
        """Return the fleet at `now` (the present unless told), judging what changed first.

        The present's last snapshot serves again if younger than `shared_s` and nothing was
        stored since.
        """
        present = now is None
        now = now or datetime.now(UTC)
        at = utc_now(now)
        with self._lock, console.reading() as session:
            shown = self._shown
            if (
                present
                and shown is not None
                and self._judged is not None
                and at - shown.as_of < timedelta(seconds=shared_s)
                and store.data_version(session) == self._version
            ):
                return shown  # every session's reruns within SHARED_S share one table
            if self._judged is None or self._policy is None or at < self._at:
                self._judge_all(session, at)
            else:
                self._judge_changes(session, at)
            assert self._judged is not None and self._policy is not None
            fleet = fleet_at(self._judged.frame(), self._policy, now, ordered=True)
            drifts = dict(self._drifts)
            snapshot = FleetSnapshot(with_drift(fleet, drifts), self._policy, now, drifts)
            if present:
                self._shown = snapshot
        return snapshot

    def looked(self) -> None:
        """Note that a caller asked for the present (keep_present keeps it up to date)."""
        self._looked = time.monotonic()

    def looked_lately(self) -> bool:
        """Return whether a caller asked for the present within LOOKED_S."""
        return time.monotonic() - self._looked < LOOKED_S

    def timeline(self, console: Console, days: int, now: datetime | None) -> pd.DataFrame:
        """Return the bound accounts per check result at each step of the last `days` days.

        Steps end on whole hours (whole 6 hours past two days), the last at or after `now`.
        Each window's checks are read once, then only the checks recorded since are added.
        The read holds only the windows' own lock: snapshots go on meanwhile.
        """
        step = timedelta(hours=1) if days <= 2 else timedelta(hours=6)
        end = pd.Timestamp(now or datetime.now(UTC)).ceil(step).to_pydatetime()
        ends = timeline_steps(start=end - timedelta(days=days), end=end, step=step)
        self.snapshot(console, None)  # the checks recorded since are added to the windows
        with self._grids_lock:  # one window read at a time: a second asker waits and shares it
            with self._lock:
                assert self._policy is not None
                grid, policy = self._grids.get(days), self._policy
                if grid is not None and grid.ends.equals(ends):
                    return grid.counts(self._accounts.index)
            grid = StepGrid(ends, policy)
            since = ends[0] - step - timedelta(days=1)  # a check a day before still counts
            with console.reading() as session:
                newest = store.data_version(session)[1]  # the newest check when the read began
                for chunk in store.checks_since_chunks(session, since, columns=TIMELINE_READS):
                    grid.add(chunk)
            with self._lock, console.reading() as session:
                # The checks recorded during the read are added again (a check counted twice
                # counts once); a policy changed meanwhile has the window read anew next time.
                if policy == self._policy:
                    grid.add(
                        store.new_checks_frame(
                            session, newest, also=self._probes.skipped, columns=TIMELINE_READS
                        )
                    )
                    self._grids[days] = grid
                return grid.counts(self._accounts.index)

    def _judge_all(
        self, session: Session, now: pd.Timestamp, policy: HealthPolicy | None = None
    ) -> None:
        """Read and judge the whole fleet at `now`."""
        version = store.data_version(session)
        accounts, checks, policy = read_fleet(session, policy=policy)
        self._policy, self._checks = policy, checks
        self._accounts = accounts.set_index("account_id", drop=False)
        self._judged = _Judged(_judge(accounts, checks, policy, now))
        self._drifts = read_drift(session)
        self._audit, self._probes = _Seen(version[0]), _Seen(version[1])
        self._at, self._version = now, version
        self._grids.clear()  # the policy may have moved: each window is read again when asked

    def _judge_changes(self, session: Session, now: pd.Timestamp) -> None:
        """Bring the judgement to `now`: accounts changed, checked or due are judged again."""
        assert self._judged is not None and self._policy is not None
        version = store.data_version(session)
        changed: set[int] = set()
        checked: set[int] = set()
        if version != self._version or self._audit.skipped or self._probes.skipped:
            events = store.audit_since(session, self._audit.newest, also=self._audit.skipped)
            fresh = store.new_checks_frame(
                session, self._probes.newest, also=self._probes.skipped, columns=PROBE_COLUMNS
            )
            if any(account_id is None for _, _, account_id in events):
                # A setting, or anything not about one account: the policy may have moved.
                policy = policy_from_settings(store.get_settings(session))
                if policy != self._policy:
                    self._judge_all(session, now, policy)
                    return
            changed = {account_id for _, _, account_id in events if account_id is not None}
            self._audit.saw((i for i, _, _ in events), version[0])
            self._probes.saw(fresh["probe_id"], version[1])
            for grid in self._grids.values():
                grid.add(fresh)
            self._read_again(session, changed, fresh)
            checked = set(fresh["account_id"].tolist())
            self._read_drift_again(session, changed | checked)
        dirty = changed | checked | set(self._judged.due(now).tolist())
        self._at, self._version = now, version
        if not dirty:
            return
        ids = self._accounts.index.intersection(sorted(dirty))
        judged = _judge(
            self._accounts.loc[ids].reset_index(drop=True),
            self._checks[self._checks["account_id"].isin(ids)],
            self._policy,
            now,
        )
        self._judged.update(judged, gone=dirty - set(ids))

    def _read_drift_again(self, session: Session, account_ids: set[int]) -> None:
        """Read again the drift of accounts bound, acknowledged or checked since."""
        if not account_ids:
            return
        for account_id in account_ids:
            self._drifts.pop(account_id, None)
        self._drifts.update(read_drift(session, account_ids))

    def _read_again(self, session: Session, changed: set[int], fresh: pd.DataFrame) -> None:
        """Take in accounts changed (read again) and the checks recorded since."""
        assert self._policy is not None
        accounts, checks = self._accounts, self._checks
        if changed:
            rows, their_checks, _ = read_fleet(session, changed, self._policy)
            accounts = pd.concat(
                [accounts.drop(changed, errors="ignore"), rows.set_index("account_id", drop=False)]
            )
            checks = pd.concat([checks[~checks["account_id"].isin(changed)], their_checks])
        fresh = fresh[fresh["account_id"].isin(accounts.index)]
        touched = changed | set(fresh["account_id"].tolist())
        if touched:
            mine = checks["account_id"].isin(touched).to_numpy()
            theirs = pd.concat([checks[mine], fresh]).drop_duplicates("probe_id")
            # Only the checks the rules decide on are kept: at most four per account.
            kept = deciding_checks(theirs, self._policy)
            checks = pd.concat([checks[~mine], kept], ignore_index=True)
        self._accounts, self._checks = accounts, checks


def _judge(
    accounts: pd.DataFrame, checks: pd.DataFrame, policy: HealthPolicy, now: pd.Timestamp
) -> pd.DataFrame:
    """Return the accounts judged (lib.health.fleet.judge_fleet) with the scopes they need."""
    judged = judge_fleet(accounts, checks, policy, now)
    needed = [", ".join(s) for s in accounts["scopes"]]
    judged.insert(3, "scopes", pd.array(needed, dtype="string"))
    return judged


_KEPT: weakref.WeakKeyDictionary[Engine, _KeptFleet] = weakref.WeakKeyDictionary()
_KEPT_LOCK = threading.Lock()

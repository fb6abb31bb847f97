"""A fleet incident: most recently checked accounts failing the same way, said once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from lib.health.checks import code_diagnosis, transient_diagnosis
from lib.health.coverage import text
from lib.health.fleet import CHECK_RESULT_DTYPE, utc_now
from lib.health.policy import HealthPolicy
from lib.health.status import Status, rejection_status


@dataclass(frozen=True)
class FleetIncident:
    """Most recently checked accounts failing the same way: one banner instead of N alarms."""

    status: Status  # DEGRADED for transient failures, else the code's status
    code: str | None  # the shared code; for transient failures the most common one, if any
    title: str
    count: int  # accounts failing this way
    checked: int  # non-paused accounts checked within the window
    since: datetime  # the earliest of those failing checks
    fix: str  # what to do about it
    account_ids: frozenset[int] = frozenset()  # the accounts failing this way

    @property
    def summary(self) -> str:
        """Return the banner's sentence."""
        code = f" ({self.code})" if self.code else ""
        when = self.since.strftime("%Y-%m-%d %H:%M UTC")
        return f"{self.title}{code} on {self.count} of {self.checked} accounts since {when}"


def fleet_incident(
    fleet: pd.DataFrame, policy: HealthPolicy, now: datetime
) -> FleetIncident | None:
    """Return the incident when most recently checked accounts fail the same way, else None."""
    # Counts non-paused accounts whose latest check falls within the incident window: with a
    # rolling schedule, accounts not checked lately are no evidence either way. Transient
    # failures (timeouts, 5xx, 429000, CDN pages) count as one way of failing.
    now = utc_now(now)
    recent = fleet[
        ~fleet["paused"].astype("boolean").fillna(False)
        & (fleet["last_checked_at"] > now - policy.incident_window)
        & (fleet["last_checked_at"] <= now)
    ]
    checked = len(recent)
    if checked < policy.incident_min_accounts:
        return None
    codes = [text(c) for c in recent["last_code"]]
    results = recent["last_result"].astype(CHECK_RESULT_DTYPE)
    kinds = [
        "unreachable" if r == "retrying" else (c or "rejected") if r == "rejected" else None
        for r, c in zip(results, codes, strict=True)
    ]
    failing = pd.Series(kinds, index=recent.index, dtype="object").dropna()
    if failing.empty:
        return None
    counts = failing.value_counts()
    kind, count = counts.index[0], int(counts.iloc[0])
    if count < policy.incident_min_accounts or count < policy.incident_share * checked:
        return None
    members = recent.loc[failing.index[failing == kind]]
    since = members["last_checked_at"].min().to_pydatetime()
    ids = frozenset(int(i) for i in members["account_id"])
    if kind == "unreachable":
        member_codes = pd.Series([text(c) for c in members["last_code"]], dtype="object")
        common = member_codes.dropna().mode()
        code = common.iloc[0] if not common.empty else None
        found = transient_diagnosis(code)
        return FleetIncident(
            Status.DEGRADED, code, found.title, count, checked, since, found.fix, ids
        )
    code = None if kind == "rejected" else kind
    found = code_diagnosis(code)
    title = found.title if code else "Rejected by KuCoin"
    fix = found.fix if code else "Open one of these accounts to read what KuCoin said."
    return FleetIncident(rejection_status(code), code, title, count, checked, since, fix, ids)

"""The fleet over time: how many accounts were working, retrying or failing, from the checks.

At the end of each period every account counts as its newest check by then says (one of
lib.health.checks.check_result's answers); an account not checked yet is not counted.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from lib.health.fleet import check_results
from lib.health.policy import HealthPolicy

# A check's answer in the words of the chart, worst first.
RESULT_WORDS = {"rejected": "failing", "retrying": "retrying", "ok": "working"}
TIMELINE_COLUMNS = ["at", "result", "accounts"]


def fleet_timeline(
    checks: pd.DataFrame, policy: HealthPolicy, *, start: datetime, end: datetime, step: timedelta
) -> pd.DataFrame:
    """Return, at each step from start to end, the accounts per check result (long form)."""
    ends = pd.date_range(start + step, end, freq=step, tz="UTC")
    if checks.empty or ends.empty:
        return pd.DataFrame(columns=TIMELINE_COLUMNS)
    judged = checks.assign(
        result=pd.Series(check_results(checks, policy), index=checks.index).map(RESULT_WORDS)
    ).sort_values("checked_at")
    # Each account's newest check at or before each step's end.
    grid = pd.MultiIndex.from_product(
        [ends, judged["account_id"].unique()], names=["at", "account_id"]
    ).to_frame(index=False)
    latest = pd.merge_asof(
        grid.sort_values("at"),
        judged[["checked_at", "account_id", "result"]],
        left_on="at",
        right_on="checked_at",
        by="account_id",
        direction="backward",
    ).dropna(subset=["result"])
    counts = latest.groupby(["at", "result"], observed=True).size().rename("accounts").reset_index()
    order = pd.CategoricalDtype(list(RESULT_WORDS.values()), ordered=True)
    return counts.astype({"result": order}).sort_values(["at", "result"]).reset_index(drop=True)

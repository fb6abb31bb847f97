"""The fleet over time: how many accounts were working, retrying or failing, from the checks.

At the end of each period every account counts as its newest check by then says (one of
lib.health.checks.check_result's answers); an account not checked yet is not counted.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from lib.health.fleet import CHECK_RESULT_DTYPE, check_results
from lib.health.policy import HealthPolicy

# A check's answer in the words of the chart, worst first.
RESULT_WORDS = {"rejected": "failing", "retrying": "retrying", "ok": "working"}
TIMELINE_COLUMNS = ["at", "result", "accounts"]
# The columns of the checks the timeline reads.
TIMELINE_READS = ("account_id", "checked_at", "outcome", "code", "clock_offset_ms")
_RESULT_DTYPE = pd.CategoricalDtype(list(RESULT_WORDS.values()), ordered=True)


def fleet_timeline(
    checks: pd.DataFrame, policy: HealthPolicy, *, start: datetime, end: datetime, step: timedelta
) -> pd.DataFrame:
    """Return, at each step from start to end, the accounts per check result (long form)."""
    ends = pd.date_range(start + step, end, freq=step, tz="UTC")
    if checks.empty or ends.empty:
        return pd.DataFrame(columns=TIMELINE_COLUMNS)
    # A check counts from the first step ending at or after it: its step, numbered from 0.
    at = pd.to_datetime(checks["checked_at"], utc=True).array.asi8
    step_ns = pd.Timedelta(step).value
    first = np.maximum(-((ends[0].value - at) // step_ns), 0)
    inside = first < len(ends)
    account = checks["account_id"].to_numpy(dtype=np.int64)[inside]
    at, first = at[inside], first[inside]
    # The result's position in RESULT_WORDS (worst first).
    words = [list(RESULT_WORDS).index(name) for name in CHECK_RESULT_DTYPE.categories]
    result = np.asarray(words)[check_results(checks, policy).codes[inside]]
    # Per account and step, its newest check (ties: the later row); it holds until the step
    # of the account's next one.
    order = np.lexsort((np.arange(len(at)), at, first, account))
    account, first, result = account[order], first[order], result[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = (account[1:] != account[:-1]) | (first[1:] != first[:-1])
    account, first, result = account[last], first[last], result[last]
    until = np.full(len(first), len(ends))
    same = account[1:] == account[:-1]
    until[:-1][same] = first[1:][same]
    counts = np.zeros((len(ends) + 1, len(RESULT_WORDS)), dtype=np.int64)
    np.add.at(counts, (first, result), 1)
    np.add.at(counts, (until, result), -1)
    counts = counts.cumsum(axis=0)[:-1]
    steps, results = np.nonzero(counts)  # step by step, worst result first
    return pd.DataFrame(
        {
            "at": ends[steps],
            "result": pd.Categorical.from_codes(results, dtype=_RESULT_DTYPE),
            "accounts": counts[steps, results],
        }
    )

"""The fleet over time: how many accounts were working, retrying or failing, from the checks.

At the end of each period every account counts as its newest check by then says (one of
lib.health.checks.check_result's answers); an account not checked yet is not counted.
StepGrid keeps, per account and step, the newest check in it: checks are folded in as they
come, in any order, and the counts read from it at any time.
"""

from __future__ import annotations

from collections.abc import Iterable
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
# The position in RESULT_WORDS of each check_result answer.
_WORD_OF_RESULT = np.asarray([list(RESULT_WORDS).index(r) for r in CHECK_RESULT_DTYPE.categories])
_NEVER = np.iinfo(np.int64).min


def timeline_steps(*, start: datetime, end: datetime, step: timedelta) -> pd.DatetimeIndex:
    """Return the ends of the steps from start to end."""
    return pd.date_range(start + step, end, freq=step, tz="UTC")


def fleet_timeline(
    checks: pd.DataFrame, policy: HealthPolicy, *, start: datetime, end: datetime, step: timedelta
) -> pd.DataFrame:
    """Return, at each step from start to end, the accounts per check result (long form)."""
    grid = StepGrid(timeline_steps(start=start, end=end, step=step), policy)
    grid.add(checks)
    return grid.counts()


class StepGrid:
    """Per account and step, the time and result of its newest check in that step."""

    def __init__(self, ends: pd.DatetimeIndex, policy: HealthPolicy) -> None:
        self.ends = ends
        self._policy = policy
        self._ids = pd.Index(np.zeros(0, dtype=np.int64))
        self._at = np.zeros((0, len(ends)), dtype=np.int64)
        self._result = np.zeros((0, len(ends)), dtype=np.int8)
        self._counted: tuple[pd.Index, pd.DataFrame] | None = None  # the last counts asked

    def add(self, checks: pd.DataFrame) -> None:
        """Fold checks in (TIMELINE_READS); of two at the same time, the one added later wins."""
        if checks.empty or self.ends.empty:
            return
        # A check counts from the first step ending at or after it: its step, numbered from 0.
        at = pd.to_datetime(checks["checked_at"], utc=True).array.asi8
        step_ns = (self.ends[1] - self.ends[0]).value if len(self.ends) > 1 else 1
        first = np.maximum(-((self.ends[0].value - at) // step_ns), 0)
        inside = first < len(self.ends)
        account = checks["account_id"].to_numpy(dtype=np.int64)[inside]
        result = _WORD_OF_RESULT[check_results(checks, self._policy).codes[inside]]
        at, first = at[inside], first[inside]
        # Per account and step, its newest check here (ties: the later row).
        order = np.lexsort((np.arange(len(at)), at, first, account))
        account, first, at, result = account[order], first[order], at[order], result[order]
        last = np.ones(len(order), dtype=bool)
        last[:-1] = (account[1:] != account[:-1]) | (first[1:] != first[:-1])
        account, first, at, result = account[last], first[last], at[last], result[last]
        rows = self._rows(account)
        newer = at >= self._at[rows, first]
        self._counted = None
        self._at[rows[newer], first[newer]] = at[newer]
        self._result[rows[newer], first[newer]] = result[newer]

    def counts(self, account_ids: Iterable[int] | None = None) -> pd.DataFrame:
        """Return, at each step's end, the accounts (all, or of `account_ids`) per result."""
        asked = self._ids if account_ids is None else pd.Index(list(account_ids), dtype=np.int64)
        counted = self._counted
        if counted is not None and counted[0].equals(asked):
            return counted[1].copy()  # nothing added since, the same accounts asked
        self._counted = (asked, self._count(asked))
        return self._counted[1].copy()

    def _count(self, asked: pd.Index) -> pd.DataFrame:
        """Return the counts of the accounts `asked`."""
        rows = self._ids.get_indexer(asked)
        rows = rows[rows >= 0]
        if not len(rows) or self.ends.empty:
            return pd.DataFrame(columns=TIMELINE_COLUMNS)
        result = self._result[rows]
        # An account keeps its result from the step of a check until the step of its next.
        steps = np.arange(len(self.ends))
        latest = np.maximum.accumulate(np.where(self._at[rows] != _NEVER, steps, -1), axis=1)
        held = np.take_along_axis(result, np.maximum(latest, 0), axis=1)
        known = latest >= 0
        keys = (steps * len(RESULT_WORDS))[None, :] + held
        counts = np.bincount(keys[known], minlength=len(steps) * len(RESULT_WORDS))
        counts = counts.reshape(len(steps), len(RESULT_WORDS))
        at_step, results = np.nonzero(counts)  # step by step, worst result first
        return pd.DataFrame(
            {
                "at": self.ends[at_step],
                "result": pd.Categorical.from_codes(results, dtype=_RESULT_DTYPE),
                "accounts": counts[at_step, results],
            }
        )

    def _rows(self, account_ids: np.ndarray) -> np.ndarray:
        """Return each account's row, adding rows for accounts not seen before."""
        rows = self._ids.get_indexer(account_ids)
        new = pd.unique(account_ids[rows < 0])
        if len(new):
            self._ids = self._ids.append(pd.Index(new))
            self._at = np.vstack([self._at, np.full((len(new), len(self.ends)), _NEVER)])
            self._result = np.vstack(
                [self._result, np.zeros((len(new), len(self.ends)), dtype=np.int8)]
            )
            rows = self._ids.get_indexer(account_ids)
        return rows
